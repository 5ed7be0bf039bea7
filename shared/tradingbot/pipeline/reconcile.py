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
  drift says "unresolved"), older it is proven never placed: an entry (not reduce-only, not a stop
  or target) is SENT AGAIN under its same client id when a ``cache`` is given (the kill switch and
  the order gate are checked first; engaged -> ``failed``), and only while :class:`ResendGuard`
  allows it (the decision fresh, the venue's mark price within the Validate stage's tolerance of
  its price; else abandoned: ``failed`` with ``stale_entry`` / ``price_moved``); anything else ->
  ``failed``. A stop / target of the position is not waited for: the protective-order step sends
  it again under its client id in the same pass (reduce-only; the venue refuses an open order's id);
* open orders on the venue with no row of ours (orphans: placed by hand, or by a lost process) ->
  reported only (``orphans``, one unfixed ``orphan`` drift each), never cancelled, whatever their
  client id (:func:`_orphans`);
* an ``open``/``partially_filled`` order the venue no longer knows -> ``canceled``;
* a stored position whose side or size differs from the venue's (a stop fired, a manual trade)
  -> the stored positions are rewritten from the venue's;
* protective orders (:mod:`tradingbot.pipeline.protection`), per symbol with a venue position or a
  live stop/target of ours: a missing stop or target of the position's opening decision (never
  placed because the entry's outcome was unknown, cancelled on the venue, or sized for an earlier
  fill) -> placed (resized: the new one first, then the old one cancelled); one whose position is
  gone, whose sibling fired, or that is for the other side or another size -> cancelled. A symbol
  whose entry is still unresolved is left alone ("protection" drift, not fixed). A position no
  decision of ours opened, or whose placement the venue refused, is reported ("unprotected"), never
  given invented prices;
* a ``pending`` execution whose legs are all resolved now -> stored final
  (:func:`~tradingbot.pipeline.order_service.settle_pending`).

Only protective orders, and entries proven never placed, are ever sent from here, and only with
``fix``. The venue is the truth for orders and positions; the database is the truth for what we intended.

:func:`reconcile_accounts` runs every enabled account (the scheduled Lambda, ``tradingbot serve``'s
:class:`ReconcileLoop`); :func:`drift_counts` is what the drift metric and alarm count.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, cast

from tradingbot import errors
from tradingbot.adapters.cache import Cache, TradingHalted
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import SessionFactory
from tradingbot.adapters.persistence.models import Position as StoredPosition
from tradingbot.adapters.persistence.repositories.orders import order_context
from tradingbot.domain.exchange import Exchange, ExchangeError, MarkPrice, OpenOrders, OrderRequest, Position
from tradingbot.domain.positions import is_our_client_id
from tradingbot.pipeline import kill_switch
from tradingbot.pipeline.accounting import sync_account
from tradingbot.pipeline.execute import exchange_factories
from tradingbot.pipeline.order_service import (
    ExchangeFactory,
    OrderPlacer,
    RetryPolicy,
    find_in_trades,
    load_account,
    settle_pending,
    supports,
)
from tradingbot.pipeline.protection import follow_position, live_protective_symbols, position_owner
from tradingbot.pipeline.runtime import Runtime
from tradingbot.pipeline.schedule import Every
from tradingbot.settings import ExchangeSection, ValidationPolicy

log = logging.getLogger(__name__)

LIVE = ("pending", "submitted", "open", "partially_filled")
_CONDITIONAL = ("stop_market", "take_profit_market")


@dataclass
class Drift:
    # "order" | "position" | "protection" | "execution" | "unchecked" | "unresolved" (an unknown
    # outcome not resolvable yet) | "orphan" (a venue order with no row of ours: reported only)
    kind: str
    key: str  # client order id or symbol
    stored: str
    exchange: str
    repair: str
    fixed: bool = False


