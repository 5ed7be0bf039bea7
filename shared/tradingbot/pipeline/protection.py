"""Protective orders follow the position: one stop-loss and one take-profit, sized to it, or none.

Both venues keep a reduce-only conditional order after the position it was placed for is gone:
Binance's Algo Service cancels a conditional order itself only for the ``GTE_GTC`` time in force
("EXPIRED ... a user places a GTE_GTC Time-In-Force conditional order but then closes all positions
on that symbol", https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-Algo-Order-Update),
and has no OCO, so after a flat, a reverse, or one leg firing, the other (a sell stop of an old long)
would close a LATER long when the price reaches it. OKX's ``conditional`` algo orders placed
without ``cxlOnClosePos`` stay as well. So the product keeps the invariant itself, the same way on
Binance, OKX and the paper exchange:

    position open (side S, quantity Q) and its opening decision asked for a stop and/or a target
        -> exactly one live reduce-only ``stop_market`` and one ``take_profit_market`` on the
           close side of S, for Q, at the decision's trigger prices;
    flat -> no live protective order on the symbol.

:func:`follow_position` makes it so: it places what is missing (exactly once: the client id is
derived from the decision, the leg, the size and the trigger, and goes through the order service's
pending -> submitted protocol), then cancels every other live protective order on the symbol
(stale sizes after a partial fill, the old side after a reverse, everything after a flat, the
sibling of a leg that fired). Placing before cancelling means a resize is never unprotected; two
reduce-only stops for one position cannot over-close it (reduce-only caps each at the position).

It runs at the end of every execution (after the legs, on the venue's fresh position) and in every
reconcile pass (every minute on AWS and in ``tradingbot serve``), which is the OCO emulation:
the sibling of a leg that fired is cancelled within one reconcile interval (and before any new
order on the symbol: the order service calls it before it plans).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Protocol

from tradingbot import errors
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import SessionFactory
from tradingbot.domain.exchange import Exchange, ExchangeError, OrderGone, OrderRequest, OrderResult, Position
from tradingbot.domain.positions import client_order_id

log = logging.getLogger(__name__)

PROTECTIVE_TYPES = ("stop_market", "take_profit_market")
LIVE = ("pending", "submitted", "open", "partially_filled")
_LEGS = (("sl", "stop_market"), ("tp", "take_profit_market"))
# a slot is reused only while its row may still be live; these mean "that one is over, take the next"
_SPENT = frozenset({"canceled", "failed", "filled"})
_MAX_SLOTS = 20


class Placer(Protocol):
    """What :class:`tradingbot.pipeline.order_service.OrderPlacer` offers (exactly-once sends)."""

    def write_rows(
        self, rows: Sequence[tuple[OrderRequest, int | None]], *, guard_symbol: str | None = None
    ) -> str | None: ...

    def place(self, leg: str, request: OrderRequest) -> Any: ...

    def record(self, result: OrderResult, via: str) -> None: ...


@dataclass(frozen=True)
class Protection:
    """The stop and target the decision that opened a position asked for (None = not asked)."""

    decision_key: str
    side: str  # "long" | "short": the position it protects
    stop_loss: Decimal | None
    take_profit: Decimal | None
    decision_row_id: int | None = None

    def price(self, leg: str) -> Decimal | None:
        return self.stop_loss if leg == "sl" else self.take_profit


@dataclass
class ProtectionAction:
    """One thing :func:`follow_position` found: ``kind`` is ``place`` (missing, or a resize),
    ``cancel`` (stale), ``unprotected`` (a position nobody asked protection for, or whose placement
    the venue refused: reported only) or ``error`` (a venue call failed: the next pass retries)."""

    kind: str
    key: str  # client order id, or the symbol
    detail: str
    done: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def follow_position(
    session_factory: SessionFactory,
    exchange: Exchange,
    account_id: int,
    symbol: str,
    *,
    placer: Placer,
    position: Position | None,
    owner: Protection | None,
    fix: bool = True,
    on_placed: Callable[[str, Any], None] | None = None,
    replace_unknown_after_s: float = 60.0,
) -> list[ProtectionAction]:
    """Make the live protective orders on ``symbol`` what ``position`` needs (see the module doc).

    The position's stop / target whose row is ``pending`` (never sent) or ``submitted`` (a send of
    unknown outcome: a crash between the commit and the send, a timeout) is resolved at once
    (:func:`_confirm`): looked up by client id and, not found, sent again under the SAME client id
    (reduce-only; an open order's id is refused by both venues, so at most one is live). Only if it
    is still unknown (the lookup failed, or the venue said "duplicate" and its read side lags) it
    stays an ``error`` action (unfixed drift: the alarm sees it); once it is
    ``replace_unknown_after_s`` old, a replacement is placed under the next client id (two
    reduce-only stops cannot over-close a position), and the unknown one is cancelled once the
    venue shows it, or failed by the order check after its grace.

    ``owner``: the protection the position's opening decision asked for (:func:`position_owner`),
    None when unknown (then nothing is placed, and live orders that could not reduce this position
    are cancelled). With ``fix=False`` nothing is sent: the actions say what would be done.
    ``on_placed(leg, leg_report)`` sees each placement's report (the order service adds them to
    the execution report). Venue errors never raise: they are ``error`` actions."""
    actions: list[ProtectionAction] = []
    with session_factory() as s:
        live = [
            r for r in repo.orders_in_status(s, account_id, LIVE)
            if r.symbol == symbol and r.type in PROTECTIVE_TYPES and r.reduce_only
        ]  # fmt: skip
    keep: set[str] = set()
    now = dt.datetime.now(dt.UTC)
    unknown = {
        r.client_order_id for r in live
        if r.status == "submitted" and (now - r.updated_at).total_seconds() >= replace_unknown_after_s
    }  # fmt: skip
    if position is not None:
        close_side = "sell" if position.side == "long" else "buy"
        wanted = owner is not None and owner.side == position.side
        for leg, otype in _LEGS:
            price = owner.price(leg) if owner is not None and wanted else None
            if price is None:
                continue
            assert owner is not None
            trigger = exchange.price_to_precision(symbol, price)
            match = next(
                (
                    r for r in live
                    if r.type == otype and r.side == close_side and r.client_order_id not in keep
                    and Decimal(r.quantity) == position.quantity and r.price is not None and Decimal(r.price) == trigger
                ),
                None,
            )  # fmt: skip
            if match is not None and match.status in ("pending", "submitted"):
                confirmed = _confirm(placer, match, leg, otype, close_side, position.quantity, trigger, fix, on_placed)
                actions.append(confirmed)
                if not (confirmed.kind == "error" and match.client_order_id in unknown):
                    if confirmed.kind != "unprotected":  # on the venue now, or may be: not replaced yet
                        keep.add(match.client_order_id)
                    continue
                match = None  # still unknown after the grace: a replacement under the next id (skip=unknown)
            if match is not None:
                keep.add(match.client_order_id)
                continue
            action = _place(
                session_factory, placer, account_id, symbol, owner, leg, otype, close_side, position.quantity,
                trigger, fix, on_placed, skip=unknown,
            )  # fmt: skip
            actions.append(action)
            if action.kind == "place" and action.done:
                keep.add(action.key)
        if owner is None or not wanted:
            # nobody asked for this position's protection: keep what can reduce it, report if nothing
            keep |= {r.client_order_id for r in live if r.side == close_side}
            if not keep:
                why = (
                    "no decision of ours opened it" if owner is None else f"its last opening decision was {owner.side}"
                )
                actions.append(ProtectionAction(
                    "unprotected", symbol, f"{position.side} {position.quantity} has no stop or target ({why})",
                ))  # fmt: skip
    for row in live:
        if row.client_order_id in keep:
            continue
        actions.append(_cancel(session_factory, exchange, placer, row, position, fix))
    return actions


def _confirm(
    placer: Placer,
    row: repo.LiveOrderRow,
    leg: str,
    otype: str,
    side: str,
    quantity: Decimal,
    trigger: Decimal,
    fix: bool,
    on_placed: Callable[[str, Any], None] | None,
) -> ProtectionAction:
    """The position's stop / target exists as a row that is not known to be on the venue: never
    sent (``pending``: a crash between writing the row and claiming it) or sent with an unknown
    outcome (``submitted``: a crash between the commit and the send, a lost answer). The order
    service sends the first, and looks the second up and, not found, sends it again under the same
    client id (reduce-only, and both venues refuse an id that is open: see
    :meth:`tradingbot.pipeline.order_service.OrderPlacer._resend_protective`). ``done`` when the
    venue holds it now; an ``error`` (the outcome still unknown) or ``unprotected`` (refused) otherwise."""
    cid = row.client_order_id
    what = f"{leg} {otype} {side} {quantity.normalize():f} @ {trigger.normalize():f}"
    action = ProtectionAction("place", cid, f"{what} ({row.status}: not known to be on the venue)")
    if not fix:
        return action
    request = OrderRequest(row.symbol, side, otype, quantity, cid, None, trigger, True)  # type: ignore[arg-type]
    result = placer.place(leg, request)
    if on_placed is not None:
        on_placed(leg, result)
    status = getattr(result, "status", "")
    if status in ("open", "filled"):
        action.done = True
        action.detail += f": {status} (looked up, or sent again under its client id)"
    else:
        action.kind = "error" if status in ("pending", "submitted") else "unprotected"
        action.detail += f": not confirmed ({status}: {getattr(result, 'reason', None)})"
    return action


def _why_stale(row: repo.LiveOrderRow, position: Position | None) -> str:
    if position is None:
        return "the position is flat"
    close_side = "sell" if position.side == "long" else "buy"
    if row.side != close_side:
        return f"it closes the other side (the position is {position.side} now)"
    if Decimal(row.quantity) != position.quantity:
        return f"it is for {Decimal(row.quantity).normalize():f}, the position is {position.quantity.normalize():f}"
    return "it is not the position's stop or target (older decision, another trigger, or a duplicate)"


def _cancel(
    session_factory: SessionFactory,
    exchange: Exchange,
    placer: Placer,
    row: repo.LiveOrderRow,
    position: Position | None,
    fix: bool,
) -> ProtectionAction:
    cid = row.client_order_id
    action = ProtectionAction(
        "cancel", cid, f"{row.type} {row.side} {row.quantity} @ {row.price}: {_why_stale(row, position)}"
    )
    if not fix:
        return action
    if row.status == "pending":  # never sent: the compare-and-set makes a sender see it final
        _transition(session_factory, cid, "failed", "protective order no longer needed; never sent")
        action.done = True
        return action
    try:
        exchange.cancel_order(row.symbol, cid, conditional=True)
    except OrderGone:
        # filled (the leg fired), cancelled by the venue, or never placed: ask which
        try:
            found = exchange.fetch_order_by_client_id(row.symbol, cid, conditional=True)
        except (ExchangeError, errors.TransientError) as exc:
            action.kind, action.detail = "error", f"{action.detail}; cancel: gone, lookup failed: {exc}"
            return action
        if found is not None:
            placer.record(found, "protection: cancel found it closed")
            action.detail += f"; the venue had it {found.status} already"
        elif row.status == "submitted":
            action.kind = "error"
            action.detail += "; the venue does not know it yet (outcome unknown): left to the order check"
            return action
        else:
            _transition(session_factory, cid, "canceled", "the venue no longer knows this protective order")
        action.done = True
        return action
    except (ExchangeError, errors.TransientError) as exc:  # incl. the execute budget running out
        action.kind, action.detail = "error", f"{action.detail}; cancel failed (the next pass retries): {exc}"
        return action
    _transition(session_factory, cid, "canceled", "protective order no longer needed: " + _why_stale(row, position))
    action.done = True
    return action


def _transition(session_factory: SessionFactory, cid: str, target: str, why: str) -> None:
    with session_factory() as s:
        current = repo.order_status(s, cid, lock=True)
        if current is None or target not in repo.ORDER_TRANSITIONS.get(current, frozenset()):
            return
        repo.transition_order(s, cid, target, detail={"via": "protection", "reason": why})


def slot_client_id(
    session_factory: SessionFactory,
    account_id: int,
    decision_key: str,
    leg: str,
    quantity: Decimal,
    trigger: Decimal,
    *,
    skip: set[str] | frozenset[str] = frozenset(),
) -> str | None:
    """The client id for ``leg`` of ``decision_key`` at (quantity, trigger): the first of the
    decision's ids for that slot whose row is absent or may still be live (other than ``skip``:
    sends of unknown outcome being replaced). The same on every pass (so a crash between send and
    record resolves the same order, never a second one); None when the venue refused this exact
    placement before (``rejected``: reported, not retried)."""
    with session_factory() as s:
        for k in range(_MAX_SLOTS):
            leg_name = leg if k == 0 else f"{leg}:{quantity.normalize():f}:{trigger.normalize():f}:{k}"
            cid = client_order_id(account_id, decision_key, leg_name)
            if cid in skip:
                continue
            order = repo.order_by_client_id(s, cid)
            if order is None:
                return cid
            same = Decimal(order.quantity) == quantity and order.price is not None and Decimal(order.price) == trigger
            if order.status in _SPENT or not same:
                continue
            if order.status == "rejected":
                return None
            return cid
    return None


def _place(
    session_factory: SessionFactory,
    placer: Placer,
    account_id: int,
    symbol: str,
    owner: Protection,
    leg: str,
    otype: str,
    side: str,
    quantity: Decimal,
    trigger: Decimal,
    fix: bool,
    on_placed: Callable[[str, Any], None] | None,
    *,
    skip: set[str],
) -> ProtectionAction:
    what = f"{leg} {otype} {side} {quantity.normalize():f} @ {trigger.normalize():f}"
    cid = slot_client_id(session_factory, account_id, owner.decision_key, leg, quantity, trigger, skip=skip)
    if cid is None:
        return ProtectionAction("unprotected", symbol, f"{what}: the venue refused this placement before; not retried")
    action = ProtectionAction("place", cid, f"{what} (missing)")
    if not fix:
        return action
    request = OrderRequest(symbol, side, otype, quantity, cid, None, trigger, True)  # type: ignore[arg-type]
    placer.write_rows([(request, owner.decision_row_id)])
    result = placer.place(leg, request)
    if on_placed is not None:
        on_placed(leg, result)
    status = getattr(result, "status", "")
    if status in ("open", "filled"):
        action.done = True
    else:
        action.kind = "error" if status in ("pending", "submitted") else "unprotected"
        action.detail += f": not confirmed ({status}: {getattr(result, 'reason', None)})"
    return action


def position_owner(session_factory: SessionFactory, account_id: int, symbol: str) -> Protection | None:
    """The protection of the newest stored execution on ``symbol`` whose ``open`` leg filled: the
    decision that opened the current position (its side may differ from the venue's position: then
    the caller knows the position is not ours). Prices come from the report's ``protection`` (written
    by the order service), else from the decision's own ``sl``/``tp`` rows (older reports)."""
    with session_factory() as s:
        for execution in repo.recent_executions(s, account_id, symbol):
            report = execution.report or {}
            opened = next((o for o in report.get("orders") or [] if o.get("leg") == "open"), None)
            if opened is None:
                continue
            row = repo.order_by_client_id(s, opened["client_order_id"])
            if row is None or repo.filled_quantity(s, row.id) <= 0:
                continue
            prices: dict[str, Decimal | None] = {"sl": None, "tp": None}
            stored = report.get("protection")
            if isinstance(stored, dict):
                for leg, key in (("sl", "stop_loss"), ("tp", "take_profit")):
                    prices[leg] = Decimal(stored[key]) if stored.get(key) else None
            else:
                for o in report.get("orders") or []:
                    if o.get("leg") in ("sl", "tp"):
                        leg_row = repo.order_by_client_id(s, o["client_order_id"])
                        if leg_row is not None and leg_row.price is not None:
                            prices[o["leg"]] = Decimal(leg_row.price)
            return Protection(
                execution.decision_key, "long" if row.side == "buy" else "short", prices["sl"], prices["tp"],
                row.decision_id,
            )  # fmt: skip
    return None


def live_protective_symbols(session_factory: SessionFactory, account_id: int) -> set[str]:
    """Symbols with a live protective order (reconcile checks them even when flat)."""
    with session_factory() as s:
        return {
            r.symbol for r in repo.orders_in_status(s, account_id, LIVE) if r.type in PROTECTIVE_TYPES and r.reduce_only
        }
