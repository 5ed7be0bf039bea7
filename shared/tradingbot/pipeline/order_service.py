"""The Execute stage: turn a validated trade intent into orders, exactly once.

Entry point (the pipeline's ``functions/execute/handler.py`` calls it)::

    report = execute_intent(session_factory, cache, account_id, intent, exchange_factory)
    return report.to_dict()

* ``session_factory``: a no-argument callable returning a transaction context manager, e.g.
  ``lambda: session_scope(engine)``.
* ``cache``: :class:`tradingbot.adapters.cache.Cache` (kill switch and order gate; paper prices).
* ``intent``: :class:`~tradingbot.domain.positions.TradeIntent`; from the Validate stage's
  output use ``TradeIntent.from_validation(execution_name, state["validation"]["intent"], decision_row_id)``.
  Input JSON: ``{"decision_id": "tv-1-ab12...", "symbol": "BTCUSDT", "action": "long",
  "reference_price": "50000", "stop_loss": "49000", "take_profit": "52000", "quantity": null,
  "leverage": 3, "decision_row_id": 17}``.
* ``exchange_factory``: ``AccountSettings -> Exchange``; :func:`default_exchange_factory` builds the
  paper exchange or a ccxt client with the account's decrypted keys.

Output (``ExecutionReport.to_dict()``, JSON-ready)::

    {"status": "filled" | "partially_filled" | "rejected" | "no_op" | "pending",
     "reason": null | "leverage_too_high: leverage: 50x for BTC/USDT:USDT is above ...",
     "decision_id": "...", "account_id": 1, "exchange": "binanceusdm", "symbol": "BTC/USDT:USDT",
     "action": "long", "orders": [{"leg": "open", "client_order_id": "tbo3f9...", "exchange_order_id": "8389...",
     "side": "buy", "type": "market", "quantity": "0.01", "filled": "0.01", "average_price": "50000",
     "status": "filled", "reason": null}, ...], "position": {...} | null, "warnings": []}

``pending`` means the outcome of an order is unknown after the retry budget (the venue kept
timing out); the order row stays ``pending``/``submitted`` and ``tradingbot reconcile`` resolves it.
Rejections never raise: they come back with ``status="rejected"`` and a ``reason`` that starts
with a stable code, and are also stored (``executions`` row; the order row's event history).

Exactly once, in order of defence:

1. Client order ids are derived from (account, decision, leg): every retry of this decision,
   in this process or a later one, uses the same ids.
2. The order row is committed (status ``pending``) before anything is sent, so a crash between
   sending and recording leaves a row that a retry or ``reconcile`` looks up.
3. A Redis lease per client order id: two workers never place the same leg at once.
4. Every attempt except the first one of a freshly written row looks the order up by its client
   id first; a timeout or 5xx after sending is resolved by that lookup, never by a blind resend.
5. The venue's duplicate-id error (Binance -4116, OKX 51016) means "already placed": look it up.

Residual risk, stated: Binance only refuses a duplicate id among *open* orders, so if a timed-out
market order stays invisible to lookups for the whole backoff window and then fills, a resend
could be accepted. The backoff before each lookup (0.25 s doubling) and the bounded attempt count
keep that window small; ``reconcile`` reports any drift it leaves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal

from tradingbot.adapters.cache import Cache, TradingHalted
from tradingbot.adapters.crypto import EnvelopeCipher
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import SessionFactory
from tradingbot.adapters.persistence.errors import DuplicateClientOrderId
from tradingbot.domain.exchange import (
    Exchange,
    ExchangeError,
    ExchangeUnavailable,
    MissingCredentials,
    OrderRequest,
    OrderResult,
    Position,
    RateLimited,
)
from tradingbot.domain.positions import (
    AccountSettings,
    InvalidIntent,
    PlannedLeg,
    TradeIntent,
    check_leverage,
    check_protection,
    client_order_id,
    plan_action,
    round_and_check,
    size_quantity,
    target_side,
)

log = logging.getLogger(__name__)

ExchangeFactory = Callable[[AccountSettings], Exchange]
ExecutionStatus = Literal["filled", "partially_filled", "rejected", "no_op", "pending"]
# longer than a placement can take (attempts x (timeout + max delay)), short enough to recover
_LEASE_S = 120
FINAL_EXECUTIONS = frozenset({"filled", "partially_filled", "rejected", "no_op"})
_DB_FINAL = frozenset({"filled", "canceled", "rejected", "failed"})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded: at most ``max_attempts`` lookups/sends per order, sleeps capped, so one decision
    fits a Lambda's budget. A Retry-After above ``max_retry_after_s`` ends the attempts."""

    max_attempts: int = 6
    base_delay_s: float = 0.25
    max_delay_s: float = 2.0
    max_retry_after_s: float = 5.0

    def backoff(self, attempt: int) -> float:
        return float(min(self.max_delay_s, self.base_delay_s * 2**attempt))


