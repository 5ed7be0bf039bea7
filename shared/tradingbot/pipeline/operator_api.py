# ruff: noqa: N818 - refusals read as outcomes (NotFound, Unauthorized), like the persistence errors
"""The operator's cockpit: what an operator may see and do, for the operator API, the Telegram
commands and the dashboard alike (issue 17). The HTTP handler
(``tradingbot.entrypoints.lambdas.operator_api``) and the Telegram commands
(``tradingbot.pipeline.telegram_commands``) only translate; every rule lives here:

* **Identity.** :func:`authenticate` turns a bearer operator token (``tradingbot operators token``;
  local ``serve``) or a Cognito ``sub`` claim (API Gateway's authorizer verified the JWT on AWS)
  into an :class:`~tradingbot.adapters.persistence.repositories.operators.OperatorRef`; a missing,
  unknown, expired or revoked token is refused (:class:`Unauthorized`) and audited.
* **Ownership.** Every account-scoped call resolves the account through the operator's ownership
  (:func:`_owned`): another operator's account is answered exactly like a missing one
  (:class:`NotFound`), so an identity cannot even learn which names exist; the refusal is audited.
* **Steering** (kill switch, close, reconcile) is audited with its outcome; nothing half-done: a
  close is one exactly-once Execute-stage intent (``order_service.execute_intent``).
* **Pages** are keyset cursors on the row id (opaque strings; a forged one is refused), newest first,
  through one helper (:func:`keyset_page`, :func:`owned_page` for an account's lists).

PnL and equity: once the accounting sync (``pipeline/accounting.py``) has run for an account, PnL
per day and the equity series are its ledger (the venue's realised PnL, fees, funding and balance
snapshots); before that they are replayed here from the venue's fill records (average-cost per
symbol, each fill's own fee), and every answer says which in ``source``. ``/performance`` (per
strategy needs our orders' decisions) always replays the fills.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn

from tradingbot.adapters.cache import CacheUnavailable
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.repositories import accounting as acc_repo
from tradingbot.adapters.persistence.repositories import operators as ops
from tradingbot.adapters.persistence.repositories.operators import OperatorRef
from tradingbot.errors import PermanentError
from tradingbot.pipeline import kill_switch as switch
from tradingbot.pipeline.runtime import Runtime

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from tradingbot.adapters.persistence.models import Account, Alert, BacktestRun, Decision, OptimizationRun, Order

PNL_SOURCE = "fills (average-cost replay of the venue's fill records; fees per fill)"
MAX_PAGE = 500
DEFAULT_PAGE = 50


# ------------------------------------------------------------------ errors -> HTTP in the handler


class OperatorApiError(PermanentError):
    """A refusal with the HTTP status it is answered with and a machine-readable code."""

    status = 400
    code = "bad_request"


class Unauthorized(OperatorApiError):
    status, code = 401, "unauthorized"


class NotFound(OperatorApiError):
    status, code = 404, "not_found"


class InvalidRequest(OperatorApiError):
    status, code = 422, "invalid_request"


# ------------------------------------------------------------------ identity


def authenticate(
    rt: Runtime, *, bearer: str | None, cognito_sub: str | None, channel: str = "api", command: str = "request"
) -> OperatorRef:
    """The operator behind a request. ``cognito_sub`` is trusted only because API Gateway's
    Cognito authorizer put it there (the local server never does); otherwise the bearer token."""
    with session_scope(rt.engine()) as s:
        if cognito_sub:
            op = ops.operator_by_cognito_sub(s, cognito_sub)
            if op is not None:
                return op
            problem, actor = "no operator has this Cognito user", f"cognito:{cognito_sub}"
        elif not bearer:
            problem, actor = "missing bearer token (Authorization: Bearer tbop_...)", "anonymous"
        else:
            check = ops.operator_by_token(s, bearer)
            if check.operator is not None:
                return check.operator
            problem, actor = f"token {check.problem}", "anonymous"
        ops.audit(s, channel=channel, actor=actor, command=command, outcome="refused", reason=problem)
    raise Unauthorized(problem)


def refuse(rt: Runtime, op: OperatorRef, error: OperatorApiError, *, command: str, channel: str,
           args: dict[str, Any]) -> NoReturn:  # fmt: skip
    """Audit the refusal in its own transaction (the caller's is rolled back by the raise), then raise."""
    with session_scope(rt.engine()) as s:
        ops.audit(s, channel=channel, actor=op.actor, operator_id=op.id, command=command, outcome="refused",
                  args=args, reason=str(error))  # fmt: skip
    raise error


def _owned(s: Session, op: OperatorRef, account: str, command: str, channel: str) -> Account:
    row = ops.owned_account(s, op.id, account)
    if row is None:
        raise _NotOwned(account, op, command, channel)
    return row


class _NotOwned(PermanentError):
    """Raised inside a transaction; :func:`_session` turns it into an audited :class:`NotFound`."""

    def __init__(self, account: str, op: OperatorRef, command: str, channel: str) -> None:
        super().__init__(account)
        self.account, self.op, self.command, self.channel = account, op, command, channel


@contextmanager
def _session(rt: Runtime) -> Iterator[Session]:
    """A transaction whose ownership refusals are audited after it rolled back."""
    try:
        with session_scope(rt.engine()) as s:
            yield s
    except _NotOwned as exc:
        error = NotFound(f"account: no account {exc.account!r} owned by operator {exc.op.name!r}")
        refuse(rt, exc.op, error, command=exc.command, channel=exc.channel, args={"account": exc.account})


# ------------------------------------------------------------------ cursors


def encode_cursor(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "id" or not value.isdigit():
            raise ValueError
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("cursor: not a cursor this API issued (use next_cursor from the previous page)") from None


def _limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit: must be between 1 and {MAX_PAGE}, got {limit}")
    return limit


def _page(items: list[dict[str, Any]], ids: list[int], limit: int) -> dict[str, Any]:
    return {"items": items, "next_cursor": encode_cursor(ids[-1]) if len(ids) == limit else None}


#: a repository's keyset query: ``(session, n, before_id) -> rows`` (newest first, each with an ``id``)
PageQuery = Callable[["Session", int, int | None], Sequence[Any]]


def keyset_page(rt: Runtime, *, cursor: str | None, limit: int | None, rows: PageQuery,
                item: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """One page of a list: the limit and the cursor checked (:class:`InvalidRequest`), ``rows`` run
    in one transaction whose ownership refusals are audited, each row dumped by ``item`` there (ORM
    rows are read before the session closes), and ``next_cursor`` when the page is full."""
    n, before = _limit(limit), decode_cursor(cursor)
    with _session(rt) as s:
        found = rows(s, n, before)
        return _page([item(r) for r in found], [r.id for r in found], n)


def owned_page(rt: Runtime, op: OperatorRef, account: str, *, command: str, query: Callable[..., Sequence[Any]],
               item: Callable[[Any], dict[str, Any]], cursor: str | None, limit: int | None,
               channel: str = "api", **where: Any) -> dict[str, Any]:  # fmt: skip
    """:func:`keyset_page` of one owned account: ``query(session, account_id, limit=, before_id=,
    **where)`` runs only after the account resolved through the operator's ownership."""

    def rows(s: Session, n: int, before: int | None) -> Sequence[Any]:
        return query(s, _owned(s, op, account, command, channel).id, limit=n, before_id=before, **where)

    return keyset_page(rt, cursor=cursor, limit=limit, rows=rows, item=item)


# ------------------------------------------------------------------ symbols and prices


def ticker(symbol: str) -> str:
    """``BTC/USDT:USDT`` -> ``BTCUSDT`` (what people and TradingView write)."""
    base, _, rest = symbol.partition("/")
    return (base + rest.split(":")[0]).upper() if rest else symbol.upper()


def price_venue(rt: Runtime, exchange: str) -> str:
    """Whose prices mark an account's positions: its venue, or for paper the reference venue."""
    return rt.settings.paper_reference_venue if exchange == "paper" else exchange


def _unrealized(side: str, qty: Decimal, entry: Decimal, mark: Decimal) -> Decimal:
    return (mark - entry) * qty if side == "long" else (entry - mark) * qty


# ------------------------------------------------------------------ reads


def accounts(rt: Runtime, op: OperatorRef) -> list[dict[str, Any]]:
    with session_scope(rt.engine()) as s:
        rows = ops.owned_accounts(s, op.id)
        out = [
            {"name": a.name, "id": a.id, "exchange": a.exchange, "testnet": a.testnet, "enabled": a.enabled,
             "balance": _str(ops.paper_balance(s, a.id)) if a.exchange == "paper" else None,
             "limits": {"max_position_usd": _str(a.max_position_usd), "max_leverage": a.max_leverage,
                        "max_daily_loss_usd": _str(a.max_daily_loss_usd),
                        "max_open_positions": a.max_open_positions}}
            for a in rows
        ]  # fmt: skip
        ids = [a.id for a in rows]
    for item, account_id in zip(out, ids, strict=True):
        item["kill_switch"] = _switch_state(rt, account_id)
    return out


def positions(rt: Runtime, op: OperatorRef, account: str, *, channel: str = "api") -> dict[str, Any]:
    """Open positions with the feed's live mark price (Redis ``tb:px:*``), unrealized PnL, and the
    live stop and target orders; a missing price says so instead of inventing a mark."""
    with _session(rt) as s:
        acc = _owned(s, op, account, "positions", channel)
        rows = [(p.symbol, p.side, Decimal(p.quantity), Decimal(p.entry_price), p.leverage, p.opened_at)
                for p in ops.open_positions_of(s, acc.id)]  # fmt: skip
        protect = ops.protective_orders(s, acc.id)
        exchange = acc.exchange
    venue = price_venue(rt, exchange)
    cache = rt.cache()
    now_ms = int(time.time() * 1000)
    items = []
    total = Decimal(0)
    for symbol, side, qty, entry, leverage, opened_at in rows:
        quote = cache.get_price(venue, symbol)
        mark = quote.price if quote is not None else None
        upnl = _unrealized(side, qty, entry, mark) if mark is not None else None
        total += upnl or 0
        stops = [p for sym, kind, p in protect if sym == symbol and kind == "stop_market"]
        targets = [p for sym, kind, p in protect if sym == symbol and kind == "take_profit_market"]
        items.append({
            "symbol": symbol, "ticker": ticker(symbol), "side": side, "quantity": _str(qty), "entry_price": _str(entry),
            "leverage": leverage, "opened_at": opened_at.isoformat(), "mark_price": _str(mark),
            "price_age_ms": now_ms - quote.ts_ms if quote is not None else None,
            "unrealized_pnl": _str(upnl), "stop_loss": _str(stops[0]) if stops else None,
            "take_profit": _str(targets[0]) if targets else None,
            "mark_source": f"feed {venue}" if quote is not None else "no live price (feed down or stale)",
        })  # fmt: skip
    return {"account": account, "items": items, "unrealized_pnl": _str(total)}


def orders(rt: Runtime, op: OperatorRef, account: str, *, cursor: str | None = None,
           limit: int | None = None) -> dict[str, Any]:  # fmt: skip
    def item(o: Order) -> dict[str, Any]:
        return {"id": o.id, "client_order_id": o.client_order_id, "exchange_order_id": o.exchange_order_id,
                "symbol": o.symbol, "side": o.side, "type": o.type, "quantity": _str(o.quantity),
                "price": _str(o.price), "reduce_only": o.reduce_only, "status": o.status,
                "decision_id": o.decision_id, "created_at": o.created_at.isoformat(),
                "updated_at": o.updated_at.isoformat()}  # fmt: skip

    return owned_page(rt, op, account, command="orders", query=ops.orders_page, item=item, cursor=cursor, limit=limit)


def fills(rt: Runtime, op: OperatorRef, account: str, *, cursor: str | None = None,
          limit: int | None = None) -> dict[str, Any]:  # fmt: skip
    def item(f: ops.FillRow) -> dict[str, Any]:
        return {"id": f.id, "order_id": f.order_id, "client_order_id": f.client_order_id, "symbol": f.symbol,
                "side": f.side, "price": _str(f.price), "quantity": _str(f.quantity), "fee": _str(f.fee),
                "fee_currency": f.fee_currency, "filled_at": f.filled_at.isoformat()}  # fmt: skip

    return owned_page(rt, op, account, command="fills", query=ops.fills_page, item=item, cursor=cursor, limit=limit)


def decision_summary(d: Decision) -> dict[str, Any]:
    """One decision as the operator reads it: the alert, every rule's verdict with its reason, the
    rejecting rule (the first that failed), and what happened."""
    stages = d.stages or {}
    validation = stages.get("validation") or {}
    rules = [r for r in validation.get("rules") or [] if isinstance(r, dict)]
    failed = next((r for r in rules if r.get("verdict") == "fail"), None)
    alert = (d.inputs or {}).get("alert") or {}
    result, reason = outcome(stages, d.final_action, d.rejection_reason)
    return {
        "id": d.id, "execution_name": d.execution_name, "symbol": d.symbol, "strategy": alert.get("strategy"),
        "alert_action": alert.get("action"), "alert_price": alert.get("price"), "final_action": d.final_action,
        "outcome": result, "reason": reason, "rejecting_rule": failed.get("rule") if failed else None,
        "rules": [{"rule": r.get("rule"), "verdict": r.get("verdict"), "reason": r.get("reason")} for r in rules],
        "started_at": d.started_at.isoformat(), "finished_at": d.finished_at.isoformat() if d.finished_at else None,
    }  # fmt: skip


_ORDER_OUTCOME = {"filled": "filled", "partially_filled": "partially filled", "rejected": "order rejected",
                  "no_op": "no order", "pending": "order pending"}  # fmt: skip


def outcome(stages: dict[str, Any], final_action: str | None, rejection_reason: str | None) -> tuple[str, str | None]:
    """What actually happened, from the execution report when there is one (a venue's rejection is
    not a trade whatever the intent was), else from the decision: the validator's rejection or the
    pipeline's error. The CLI's ``executions list|show`` print the same."""
    report = stages.get("execution")
    if isinstance(report, dict) and report.get("status"):
        status = str(report["status"])
        reason = report.get("reason") or next(
            (leg.get("reason") for leg in report.get("orders") or [] if isinstance(leg, dict) and leg.get("reason")),
            None,
        )
        return _ORDER_OUTCOME.get(status, status), reason or rejection_reason
    if final_action == "rejected":
        return "rejected", rejection_reason
    if final_action == "error":
        return "failed", rejection_reason
    return "-", rejection_reason


def decisions(rt: Runtime, op: OperatorRef, account: str, *, cursor: str | None = None, limit: int | None = None,
              today: bool = False, channel: str = "api") -> dict[str, Any]:  # fmt: skip
    since = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) if today else None
    return owned_page(rt, op, account, command="decisions", channel=channel, query=ops.decisions_page,
                      item=decision_summary, cursor=cursor, limit=limit, since=since)  # fmt: skip


def execution_states(stages: dict[str, Any]) -> list[dict[str, Any]]:
    """Each state of the execution with its own duration and its own result: the stage's output
    under its ResultPath (``$.predict``, ``$.validation`` ...), not the whole state it passed on."""
    meta = stages.get("_execution") or {}
    out = []
    for st in meta.get("states") or []:
        name = str(st.get("state"))
        entry: dict[str, Any] = {"state": name, "type": st.get("type"), "started": st.get("started"),
                                 "duration_ms": st.get("duration_ms")}  # fmt: skip
        if "output" in st:
            entry["result"] = own_result(name, st.get("input"), st.get("output"))
        else:
            entry["error"] = st.get("error")
            entry["cause"] = st.get("cause")
        out.append(entry)
    return out


def own_result(state: str, state_input: Any, output: Any) -> Any:
    """What this state added to the execution state: the keys of ``output`` that are new or changed
    against its ``input`` (a Task's ResultPath), or the whole output when it replaced the state."""
    if not isinstance(output, dict) or not isinstance(state_input, dict):
        return output
    added = {k: v for k, v in output.items() if k not in state_input or state_input[k] != v}
    return added if added else ({} if output == state_input else output)


def executions(rt: Runtime, op: OperatorRef, account: str, *, cursor: str | None = None,
               limit: int | None = None) -> dict[str, Any]:  # fmt: skip
    def item(d: Decision) -> dict[str, Any]:
        meta = (d.stages or {}).get("_execution") or {}
        result, reason = outcome(d.stages or {}, d.final_action, d.rejection_reason)
        return {"id": d.id, "execution_name": d.execution_name, "status": meta.get("status"),
                "duration_ms": meta.get("duration_ms"), "outcome": result, "reason": reason,
                "market": (meta.get("market") or {}).get("mode"),
                "states": execution_states(d.stages or {})}  # fmt: skip

    return owned_page(rt, op, account, command="executions", query=ops.decisions_page, item=item, cursor=cursor,
                      limit=limit)  # fmt: skip


def alerts(rt: Runtime, op: OperatorRef, account: str, *, cursor: str | None = None,
           limit: int | None = None) -> dict[str, Any]:  # fmt: skip
    def item(a: Alert) -> dict[str, Any]:
        return {"id": a.id, "received_at": a.received_at.isoformat(), "status": a.status, "reason": a.reason}

    return owned_page(rt, op, account, command="alerts", query=ops.alerts_page, item=item, cursor=cursor, limit=limit)


# ------------------------------------------------------------------ PnL from the fills


@dataclass(frozen=True)
class RealizedFill:
    at: dt.datetime
    symbol: str
    realized: Decimal  # price PnL of the part of the fill that reduced the position
    fee: Decimal


def replay_fills(rows: list[ops.FillRow]) -> list[RealizedFill]:
    """Average-cost replay in one-way mode: a fill that adds to the position moves its average
    entry; a fill that reduces it realizes (price - average) x quantity (sign by side); a fill that
    flips it realizes the closed part and opens the rest at its price. Fees are the fill's own."""
    qty: dict[str, Decimal] = defaultdict(Decimal)  # signed: + long, - short
    avg: dict[str, Decimal] = defaultdict(Decimal)
    out = []
    for f in rows:
        signed = f.quantity if f.side == "buy" else -f.quantity
        pos = qty[f.symbol]
        realized = Decimal(0)
        if pos == 0 or (pos > 0) == (signed > 0):
            total = abs(pos) + f.quantity
            avg[f.symbol] = (avg[f.symbol] * abs(pos) + f.price * f.quantity) / total
        else:
            closing = min(abs(pos), f.quantity)
            realized = closing * (f.price - avg[f.symbol]) * (1 if pos > 0 else -1)
            if f.quantity > abs(pos):
                avg[f.symbol] = f.price
        qty[f.symbol] = pos + signed
        if qty[f.symbol] == 0:
            avg[f.symbol] = Decimal(0)
        out.append(RealizedFill(f.filled_at, f.symbol, realized, f.fee))
    return out


def _realized(s: Session, account_id: int) -> list[RealizedFill]:
    return replay_fills(ops.fills_page(s, account_id, limit=1_000_000, ascending=True))


LEDGER_SOURCE = "venue ledger (pipeline/accounting.py sync: the venue's trades, fees and funding)"


def pnl_daily(rt: Runtime, op: OperatorRef, account: str, *, days: int = 30, channel: str = "api") -> dict[str, Any]:
    """Net PnL per UTC day: from the accounting sync's ledger (the venue's own realised PnL, fees
    and funding) once the account has been synced, else replayed from the fill records; ``source``
    says which."""
    if not 1 <= days <= 3650:
        raise InvalidRequest(f"days: must be between 1 and 3650, got {days}")
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days - 1)).date()
    since = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
    per_day: dict[dt.date, dict[str, Decimal | int]] = {}
    with _session(rt) as s:
        acc = _owned(s, op, account, "pnl", channel)
        synced = acc_repo.cursor(s, acc.id) is not None
        if synced:
            for d in acc_repo.daily_pnl(s, acc.id, since=since):
                per_day[d.day] = {"realized": d.realized, "fees": d.fees, "funding": d.funding, "fills": d.trades}
        else:
            realized = _realized(s, acc.id)
    if not synced:
        for r in realized:
            day = r.at.astimezone(dt.UTC).date()
            if day < start:
                continue
            bucket = per_day.setdefault(day, {"realized": Decimal(0), "fees": Decimal(0), "funding": Decimal(0),
                                              "fills": 0})  # fmt: skip
            bucket["realized"] = Decimal(bucket["realized"]) + r.realized
            bucket["fees"] = Decimal(bucket["fees"]) + r.fee
            bucket["fills"] = int(bucket["fills"]) + 1
    items = []
    for i in range(days):
        day = start + dt.timedelta(days=i)
        b = per_day.get(day, {"realized": Decimal(0), "fees": Decimal(0), "funding": Decimal(0), "fills": 0})
        net = Decimal(b["realized"]) - Decimal(b["fees"]) + Decimal(b["funding"])
        items.append({"date": day.isoformat(), "realized_pnl": _str(Decimal(b["realized"])),
                      "fees": _str(Decimal(b["fees"])), "funding": _str(Decimal(b["funding"])),
                      "net_pnl": _str(net), "fills": b["fills"]})  # fmt: skip
    return {"account": account, "days": items, "source": LEDGER_SOURCE if synced else PNL_SOURCE}


