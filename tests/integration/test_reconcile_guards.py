"""Issue 15, the last gaps of reconcile, on both venue stand-ins (real ccxt clients, real PostgreSQL
and Redis, the real order service):

* an entry proven never placed is sent again only while its decision is fresh and the venue's
  mark price is still within the Validate stage's tolerance of the decision's price; otherwise it
  is abandoned with the reason stored (``stale_entry`` / ``price_moved``) and nothing reaches the venue;
* open orders on the venue that have no row of ours (orphans) are reported, never cancelled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from tradingbot.adapters.persistence.models import Execution, Order, OrderEvent
from tradingbot.pipeline.reconcile import ReconcileReport, ResendGuard, drift_counts, reconcile_account

from ._fake_exchanges import Fault
from ._fault_matrix import VENUES, OwnServers, World, run_stop_timeout_lagging, world_for


@pytest.fixture(scope="module")
def own_servers() -> Iterator[OwnServers]:
    with OwnServers.running() as servers:
        yield servers


@pytest.fixture(params=VENUES)
def w(own_servers: OwnServers, request: pytest.FixtureRequest) -> Iterator[World]:
    with world_for(own_servers, request.param) as world:
        yield world


def _entry_never_placed(w: World) -> None:
    """-1007 / OKX 50004 with nothing booked: Execute leaves the entry ``submitted`` (never resent)."""
    w.book.inject(Fault("status_unknown", accept=False))
    report = w.execute()
    assert report is not None and report.status == "pending", report
    assert w.cid("open") not in w.book.accepted


def _after_grace(w: World, guard: ResendGuard | None = None) -> ReconcileReport:
    """A scheduled pass once the 900 s read-lag grace has run out (0 here), resend allowed (cache)."""
    return reconcile_account(w.sessions, w.factory()(w._account()), w.account_id, fix=True, pending_grace_s=0,
                             unknown_grace_s=0, cache=w.cache, resend_guard=guard)  # fmt: skip


def _entry_row(w: World) -> tuple[str, str | None]:
    """(status, reason code of its last event) of the decision's entry row."""
    with w.sessions() as s:
        order = s.scalars(select(Order).where(Order.client_order_id == w.cid("open"))).one()
        events = select(OrderEvent).where(OrderEvent.order_id == order.id).order_by(OrderEvent.id.desc())
        last = s.scalars(events).first()
        return order.status, (last.detail or {}).get("reason") if last is not None else None


def _execution(w: World) -> tuple[str, str]:
    with w.sessions() as s:
        row = s.scalars(select(Execution).where(Execution.decision_key == "d-1")).one()
        return row.status, row.reason or ""


def test_an_unplaced_entry_is_abandoned_when_the_price_moved_beyond_the_validate_tolerance(w: World) -> None:
    _entry_never_placed(w)
    w.book.marks["BTC"] = Decimal(50000) * Decimal("1.02")  # 2 % away; VALIDATE_MAX_PRICE_DEVIATION_PCT is 1 %

    report = _after_grace(w)

    assert w.cid("open") not in w.book.accepted  # nothing sent
    assert _entry_row(w) == ("failed", "price_moved")
    status, reason = _execution(w)
    assert status == "rejected" and "price_moved" in reason and "2.00 %" in reason, reason
    abandoned = [d for d in report.drifts if d.key == w.cid("open")]
    assert len(abandoned) == 1 and abandoned[0].fixed and "abandoned (price_moved)" in abandoned[0].repair


def test_an_unplaced_entry_is_abandoned_when_the_decision_is_stale(w: World) -> None:
    _entry_never_placed(w)
    with w.sessions() as s:  # written 25 minutes ago: older than the 1,200 s default
        s.execute(update(Order).where(Order.client_order_id == w.cid("open"))
                  .values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1500)))  # fmt: skip

    report = _after_grace(w)

    assert w.cid("open") not in w.book.accepted
    assert _entry_row(w) == ("failed", "stale_entry")
    status, reason = _execution(w)
    assert status == "rejected" and "stale_entry" in reason and "1200 s" in reason, reason
    assert any("abandoned (stale_entry)" in d.repair for d in report.drifts), report.drifts


def test_an_unplaced_entry_within_the_tolerance_is_sent_again_once(w: World) -> None:
    _entry_never_placed(w)
    w.book.marks["BTC"] = Decimal(50000) * Decimal("1.005")  # 0.5 %: within the 1 % the validator allows

    _after_grace(w)

    assert w.book.accepted.count(w.cid("open")) == 1
    assert _entry_row(w)[0] == "filled"
    assert _execution(w)[0] == "filled"