@dataclass(frozen=True)
class ResendGuard:
    """When reconcile may send again an entry proven never placed (issue 15): only while the
    decision is fresh and the market is still where the decision priced it; otherwise the entry is
    abandoned (the order row ``failed``, the decision settled ``rejected``) with the reason stored:
    ``stale_entry: ...`` or ``price_moved: ...``.

    * ``max_age_s``: the order row's age (it is written seconds after the alert, when Execute plans)
      at most this (``EXCHANGE_RECONCILE_RESEND_MAX_AGE_S``, default 1,200 s: the 900 s read-lag
      grace plus 5 minutes, so the window to resend is about 5 minutes wide);
    * ``max_deviation_pct``: the venue's mark price within this of the decision's reference price
      (the alert's price): the Validate stage's own tolerance, ``VALIDATE_MAX_PRICE_DEVIATION_PCT``
      (one default: 1 %). No reference price stored, or no mark price from the venue: not sent
      (``price_unknown``), since the check cannot be made."""

    max_age_s: float = ExchangeSection.model_fields["reconcile_resend_max_age_s"].default
    max_deviation_pct: Decimal = ValidationPolicy.model_fields["max_price_deviation_pct"].default

    @classmethod
    def from_settings(cls, exchange: ExchangeSection, policy: ValidationPolicy) -> ResendGuard:
        return cls(max_age_s=exchange.reconcile_resend_max_age_s, max_deviation_pct=policy.max_price_deviation_pct)


@dataclass
class ReconcileReport:
    account_id: int
    fix: bool
    orders_checked: int = 0
    positions_checked: int = 0
    drifts: list[Drift] = field(default_factory=list)
    # venue-side open orders with no row of ours (placed by hand, or by a lost process): reported only
    orphans: list[dict[str, Any]] = field(default_factory=list)
    # the accounting pass (pipeline/accounting.py): trades, fees, funding, equity from the venue
    accounting: dict[str, Any] | None = None

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
    cache: Cache | None = None,
    resend_guard: ResendGuard | None = None,
) -> ReconcileReport:
    """``unknown_grace_s``: how long a sent order may stay invisible to both lookups before it is
    taken as never placed (Binance's order queries have been reported to lag by minutes); then, with
    ``fix`` and a ``cache`` (kill switch, order gate), an entry is sent again under its client id if
    ``resend_guard`` (default :class:`ResendGuard`'s defaults) allows it, else abandoned.
    ``pending_grace_s``: how old a never-sent row must be to be failed, and a stop / target still
    of unknown outcome after its resend to be replaced under the next client id."""
    report = ReconcileReport(account_id, fix)
    _orders(session_factory, exchange, report, pending_grace_s, unknown_grace_s, cache, resend_guard or ResendGuard())
    _orphans(session_factory, exchange, report)
    live = _positions(session_factory, exchange, report)
    if live is not None:
        _protection(session_factory, exchange, report, live, replace_unknown_after_s=pending_grace_s)
    if fix:
        for settled in settle_pending(session_factory, exchange, account_id):
            report.drifts.append(
                Drift("execution", settled.decision_id, "pending", settled.status, f"store {settled.status}", True)
            )
    report.accounting = sync_account(session_factory, exchange, account_id).to_dict()  # issue 15: accounting
    return report


def _protection(
    session_factory: SessionFactory,
    exchange: Exchange,
    report: ReconcileReport,
    live: list[Position],
    *,
    replace_unknown_after_s: float,
) -> None:
    venue = {p.symbol: p for p in live}
    placer = OrderPlacer(session_factory, exchange, report.account_id, RetryPolicy())
    for symbol in sorted(set(venue) | live_protective_symbols(session_factory, report.account_id)):
        position = venue.get(symbol)
        with session_factory() as s:
            waiting = repo.unresolved_orders(s, report.account_id, symbol)
        if waiting:
            report.drifts.append(Drift(
                "protection", symbol, _describe(position), f"entry {waiting[0]} unresolved",
                "none yet: protective orders are checked once the entry's outcome is known",
            ))  # fmt: skip
            continue
        owner = position_owner(session_factory, report.account_id, symbol) if position is not None else None
        try:
            actions = follow_position(
                session_factory, exchange, report.account_id, symbol, placer=placer, position=position, owner=owner,
                fix=report.fix, replace_unknown_after_s=replace_unknown_after_s,
            )  # fmt: skip
        except (ExchangeError, errors.TransientError) as exc:
            report.drifts.append(
                Drift("unchecked", symbol, "", f"protective orders not checked: {exc}", "run again later")
            )
            continue
        for a in actions:
            fixed = a.done and a.kind in ("place", "cancel")
            report.drifts.append(Drift("protection", a.key, a.kind, _describe(position), a.detail, fixed))


