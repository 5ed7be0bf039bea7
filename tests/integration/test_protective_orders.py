"""Protective orders follow the position (issue 15, part 4), on both venues' stand-ins through the
real ccxt clients, real PostgreSQL and Redis; reconcile checks and repairs them (part 6).

The stand-ins keep a conditional order after its position is gone, and fire a sibling only when
told (``book.trigger``), as Binance (no OCO) does: so every "cancelled" below was cancelled by us."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.crypto import EnvelopeCipher, ExchangeCredentials, Kek, KeyRing, Secret
from tradingbot.adapters.exchange.ccxt_adapter import CcxtExchange
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.config import envelope_cipher
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.errors import InvalidVenueUrl
from tradingbot.adapters.persistence.models import Execution, Fill, Order
from tradingbot.domain.positions import client_order_id
from tradingbot.entrypoints.lambdas.reconcile import handler as reconcile_lambda
from tradingbot.pipeline.order_service import default_exchange_factory, load_account
from tradingbot.pipeline.reconcile import (
    ReconcileLoop,
    ReconcileReport,
    drift_counts,
    reconcile_account,
    reconcile_accounts,
)
from tradingbot.pipeline.runtime import Runtime
from tradingbot.settings import ExchangeSection

from ._fake_exchanges import API_KEY, API_SECRET, PASSPHRASE, Fault, binance_server, okx_server
from .test_exchange_live import TIMEOUT_MS, Venue, _make_account

SL, TP = Decimal(49000), Decimal(52000)


@pytest.fixture(params=["binanceusdm", "okx"])
def venue(request: pytest.FixtureRequest, db: Engine, cache: Cache) -> Iterator[Venue]:
    name = request.param
    cipher = EnvelopeCipher(KeyRing(Kek.generate()))
    server = binance_server() if name == "binanceusdm" else okx_server()
    with server:
        yield Venue(
            name, server.book, server.url, db, cache, cipher, _make_account(db, cipher, name, rest_url=server.url)
        )


def _live(venue: Venue) -> list[tuple[str, str, Decimal, Decimal]]:
    """The venue's live conditional orders as (type, side, quantity, trigger), sorted."""
    return sorted((o["type"], o["side"], o["qty"], o["trigger"]) for o in venue.book.open_conditional())


def _rows(engine: Engine) -> dict[str, Order]:
    with session_scope(engine) as s:
        return {o.client_order_id: o for o in s.scalars(select(Order))}


def _reconcile(venue: Venue, *, fix: bool = True) -> ReconcileReport:
    return reconcile_account(venue.sessions, venue.exchange(), venue.account_id, fix=fix)


def _long(venue: Venue, decision: str = "d-1", **kw: Any) -> None:
    report = venue.execute(decision, stop_loss=SL, take_profit=TP, **kw)
    assert report.status in ("filled", "partially_filled"), report.to_dict()


_ALGO_CREATE = ("/fapi/v1/algoOrder", "/api/v5/trade/order-algo")
BOTH_LONG = [("STOP_MARKET", "sell", Decimal("0.02"), SL), ("TAKE_PROFIT_MARKET", "sell", Decimal("0.02"), TP)]


# ---------------------------------------------------------------- placed with the entry


def test_entry_places_a_reduce_only_stop_and_target_for_the_position(venue: Venue) -> None:
    _long(venue)
    assert _live(venue) == BOTH_LONG
    assert all(o["reduce_only"] for o in venue.book.open_conditional())
    rows = _rows(venue.engine)
    assert rows[venue.cid(leg="sl")].status == "open" and rows[venue.cid(leg="tp")].status == "open"
    assert Decimal(rows[venue.cid(leg="sl")].price or 0) == SL
    # nothing to repair right after an execution
    assert _reconcile(venue).drifts == []


def test_partial_fill_of_the_entry_sizes_both_to_the_fill(venue: Venue) -> None:
    venue.book.inject(Fault("partial_fill", fraction=Decimal("0.5")))
    report = venue.execute(stop_loss=SL, take_profit=TP)
    assert report.status == "partially_filled", report.to_dict()
    half = Decimal("0.01")
    assert _live(venue) == [("STOP_MARKET", "sell", half, SL), ("TAKE_PROFIT_MARKET", "sell", half, TP)]