def test_a_tighter_guard_from_the_settings_refuses_what_the_default_allows(w: World) -> None:
    """The guard is the settings' (EXCHANGE_RECONCILE_RESEND_MAX_AGE_S, VALIDATE_MAX_PRICE_DEVIATION_PCT)."""
    _entry_never_placed(w)
    w.book.marks["BTC"] = Decimal(50000) * Decimal("1.005")

    _after_grace(w, ResendGuard(max_age_s=1200, max_deviation_pct=Decimal("0.25")))

    assert w.cid("open") not in w.book.accepted
    assert _entry_row(w) == ("failed", "price_moved")


def test_orphan_orders_on_the_venue_are_reported_never_cancelled(w: World) -> None:
    report = w.execute()  # our own entry, stop and target: rows exist, not orphans
    assert report is not None and report.status == "filled"
    ours_shaped = "tbo" + "0" * 29  # our client-id shape, but no row (a lost process)
    with w.book.lock:  # placed by hand on the venue / by a process whose rows are gone
        w.book.book_order("manual-1", "BTC", "buy", "LIMIT", Decimal("0.01"), Decimal(40000), None, False, Decimal(1))
        w.book.book_order(ours_shaped, "ETH", "sell", "STOP_MARKET", Decimal("0.1"), None, Decimal(2500), True,
                          Decimal(0))  # fmt: skip
    requests = len(w.book.request_log)

    passes = [w.reconcile(fix=True, after_grace=True) for _ in range(2)]

    for rep in passes:
        found = {o["client_order_id"]: o["ours_by_prefix"] for o in rep.orphans}
        assert found == {"manual-1": False, ours_shaped: True}
        orphans = [d for d in rep.drifts if d.kind == "orphan"]
        assert len(orphans) == 2 and not any(d.fixed for d in orphans)
        assert drift_counts([rep])[1] >= 2  # the drift alarm counts them
    deletes = [p for m, p in w.book.request_log[requests:] if m == "DELETE" or "cancel" in p]
    assert deletes == []  # never cancelled
    assert w.book.is_open("manual-1") and w.book.is_open(ours_shaped)


def test_a_decision_left_pending_by_an_unread_stop_reads_final_once_reconcile_settles_it(w: World) -> None:
    """Never final while a leg's outcome is unknown: the stop's answer is lost and the venue's read
    side lags, so Execute stores ``pending`` (the entry filled, the stop unread), and
    ``executions list`` says "order pending" with the stop's reason; the next reconcile pass reads
    the stop, settles the execution ``filled`` and the decision's record with it."""
    from tradingbot.adapters.persistence import repositories as repo
    from tradingbot.pipeline.operator_api import outcome

    run_stop_timeout_lagging(w)
    with w.sessions() as s:
        stored = s.scalars(select(Execution).where(Execution.decision_key == "d-1")).one()
        assert stored.status == "pending" and (stored.reason or "").startswith("sl: outcome_unknown"), stored.reason
        repo.record_decision(s, execution_name="d-1", account_id=w.account_id, symbol="BTCUSDT", inputs={},
                             stages={"execution": dict(stored.report)}, final_action="long")  # fmt: skip
        d = repo.find_decision(s, "d-1")
        assert d is not None and outcome(d.stages, d.final_action, d.rejection_reason)[0] == "order pending"

    report = w.reconcile(fix=True, after_grace=False)

    assert any(d.kind == "execution" and d.fixed for d in report.drifts), report.drifts
    with w.sessions() as s:
        d = repo.find_decision(s, "d-1")
        assert d is not None
        assert outcome(d.stages, d.final_action, d.rejection_reason) == ("filled", None)
    assert _execution(w)[0] == "filled"


def test_the_reconcile_command_takes_the_guard_from_the_settings(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """``tradingbot reconcile --fix`` (run_reconcile) builds the guard from the environment: a
    VALIDATE_MAX_PRICE_DEVIATION_PCT of 0.25 abandons an entry 0.5 % away, which the default allows."""
    from tradingbot.entrypoints.cli.exchange import run_reconcile

    _entry_never_placed(w)
    w.book.marks["BTC"] = Decimal(50000) * Decimal("1.005")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1000)  # past the 900 s grace, inside the 1,200 s age
    with w.sessions() as s:
        s.execute(update(Order).where(Order.client_order_id == w.cid("open")).values(created_at=past, updated_at=past))
    monkeypatch.setenv("VALIDATE_MAX_PRICE_DEVIATION_PCT", "0.25")
    monkeypatch.setenv("EXCHANGE_BINANCEUSDM_TESTNET_REST_URL", w.url)
    monkeypatch.setenv("EXCHANGE_OKX_REST_URL", w.url)

    run_reconcile(w.engine, w.cache, w.cipher, None, True)

    assert w.cid("open") not in w.book.accepted
    assert _entry_row(w) == ("failed", "price_moved")