def _orders(
    session_factory: SessionFactory,
    exchange: Exchange,
    report: ReconcileReport,
    grace_s: float,
    unknown_grace_s: float,
    cache: Cache | None = None,
    guard: ResendGuard | None = None,
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
            if age < unknown_grace_s and row.type in _CONDITIONAL and row.reduce_only:
                # a stop / target of unknown outcome: the protective-order step of this pass sends it
                # again under its client id if the position still needs it (follow_position), and
                # reports it there; nothing to do here
                continue
            if age < unknown_grace_s:
                report.drifts.append(
                    Drift(
                        "unresolved", cid, status, "not found by client id nor in the trade list yet",
                        f"none yet (the venue may lag; taken as never placed after {unknown_grace_s:.0f} s)",
                    )
                )  # fmt: skip
                continue
            if report.fix and cache is not None and row.type not in _CONDITIONAL and not row.reduce_only:
                resent = _resend(session_factory, cache, placer, exchange, report.account_id, row, age,
                                 guard or ResendGuard())  # fmt: skip
                report.drifts.append(resent)
                continue
            drift = Drift(
                "order", cid, status, f"not found by client id nor in the trade list after {age:.0f} s",
                "mark failed (never reached the exchange)",
            )  # fmt: skip
            if report.fix:
                _transition(
                    session_factory, cid, "failed",
                    f"never placed: not found by client id nor in {exchange.name}'s trade list {age:.0f} s after "
                    f"it was submitted (more than the {unknown_grace_s:.0f} s the venue's read side may lag)",
                    code="never_placed",
                )  # fmt: skip
                drift.fixed = True
        elif status == "pending":
            if (now - row.created_at).total_seconds() < grace_s:
                continue  # may still be in flight
            drift = Drift("order", cid, status, "unknown to the exchange", "mark failed (never sent)")
            if report.fix:
                _transition(session_factory, cid, "failed", f"never sent: still pending after {grace_s:.0f} s and "
                            f"unknown to {exchange.name}", code="never_sent")  # fmt: skip
                drift.fixed = True
        else:
            drift = Drift("order", cid, status, "unknown to the exchange", "mark canceled")
            if report.fix:
                _transition(session_factory, cid, "canceled", "the exchange no longer knows this order", code="gone")
                drift.fixed = True
        report.drifts.append(drift)


def _resend_refusal(
    session_factory: SessionFactory, exchange: Exchange, row: Any, guard: ResendGuard
) -> tuple[str, str] | None:
    """(code, why) when ``guard`` forbids sending the entry again now, None when it allows it.
    Raises the venue's error when the mark price cannot be read now (the next pass asks again)."""
    now = dt.datetime.now(dt.UTC)
    age = (now - row.created_at).total_seconds()
    if age > guard.max_age_s:
        return "stale_entry", (
            f"the decision is {age:.0f} s old (its order row was written at {row.created_at:%Y-%m-%d %H:%M:%S} UTC), "
            f"more than the {guard.max_age_s:.0f} s an entry may be sent late (EXCHANGE_RECONCILE_RESEND_MAX_AGE_S)"
        )
    with session_factory() as s:
        reference = order_context(s, row.client_order_id).get("reference_price")
    if not reference or not supports(exchange, MarkPrice):
        what = "no reference price stored with the order" if not reference else f"{exchange.name} gives no mark price"
        return "price_unknown", f"{what}: the price check cannot be made"
    mark = cast(MarkPrice, exchange).fetch_mark_price(row.symbol)
    ref = Decimal(str(reference))
    deviation = abs(mark - ref) / ref * 100
    if deviation > guard.max_deviation_pct:
        return "price_moved", (
            f"{exchange.name} mark price {mark.normalize():f} is {deviation:.2f} % from the decision's price "
            f"{ref.normalize():f}, more than the {guard.max_deviation_pct:f} % the Validate stage allows "
            "(VALIDATE_MAX_PRICE_DEVIATION_PCT)"
        )
    return None


def _resend(
    session_factory: SessionFactory, cache: Cache, placer: OrderPlacer, exchange: Exchange, account_id: int, row: Any,
    age: float, guard: ResendGuard,
) -> Drift:  # fmt: skip
    """An entry proven never placed (see the module docstring): sent again under its client id,
    unless the kill switch or the order gate refuses now (then ``failed``, with that reason), or
    ``guard`` finds the decision stale or the price moved (then abandoned: ``failed`` with
    ``stale_entry`` / ``price_moved``; the decision is settled ``rejected`` with that reason)."""
    cid = row.client_order_id
    found = f"not found by client id nor in the trade list after {age:.0f} s"
    try:
        kill_switch.check(session_factory, cache, account_id)
        cache.order_gate(account_id)
    except TradingHalted as exc:
        _transition(session_factory, cid, "failed", f"never placed ({found}); not sent again: {exc}",
                    code="trading_halted")  # fmt: skip
        return Drift("order", cid, "submitted", found, f"mark failed (not sent again: {exc})", True)
    try:
        refusal = _resend_refusal(session_factory, exchange, row, guard)
    except ExchangeError as exc:
        return Drift("unchecked", cid, "submitted", f"{found}; mark price not read: {exc}", "run again later")
    if refusal is not None:
        code, why = refusal
        _transition(session_factory, cid, "failed", f"never placed ({found}); abandoned, not sent again: {why}",
                    code=code)  # fmt: skip
        log.warning("reconcile: %s %s; abandoned (%s): %s", cid, found, code, why)
        return Drift("order", cid, "submitted", found, f"abandoned ({code}): {why}", True)
    request = OrderRequest(
        symbol=row.symbol, side=row.side, type=row.type, quantity=row.quantity, client_order_id=cid,
        price=row.price if row.type == "limit" else None, reduce_only=row.reduce_only,
    )  # fmt: skip
    leg = placer.resend_unplaced("open", request, why=f"{found}: never placed; sent again under its client id")
    log.warning("reconcile: %s %s; sent again under its client id: %s", cid, found, leg.status)
    return Drift("order", cid, "submitted", found, f"sent again under its client id: {leg.status} {leg.reason or ''}",
                 leg.status != "submitted")  # fmt: skip


def _orphans(session_factory: SessionFactory, exchange: Exchange, report: ReconcileReport) -> None:
    """Open orders on the venue with no row of ours: placed by hand on the venue, by another tool on
    the same keys, or by a process of ours whose row was lost. Reported (``orphans`` and one
    ``orphan`` drift each, never fixed: the drift alarm sees them), never cancelled: an order
    without our client-id prefix is not ours to cancel, and one WITH our prefix but without a row
    cannot be attributed to a decision (its row was lost, or another deployment on the same keys
    placed it), so an operator decides (``tradingbot reconcile`` shows it; cancel it on the venue)."""
    if not supports(exchange, OpenOrders):
        return
    try:
        venue_orders = cast(OpenOrders, exchange).fetch_open_orders()
    except ExchangeError as exc:
        drift = Drift("unchecked", "open orders", "", f"open-order lists not read: {exc}", "run again later")
        report.drifts.append(drift)
        return
    with session_factory() as s:
        cids = [o.client_order_id for o in venue_orders if o.client_order_id]
        ours = {o.client_order_id for o in repo.orders_by_client_ids(s, cids)}
    for o in venue_orders:
        if o.client_order_id and o.client_order_id in ours:
            continue
        prefixed = is_our_client_id(o.client_order_id)
        who = "our client-id prefix but no row (a lost process, or another deployment on these keys)" if prefixed else (
            "not placed by us (by hand, or another tool on these keys)"
        )  # fmt: skip
        what = f"{o.type} {o.side} {o.quantity.normalize():f} {o.symbol} (venue id {o.exchange_order_id})"
        report.orphans.append({**asdict(o), "quantity": str(o.quantity), "ours_by_prefix": prefixed})
        report.drifts.append(Drift(
            "orphan", o.client_order_id or o.exchange_order_id, "no row", f"open on {exchange.name}: {what}",
            f"reported only, never cancelled automatically: {who}",
        ))  # fmt: skip


def _transition(session_factory: SessionFactory, cid: str, target: str, why: str, *, code: str = "reconcile") -> None:
    """``code``: the stable reason code stored with the event; ``why``: its message (the stored
    execution's reason reads ``<leg>: <code>: <why>``)."""
    with session_factory() as s:
        repo.transition_order(s, cid, target, detail={"via": "reconcile", "reason": code, "message": why})


def _positions(session_factory: SessionFactory, exchange: Exchange, report: ReconcileReport) -> list[Position] | None:
    try:
        live = exchange.fetch_positions()
    except ExchangeError as exc:
        report.drifts.append(Drift("unchecked", "positions", "", f"fetch failed: {exc}", "run again later"))
        return None
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
    return live


def _describe_stored(p: StoredPosition | None) -> str:
    return (
        "flat"
        if p is None
        else f"{p.side} {Decimal(p.quantity).normalize():f} @ {Decimal(p.entry_price).normalize():f}"
    )


def _describe(p: Position | None) -> str:
    return "flat" if p is None else f"{p.side} {p.quantity.normalize():f} @ {p.entry_price.normalize():f}"


# ====================================================================== on a schedule


def drift_counts(reports: list[ReconcileReport]) -> tuple[int, int]:
    """(drift found, drift left unfixed) over ``reports``: the ``ReconcileDrift`` and
    ``ReconcileDriftUnfixed`` metrics (the alarm watches the second)."""
    found = sum(len(r.drifts) for r in reports)
    return found, sum(1 for r in reports for d in r.drifts if not d.fixed)


def reconcile_accounts(
    session_factory: SessionFactory,
    exchange_factory: ExchangeFactory,
    *,
    fix: bool = True,
    account_ids: list[int] | None = None,
    unknown_grace_s: float = 900.0,
    cache: Cache | None = None,
    resend_guard: ResendGuard | None = None,
) -> list[ReconcileReport]:
    """One reconcile pass over every enabled account (or ``account_ids``). An account whose venue
    or keys fail gets a report with one ``unchecked`` drift; the others still run. ``cache``: lets
    the pass resend an entry proven never placed (see :func:`reconcile_account`)."""
    with session_factory() as s:
        ids = account_ids if account_ids is not None else [a.id for a in repo.account_refs(s, None)]
    reports = []
    for account_id in ids:
        account = load_account(session_factory, account_id)
        if account is None or not account.enabled:
            continue
        try:
            exchange = exchange_factory(account)
            reports.append(reconcile_account(session_factory, exchange, account_id, fix=fix,
                                             unknown_grace_s=unknown_grace_s, cache=cache,
                                             resend_guard=resend_guard))  # fmt: skip
        except errors.TradingBotError as exc:  # keys missing, the venue or the database unavailable
            failed = ReconcileReport(account_id, fix)
            failed.drifts.append(Drift("unchecked", f"account {account_id}", "", f"{exc}", "run again later"))
            reports.append(failed)
    return reports


#: the pass lease's TTL: longer than the reconcile Lambda's timeout (cdk functions.py "reconcile": 120 s),
#: so two overlapping passes (a slow one and the next minute's) never reconcile at the same time
PASS_LEASE_TTL_S = 150


def scheduled_pass(rt: Runtime) -> list[ReconcileReport] | None:
    """One scheduled pass over every enabled account with the ``EXCHANGE_RECONCILE_*`` settings:
    what the reconcile Lambda runs every minute and ``tradingbot serve``'s :class:`ReconcileLoop`
    runs locally. None when another pass holds the ``reconcile:pass`` lease (or Redis cannot say):
    the next minute's pass runs instead, never two at once."""
    cfg = rt.config.exchange
    cache = rt.cache()
    lease = cache.acquire_lease("reconcile:pass", PASS_LEASE_TTL_S)
    if lease is None:
        log.warning("reconcile: another pass holds the lease (or Redis is unreachable); skipped")
        return None
    try:
        sessions, exchanges = exchange_factories(rt)
        return reconcile_accounts(
            sessions, exchanges, fix=cfg.reconcile_fix, unknown_grace_s=cfg.reconcile_unknown_grace_s,
            cache=cache if cfg.reconcile_resend_unplaced else None,
            resend_guard=ResendGuard.from_settings(cfg, rt.settings),
        )  # fmt: skip
    finally:
        cache.release_lease(lease)


class ReconcileLoop(Every[list[ReconcileReport]]):
    """``tradingbot serve``'s scheduled reconcile: ``run_once()`` every ``every_s`` seconds on a
    daemon thread (what the EventBridge rule does on AWS), each pass logged with its drift counts.
    A failing pass is logged and the next one runs on time."""

    def __init__(
        self,
        run_once: Callable[[], list[ReconcileReport]],
        *,
        every_s: float,
        on_pass: Callable[[list[ReconcileReport]], None] | None = None,
    ) -> None:
        def passed(reports: list[ReconcileReport]) -> None:
            found, unfixed = drift_counts(reports)
            level = logging.WARNING if unfixed else logging.INFO
            orphans = sum(len(r.orphans) for r in reports)
            log.log(level, "reconcile: %d accounts, %d drift found, %d unfixed, %d orphan order(s)", len(reports),
                    found, unfixed, orphans, extra={"event": "reconcile", "drift": found, "drift_unfixed": unfixed,
                                                    "orphans": orphans})  # fmt: skip
            if on_pass is not None:
                on_pass(reports)

        def failed(_: Exception) -> None:  # the database may be restarting
            log.exception("reconcile pass failed; the next runs in %.0f s", every_s)

        super().__init__("reconcile", run_once, every_s=every_s, on_pass=passed, on_error=failed)