def test_partial_close_resizes_both_new_first_then_the_old_cancelled(venue: Venue) -> None:
    _long(venue)
    old = {venue.cid(leg="sl"), venue.cid(leg="tp")}
    venue.book.inject(Fault("partial_fill", fraction=Decimal("0.5")))
    report = venue.execute("d-2", action="flat")
    assert report.status == "partially_filled", report.to_dict()
    half = Decimal("0.01")
    assert _live(venue) == [("STOP_MARKET", "sell", half, SL), ("TAKE_PROFIT_MARKET", "sell", half, TP)]
    assert all(venue.book.orders[c]["status"] == "CANCELED" for c in old)
    rows = _rows(venue.engine)
    assert {rows[c].status for c in old} == {"canceled"}
    resized = [r for c, r in rows.items() if r.type in ("stop_market", "take_profit_market") and r.status == "open"]
    assert sorted(Decimal(r.quantity) for r in resized) == [half, half]
    # the new ones were accepted before the old ones were cancelled: never unprotected
    creates = [i for i, (m, p) in enumerate(venue.book.request_log) if m == "POST" and p.endswith(_ALGO_CREATE)]
    cancels = [i for i, (m, p) in enumerate(venue.book.request_log) if "cancel" in p.lower() or m == "DELETE"]
    assert max(creates) < min(cancels)
    assert _reconcile(venue).drifts == []


# ---------------------------------------------------------------- flat and reverse


def test_flat_cancels_both(venue: Venue) -> None:
    _long(venue)
    report = venue.execute("d-2", action="flat")
    assert report.status == "filled", report.to_dict()
    assert _live(venue) == []
    assert venue.book.positions == {}
    rows = _rows(venue.engine)
    assert rows[venue.cid(leg="sl")].status == "canceled" and rows[venue.cid(leg="tp")].status == "canceled"
    assert _reconcile(venue).drifts == []


def test_reverse_cancels_the_old_side_and_protects_the_new_one(venue: Venue) -> None:
    _long(venue)
    report = venue.execute("d-2", action="reverse", stop_loss=Decimal(51000), take_profit=Decimal(48000))
    assert report.status == "filled", report.to_dict()
    assert venue.book.positions["BTC"][0] == Decimal("-0.02")
    assert _live(venue) == [
        ("STOP_MARKET", "buy", Decimal("0.02"), Decimal(51000)),
        ("TAKE_PROFIT_MARKET", "buy", Decimal("0.02"), Decimal(48000)),
    ]
    assert venue.book.orders[venue.cid(leg="sl")]["status"] == "CANCELED"
    assert venue.book.orders[venue.cid(leg="tp")]["status"] == "CANCELED"
    assert [(o.leg, o.status) for o in report.orders] == [
        ("close", "filled"), ("open", "filled"), ("sl", "open"), ("tp", "open"),
    ]  # fmt: skip
    assert _reconcile(venue).drifts == []


# ---------------------------------------------------------------- one fires: the sibling goes


def test_one_fires_reconcile_cancels_the_sibling(venue: Venue) -> None:
    _long(venue)
    venue.book.trigger(venue.cid(leg="sl"))  # the stop fills on the venue: flat, the target stays there
    assert venue.book.positions == {} and len(_live(venue)) == 1

    report = _reconcile(venue)

    assert _live(venue) == []
    assert venue.book.orders[venue.cid(leg="tp")]["status"] == "CANCELED"
    rows = _rows(venue.engine)
    assert rows[venue.cid(leg="sl")].status == "filled" and rows[venue.cid(leg="tp")].status == "canceled"
    # the fired stop's execution, read from the venue's trades of the order it triggered
    with session_scope(venue.engine) as s:
        [(qty, price, fee)] = s.execute(
            select(Fill.quantity, Fill.price, Fill.fee).where(Fill.order_id == rows[venue.cid(leg="sl")].id)
        ).all()
    assert (qty, price) == (Decimal("0.02"), SL)
    assert fee == venue.book.trades[-1]["fee"] == Decimal("0.02") * SL * venue.book.fee_rate
    kinds = {(d.kind, d.key, d.fixed) for d in report.drifts}
    assert ("protection", venue.cid(leg="tp"), True) in kinds
    assert drift_counts([report])[1] == 0
    assert _reconcile(venue).drifts == []  # repaired: the next pass is in sync