@dataclass
class LegReport:
    leg: str
    client_order_id: str
    side: str
    type: str
    quantity: Decimal
    status: str
    exchange_order_id: str | None = None
    filled: Decimal = Decimal(0)
    average_price: Decimal | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}


@dataclass
class ExecutionReport:
    status: ExecutionStatus
    decision_id: str
    account_id: int
    symbol: str
    action: str
    exchange: str | None = None
    reason: str | None = None
    orders: list[LegReport] = field(default_factory=list)
    position: dict[str, str] | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "reason": self.reason, "decision_id": self.decision_id,
            "account_id": self.account_id, "exchange": self.exchange, "symbol": self.symbol,
            "action": self.action, "orders": [o.to_dict() for o in self.orders], "position": self.position,
            "warnings": list(self.warnings),
        }  # fmt: skip


def _reason(error: ExchangeError | TradingHalted) -> str:
    code = "trading_halted" if isinstance(error, TradingHalted) else error.reason
    return f"{code}: {error}"


# ====================================================================== exactly-once placement


class OrderPlacer:
    """Places one order leg exactly once (see the module docstring for the protocol)."""

    def __init__(
        self,
        session_factory: SessionFactory,
        exchange: Exchange,
        account_id: int,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
        cache: Cache | None = None,
    ) -> None:
        self._sessions = session_factory
        self._cache = cache
        self._exchange = exchange
        self._account_id = account_id
        self._policy = policy
        self._sleep = sleep

    # ---- rows

    def write_rows(self, rows: Sequence[tuple[OrderRequest, int | None]]) -> bool:
        """Commit the pending rows of a plan in one transaction; False if they already existed
        (another attempt of this decision got there first: its rows are the plan)."""
        try:
            with self._sessions() as s:
                for request, decision_row_id in rows:
                    repo.create_order(
                        s, account_id=self._account_id, client_order_id=request.client_order_id,
                        symbol=request.symbol, side=request.side, quantity=request.quantity, type=request.type,
                        price=request.price if request.type == "limit" else request.trigger_price,
                        reduce_only=request.reduce_only, decision_id=decision_row_id,
                    )  # fmt: skip
        except DuplicateClientOrderId:
            return False
        return True

    def _status(self, cid: str) -> str:
        with self._sessions() as s:
            status = repo.order_status(s, cid)
        if status is None:
            raise LookupError(f"no order row for client order id {cid!r}")
        return status

    def _transition(self, cid: str, target: str, detail: dict[str, Any], exchange_order_id: str | None = None) -> None:
        with self._sessions() as s:
            current = repo.order_status(s, cid, lock=True)
            if current == target or current in _DB_FINAL:
                return
            if current == "pending" and target not in ("submitted", "rejected", "failed"):
                repo.transition_order(s, cid, "submitted", exchange_order_id=exchange_order_id, detail=detail)
            repo.transition_order(s, cid, target, exchange_order_id=exchange_order_id, detail=detail)

    def record(self, result: OrderResult, via: str) -> None:
        """Store what the venue says about the order: status, exchange id, the fill so far."""
        detail = {"via": via, "filled": str(result.filled), "average_price": str(result.average_price)}
        self._transition(result.client_order_id, result.status, detail, result.exchange_order_id)
        if result.filled > 0 and result.average_price is not None:
            with self._sessions() as s:
                order = repo.order_by_client_id(s, result.client_order_id)
                assert order is not None  # _transition above found it
                delta = result.filled - repo.filled_quantity(s, order.id)
                if delta > 0:
                    # one row per cumulative fill level: idempotent however often it is observed
                    share = result.fee * delta / result.filled if result.filled else Decimal(0)
                    repo.record_fill(
                        s, order_id=order.id, exchange_fill_id=f"{result.exchange_order_id}:{result.filled}",
                        price=result.average_price, quantity=delta, fee=share,
                    )  # fmt: skip

    # ---- the protocol

    def place(self, leg: str, request: OrderRequest, *, fresh: bool) -> LegReport:
        """Place one leg under a Redis lease per client order id: two workers never place the same
        leg at once (a placer built without a cache, as reconcile's is, takes no lease).

        Redis, not a PostgreSQL advisory lock: that would pin a second database connection for
        the whole placement, and a Lambda's pool has one (plus one overflow, opened per use).
        Redis unreachable = no lease = nothing sent, as the order gate already decided (ADR 0003)."""
        cid = request.client_order_id
        report = LegReport(leg, cid, request.side, request.type, request.quantity, "pending")
        if self._cache is None:
            return self._place_locked(report, request, fresh=fresh)
        with self._cache.lease(f"orderlock:{cid}", _LEASE_S) as lease:
            if lease is None:
                report.reason = "in_progress: another worker is placing this order, or Redis is unreachable"
                return report
            return self._place_locked(report, request, fresh=fresh)

    def _place_locked(self, report: LegReport, request: OrderRequest, *, fresh: bool) -> LegReport:
        cid = request.client_order_id
        conditional = request.type in ("stop_market", "take_profit_market")
        status = self._status(cid)
        if status in _DB_FINAL:
            return self._from_row(report)
        must_lookup = not fresh or status != "pending"
        maybe_placed = must_lookup
        last: ExchangeError | None = None
        for attempt in range(self._policy.max_attempts):
            if must_lookup:
                try:
                    found = self._exchange.fetch_order_by_client_id(request.symbol, cid, conditional=conditional)
                except (RateLimited, ExchangeUnavailable) as exc:
                    last = exc
                    if not self._wait(exc, attempt):
                        break
                    continue
                if found is not None:
                    self.record(found, "lookup")
                    return self._fill_report(report, found)
            must_lookup = True
            try:
                result = self._exchange.create_order(request)
            except (RateLimited, ExchangeUnavailable) as exc:
                last = exc
                maybe_placed = maybe_placed or not exc.definitely_not_placed
                if not self._wait(exc, attempt):
                    break
                continue
            except ExchangeError as exc:
                if not exc.definitely_not_placed:  # duplicate id: already placed, go and look
                    last, maybe_placed = exc, True
                    continue
                return self._reject(report, exc)
            self.record(result, "create")
            return self._fill_report(report, result)
        return self._give_up(report, last, maybe_placed)

    def _wait(self, exc: ExchangeError, attempt: int) -> bool:
        """Sleep before the next attempt; False when the venue asks for longer than we may wait."""
        if attempt + 1 >= self._policy.max_attempts:
            return False
        delay = self._policy.backoff(attempt)
        if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
            if exc.retry_after_s > self._policy.max_retry_after_s:
                return False
            delay = max(delay, exc.retry_after_s)
        log.warning("order attempt %d: %s; retrying in %.2f s", attempt + 1, exc.reason, delay)
        self._sleep(delay)
        return True

    def _reject(self, report: LegReport, exc: ExchangeError) -> LegReport:
        self._transition(report.client_order_id, "rejected", {"reason": exc.reason, "message": str(exc)})
        report.status, report.reason = "rejected", _reason(exc)
        return report

    def _give_up(self, report: LegReport, last: ExchangeError | None, maybe_placed: bool) -> LegReport:
        what = _reason(last) if last is not None else "no attempt made"
        if maybe_placed:
            # it may exist on the venue: leave the row open for reconcile, never call it failed
            report.reason = (
                f"outcome_unknown: after {self._policy.max_attempts} attempts ({what}); reconcile resolves it"
            )
            return report
        self._transition(report.client_order_id, "failed", {"reason": last.reason if last else "", "message": what})
        report.status, report.reason = "rejected", what
        return report

    def _fill_report(self, report: LegReport, result: OrderResult) -> LegReport:
        report.status = result.status
        report.exchange_order_id = result.exchange_order_id
        report.filled = result.filled
        report.average_price = result.average_price
        return report

    def _from_row(self, report: LegReport) -> LegReport:
        with self._sessions() as s:
            order = repo.order_by_client_id(s, report.client_order_id)
            assert order is not None  # _place_locked read its status
            fills = repo.order_fills(s, order.id)
            last_event = order.events[-1].detail if order.events else {}
        filled = sum((q for q, _ in fills), Decimal(0))
        report.status = "rejected" if order.status == "failed" else order.status
        report.exchange_order_id = order.exchange_order_id
        report.filled = filled
        report.average_price = (sum((q * p for q, p in fills), Decimal(0)) / filled) if filled else None
        if order.status in ("rejected", "failed"):
            report.reason = f"{last_event.get('reason', 'rejected')}: {last_event.get('message', '')}"
        return report