def equity(rt: Runtime, op: OperatorRef, account: str) -> dict[str, Any]:
    """The equity series: the accounting sync's snapshots of the venue's balance when there are any;
    else, after each fill, anchored for a paper account on its wallet's balance now (the start is
    the balance less everything realized since), otherwise the cumulative net realized PnL."""
    with _session(rt) as s:
        acc = _owned(s, op, account, "equity", "api")
        snapshots = acc_repo.equity_series(s, acc.id)
        realized = [] if snapshots else _realized(s, acc.id)
        balance = ops.paper_balance(s, acc.id) if acc.exchange == "paper" and not snapshots else None
    if snapshots:
        points = [{"at": at.isoformat(), "equity": _str(e)} for at, e in snapshots]
        return {"account": account, "basis": "venue balance snapshots", "start": points[0]["equity"],
                "points": points, "source": LEDGER_SOURCE}  # fmt: skip
    net = sum((r.realized - r.fee for r in realized), Decimal(0))
    level = (balance - net) if balance is not None else Decimal(0)
    start_level = level
    fill_points = []
    for r in realized:
        level += r.realized - r.fee
        fill_points.append({"at": r.at.isoformat(), "equity": _str(level)})
    basis = "paper wallet balance" if balance is not None else "cumulative net realized PnL (venue balance not stored)"
    return {"account": account, "basis": basis, "start": _str(start_level), "points": fill_points,
            "source": PNL_SOURCE}  # fmt: skip