def test_a_new_entry_after_a_stop_fired_cancels_the_leftover_target_before_it_sends(venue: Venue) -> None:
    """No stale reduce-only order may meet a later position: even without a reconcile pass in
    between, the next decision cancels the leftover before its entry."""
    _long(venue)
    venue.book.trigger(venue.cid(leg="sl"))
    leftover = venue.cid(leg="tp")
    log_before = len(venue.book.request_log)
    _long(venue, "d-2")
    assert venue.book.orders[leftover]["status"] == "CANCELED"
    later = venue.book.request_log[log_before:]
    cancel_at = next(i for i, (m, p) in enumerate(later) if "cancel" in p.lower() or m == "DELETE")
    entry_at = next(i for i, (m, p) in enumerate(later) if m == "POST" and p.endswith(("/order", "/trade/order")))
    assert cancel_at < entry_at
    assert _live(venue) == BOTH_LONG
    assert {o["cid"] for o in venue.book.open_conditional()} == {
        client_order_id(venue.account_id, "d-2", "sl"), client_order_id(venue.account_id, "d-2", "tp"),
    }  # fmt: skip


# ---------------------------------------------------------------- reconcile repairs


def test_reconcile_replaces_a_stop_cancelled_on_the_venue(venue: Venue) -> None:
    _long(venue)
    venue.book.orders[venue.cid(leg="sl")]["status"] = "CANCELED"  # someone cancelled it in the venue's UI
    assert _live(venue) == BOTH_LONG[1:]

    report = _reconcile(venue)

    assert _live(venue) == BOTH_LONG
    rows = _rows(venue.engine)
    assert rows[venue.cid(leg="sl")].status == "canceled"
    replacement = [r for r in rows.values() if r.type == "stop_market" and r.status == "open"]
    assert len(replacement) == 1 and replacement[0].client_order_id != venue.cid(leg="sl")
    assert {(d.kind, d.fixed) for d in report.drifts} == {("order", True), ("protection", True)}
    assert _reconcile(venue).drifts == []
    creates = venue.book.create_requests
    _reconcile(venue)
    assert venue.book.create_requests == creates  # nothing placed twice


def test_a_stop_of_unknown_outcome_is_sent_again_under_its_own_id_at_the_next_pass(venue: Venue) -> None:
    """A crash between the stop's commit (``submitted``) and its send: the venue never saw it. The
    next reconcile pass (no grace to wait for) looks it up, does not find it, and sends it again
    under the SAME client id (reduce-only; an open order's id would be refused): the position is
    protected by one stop, the row is ``open``, and a second pass sends nothing."""
    _long(venue)
    sl = venue.cid(leg="sl")
    with venue.book.lock:
        venue.book.orders.pop(sl)  # never reached the venue
        venue.book.accepted.remove(sl)
    with session_scope(venue.engine) as s:
        s.execute(update(Order).where(Order.client_order_id == sl).values(status="submitted"))
    creates = venue.book.create_requests

    first = _reconcile(venue)

    assert _live(venue) == BOTH_LONG
    assert venue.book.create_requests == creates + 1 and venue.book.accepted.count(sl) == 1  # under its own id
    assert _rows(venue.engine)[sl].status == "open"
    placed = [d for d in first.drifts if d.kind == "protection" and d.stored == "place"]
    assert len(placed) == 1 and placed[0].fixed and placed[0].key == sl, first.drifts
    assert drift_counts([first])[1] == 0
    assert _reconcile(venue).drifts == []
    assert venue.book.create_requests == creates + 1


def test_a_stop_whose_resend_is_refused_as_a_duplicate_is_not_placed_twice(venue: Venue) -> None:
    """The stop DID reach the venue, but its read side lags: the lookup misses it, the resend under
    the same id is refused (Binance -4116 / OKX 51016: the id of an open order), so exactly one stop
    exists; the row stays ``submitted`` (unfixed drift) until a lookup sees it, then ``open``."""
    _long(venue)
    sl = venue.cid(leg="sl")
    with session_scope(venue.engine) as s:
        s.execute(update(Order).where(Order.client_order_id == sl).values(status="submitted"))
    with venue.book.lock:
        for order in venue.book.orders.values():  # the rest is long booked: only the stop lags
            order["accepted_at"] = time.monotonic() - 3600
        venue.book.orders[sl]["accepted_at"] = time.monotonic()  # just booked: the read side lags it
    venue.book.read_lag_s = 30
    creates = venue.book.create_requests

    first = reconcile_account(venue.sessions, venue.exchange(), venue.account_id, fix=True)

    assert venue.book.create_requests == creates + 1 and venue.book.accepted.count(sl) == 1  # refused
    assert _rows(venue.engine)[sl].status == "submitted"
    assert drift_counts([first])[1] >= 1  # the alarm sees the unread stop
    venue.book.read_lag_s = 0
    _reconcile(venue)
    assert _rows(venue.engine)[sl].status == "open"
    assert _live(venue) == BOTH_LONG
    assert _reconcile(venue).drifts == []