# ====================================================================== the Execute stage


def load_account(session_factory: SessionFactory, account_id: int) -> AccountSettings | None:
    with session_factory() as s:
        a = repo.account_by_id(s, account_id)
        if a is None:
            return None
        return AccountSettings(
            id=a.id, name=a.name, exchange=a.exchange, testnet=a.testnet, enabled=a.enabled,
            max_position_usd=a.max_position_usd, max_leverage=a.max_leverage,
            risk_per_trade_pct=a.risk_per_trade_pct, sizing_mode=a.sizing_mode,  # type: ignore[arg-type]
            fixed_notional_usd=a.fixed_notional_usd, equity_pct=a.equity_pct,
            margin_mode=a.margin_mode,  # type: ignore[arg-type]
        )  # fmt: skip


def _stored(session_factory: SessionFactory, account_id: int, decision_id: str) -> dict[str, Any] | None:
    with session_factory() as s:
        row = repo.find_execution(s, account_id, decision_id)
        return dict(row.report) if row is not None and row.status in FINAL_EXECUTIONS else None


def _store(session_factory: SessionFactory, report: ExecutionReport) -> None:
    with session_factory() as s:
        repo.store_execution(
            s, account_id=report.account_id, decision_key=report.decision_id, symbol=report.symbol,
            action=report.action, status=report.status, reason=report.reason, report=report.to_dict(),
        )  # fmt: skip