def performance(rt: Runtime, op: OperatorRef, *, channel: str = "api") -> dict[str, Any]:
    """Net realized PnL and trade counts per symbol and per strategy (the strategy of the alert
    whose decision placed the order), over every account the operator owns."""
    by_symbol: dict[str, dict[str, Any]] = {}
    by_strategy: dict[str, dict[str, Any]] = {}
    with session_scope(rt.engine()) as s:
        for acc in ops.owned_accounts(s, op.id):
            rows = ops.fills_page(s, acc.id, limit=1_000_000, ascending=True)
            strategies = ops.strategies_of_orders(s, [f.order_id for f in rows])
            for f, r in zip(rows, replay_fills(rows), strict=True):
                for key, table in ((ticker(f.symbol), by_symbol), (strategies.get(f.order_id, "manual"), by_strategy)):
                    b = table.setdefault(key, {"net_pnl": Decimal(0), "fills": 0, "closing_fills": 0, "wins": 0})
                    b["net_pnl"] += r.realized - r.fee
                    b["fills"] += 1
                    if r.realized != 0:
                        b["closing_fills"] += 1
                        b["wins"] += 1 if r.realized - r.fee > 0 else 0

    def dump(table: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"name": k, **{f: str(v) if isinstance(v, Decimal) else v for f, v in b.items()}}
                for k, b in sorted(table.items(), key=lambda kv: -kv[1]["net_pnl"])]  # fmt: skip

    return {"by_symbol": dump(by_symbol), "by_strategy": dump(by_strategy), "source": PNL_SOURCE}