def test_reconcile_cancels_orphans_after_a_manual_close(venue: Venue) -> None:
    _long(venue)
    with venue.book.lock:  # closed by hand on the venue
        venue.book.fill("BTC", "sell", Decimal("0.02"), Decimal(50000))
    report = _reconcile(venue)
    assert _live(venue) == []
    assert {d.kind for d in report.drifts} == {"position", "protection"}
    assert all(d.fixed for d in report.drifts)


def test_report_only_reconcile_sends_nothing(venue: Venue) -> None:
    _long(venue)
    venue.book.trigger(venue.cid(leg="sl"))
    requests = len(venue.book.request_log)
    report = _reconcile(venue, fix=False)
    assert any(d.kind == "protection" and d.key == venue.cid(leg="tp") and not d.fixed for d in report.drifts)
    assert len(_live(venue)) == 1
    sent = [(m, p) for m, p in venue.book.request_log[requests:] if m in ("POST", "DELETE")]
    assert sent == []
    assert drift_counts([report])[1] >= 1


def test_reconcile_settles_a_pending_entry_and_places_its_stop_and_target(venue: Venue) -> None:
    """The known bug: reconcile resolved the entry, but the execution stayed pending and the
    position got no stop or target."""
    venue.book.inject(Fault("timeout_after_accept", delay_s=TIMEOUT_MS / 1000 + 0.4))
    venue.book.read_lag_s = venue.book.trade_lag_s = 60
    report = venue.execute(stop_loss=SL, take_profit=TP)
    assert report.status == "pending", report.to_dict()
    assert _live(venue) == []  # the position is not known yet: nothing protective sent
    venue.book.read_lag_s = venue.book.trade_lag_s = 0  # the venue's read side caught up

    rec = _reconcile(venue)

    assert _live(venue) == BOTH_LONG
    with session_scope(venue.engine) as s:
        stored = s.scalars(select(Execution)).one()
        assert stored.status == "filled", stored.report
        assert [(o["leg"], o["status"]) for o in stored.report["orders"]] == [
            ("open", "filled"), ("sl", "open"), ("tp", "open"),
        ]  # fmt: skip
    assert ("execution", True) in {(d.kind, d.fixed) for d in rec.drifts}
    assert venue.book.accepted.count(venue.cid()) == 1
    # the stored outcome is the answer for a retry of the decision: nothing sent again
    again = venue.execute(stop_loss=SL, take_profit=TP)
    assert again.status == "filled" and venue.book.accepted.count(venue.cid()) == 1


def test_an_unresolved_entry_leaves_protection_alone(venue: Venue) -> None:
    venue.book.inject(Fault("timeout_after_accept", delay_s=TIMEOUT_MS / 1000 + 0.4))
    venue.book.read_lag_s = venue.book.trade_lag_s = 60
    assert venue.execute(stop_loss=SL, take_profit=TP).status == "pending"
    report = _reconcile(venue)
    assert _live(venue) == []
    waiting = [d for d in report.drifts if d.kind == "protection"]
    assert waiting and not waiting[0].fixed and "unresolved" in waiting[0].exchange


# ---------------------------------------------------------------- on a schedule


def test_scheduled_pass_reconciles_every_enabled_account(venue: Venue) -> None:
    _long(venue)
    venue.book.trigger(venue.cid(leg="tp"))
    factory = default_exchange_factory(venue.sessions, venue.cache, venue.cipher, timeout_ms=TIMEOUT_MS)
    reports = reconcile_accounts(venue.sessions, factory, fix=True)
    assert [r.account_id for r in reports] == [venue.account_id]
    assert _live(venue) == []
    found, unfixed = drift_counts(reports)
    assert found >= 2 and unfixed == 0