def execute_intent(
    session_factory: SessionFactory,
    cache: Cache,
    account_id: int,
    intent: TradeIntent,
    exchange_factory: ExchangeFactory,
    *,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ExecutionReport:
    """Execute one decision's intent; safe to call again for the same decision (see module doc)."""
    report = ExecutionReport("pending", intent.decision_id, account_id, intent.symbol, intent.action)
    account = load_account(session_factory, account_id)
    if account is None:  # nothing to attach a stored row to: the caller stores the reason
        report.status, report.reason = "rejected", f"unknown_account: no account with id {account_id}"
        return report
    stored = _stored(session_factory, account_id, intent.decision_id)
    if stored is not None:
        return _report_from_dict(stored)
    try:
        _execute(session_factory, cache, account, intent, exchange_factory, policy or RetryPolicy(), sleep, report)
    except (ExchangeError, TradingHalted) as exc:
        report.status, report.reason = "rejected", _reason(exc)
    _store(session_factory, report)
    return report


def _execute(
    session_factory: SessionFactory,
    cache: Cache,
    account: AccountSettings,
    intent: TradeIntent,
    exchange_factory: ExchangeFactory,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    report: ExecutionReport,
) -> None:
    report.exchange = account.exchange
    if not account.enabled:
        raise InvalidIntent(f"account: {account.name!r} is disabled")
    cache.order_gate(account.id)  # kill switch, order rate; refuses when Redis is unreachable
    exchange = exchange_factory(account)
    info = exchange.market(intent.symbol)
    report.symbol = info.symbol
    placer = OrderPlacer(session_factory, exchange, account.id, policy, sleep, cache)
    cids = {leg: client_order_id(account.id, intent.decision_id, leg) for leg in ("close", "open", "sl", "tp")}
    legs, fresh = _resume(session_factory, cids)
    if not legs:
        legs, reason = _plan(exchange, account, intent, info.symbol)
        if not legs:
            report.status, report.reason = "no_op", reason
            return
        fresh = placer.write_rows([(_request(info.symbol, cids[leg.leg], leg), intent.decision_row_id) for leg in legs])
    for leg in legs:
        result = placer.place(leg.leg, _request(info.symbol, cids[leg.leg], leg), fresh=fresh)
        report.orders.append(result)
        if result.status != "filled":
            break  # a close that did not fully fill must not be followed by the opposite open
    _protect(placer, exchange, intent, report, cids, session_factory)
    report.status, report.reason = _overall(report)
    report.position = _sync_position(session_factory, exchange, account.id, info.symbol, report)


def _resume(session_factory: SessionFactory, cids: dict[str, str]) -> tuple[list[PlannedLeg], bool]:
    """The legs this decision already wrote (a retry): they are the plan, not a new sizing."""
    with session_factory() as s:
        rows = {o.client_order_id: o for o in repo.orders_by_client_ids(s, [cids["close"], cids["open"]])}
    legs = []
    for leg in ("close", "open"):
        o = rows.get(cids[leg])
        if o is not None:
            legs.append(PlannedLeg(leg, o.side, o.type, o.quantity, o.reduce_only))  # type: ignore[arg-type]
    return legs, False


def _plan(
    exchange: Exchange, account: AccountSettings, intent: TradeIntent, symbol: str
) -> tuple[list[PlannedLeg], str | None]:
    positions = exchange.fetch_positions([symbol])
    current = next((p for p in positions if p.symbol == symbol), None)
    sides, reason = plan_action(intent.action, current)
    legs: list[PlannedLeg] = []
    for leg, side in sides:
        if leg == "close":
            assert current is not None
            legs.append(PlannedLeg("close", side, "market", current.quantity, True))
            continue
        target = target_side(intent.action, current)
        assert target is not None
        leverage = intent.leverage or 1
        check_leverage(exchange, account, symbol, leverage)
        check_protection(target, intent.reference_price, intent.stop_loss, intent.take_profit)
        equity = exchange.fetch_balance().total if intent.quantity is None else Decimal(0)
        qty = size_quantity(account, intent, equity=equity, leverage=leverage)
        qty = round_and_check(exchange, symbol, qty, intent.reference_price)
        # idempotent settings, before the first order: the venue applies them per symbol
        exchange.set_margin_mode(symbol, account.margin_mode)
        exchange.set_leverage(symbol, leverage)
        legs.append(PlannedLeg("open", side, "market", qty, False))
    return legs, reason


def _request(symbol: str, cid: str, leg: PlannedLeg) -> OrderRequest:
    return OrderRequest(symbol, leg.side, leg.type, leg.quantity, cid, None, leg.trigger_price, leg.reduce_only)


def _protect(
    placer: OrderPlacer,
    exchange: Exchange,
    intent: TradeIntent,
    report: ExecutionReport,
    cids: dict[str, str],
    session_factory: SessionFactory,
) -> None:
    """Stop-loss and take-profit for what the open leg filled: reduce-only conditional orders."""
    opened = next((o for o in report.orders if o.leg == "open" and o.filled > 0), None)
    if opened is None:
        return
    close_side = "sell" if opened.side == "buy" else "buy"
    wanted: list[PlannedLeg] = []
    for name, price, otype in (
        ("sl", intent.stop_loss, "stop_market"),
        ("tp", intent.take_profit, "take_profit_market"),
    ):
        if price is not None:
            trigger = exchange.price_to_precision(report.symbol, price)
            wanted.append(PlannedLeg(name, close_side, otype, opened.filled, True, trigger))  # type: ignore[arg-type]
    if not wanted:
        return
    requests = [_request(report.symbol, cids[leg.leg], leg) for leg in wanted]
    fresh = placer.write_rows([(r, intent.decision_row_id) for r in requests])
    for leg, request in zip(wanted, requests, strict=True):
        result = placer.place(leg.leg, request, fresh=fresh)
        report.orders.append(result)
        if result.status not in ("open", "filled"):
            report.warnings.append(f"{leg.leg}: protective order not confirmed ({result.status}: {result.reason})")


def _overall(report: ExecutionReport) -> tuple[ExecutionStatus, str | None]:
    main = [o for o in report.orders if o.leg in ("close", "open")]
    for o in main:
        if o.status == "rejected":
            done = [x.leg for x in main if x.filled > 0]
            note = f" (already done: {', '.join(done)})" if done else ""
            return "rejected", f"{o.leg}: {o.reason}{note}"
        if o.status in ("pending", "open", "submitted"):
            return "pending", f"{o.leg}: {o.reason or 'order not filled yet'}"
    last = main[-1]
    if last.filled < last.quantity:
        return "partially_filled", f"{last.leg}: filled {last.filled} of {last.quantity}"
    return "filled", None


def _sync_position(
    session_factory: SessionFactory, exchange: Exchange, account_id: int, symbol: str, report: ExecutionReport
) -> dict[str, str] | None:
    try:
        positions = exchange.fetch_positions([symbol])
    except ExchangeError as exc:
        report.warnings.append(f"position not refreshed: {exc}")
        return None
    with session_factory() as s:
        repo.sync_positions(s, account_id, positions, symbols=[symbol])
    pos: Position | None = next((p for p in positions if p.symbol == symbol), None)
    if pos is None:
        return None
    return {
        "side": pos.side,
        "quantity": str(pos.quantity),
        "entry_price": str(pos.entry_price),
        "leverage": str(pos.leverage),
    }


def _report_from_dict(doc: dict[str, Any]) -> ExecutionReport:
    orders = [
        LegReport(
            leg=o["leg"], client_order_id=o["client_order_id"], side=o["side"], type=o["type"],
            quantity=Decimal(o["quantity"]), status=o["status"], exchange_order_id=o.get("exchange_order_id"),
            filled=Decimal(o.get("filled") or 0),
            average_price=Decimal(o["average_price"]) if o.get("average_price") else None, reason=o.get("reason"),
        )
        for o in doc.get("orders", [])
    ]  # fmt: skip
    return ExecutionReport(
        status=doc["status"], decision_id=doc["decision_id"], account_id=doc["account_id"], symbol=doc["symbol"],
        action=doc["action"], exchange=doc.get("exchange"), reason=doc.get("reason"), orders=orders,
        position=doc.get("position"), warnings=list(doc.get("warnings") or []),
    )  # fmt: skip


# ====================================================================== exchange construction


def default_exchange_factory(
    session_factory: SessionFactory,
    cache: Cache,
    cipher: EnvelopeCipher,
    *,
    api_urls: dict[str, dict[str, str]] | None = None,
    timeout_ms: int = 5_000,
    reuse_clients: bool = True,
) -> ExchangeFactory:
    """Paper accounts get the paper exchange; live ones a ccxt client with their decrypted keys
    (``api_urls`` per venue points a client at a local server; None in production).

    Create the factory once per cold start: with ``reuse_clients`` a warm Lambda keeps each
    account's client and its loaded markets (one exchangeInfo call per container, not per order);
    a key rotation takes effect at the next cold start, or at once with a new factory."""
    from tradingbot.adapters.exchange.ccxt_adapter import CcxtExchange, VenueId
    from tradingbot.adapters.exchange.paper import PaperExchange

    clients: dict[tuple[int, str, bool, str], Exchange] = {}

    def build(account: AccountSettings) -> Exchange:
        if account.exchange == "paper":
            return PaperExchange(session_factory, cache, account.id)
        key = (account.id, account.exchange, account.testnet, account.margin_mode)
        if reuse_clients and key in clients:
            return clients[key]
        with session_factory() as s:
            row = repo.account_by_id(s, account.id)
            creds = repo.load_credentials(s, row, cipher) if row is not None else None
        if creds is None:
            raise MissingCredentials(
                f"account {account.name!r} ({account.exchange}) has no API keys; store them with "
                f"`tradingbot keys set --account {account.name}`"
            )
        venue: VenueId = "okx" if account.exchange == "okx" else "binanceusdm"
        client = CcxtExchange(
            venue, creds, testnet=account.testnet, timeout_ms=timeout_ms,
            api_urls=(api_urls or {}).get(venue), margin_mode=account.margin_mode,
        )  # fmt: skip
        clients[key] = client
        return client

    return build
