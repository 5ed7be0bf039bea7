"""Reconciliation: compare what we stored with what the exchange says, report drift, repair it.

Drift it finds (and what ``fix`` does about it):

* an order we stored as live (``pending``/``submitted``/``open``/``partially_filled``) that the
  venue reports in another state, e.g. filled while we were down -> store the venue's state and
  its fill;
* a ``pending`` row (never sent: the order service marks a row ``submitted`` before it sends)
  the venue has never seen, older than ``pending_grace_s`` -> ``failed``; younger rows are left
  alone, a worker may be about to send them;
* a ``submitted`` row (sent, its answer lost: outcome unknown) is resolved by the same lookups
  the order service uses: by client id, then in the venue's trade list since it was submitted
  (:func:`~tradingbot.pipeline.order_service.find_in_trades`) -> the venue's state and fill. Not
  found by either: younger than ``unknown_grace_s`` it stays (the venue's read side can lag; the
  drift says "unresolved"), older -> ``failed`` (it never reached the venue). Nothing is ever
  sent from here;
* an ``open``/``partially_filled`` order the venue no longer knows -> ``canceled``;
* a stored position whose side or size differs from the venue's (a stop fired, a manual trade)
  -> the stored positions are rewritten from the venue's.

The venue is the truth for orders and positions; the database is the truth for what we intended.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import SessionFactory
from tradingbot.adapters.persistence.models import Position as StoredPosition
from tradingbot.domain.exchange import Exchange, ExchangeError, Position
from tradingbot.pipeline.order_service import OrderPlacer, RetryPolicy, find_in_trades

LIVE = ("pending", "submitted", "open", "partially_filled")
_CONDITIONAL = ("stop_market", "take_profit_market")


@dataclass
class Drift:
    kind: str  # "order" | "position" | "unchecked" | "unresolved" (an unknown outcome not resolvable yet)
    key: str  # client order id or symbol
    stored: str
    exchange: str
    repair: str
    fixed: bool = False


@dataclass
class ReconcileReport:
    account_id: int
    fix: bool
    orders_checked: int = 0
    positions_checked: int = 0
    drifts: list[Drift] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "drifts"}, "drifts": [asdict(d) for d in self.drifts]}


def reconcile_account(
    session_factory: SessionFactory,
    exchange: Exchange,
    account_id: int,
    *,
    fix: bool = False,
    pending_grace_s: float = 60.0,
    unknown_grace_s: float = 900.0,
) -> ReconcileReport:
    """``unknown_grace_s``: how long a sent order may stay invisible to both lookups before it is
    taken as never placed (Binance's order queries have been reported to lag by minutes)."""
    report = ReconcileReport(account_id, fix)
    _orders(session_factory, exchange, report, pending_grace_s, unknown_grace_s)
    _positions(session_factory, exchange, report)
    return report


def _orders(
    session_factory: SessionFactory, exchange: Exchange, report: ReconcileReport, grace_s: float, unknown_grace_s: float
) -> None:
    with session_factory() as s:
        rows = repo.orders_in_status(s, report.account_id, LIVE)
    policy = RetryPolicy()
    placer = OrderPlacer(session_factory, exchange, report.account_id, policy)
    now = dt.datetime.now(dt.UTC)
    for row in rows:
        cid, status = row.client_order_id, row.status
        report.orders_checked += 1
        how = "found by client id"
        try:
            found = exchange.fetch_order_by_client_id(row.symbol, cid, conditional=row.type in _CONDITIONAL)
            if found is None and status == "submitted":
                how = "found in the venue's trade list"
                found = find_in_trades(
                    session_factory, exchange, report.account_id, cid=cid, symbol=row.symbol, side=row.side,
                    type=row.type, quantity=row.quantity, reduce_only=row.reduce_only, submitted_at=row.updated_at,
                    window_s=policy.fills_window_s,
                )  # fmt: skip
        except ExchangeError as exc:
            report.drifts.append(Drift("unchecked", cid, status, f"lookup failed: {exc}", "run again later"))
            continue
        if found is not None:
            if found.status == status:
                continue
            drift = Drift(
                "order", cid, status, f"{found.status} (filled {found.filled}; {how})", f"store {found.status}"
            )
            if report.fix:
                placer.record(found, f"reconcile: {how}")
                drift.fixed = True
        elif status == "submitted":
            age = (now - row.updated_at).total_seconds()
            if age < unknown_grace_s:
                report.drifts.append(
                    Drift(
                        "unresolved", cid, status, "not found by client id nor in the trade list yet",
                        f"none yet (the venue may lag; taken as never placed after {unknown_grace_s:.0f} s)",
                    )
                )  # fmt: skip
                continue
            drift = Drift(
                "order", cid, status, f"not found by client id nor in the trade list after {age:.0f} s",
                "mark failed (never reached the exchange)",
            )  # fmt: skip
            if report.fix:
                _transition(session_factory, cid, "failed", "not found by client id nor in the trade list")
                drift.fixed = True
        elif status == "pending":
            if (now - row.created_at).total_seconds() < grace_s:
                continue  # may still be in flight
            drift = Drift("order", cid, status, "unknown to the exchange", "mark failed (never sent)")
            if report.fix:
                _transition(session_factory, cid, "failed", "never reached the exchange")
                drift.fixed = True
        else:
            drift = Drift("order", cid, status, "unknown to the exchange", "mark canceled")
            if report.fix:
                _transition(session_factory, cid, "canceled", "the exchange no longer knows this order")
                drift.fixed = True
        report.drifts.append(drift)


def _transition(session_factory: SessionFactory, cid: str, target: str, why: str) -> None:
    with session_factory() as s:
        repo.transition_order(s, cid, target, detail={"via": "reconcile", "reason": why})


def _positions(session_factory: SessionFactory, exchange: Exchange, report: ReconcileReport) -> None:
    try:
        live = exchange.fetch_positions()
    except ExchangeError as exc:
        report.drifts.append(Drift("unchecked", "positions", "", f"fetch failed: {exc}", "run again later"))
        return
    with session_factory() as s:
        stored = {p.symbol: p for p in repo.open_positions(s, report.account_id, lock=True)}
        venue = {p.symbol: p for p in live}
        report.positions_checked = len(set(stored) | set(venue))
        for symbol in sorted(set(stored) | set(venue)):
            ours, theirs = stored.get(symbol), venue.get(symbol)
            if repo.position_matches(ours, theirs):
                continue
            report.drifts.append(
                Drift(
                    "position",
                    symbol,
                    _describe_stored(ours),
                    _describe(theirs),
                    "store the exchange's position",
                    fixed=report.fix,
                )
            )
        if report.fix:
            repo.sync_positions(s, report.account_id, live)


def _describe_stored(p: StoredPosition | None) -> str:
    return (
        "flat"
        if p is None
        else f"{p.side} {Decimal(p.quantity).normalize():f} @ {Decimal(p.entry_price).normalize():f}"
    )


def _describe(p: Position | None) -> str:
    return "flat" if p is None else f"{p.side} {p.quantity.normalize():f} @ {p.entry_price.normalize():f}"