def test_the_reconcile_lambda_repairs_and_counts_and_never_runs_two_passes_at_once(
    venue: Venue, runtime: Runtime
) -> None:
    with session_scope(venue.engine) as s:  # the keys under the runtime's key-encryption key, as deployed
        creds = ExchangeCredentials(Secret(API_KEY), Secret(API_SECRET, visible=0), Secret(PASSPHRASE, visible=0))
        repo.store_credentials(s, repo.get_account(s, f"acct-{venue.name}-True"), creds,
                               envelope_cipher(runtime.persistence))  # fmt: skip
    venue.cipher = envelope_cipher(runtime.persistence)
    _long(venue)
    venue.book.trigger(venue.cid(leg="sl"))
    held = venue.cache.acquire_lease("reconcile:pass", 30)  # a pass still running (a slow minute)
    assert held is not None
    assert reconcile_lambda({"id": "evt-1"}, None)["skipped"] is True
    assert len(_live(venue)) == 1  # untouched by the skipped pass
    venue.cache.release_lease(held)

    out = reconcile_lambda({"id": "evt-2"}, None)

    assert out["skipped"] is False and out["accounts"] == 1
    assert out["drift"] >= 2 and out["drift_unfixed"] == 0
    assert _live(venue) == []
    assert reconcile_lambda({"id": "evt-3"}, None)["drift"] == 0


def test_reconcile_loop_runs_passes_until_stopped() -> None:
    calls: list[int] = []
    seen = threading.Event()

    def run_once() -> list[ReconcileReport]:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("database restarting")  # a failing pass must not end the schedule
        return [ReconcileReport(1, True)]

    def on_pass(reports: list[ReconcileReport]) -> None:
        if len(calls) >= 3:
            seen.set()

    loop = ReconcileLoop(run_once, every_s=0.02, on_pass=on_pass).start()
    assert seen.wait(5)
    loop.stop()
    assert loop.passes >= 2 and len(calls) >= 3
    n = len(calls)
    threading.Event().wait(0.1)
    assert len(calls) == n  # stopped


# ---------------------------------------------------------------- venue endpoints per account


def test_okx_regional_host_uses_ccxts_hostname_option() -> None:
    ex = CcxtExchange("okx", None, testnet=False, rest_url="https://my.okx.com")
    assert ex._client.hostname == "my.okx.com"
    assert ex._client.implode_hostname(ex._client.urls["api"]["rest"]) == "https://my.okx.com"


def test_defaults_are_the_venues_own_hosts() -> None:
    d = ExchangeSection()
    live = CcxtExchange("binanceusdm", None, testnet=False, rest_url=d.rest_url("binanceusdm", testnet=False))
    demo = CcxtExchange("binanceusdm", None, testnet=True, rest_url=d.rest_url("binanceusdm", testnet=True))
    okx = CcxtExchange("okx", None, testnet=True, rest_url=d.rest_url("okx", testnet=True))
    assert live._client.urls["api"]["fapiPrivate"] == "https://fapi.binance.com/fapi/v1"
    assert demo._client.urls["api"]["fapiPrivate"] == "https://demo-fapi.binance.com/fapi/v1"
    assert okx._client.implode_hostname(okx._client.urls["api"]["rest"]) == "https://www.okx.com"
    assert okx._client.headers.get("x-simulated-trading") == "1"


def test_an_account_override_wins_over_the_settings_and_bad_urls_are_refused(db: Engine, cache: Cache) -> None:
    cipher = EnvelopeCipher(KeyRing(Kek.generate()))
    with binance_server() as server:
        acct = _make_account(db, cipher, "binanceusdm")

        def sessions() -> Any:
            return session_scope(db)

        account = load_account(sessions, acct)
        assert account is not None
        wrong = ExchangeSection(binanceusdm_testnet_rest_url="http://127.0.0.1:9")  # nothing listens there
        factory = default_exchange_factory(sessions, cache, cipher, endpoints=wrong, timeout_ms=TIMEOUT_MS)
        with session_scope(db) as s:
            repo.set_venue_urls(s, "acct-binanceusdm-True", rest_url=server.url, ws_url="wss://fstream.example")
        assert factory(account).fetch_positions() == []  # reached the stand-in, not the setting's host
        assert ("GET", "/fapi/v3/positionRisk") in server.book.request_log
        with (
            session_scope(db) as s,
            pytest.raises(InvalidVenueUrl, match=r"^rest_url: 'ftp://x' is not a http/https URL"),
        ):
            repo.set_venue_urls(s, "acct-binanceusdm-True", rest_url="ftp://x", ws_url=None)
        with session_scope(db) as s:
            row = repo.get_account(s, "acct-binanceusdm-True")
            assert row.venue_urls == {"rest": server.url, "ws": "wss://fstream.example"}  # nothing half-written
            repo.set_venue_urls(s, "acct-binanceusdm-True", rest_url="", ws_url="")
            assert repo.get_account(s, "acct-binanceusdm-True").venue_urls is None


