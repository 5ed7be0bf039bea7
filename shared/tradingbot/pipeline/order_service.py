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

``pending`` means a leg's outcome is not known yet (its create answer was lost and no lookup has
found it, or the time budget ran out before it was sent): the order row stays ``submitted`` (or
``pending`` = never sent) and ``tradingbot reconcile`` resolves it later by the same lookups.
Rejections never raise: they come back with ``status="rejected"`` and a ``reason`` that starts
with a stable code, and are also stored (``executions`` row; the order row's event history). A
transient error before anything is sent (the venue or the lease unavailable, the budget spent)
stores a non-final ``pending`` record and raises it (a TransientError): the state machine's retry
runs the decision again and resumes from its rows.

Exactly once, under the venues' real rules. Binance documents ``newClientOrderId`` as "a unique id
among open orders" (https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Order):
a resend of a market order that already filled is ACCEPTED as a second order. So nothing here may
rely on the venue to refuse a duplicate, and an order whose outcome is unknown is never sent again:

1. Client order ids are derived from (account, decision, leg): every attempt of this decision,
   in this process or a later one, uses the same ids.
2. Order rows are written ``pending`` (= never sent) before anything is sent.
3. ``pending -> submitted`` is a compare-and-set under the row lock (SELECT ... FOR UPDATE),
   committed BEFORE the first send: only the attempt that made it sends, and it sends again only
   after an answer the venue documents as "not processed" (HTTP 429/418; Binance's 503 "Service
   Unavailable." / "Internal error; ... Please try again.": ExchangeFailedNotPlaced). A row found
   ``submitted`` by a later attempt is never sent again: it is looked up.
4. Outcome unknown (timeout, 5xx, DDoSProtection, BadResponse, Binance -1007 "Send status unknown;
   execution status unknown.", OKX 50004) -> look the order up by client id (a few times, with
   backoff: the venue's read side can lag), then in the venue's trade list for the symbol since
   the submit time (OKX fills carry the client id; Binance's trades carry only the order id, so
   a trade group matches by side and full quantity and must be the only unattributed one). Still
   unknown -> the row stays ``submitted`` for reconcile; the decision is ``pending``. The one
   exception: a stop / target (reduce-only, conditional) not found is sent again at once under
   its SAME client id (:meth:`OrderPlacer._resend_protective`: it cannot open or grow a position,
   and the venue refuses the id while an order under it is open), so a crash between its commit
   and its send does not leave the position unprotected until a reconcile grace runs out.
5. Plan-and-place is serialized per (account, symbol) by a Redis lease (``plan:<account>:<symbol>``)
   whose TTL is longer than an execution can run (:meth:`RetryPolicy.worst_case_s`): a second alert
   for the symbol waits and plans against the first one's result. PostgreSQL is authoritative for
   what is sent (the compare-and-set of 3) and, under the account row lock, refuses a new plan on a
   symbol where another decision's order is still ``pending``/``submitted`` (its outcome, hence the
   position, is unknown). The Redis lease is authoritative for the order of planning.
6. The execution record is never overwritten once final, and is never final while a leg is
   ``pending``/``submitted``; :func:`settle_pending` (run by reconcile) makes it final once
   reconcile has resolved its legs.
7. Protective orders follow the position (:mod:`tradingbot.pipeline.protection`): before a plan,
   a flat symbol's leftover stops and targets are cancelled; after the legs, on the venue's fresh
   position, the stop and target are placed for what the position holds (a partial fill: its
   filled size), and every other live protective order on the symbol is cancelled (the old side
   after a reverse, all of them after a flat). The report's ``protection`` keeps the decision's
   trigger prices, so reconcile can place them later for a leg it resolves.

Time: every venue call and sleep starts only if it can end inside ``RetryPolicy.budget_s``
(each call costs at most ``request_timeout_s`` per HTTP request); see
:meth:`RetryPolicy.worst_case_s`, checked against the execute Lambda's timeout by
tests/unit/test_execute_budget.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal, cast

from tradingbot import errors
from tradingbot.adapters.cache import Cache, TradingHalted
from tradingbot.adapters.crypto import EnvelopeCipher
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import SessionFactory
from tradingbot.adapters.persistence.errors import DuplicateClientOrderId
from tradingbot.adapters.persistence.models import Execution, OrderEvent
from tradingbot.adapters.persistence.repositories.executions import settle_decision_execution
from tradingbot.domain.exchange import (
    DuplicateOrder,
    Exchange,
    ExchangeError,
    ExchangeFailedNotPlaced,
    ExchangeUnavailable,
    MissingCredentials,
    OrderRequest,
    OrderResult,
    OrderStatus,
    OrderType,
    Position,
    RateLimited,
    Side,
    TradeHistory,
    VenueAccountChecks,
    VenueFill,
    usdt_fee,
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
from tradingbot.pipeline import kill_switch
from tradingbot.pipeline.protection import Protection, follow_position, position_owner
from tradingbot.settings import ExchangeSection

log = logging.getLogger(__name__)

ExchangeFactory = Callable[[AccountSettings], Exchange]
ExecutionStatus = Literal["filled", "partially_filled", "rejected", "no_op", "pending"]
FINAL_EXECUTIONS = frozenset({"filled", "partially_filled", "rejected", "no_op"})
_DB_FINAL = frozenset({"filled", "canceled", "rejected", "failed"})
_UNRESOLVED = frozenset({"pending", "submitted"})
_CONDITIONAL: tuple[OrderType, ...] = ("stop_market", "take_profit_market")


class BudgetExhausted(errors.TransientError):
    """The execute stage's time budget cannot fit the next venue call: nothing more is sent."""

    reason = "budget_exhausted"


class ExecutionBusy(errors.TransientError):
    """Another execution holds the (account, symbol) plan lease past the wait: try again later."""

    reason = "busy"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded in attempts and in time, so one decision fits the execute Lambda's timeout.

    * ``max_sends``: sends of one leg; a send is repeated only after a refusal the venue documents
      as "not processed" (HTTP 429/418, with Retry-After up to ``max_retry_after_s``), never after
      an unknown outcome.
    * ``max_lookups``: lookups by client id of a leg whose outcome is unknown, ``base_delay_s``
      doubling up to ``max_delay_s`` between them; then one read of the venue's trade list.
    * ``budget_s``: every venue call starts only when ``request_timeout_s`` x its HTTP requests
      still fit, every sleep only when the sleep and the next call fit; so all venue I/O of one
      decision ends within ``budget_s`` of the start (``request_timeout_s`` must be the ccxt
      client's timeout: default_exchange_factory's ``timeout_ms``).
    * ``local_allowance_s``: what PostgreSQL and Redis may add (about 30 short statements and
      Redis calls per decision; Redis's socket timeout is 0.25 s)."""

    max_sends: int = 3
    max_lookups: int = 3
    base_delay_s: float = 0.25
    max_delay_s: float = 1.0
    max_retry_after_s: float = 2.0
    request_timeout_s: float = 5.0
    budget_s: float = 40.0
    local_allowance_s: float = 10.0
    lease_wait_s: float = 10.0
    lease_poll_s: float = 0.05
    fills_window_s: float = 5.0  # the trade-list window opens this long before the submit time (clock skew)

    def backoff(self, attempt: int) -> float:
        return float(min(self.max_delay_s, self.base_delay_s * 2**attempt))

    def worst_case_s(self) -> float:
        """The longest one ``execute_intent`` can take: the venue budget plus local I/O."""
        return self.budget_s + self.local_allowance_s

    def lease_ttl_s(self) -> int:
        """Longer than the holder can live, so the lease never expires under a live holder."""
        return math.ceil(self.worst_case_s()) + 15


class Deadline:
    """The decision's time budget (monotonic clock)."""

    def __init__(self, budget_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._budget = budget_s
        self._end = clock() + budget_s

    def remaining(self) -> float:
        return self._end - self._clock()

    def allows(self, cost_s: float) -> bool:
        return self.remaining() >= cost_s

    def require(self, cost_s: float, what: str) -> None:
        if not self.allows(cost_s):
            raise BudgetExhausted(
                f"execute: {what} needs up to {cost_s:.1f} s, {max(self.remaining(), 0):.1f} s of the "
                f"{self._budget:.0f} s budget left; nothing more is sent"
            )


# venue calls by HTTP requests (ccxt's timeout is per request): a create on OKX is acknowledged with
# ids only and read back; on Binance a fill's commission is read from the trade list
_REQUESTS = {"create_order": 2, "fetch_order_by_client_id": 2}
_VENUE_CALLS = frozenset({
    "load_markets", "market", "max_leverage", "set_leverage", "set_margin_mode", "create_order", "cancel_order",
    "fetch_order_by_client_id", "fetch_positions", "fetch_balance", "check_position_mode", "fetch_fills",
})  # fmt: skip


class _Budgeted:
    """The exchange with every venue call checked against the deadline before it starts."""

    def __init__(self, inner: Exchange, deadline: Deadline, request_timeout_s: float) -> None:
        self._inner = inner
        self._deadline = deadline
        self._timeout = request_timeout_s
        self.name = inner.name

    def __getattr__(self, attr: str) -> Any:
        target = getattr(self._inner, attr)
        if attr not in _VENUE_CALLS:
            return target
        cost = self._timeout * _REQUESTS.get(attr, 1)

        def call(*args: Any, **kwargs: Any) -> Any:
            self._deadline.require(cost, attr.replace("_", " "))
            return target(*args, **kwargs)

        return call


def supports(exchange: Exchange, protocol: type) -> bool:
    """Whether the venue behind ``exchange`` implements an optional protocol (isinstance on a
    runtime-checkable protocol reads attributes statically, so it cannot see through _Budgeted)."""
    inner = exchange._inner if isinstance(exchange, _Budgeted) else exchange
    return isinstance(inner, protocol)


_supports = supports


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
    # the decision's trigger prices ({"stop_loss": "49000" | None, "take_profit": ...}): what reconcile
    # places for the position this decision opened when the execution ended before it could
    protection: dict[str, str | None] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "reason": self.reason, "decision_id": self.decision_id,
            "account_id": self.account_id, "exchange": self.exchange, "symbol": self.symbol,
            "action": self.action, "orders": [o.to_dict() for o in self.orders], "position": self.position,
            "warnings": list(self.warnings), "protection": self.protection,
        }  # fmt: skip


def is_protective(request: OrderRequest) -> bool:
    """A stop-loss / take-profit of ours: a reduce-only conditional order (may be sent again under
    its client id when its outcome is unknown: :meth:`OrderPlacer._resend_protective`)."""
    return request.type in _CONDITIONAL and request.reduce_only


def _reason(error: Exception) -> str:
    code = "trading_halted" if isinstance(error, TradingHalted) else getattr(error, "reason", "error")
    return f"{code}: {error}"


# ====================================================================== finding an order by its trades


def match_in_fills(
    fills: Sequence[VenueFill],
    *,
    cid: str,
    symbol: str,
    side: str,
    type: OrderType,
    quantity: Decimal,
    reduce_only: bool,
    attributed: set[str],
) -> OrderResult | None:
    """The order among the venue's trades: by client id where the trades carry it (OKX); else
    (Binance) the single trade group of one order id, not attributed to another of our orders,
    on our side, whose quantities add up to ours. Anything ambiguous is no match: the order
    stays unknown rather than take someone else's trades."""
    mine = [f for f in fills if f.client_order_id == cid]
    if not mine and not any(f.client_order_id for f in fills):
        groups: dict[str, list[VenueFill]] = {}
        for f in fills:
            if f.exchange_order_id not in attributed and f.side == side:
                groups.setdefault(f.exchange_order_id, []).append(f)
        full = [g for g in groups.values() if sum((f.quantity for f in g), Decimal(0)) == quantity]
        mine = full[0] if len(full) == 1 else []
    if not mine:
        return None
    filled = sum((f.quantity for f in mine), Decimal(0))
    status: OrderStatus = "filled" if filled >= quantity else "partially_filled"
    return OrderResult(
        client_order_id=cid, exchange_order_id=mine[0].exchange_order_id, symbol=symbol, side=cast(Side, side),
        type=type, status=status, quantity=quantity, filled=filled,
        average_price=sum((f.price * f.quantity for f in mine), Decimal(0)) / filled,
        fee=usdt_fee(mine), reduce_only=reduce_only,
    )  # fmt: skip


def find_in_trades(
    session_factory: SessionFactory,
    exchange: Exchange,
    account_id: int,
    *,
    cid: str,
    symbol: str,
    side: str,
    type: str,
    quantity: Decimal,
    reduce_only: bool,
    submitted_at: dt.datetime,
    window_s: float,
) -> OrderResult | None:
    """Look an order up in the venue's trade list since it was submitted (None when the venue
    has no trade list for us, or nothing matches). Conditional orders have no trades until they
    trigger, so they are only ever found by client id."""
    if type in _CONDITIONAL or not _supports(exchange, TradeHistory):
        return None
    since_ms = int((submitted_at.timestamp() - window_s) * 1000)
    until_ms = int((time.time() + window_s) * 1000)
    fills = cast(TradeHistory, exchange).fetch_fills(symbol, since_ms=since_ms, until_ms=until_ms)
    with session_factory() as s:
        attributed = repo.known_exchange_order_ids(s, account_id, symbol)
    return match_in_fills(
        fills, cid=cid, symbol=symbol, side=side, type=cast(OrderType, type), quantity=quantity,
        reduce_only=reduce_only, attributed=attributed,
    )  # fmt: skip


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
        deadline: Deadline | None = None,
    ) -> None:
        self._sessions = session_factory
        self._exchange = exchange
        self._account_id = account_id
        self._policy = policy
        self._sleep = sleep
        self._deadline = deadline or Deadline(policy.budget_s)

    # ---- rows

    def write_rows(
        self,
        rows: Sequence[tuple[OrderRequest, int | None]],
        *,
        guard_symbol: str | None = None,
        context: dict[str, Any] | None = None,
    ) -> str | None:
        """Write the ``pending`` rows of a plan in one transaction (``context``: what the decision
        knew, kept with each row: reconcile's :class:`~tradingbot.pipeline.reconcile.ResendGuard`
        reads its ``reference_price``). With ``guard_symbol``, under the
        account row lock and refused (the reason returned, nothing written) while another
        decision's order on that symbol is still ``pending``/``submitted``. Rows that already
        exist (another attempt of this decision got there first) are kept: they are the plan."""
        try:
            with self._sessions() as s:
                if guard_symbol is not None:
                    repo.lock_account_orders(s, self._account_id)
                    mine = [r.client_order_id for r, _ in rows]
                    others = repo.unresolved_orders(s, self._account_id, guard_symbol, exclude=mine)
                    if others:
                        return (
                            f"unresolved_order: order {others[0]} on {guard_symbol} of an earlier decision has no "
                            "known outcome yet; nothing is planned over it (run `tradingbot reconcile`)"
                        )
                for request, decision_row_id in rows:
                    repo.create_order(
                        s, account_id=self._account_id, client_order_id=request.client_order_id,
                        symbol=request.symbol, side=request.side, quantity=request.quantity, type=request.type,
                        price=request.price if request.type == "limit" else request.trigger_price,
                        reduce_only=request.reduce_only, decision_id=decision_row_id, context=context,
                    )  # fmt: skip
        except DuplicateClientOrderId:
            pass
        return None

    def _claim(self, cid: str) -> tuple[bool, str]:
        """(True, "submitted") when this attempt moved the row pending -> submitted (committed
        before anything is sent); else (False, the status it found)."""
        with self._sessions() as s:
            current = repo.order_status(s, cid, lock=True)
            if current is None:
                raise LookupError(f"no order row for client order id {cid!r}")
            if current != "pending":
                return False, current
            repo.transition_order(s, cid, "submitted", detail={"via": "send"})
        return True, "submitted"

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
                    # fee None = not known yet (issue 15 accounting): stored NULL, the sync writes the venue's
                    share = None if result.fee is None else result.fee * delta / result.filled
                    repo.record_fill(
                        s, order_id=order.id, exchange_fill_id=f"{result.exchange_order_id}:{result.filled}",
                        price=result.average_price, quantity=delta, fee=share,
                    )  # fmt: skip

    # ---- the protocol

    def place(self, leg: str, request: OrderRequest) -> LegReport:
        """Send the leg if this attempt claims its ``pending`` row; resolve it by lookups if an
        earlier attempt already did; report a final row as stored."""
        cid = request.client_order_id
        report = LegReport(leg, cid, request.side, request.type, request.quantity, "pending")
        with self._sessions() as s:
            status = repo.order_status(s, cid)
        if status in _DB_FINAL:
            return self._from_row(report)
        if status == "pending" and not self._deadline.allows(self._policy.request_timeout_s * 2):
            report.reason = "budget_exhausted: not sent (the time budget ran out); the row stays pending"
            return report
        claimed, status = self._claim(cid)
        if status in _DB_FINAL:
            return self._from_row(report)
        if not claimed:
            # an earlier attempt marked it submitted: it may be on the venue, so it is never sent again
            return self._resolve(report, request, "sent by an earlier attempt")
        return self._send(report, request)

    def resend_unplaced(self, leg: str, request: OrderRequest, *, why: str) -> LegReport:
        """Send a ``submitted`` leg again under its SAME client id, for reconcile only, once it is
        proven never placed: not found by client id nor in the venue's trade list after the venue's
        read side has had ``unknown_grace_s`` to catch up (the crash between commit and send, an
        unknown answer to a request that never reached the book). The row's ``updated_at`` is
        moved first (committed before the send), so the next proof waits a full grace again; if
        the order is open after all, the venue refuses the id as a duplicate (Binance -4116 "unique
        among open orders", OKX 51016) and it is looked up instead."""
        cid = request.client_order_id
        with self._sessions() as s:
            order = repo.order_by_client_id(s, cid)
            if order is None or order.status != "submitted":
                return self._from_row(LegReport(leg, cid, request.side, request.type, request.quantity, "pending"))
            order.updated_at = dt.datetime.now(dt.UTC)
            detail = {"via": "reconcile: resend", "reason": "never_placed", "message": why}
            s.add(OrderEvent(order_id=order.id, from_status="submitted", to_status="submitted", detail=detail))
        return self._send(LegReport(leg, cid, request.side, request.type, request.quantity, "submitted"), request)

    def _send(self, report: LegReport, request: OrderRequest, *, may_resend: bool = True) -> LegReport:
        """``may_resend``: whether an unknown outcome of a protective order may end in one more send
        under the same client id (:meth:`_resend_protective`); False for that send itself."""
        last: ExchangeError | None = None
        for attempt in range(self._policy.max_sends):
            try:
                result = self._exchange.create_order(request)
            except RateLimited as exc:  # 429/418: refused before processing, nothing reached the book
                last = exc
                if not self._wait(exc, attempt, self._policy.request_timeout_s * 2):
                    break
                continue
            except ExchangeFailedNotPlaced as exc:  # the venue's documented "failure, not executed": resend
                last = exc
                if attempt + 1 >= self._policy.max_sends or not self._pause(
                    self._policy.backoff(attempt), self._policy.request_timeout_s * 2
                ):
                    break
                log.warning("order send %d: %s; sending again (same client id)", attempt + 1, exc.reason)
                continue
            except BudgetExhausted as exc:
                return self._not_sent(report, last, str(exc))
            except ExchangeError as exc:
                if exc.definitely_not_placed and not may_resend and is_protective(request):
                    # the resend of a stop / target whose first send may have reached the venue: a
                    # refusal under a code we do not read as "duplicate" must not hide a live order
                    return self._reject_unless_found(report, request, exc)
                if exc.definitely_not_placed:
                    return self._reject(report, exc)
                # timeout, 5xx, -1007, DDoSProtection, BadResponse, or a duplicate id: it may exist.
                # A duplicate id is the venue saying it holds an OPEN order under this id (Binance:
                # "A unique id among open orders"): placed, so never sent again here, only looked up
                resend = may_resend and not isinstance(exc, DuplicateOrder)
                return self._resolve(report, request, _reason(exc), may_resend=resend)
            self.record(result, "create")
            return self._fill_report(report, result)
        return self._not_sent(report, last, None)

    def _resolve(self, report: LegReport, request: OrderRequest, cause: str, *, may_resend: bool = True) -> LegReport:
        """Outcome unknown: find the order (by client id, then in the trade list). An entry is never
        sent again; a protective order not found is sent once more under its SAME client id
        (:meth:`_resend_protective`), when ``may_resend``."""
        cid = request.client_order_id
        conditional = request.type in _CONDITIONAL
        last = cause
        for attempt in range(self._policy.max_lookups):
            if attempt and not self._pause(self._policy.backoff(attempt - 1), self._policy.request_timeout_s * 2):
                break
            try:
                found = self._exchange.fetch_order_by_client_id(request.symbol, cid, conditional=conditional)
            except BudgetExhausted:
                break
            except (RateLimited, ExchangeUnavailable, ExchangeFailedNotPlaced) as exc:
                last = _reason(exc)
                continue
            except ExchangeError as exc:
                last = _reason(exc)
                break
            if found is not None:
                self.record(found, "lookup")
                return self._fill_report(report, found)
        with self._sessions() as s:
            order = repo.order_by_client_id(s, cid)
            submitted_at = order.updated_at if order is not None else dt.datetime.now(dt.UTC)
        try:
            match = find_in_trades(
                self._sessions, self._exchange, self._account_id, cid=cid, symbol=request.symbol,
                side=request.side, type=request.type, quantity=request.quantity, reduce_only=request.reduce_only,
                submitted_at=submitted_at, window_s=self._policy.fills_window_s,
            )  # fmt: skip
        except (ExchangeError, BudgetExhausted) as exc:
            match, last = None, _reason(exc)
        if match is not None:
            self.record(match, "trades")
            return self._fill_report(report, match)
        if may_resend and is_protective(request):
            return self._resend_protective(report, request, f"{cause}; not found by client id ({last})")
        report.status = "submitted"
        report.reason = (
            f"outcome_unknown: {cause}; not found by client id nor in the trade list ({last}); "
            "never sent again: reconcile resolves it"
        )
        return report

    def _resend_protective(self, report: LegReport, request: OrderRequest, why: str) -> LegReport:
        """A stop / target whose send has an unknown outcome (a crash between the commit of
        ``submitted`` and the send, a lost answer) and that the venue does not show: sent again
        under the SAME client id, at once, instead of leaving the position unprotected until a
        reconcile grace has run out. Safe under both venues' documented rules, where resending an
        entry is not:

        * it cannot open or grow a position: it is ``reduceOnly`` (Binance New Algo Order:
          "reduceOnly ... true or false"; a reduce-only order only reduces the position, and the
          stand-in refuses -2022 where there is nothing to reduce. OKX place algo order
          ``reduceOnly`` "Whether the order can only reduce the position size");
        * if the first send did reach the venue and the order is open, the venue refuses the same id:
          Binance New Algo Order, ``clientAlgoId``: "A unique id among open orders"
          (https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Algo-Order);
          OKX documents ``algoClOrdId``'s format only (https://www.okx.com/docs-v5/en/#order-book-trading-algo-trading-post-place-algo-order),
          so we assume the weakest rule, Binance's: unique among live orders (51016 "Duplicated
          clOrdId" then). The refusal means "placed": the order is looked up, never sent again;
        * if the first send reached the venue and the order is no longer open (it fired, or was
          cancelled), the resend is accepted as a second reduce-only order: it can at most close
          what is left of the position, and :func:`tradingbot.pipeline.protection.follow_position`
          cancels every protective order beyond one stop and one target (the next pass at the latest).

        The row's ``updated_at`` moves and the resend is in its event history (committed before the send)."""
        cid = request.client_order_id
        with self._sessions() as s:
            order = repo.order_by_client_id(s, cid)
            if order is None or order.status != "submitted":
                return self._from_row(report) if order is not None else report
            order.updated_at = dt.datetime.now(dt.UTC)
            detail = {"via": "resend: protective", "reason": "outcome_unknown", "message": why}
            s.add(OrderEvent(order_id=order.id, from_status="submitted", to_status="submitted", detail=detail))
        log.warning("protective order %s: %s; sent again under its client id (reduce-only)", cid, why)
        report.status = "submitted"
        return self._send(report, request, may_resend=False)

    def _pause(self, delay: float, next_cost: float) -> bool:
        if not self._deadline.allows(delay + next_cost):
            return False
        self._sleep(delay)
        return True

    def _wait(self, exc: RateLimited, attempt: int, next_cost: float) -> bool:
        """Sleep before the next send; False when the venue asks for longer than we may wait."""
        if attempt + 1 >= self._policy.max_sends:
            return False
        delay = self._policy.backoff(attempt)
        if exc.retry_after_s is not None:
            if exc.retry_after_s > self._policy.max_retry_after_s:
                return False
            delay = max(delay, exc.retry_after_s)
        log.warning("order send %d: %s; retrying in %.2f s", attempt + 1, exc.reason, delay)
        return self._pause(delay, next_cost)

    def _reject_unless_found(self, report: LegReport, request: OrderRequest, exc: ExchangeError) -> LegReport:
        """One lookup by client id before a refusal of a protective resend is stored as ``rejected``:
        found, the venue's state is recorded instead."""
        try:
            found = self._exchange.fetch_order_by_client_id(request.symbol, request.client_order_id, conditional=True)
        except (ExchangeError, BudgetExhausted):
            found = None
        if found is not None:
            self.record(found, "lookup after a refused resend")
            return self._fill_report(report, found)
        return self._reject(report, exc)

    def _reject(self, report: LegReport, exc: ExchangeError) -> LegReport:
        self._transition(report.client_order_id, "rejected", {"reason": exc.reason, "message": str(exc)})
        report.status, report.reason = "rejected", _reason(exc)
        return report

    def _not_sent(self, report: LegReport, last: ExchangeError | None, why: str | None) -> LegReport:
        """Every send was refused before processing (or none could start): nothing is on the venue."""
        what = _reason(last) if last is not None else (why or "no attempt made")
        code = last.reason if last is not None else "budget_exhausted"
        self._transition(report.client_order_id, "failed", {"reason": code, "message": what})
        report.status, report.reason = "rejected", what
        return report

    def _fill_report(self, report: LegReport, result: OrderResult) -> LegReport:
        report.status = result.status
        report.exchange_order_id = result.exchange_order_id
        report.filled = result.filled
        report.average_price = result.average_price
        return report

    def leg_from_row(self, report: LegReport) -> LegReport:
        """``report`` refreshed from its stored row (status, fills, exchange id, reason); unchanged
        when there is no row."""
        with self._sessions() as s:
            order = repo.order_by_client_id(s, report.client_order_id)
            if order is None:
                return report
            report.side, report.type, report.quantity = order.side, order.type, Decimal(order.quantity)
            if order.status in _UNRESOLVED:
                report.status = order.status
                return report
        report.reason = None
        return self._from_row(report)

    def _from_row(self, report: LegReport) -> LegReport:
        with self._sessions() as s:
            order = repo.order_by_client_id(s, report.client_order_id)
            assert order is not None  # place() read its status
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


def _store(session_factory: SessionFactory, report: ExecutionReport) -> ExecutionReport:
    """Store the outcome unless a final one is already stored (then that one is the answer)."""
    with session_factory() as s:
        written = repo.store_execution(
            s, account_id=report.account_id, decision_key=report.decision_id, symbol=report.symbol,
            action=report.action, status=report.status, reason=report.reason, report=report.to_dict(),
            final_statuses=FINAL_EXECUTIONS,
        )  # fmt: skip
    if written:
        return report
    stored = _stored(session_factory, report.account_id, report.decision_id)
    return _report_from_dict(stored) if stored is not None else report


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
    """Execute one decision's intent; safe to call again, or concurrently, for the same decision."""
    policy = policy or RetryPolicy()
    deadline = Deadline(policy.budget_s)
    report = ExecutionReport("pending", intent.decision_id, account_id, intent.symbol, intent.action)
    account = load_account(session_factory, account_id)
    if account is None:  # nothing to attach a stored row to: the caller stores the reason
        report.status, report.reason = "rejected", f"unknown_account: no account with id {account_id}"
        return report
    stored = _stored(session_factory, account_id, intent.decision_id)
    if stored is not None:
        return _report_from_dict(stored)
    try:
        return _execute(session_factory, cache, account, intent, exchange_factory, policy, sleep, deadline, report)
    except errors.TransientError as exc:
        # nothing was sent in this attempt beyond what the rows say: not final, the retry resumes
        report.status, report.reason = "pending", _reason(exc)
        _store(session_factory, report)
        raise
    except (ExchangeError, TradingHalted) as exc:
        report.status, report.reason = "rejected", _reason(exc)
        return _store(session_factory, report)


@contextmanager
def _plan_lease(cache: Cache, account_id: int, symbol: str, policy: RetryPolicy, deadline: Deadline,
                sleep: Callable[[float], None]) -> Iterator[None]:  # fmt: skip
    """Hold ``plan:<account>:<symbol>`` for the whole plan-and-place, waiting for a holder to finish."""
    name = f"plan:{account_id}:{symbol}"
    waited = 0.0
    while True:
        held = cache.acquire_lease(name, policy.lease_ttl_s())
        if held is not None:
            break
        if waited >= policy.lease_wait_s or not deadline.allows(policy.lease_poll_s + policy.request_timeout_s * 4):
            raise ExecutionBusy(
                f"execute: another execution is placing orders on {symbol} for account {account_id} "
                f"(waited {waited:.1f} s), or Redis is unreachable"
            )
        sleep(policy.lease_poll_s)
        waited += policy.lease_poll_s
    try:
        yield
    finally:
        cache.release_lease(held)


def _execute(
    session_factory: SessionFactory,
    cache: Cache,
    account: AccountSettings,
    intent: TradeIntent,
    exchange_factory: ExchangeFactory,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    deadline: Deadline,
    report: ExecutionReport,
) -> ExecutionReport:
    report.exchange = account.exchange
    if not account.enabled:
        raise InvalidIntent(f"account: {account.name!r} is disabled")
    # a close (reduce-only legs only: plan_action) reduces risk, so it passes an engaged kill switch;
    # entries and reversals do not (issue 17: the operator's /close must work while trading is halted)
    closing = intent.action in ("close", "flat")
    if not closing:
        kill_switch.check(session_factory, cache, account.id)  # durable (PostgreSQL) or Redis: either engaged refuses
    cache.order_gate(account.id, reduce_only=closing)  # kill switch, order rate; refuses when Redis is unreachable
    exchange = cast(Exchange, _Budgeted(exchange_factory(account), deadline, policy.request_timeout_s))
    info = exchange.market(intent.symbol)
    report.symbol = info.symbol
    with _plan_lease(cache, account.id, info.symbol, policy, deadline, sleep):
        stored = _stored(session_factory, account.id, intent.decision_id)
        if stored is not None:  # a concurrent execution of this decision finished while we waited
            return _report_from_dict(stored)
        _place_decision(session_factory, exchange, account, intent, policy, sleep, deadline, report, info.symbol)
        return _store(session_factory, report)


def _place_decision(
    session_factory: SessionFactory,
    exchange: Exchange,
    account: AccountSettings,
    intent: TradeIntent,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    deadline: Deadline,
    report: ExecutionReport,
    symbol: str,
) -> None:
    placer = OrderPlacer(session_factory, exchange, account.id, policy, sleep, deadline)
    cids = {leg: client_order_id(account.id, intent.decision_id, leg) for leg in ("close", "open", "sl", "tp")}
    report.protection = {
        "stop_loss": None if intent.stop_loss is None else str(intent.stop_loss),
        "take_profit": None if intent.take_profit is None else str(intent.take_profit),
    }
    legs = _resume(session_factory, cids)
    if not legs:
        legs, reason = _plan(session_factory, placer, exchange, account, intent, symbol, report)
        if not legs:
            report.status, report.reason = "no_op", reason
            return
        rows = [(_request(symbol, cids[leg.leg], leg), intent.decision_row_id) for leg in legs]
        blocked = placer.write_rows(rows, guard_symbol=symbol, context={"reference_price": str(intent.reference_price)})
        if blocked is not None:
            report.status, report.reason = "rejected", blocked
            return
    for leg in legs:
        result = placer.place(leg.leg, _request(symbol, cids[leg.leg], leg))
        report.orders.append(result)
        if result.status != "filled":
            break  # a close that did not fully fill must not be followed by the opposite open
    positions = _follow(session_factory, placer, exchange, account, intent, report, symbol)
    report.status, report.reason = _overall(report)
    report.position = _sync_position(session_factory, account.id, symbol, positions)


def _resume(session_factory: SessionFactory, cids: dict[str, str]) -> list[PlannedLeg]:
    """The legs this decision already wrote (a retry): they are the plan, not a new sizing."""
    with session_factory() as s:
        rows = {o.client_order_id: o for o in repo.orders_by_client_ids(s, [cids["close"], cids["open"]])}
    legs = []
    for leg in ("close", "open"):
        o = rows.get(cids[leg])
        if o is not None:
            legs.append(PlannedLeg(leg, o.side, o.type, o.quantity, o.reduce_only))  # type: ignore[arg-type]
    return legs


def _plan(
    session_factory: SessionFactory,
    placer: OrderPlacer,
    exchange: Exchange,
    account: AccountSettings,
    intent: TradeIntent,
    symbol: str,
    report: ExecutionReport,
) -> tuple[list[PlannedLeg], str | None]:
    if _supports(exchange, VenueAccountChecks):
        cast(VenueAccountChecks, exchange).check_position_mode()  # hedge mode: refused before anything is sent
    positions = exchange.fetch_positions([symbol])
    current = next((p for p in positions if p.symbol == symbol), None)
    if current is None:
        # a flat symbol's leftover stop/target (a leg fired, a manual close) must not meet the new
        # position: cancelled before anything else is sent
        for a in follow_position(session_factory, exchange, account.id, symbol, placer=placer, position=None,
                                 owner=None):  # fmt: skip
            if not a.done:
                report.warnings.append(f"protection {a.kind} {a.key}: {a.detail}")
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


def _follow(
    session_factory: SessionFactory,
    placer: OrderPlacer,
    exchange: Exchange,
    account: AccountSettings,
    intent: TradeIntent,
    report: ExecutionReport,
    symbol: str,
) -> list[Position] | None:
    """Protective orders for the position the legs left (module doc, 7); the fresh positions, or
    None when the venue could not be read (then nothing is placed or cancelled: reconcile will)."""
    try:
        positions = exchange.fetch_positions([symbol])
    except (ExchangeError, BudgetExhausted) as exc:
        report.warnings.append(f"position not refreshed, protective orders not checked: {exc}")
        return None
    if any(o.status in _UNRESOLVED for o in report.orders if o.leg in ("close", "open")):
        return positions  # the position is not known until the leg is: reconcile protects it once resolved
    position = next((p for p in positions if p.symbol == symbol), None)
    opened = next((o for o in report.orders if o.leg == "open" and o.filled > 0), None)
    if opened is not None:
        owner: Protection | None = Protection(
            intent.decision_id, "long" if opened.side == "buy" else "short", intent.stop_loss, intent.take_profit,
            intent.decision_row_id,
        )  # fmt: skip
    else:  # a close that left part of the position: the opening decision's protection, resized
        owner = position_owner(session_factory, account.id, symbol) if position is not None else None
    actions = follow_position(
        session_factory, exchange, account.id, symbol, placer=placer, position=position, owner=owner,
        on_placed=lambda _leg, leg_report: report.orders.append(leg_report),
    )  # fmt: skip
    for a in actions:
        if a.kind in ("error", "unprotected") or not a.done:
            report.warnings.append(f"protection {a.kind} {a.key}: {a.detail}")
    return positions


def _overall(report: ExecutionReport) -> tuple[ExecutionStatus, str | None]:
    main = [o for o in report.orders if o.leg in ("close", "open")]
    for o in main:
        if o.status == "rejected":
            done = [x.leg for x in main if x.filled > 0]
            note = f" (already done: {', '.join(done)})" if done else ""
            return "rejected", f"{o.leg}: {o.reason}{note}"
        if o.status in ("pending", "open", "submitted"):
            return "pending", f"{o.leg}: {o.reason or 'order not filled yet'}"
    # never final while any leg (a protective one too) may still be reaching the venue
    unresolved = next((o for o in report.orders if o.status in _UNRESOLVED), None)
    if unresolved is not None:
        return "pending", f"{unresolved.leg}: {unresolved.reason or 'outcome not known yet'}"
    last = main[-1]
    if last.filled < last.quantity:
        return "partially_filled", f"{last.leg}: filled {last.filled} of {last.quantity}"
    return "filled", None


def _sync_position(
    session_factory: SessionFactory, account_id: int, symbol: str, positions: list[Position] | None
) -> dict[str, str] | None:
    if positions is None:
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
        position=doc.get("position"), warnings=list(doc.get("warnings") or []), protection=doc.get("protection"),
    )  # fmt: skip


# ====================================================================== settling after reconcile


def settle_pending(session_factory: SessionFactory, exchange: Exchange, account_id: int) -> list[ExecutionReport]:
    """Make final the ``pending`` executions whose legs are all resolved now (reconcile found
    them, or marked them failed): each leg as its row says, the decision's protective orders added,
    the outcome by the same rule as the order service's (:func:`_overall`). Returns the reports it
    stored; an execution with a leg still unknown, or without any order (its Step Functions retry
    resumes it), stays ``pending``. Nothing is sent."""
    with session_factory() as s:
        pending: list[Execution] = repo.executions_in_status(s, account_id, ["pending"])
        docs = [dict(e.report) for e in pending]
    settled = []
    for doc in docs:
        report = _report_from_dict(doc)
        if not any(o.leg in ("close", "open") for o in report.orders):
            continue
        placer = OrderPlacer(session_factory, exchange, account_id, RetryPolicy())
        known = {o.client_order_id for o in report.orders}
        legs = [placer.leg_from_row(o) for o in report.orders]
        for leg in ("sl", "tp"):
            cid = client_order_id(account_id, report.decision_id, leg)
            if cid not in known:
                row = placer.leg_from_row(LegReport(leg, cid, "", "", Decimal(0), "pending"))
                if row.side:  # the row exists (reconcile placed it)
                    legs.append(row)
        report.orders = legs
        status, reason = _overall(report)
        if status == "pending":
            continue
        report.status, report.reason = status, reason
        report.warnings.append("settled by reconcile")
        stored = _store(session_factory, report)
        with session_factory() as s:  # what `executions list|show` read: no longer "order pending"
            settle_decision_execution(s, stored.decision_id, stored.to_dict())
        settled.append(stored)
    return settled


# ====================================================================== exchange construction


def default_exchange_factory(
    session_factory: SessionFactory,
    cache: Cache,
    cipher: EnvelopeCipher,
    *,
    endpoints: ExchangeSection | None = None,
    timeout_ms: int = 5_000,
    reuse_clients: bool = True,
) -> ExchangeFactory:
    """Paper accounts get the paper exchange; live ones a ccxt client with their decrypted keys, on
    the account's REST base URL: its ``venue_urls["rest"]`` if set, else ``endpoints`` (the
    ``EXCHANGE_*`` settings: the venues' production / demo hosts by default).

    Create the factory once per cold start: with ``reuse_clients`` a warm Lambda keeps each
    account's client and its loaded markets (one exchangeInfo call per container, not per order);
    a key rotation takes effect at the next cold start, or at once with a new factory."""
    from tradingbot.adapters.exchange.ccxt_adapter import CcxtExchange, VenueId
    from tradingbot.adapters.exchange.paper import PaperExchange

    clients: dict[tuple[int, str, bool, str, str], Exchange] = {}
    defaults = endpoints or ExchangeSection()

    def build(account: AccountSettings) -> Exchange:
        if account.exchange == "paper":
            return PaperExchange(session_factory, cache, account.id)
        venue: VenueId = "okx" if account.exchange == "okx" else "binanceusdm"
        with session_factory() as s:
            row = repo.account_by_id(s, account.id)
            overrides = dict(row.venue_urls or {}) if row is not None else {}
        rest_url = overrides.get("rest") or defaults.rest_url(venue, testnet=account.testnet)
        key = (account.id, account.exchange, account.testnet, account.margin_mode, rest_url)
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
        client = CcxtExchange(
            venue, creds, testnet=account.testnet, timeout_ms=timeout_ms, rest_url=rest_url,
            margin_mode=account.margin_mode,
        )  # fmt: skip
        clients[key] = client
        return client

    return build