def backtests(rt: Runtime, *, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
    """Research runs are not an account's: every operator sees them."""

    def item(r: BacktestRun) -> dict[str, Any]:
        return {"id": r.id, "optimization_run_id": r.optimization_run_id, "strategy": r.strategy,
                "symbol": r.symbol, "timeframe": r.timeframe, "params": r.params, "metrics": r.metrics,
                "status": r.status, "started_at": r.started_at.isoformat(),
                "finished_at": r.finished_at.isoformat() if r.finished_at else None}  # fmt: skip

    return keyset_page(rt, cursor=cursor, limit=limit, item=item,
                       rows=lambda s, n, before: ops.backtest_runs_page(s, limit=n, before_id=before))  # fmt: skip


def optimisations(rt: Runtime, *, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
    def item(r: OptimizationRun) -> dict[str, Any]:
        return {"id": r.id, "strategy": r.strategy, "symbol": r.symbol, "timeframe": r.timeframe,
                "objective": r.objective, "status": r.status, "best_params": r.best_params,
                "best_score": r.best_score, "started_at": r.started_at.isoformat(),
                "finished_at": r.finished_at.isoformat() if r.finished_at else None}  # fmt: skip

    return keyset_page(rt, cursor=cursor, limit=limit, item=item,
                       rows=lambda s, n, before: ops.optimization_runs_page(s, limit=n, before_id=before))  # fmt: skip


def feed_health(rt: Runtime) -> dict[str, Any]:
    """Where the market comes from and how old each allow-listed symbol's last price is (the feed's
    keys expire after 15 s: no price means the feed is down for that symbol)."""
    cache = rt.cache()
    venue = rt.settings.paper_reference_venue
    now_ms = int(time.time() * 1000)
    symbols = []
    for sym in sorted(rt.settings.symbols()):
        unified = f"{sym[:-4]}/USDT:USDT" if sym.endswith("USDT") else sym
        quote = cache.get_price(venue, unified)
        symbols.append({"ticker": sym, "venue": venue, "price": _str(quote.price) if quote else None,
                        "age_ms": now_ms - quote.ts_ms if quote else None})  # fmt: skip
    healthy = all(s["price"] is not None for s in symbols)
    return {"market": cache.market_mode(), "redis": cache.ping(), "symbols": symbols, "healthy": healthy}


# ------------------------------------------------------------------ steering


def _switch_state(rt: Runtime, account_id: int) -> dict[str, Any]:
    try:
        reason = switch.state(lambda: session_scope(rt.engine()), rt.cache(), account_id)  # PostgreSQL + Redis
    except CacheUnavailable:
        return {"engaged": True, "reason": "unknown: Redis unreachable (orders are refused)"}
    return {"engaged": reason is not None, "reason": reason}


def kill_switch(rt: Runtime, op: OperatorRef, account: str | None, *, engage: bool | None, reason: str = "operator",
                channel: str = "api") -> dict[str, Any]:  # fmt: skip
    """Read (``engage`` None), engage or release the switch of one owned account, or (``account``
    None) of every account the operator owns; the global switch stays the CLI's."""
    command = "kill_switch" if engage is None else ("kill" if engage else "resume")
    with _session(rt) as s:
        targets = [_owned(s, op, account, command, channel)] if account else list(ops.owned_accounts(s, op.id))
        refs = [(a.id, a.name) for a in targets]
    results = []
    try:
        for account_id, name in refs:
            if engage is True:  # durable (pipeline/kill_switch.py): PostgreSQL first, then Redis
                switch.engage(lambda: session_scope(rt.engine()), rt.cache(),
                              reason=f"{reason} ({op.name} via {channel})", account_id=account_id)  # fmt: skip
            elif engage is False:
                switch.release(lambda: session_scope(rt.engine()), rt.cache(), account_id=account_id)
            results.append({"account": name, **_switch_state(rt, account_id)})
    except CacheUnavailable as exc:
        if engage is not None:
            with session_scope(rt.engine()) as s:
                ops.audit(s, channel=channel, actor=op.actor, operator_id=op.id, command=command, outcome="error",
                          args={"account": account}, reason=str(exc))  # fmt: skip
        # transient: the handler answers 503; the switch's state is unknown and orders are refused meanwhile
        raise CacheUnavailable(f"kill switch: state unknown ({exc}); orders are refused") from None
    if engage is not None:
        with session_scope(rt.engine()) as s:
            ops.audit(s, channel=channel, actor=op.actor, operator_id=op.id, command=command, outcome="ok",
                      args={"account": account, "accounts": [r["account"] for r in results]})  # fmt: skip
    return {"accounts": results}


def close_position(rt: Runtime, op: OperatorRef, account: str, symbol: str, *, channel: str = "api") -> dict[str, Any]:
    """Close one open position (reduce-only market order, exactly once through the order service;
    resting stops and targets are cancelled by it). An unknown or flat symbol is refused. Allowed
    while the account's kill switch is engaged: a close only reduces risk, so the order service's
    gate lets a ``close`` intent through and refuses entries and reversals."""
    from tradingbot.domain.positions import TradeIntent
    from tradingbot.pipeline.execute import _factory
    from tradingbot.pipeline.order_service import execute_intent

    with _session(rt) as s:
        acc = _owned(s, op, account, "close", channel)
        open_rows = {ticker(p.symbol): p.symbol for p in ops.open_positions_of(s, acc.id)}
        unified = open_rows.get(ticker(symbol))
        account_id, exchange = acc.id, acc.exchange
    if unified is None:
        error = InvalidRequest(f"symbol: no open position in {symbol!r} on account {account!r}")
        refuse(rt, op, error, command="close", channel=channel, args={"account": account, "symbol": symbol})
    quote = rt.cache().get_price(price_venue(rt, exchange), unified)
    if quote is None:
        raise InvalidRequest(f"symbol: no live price for {unified} (feed down?); nothing sent")
    intent = TradeIntent(decision_id=f"op{op.id}-close-{uuid.uuid4().hex[:12]}", symbol=unified, action="close",
                         reference_price=quote.price)  # fmt: skip
    sessions, exchanges = _factory(rt)
    report = execute_intent(sessions, rt.cache(), account_id, intent, exchanges).to_dict()
    ok = report["status"] in ("filled", "partially_filled", "no_op")
    with session_scope(rt.engine()) as s:
        ops.audit(s, channel=channel, actor=op.actor, operator_id=op.id, command="close",
                  outcome="ok" if ok else "error", args={"account": account, "symbol": unified},
                  reason=report.get("reason"))  # fmt: skip
    return {"account": account, "symbol": unified, "status": report["status"], "reason": report.get("reason"),
            "orders": report.get("orders", [])}  # fmt: skip


def close_all(rt: Runtime, op: OperatorRef, account: str | None, *, channel: str = "api") -> list[dict[str, Any]]:
    with _session(rt) as s:
        targets = [_owned(s, op, account, "close", channel)] if account else list(ops.owned_accounts(s, op.id))
        pairs = [(a.name, p.symbol) for a in targets for p in ops.open_positions_of(s, a.id)]
    return [close_position(rt, op, name, symbol, channel=channel) for name, symbol in pairs]


def reconcile(rt: Runtime, op: OperatorRef, account: str | None, *, channel: str = "api") -> list[dict[str, Any]]:
    """Compare stored orders and positions with the venue for the operator's accounts (report only:
    repairs stay ``tradingbot reconcile --fix``)."""
    from tradingbot.pipeline.execute import _factory
    from tradingbot.pipeline.order_service import load_account
    from tradingbot.pipeline.reconcile import reconcile_account

    with _session(rt) as s:
        targets = [_owned(s, op, account, "reconcile", channel)] if account else list(ops.owned_accounts(s, op.id))
        refs = [(a.id, a.name) for a in targets]
    sessions, exchanges = _factory(rt)
    out = []
    for account_id, name in refs:
        settings = load_account(sessions, account_id)
        if settings is None:
            continue
        report = reconcile_account(sessions, exchanges(settings), account_id, fix=False).to_dict()
        out.append({"account": name, **report})
    with session_scope(rt.engine()) as s:
        ops.audit(s, channel=channel, actor=op.actor, operator_id=op.id, command="reconcile", outcome="ok",
                  args={"account": account, "drifts": sum(len(r["drifts"]) for r in out)})  # fmt: skip
    return out


def _str(value: Decimal | None) -> str | None:
    """A decimal as a plain string without the database's trailing zeros (``0.250000000000000000`` -> ``0.25``)."""
    if value is None:
        return None
    text = format(Decimal(value).normalize(), "f")
    return text if text != "-0" else "0"