# ---------------------------------------------------------------- the paper exchange: the same rules

BTC = "BTC/USDT:USDT"


def _paper_resting(db: Engine, account_id: int) -> list[tuple[str, str, Decimal, Decimal]]:
    with session_scope(db) as s:
        return sorted(
            (o.type, o.side, Decimal(o.quantity), Decimal(o.trigger_price or 0))
            for o in repo.resting_paper_orders(s, account_id)
        )  # fmt: skip


def _paper_intent(decision: str, action: str, sl: Decimal, tp: Decimal) -> Any:
    from tradingbot.domain.positions import TradeIntent

    return TradeIntent(decision_id=decision, symbol="BTCUSDT", action=action, reference_price=Decimal(50000),
                       stop_loss=sl, take_profit=tp, quantity=Decimal("0.02"), leverage=2)  # type: ignore[arg-type]  # fmt: skip


def test_paper_stop_fires_then_reconcile_cancels_the_target_and_reverse_swaps_sides(db: Engine, cache: Cache) -> None:
    from tradingbot.adapters.exchange.paper import PaperExchange
    from tradingbot.pipeline.order_service import execute_intent

    with session_scope(db) as s:
        acct, _ = repo.create_account(s, name="paper", exchange="paper", testnet=True,
                                      limits=repo.RiskLimits(max_leverage=10))  # fmt: skip
        account_id = acct.id

    def sessions() -> Any:
        return session_scope(db)

    factory = default_exchange_factory(sessions, cache, EnvelopeCipher(KeyRing(Kek.generate())))
    cache.put_price("binanceusdm", BTC, Decimal(50000))
    report = execute_intent(sessions, cache, account_id, _paper_intent("p-1", "long", SL, TP), factory)
    assert report.status == "filled", report.to_dict()
    assert _paper_resting(db, account_id) == [
        ("stop_market", "sell", Decimal("0.02"), SL), ("take_profit_market", "sell", Decimal("0.02"), TP),
    ]  # fmt: skip

    # reverse: the long's sell stop and target go, the short's buy stop and target come
    report = execute_intent(sessions, cache, account_id,
                            _paper_intent("p-2", "reverse", Decimal(51000), Decimal(48000)), factory)  # fmt: skip
    assert report.status == "filled", report.to_dict()
    assert _paper_resting(db, account_id) == [
        ("stop_market", "buy", Decimal("0.02"), Decimal(51000)),
        ("take_profit_market", "buy", Decimal("0.02"), Decimal(48000)),
    ]

    # the short's stop fires; its target stays on the paper book until reconcile cancels it
    cache.put_price("binanceusdm", BTC, Decimal(51100))
    paper = PaperExchange(sessions, cache, account_id)
    assert paper.fetch_positions() == []
    assert len(_paper_resting(db, account_id)) == 1
    drift = reconcile_account(sessions, paper, account_id, fix=True)
    assert _paper_resting(db, account_id) == []
    assert ("protection", "cancel", True) in {(d.kind, d.stored, d.fixed) for d in drift.drifts}
    assert reconcile_account(sessions, paper, account_id, fix=True).drifts == []


def test_accounts_endpoints_command_sets_shows_and_refuses(servers: Any, db: Engine, tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from tradingbot.entrypoints.cli.accounts import accounts_app

    env = {"DATABASE_URL": servers.database_url, "TRADINGBOT_KEK": Kek.generate().to_base64(),
           "TRADINGBOT_DATA_DIR": str(tmp_path), "TRADINGBOT_KEK_PREVIOUS": None,
           "TRADINGBOT_KEK_SECRET_ID": None, "EXCHANGE_OKX_WS_URL": None}  # fmt: skip
    runner = CliRunner()
    assert runner.invoke(accounts_app, ["add", "--name", "eea", "--exchange", "okx"], env=env).exit_code == 0
    shown = runner.invoke(accounts_app, ["endpoints", "--name", "eea", "--rest-url", "https://my.okx.com"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "REST https://my.okx.com, WebSocket wss://ws.okx.com:8443/ws/v5 (default)" in shown.output
    bad = runner.invoke(accounts_app, ["endpoints", "--name", "eea", "--ws-url", "https://not-a-socket"], env=env)
    assert bad.exit_code == 2 and "ws_url: 'https://not-a-socket' is not a ws/wss URL" in bad.output
    with session_scope(db) as s:
        assert repo.get_account(s, "eea").venue_urls == {"rest": "https://my.okx.com"}
