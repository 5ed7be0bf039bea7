"""Accounting (issue 15): fees, realised PnL and funding from the venue's own records, through the
REAL ccxt clients against the local Binance / OKX stand-ins (which keep their own ledger:
``book.fees_total``, ``book.realized_total``, ``book.funding``), the paper ledger, real PostgreSQL
and Redis; and the risk rules that use them (max daily loss, max drawdown) through the real validator."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.crypto import EnvelopeCipher, Kek, KeyRing
from tradingbot.adapters.exchange.paper import PaperExchange
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import (
    Account,
    AccountTrade,
    EquitySnapshot,
    Fill,
    FundingPaymentRow,
    PaperWallet,
)
from tradingbot.adapters.persistence.models import Position as StoredPosition
from tradingbot.adapters.persistence.repositories import accounting as acc
from tradingbot.domain.exchange import OrderRequest
from tradingbot.domain.validation import ValidationConfig, ValidationInput, validate
from tradingbot.entrypoints.cli.pnl import run_pnl
from tradingbot.pipeline.accounting import SyncPolicy, sync_account
from tradingbot.pipeline.reconcile import reconcile_account
from tradingbot.pipeline.runtime import Runtime
from tradingbot.pipeline.validate import risk_state

from ._fake_exchanges import SPECS, Book, binance_server, okx_server
from .test_exchange_live import Venue, _make_account

BTC = "BTC/USDT:USDT"


@pytest.fixture(params=["binanceusdm", "okx"])
def live(request: pytest.FixtureRequest, db: Engine, cache: Cache) -> Iterator[Venue]:
    name = request.param
    cipher = EnvelopeCipher(KeyRing(Kek.generate()))
    server = binance_server() if name == "binanceusdm" else okx_server()
    with server:
        yield Venue(
            name, server.book, server.url, db, cache, cipher, _make_account(db, cipher, name, rest_url=server.url)
        )


def _sums(engine: Engine, account_id: int) -> dict[str, Decimal]:
    with session_scope(engine) as s:

        def total(col: Any, *where: Any) -> Decimal:
            return Decimal(s.scalar(select(func.coalesce(func.sum(col), 0)).where(*where)) or 0)

        return {
            "fees": total(AccountTrade.fee, AccountTrade.account_id == account_id),
            "realized": total(AccountTrade.realized_pnl, AccountTrade.account_id == account_id),
            "funding": total(FundingPaymentRow.amount, FundingPaymentRow.account_id == account_id),
            "fill_fees": total(Fill.fee),
            "trades": Decimal(s.scalar(select(func.count(AccountTrade.id))) or 0),
        }


def _round_trip(venue: Venue, monkeypatch: pytest.MonkeyPatch, *, exit_price: Decimal) -> None:
    """Long 0.02 BTC at 50,000, one funding settlement at 0.01 % while open, flat at ``exit_price``."""
    assert venue.execute("d-open").status == "filled"
    venue.book.settle_funding("BTC", Decimal("0.0001"))
    monkeypatch.setattr(SPECS["BTC"], "price", exit_price)
    assert venue.execute("d-close", action="flat").status == "filled"


# ---------------------------------------------------------------- the venue's ledger, recorded exactly


def test_fees_pnl_and_funding_equal_the_venues_ledger(live: Venue, monkeypatch: pytest.MonkeyPatch) -> None:
    _round_trip(live, monkeypatch, exit_price=Decimal(51000))
    book = live.book
    funding = sum((f["income"] for f in book.funding), Decimal(0))
    assert (book.realized_total, book.fees_total, funding) == (Decimal(20), Decimal("1.01"), Decimal("-0.1"))

    # the reconcile pass runs the accounting sync (one call from pipeline/reconcile.py)
    report = reconcile_account(live.sessions, live.exchange(), live.account_id, fix=True)
    assert report.accounting is not None and report.accounting["errors"] == [], report.accounting
    assert report.accounting["trades_new"] == 2 and report.accounting["funding_new"] == 1

    sums = _sums(live.engine, live.account_id)
    assert sums["fees"] == book.fees_total
    assert sums["realized"] == book.realized_total
    assert sums["funding"] == funding
    assert sums["fill_fees"] == book.fees_total  # our fills carry the venue's commission
    with session_scope(live.engine) as s:
        pos = s.scalars(select(StoredPosition)).one()
        assert pos.closed_at is not None
        # realised PnL - fees + funding while it was open: 20 - 1.01 - 0.1
        assert pos.realized_pnl == book.realized_total - book.fees_total + funding == Decimal("18.89")
        net_today = acc.net_pnl_since(s, live.account_id, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
        assert net_today == book.wallet - Decimal(10_000) == Decimal("18.89")
        snapshot = s.scalars(select(EquitySnapshot)).one()
        assert snapshot.equity == book.wallet

    # idempotent: a second pass over the overlap stores nothing twice
    again = sync_account(live.sessions, live.exchange(), live.account_id)
    assert (again.trades_new, again.funding_new, again.errors) == (0, 0, [])
    assert _sums(live.engine, live.account_id) == sums


def test_a_partial_fill_and_a_later_close_keep_the_ledger(live: Venue, monkeypatch: pytest.MonkeyPatch) -> None:
    from ._fake_exchanges import Fault

    live.book.inject(Fault("partial_fill", fraction=Decimal("0.5")))
    assert live.execute("d-open").status == "partially_filled"
    monkeypatch.setattr(SPECS["BTC"], "price", Decimal(49500))
    assert live.execute("d-close", action="flat").status == "filled"
    sync_account(live.sessions, live.exchange(), live.account_id)
    sums = _sums(live.engine, live.account_id)
    assert (sums["fees"], sums["realized"]) == (live.book.fees_total, live.book.realized_total)
    assert live.book.realized_total == Decimal("-5")  # 0.01 BTC x -500
    assert sums["fill_fees"] == live.book.fees_total


def test_binance_fill_fee_is_unknown_until_the_trade_list_has_it(db: Engine, cache: Cache) -> None:
    """Binance's order answer has no commission; when userTrades lags, the fill is stored with fee
    NULL (never a made-up 0), and the accounting sync writes the venue's figure later."""
    cipher = EnvelopeCipher(KeyRing(Kek.generate()))
    with binance_server(Book(trade_lag_s=30)) as server:
        venue = Venue("binanceusdm", server.book, server.url, db, cache, cipher,
                      _make_account(db, cipher, "binanceusdm", rest_url=server.url))  # fmt: skip
        assert venue.execute("d-open").status == "filled"
        with session_scope(db) as s:
            assert s.scalars(select(Fill.fee)).all() == [None]
            assert acc.fills_with_unknown_fee(s, venue.account_id) == 1
        early = sync_account(venue.sessions, venue.exchange(), venue.account_id)
        assert early.trades_new == 0 and early.fills_fee_unknown == 1  # the trade list still lags
        server.book.trade_lag_s = 0
        late = sync_account(venue.sessions, venue.exchange(), venue.account_id)
        assert (late.trades_new, late.fills_priced, late.fills_fee_unknown) == (1, 1, 0)
        with session_scope(db) as s:
            assert s.scalars(select(Fill.fee)).all() == [server.book.fees_total] == [Decimal("0.5")]


def test_binance_fees_charged_in_bnb_stay_in_bnb_and_are_never_added_to_usdt(
    db: Engine, cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Binance's BNB fee discount on, userTrades reports ``commissionAsset`` "BNB" and the BNB
    amount, and publishes no conversion rate: our fills and trades keep the fee in BNB, the USDT
    figures (positions.realized_pnl, the daily-loss input) contain none of it, and the day's view
    reports it beside them (``other_fees``). The USDT wallet paid no fee, so the USDT PnL still
    equals the wallet's change."""
    cipher = EnvelopeCipher(KeyRing(Kek.generate()))
    with binance_server(Book(fee_asset="BNB")) as server:
        venue = Venue("binanceusdm", server.book, server.url, db, cache, cipher,
                      _make_account(db, cipher, "binanceusdm", rest_url=server.url))  # fmt: skip
        _round_trip(venue, monkeypatch, exit_price=Decimal(51000))
        book = server.book
        assert book.fees_total == 0 and book.bnb_fees_total == Decimal("0.00151500")  # 1.01 USDT x 0.9 / 600
        with session_scope(db) as s:
            assert s.scalars(select(Fill.fee)).all() == [None, None]  # not known in USDT: pending
        report = sync_account(venue.sessions, venue.exchange(), venue.account_id)
        assert report.errors == [] and report.fills_fee_unknown == 0
        funding = sum((f["income"] for f in book.funding), Decimal(0))
        with session_scope(db) as s:
            fills = s.execute(select(Fill.fee, Fill.fee_currency)).all()
            assert {c for _, c in fills} == {"BNB"}
            assert sum((Decimal(f or 0) for f, _ in fills), Decimal(0)) == book.bnb_fees_total
            trades = s.execute(select(AccountTrade.fee, AccountTrade.fee_currency)).all()
            assert {c for _, c in trades} == {"BNB"}
            assert sum((Decimal(f) for f, _ in trades), Decimal(0)) == book.bnb_fees_total
            pos = s.scalars(select(StoredPosition)).one()
            assert pos.realized_pnl == book.realized_total + funding == Decimal("19.9")  # no BNB subtracted
            since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
            assert acc.net_pnl_since(s, venue.account_id, since) == book.wallet - Decimal(10_000)
            name = s.get(Account, venue.account_id).name  # type: ignore[union-attr]
        view = run_pnl(db, name, 1)
        assert [(d.fees, d.other_fees) for d in view.days] == [(Decimal(0), {"BNB": book.bnb_fees_total})]


def test_a_failed_read_keeps_the_cursor_and_is_read_again(live: Venue, monkeypatch: pytest.MonkeyPatch) -> None:
    assert live.execute("d-open").status == "filled"
    exchange = live.exchange()
    original = exchange.fetch_funding_payments

    def broken(**kw: Any) -> Any:
        from tradingbot.domain.exchange import ExchangeUnavailable

        raise ExchangeUnavailable(f"{live.name}: fetch funding: RequestTimeout")

    monkeypatch.setattr(exchange, "fetch_funding_payments", broken)
    first = sync_account(live.sessions, exchange, live.account_id)
    assert not first.cursor_advanced and first.errors == [f"funding: {live.name}: fetch funding: RequestTimeout"]
    with session_scope(live.engine) as s:
        cursor = acc.cursor(s, live.account_id)
        assert cursor is not None and cursor.last_error == first.errors[0]
    live.book.settle_funding("BTC", Decimal("0.0002"))
    monkeypatch.setattr(exchange, "fetch_funding_payments", original)
    second = sync_account(live.sessions, exchange, live.account_id)
    assert second.cursor_advanced and second.errors == [] and second.funding_new == 1
    assert _sums(live.engine, live.account_id)["funding"] == live.book.funding[0]["income"] == Decimal("-0.2")


def test_out_of_time_sends_nothing_more_and_keeps_the_cursor(live: Venue) -> None:
    assert live.execute("d-open").status == "filled"
    before = list(live.book.request_log)
    report = sync_account(live.sessions, live.exchange(), live.account_id, time_left_s=lambda: 1.0,
                          policy=SyncPolicy(call_cost_s=5.0))  # fmt: skip
    assert report.errors and report.errors[0].startswith("out of time: trades BTC/USDT:USDT: not started")
    assert not report.cursor_advanced and report.trades_new == 0
    assert live.book.request_log == before  # not one venue call


# ---------------------------------------------------------------- the paper ledger


def test_paper_ledger_realised_pnl_and_funding_equal_the_wallet(db: Engine, cache: Cache) -> None:
    with session_scope(db) as s:
        account, _ = repo.create_account(s, name="paper-acct", exchange="paper", testnet=True)
        account_id = account.id

    def sessions() -> AbstractContextManager[Session]:
        return session_scope(db)

    paper = PaperExchange(sessions, cache, account_id, slippage_bps=Decimal(0))
    cache.put_price("binanceusdm", BTC, Decimal(50000))
    paper.create_order(OrderRequest(BTC, "buy", "market", Decimal("0.1"), "p-open"))
    paid = paper.settle_funding(BTC, dt.datetime.now(dt.UTC), Decimal("0.0001"), Decimal(50000))
    assert paid == Decimal("0.5")
    cache.put_price("binanceusdm", BTC, Decimal(50500))
    paper.create_order(OrderRequest(BTC, "sell", "market", Decimal("0.04"), "p-reduce"))
    paper.create_order(OrderRequest(BTC, "sell", "market", Decimal("0.1"), "p-reverse"))  # through zero
    cache.put_price("binanceusdm", BTC, Decimal(50000))
    paper.create_order(OrderRequest(BTC, "buy", "market", Decimal("0.04"), "p-flat"))

    report = sync_account(sessions, paper, account_id)
    assert report.errors == [] and report.trades_new == 4 and report.funding_new == 1
    with session_scope(db) as s:
        wallet = s.get(PaperWallet, account_id)
        assert wallet is not None
        net = acc.net_pnl_since(s, account_id, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
        # the replayed realised PnL, the stored fees and the funding add up to the paper wallet's change
        assert net == wallet.balance - Decimal(10_000)
        realized = s.scalars(select(AccountTrade.realized_pnl).order_by(AccountTrade.traded_at, AccountTrade.id)).all()
        # 0.06 closed at +500 = 30 (0.04 reduce: 20; the reverse closes 0.06: 30), then the short 0.04 closed at +500
        assert realized == [Decimal(0), Decimal(20), Decimal(30), Decimal(20)]
    assert sync_account(sessions, paper, account_id).trades_new == 0


# ---------------------------------------------------------------- the risk rules, on data in PostgreSQL


def _entry(price: Decimal = Decimal(50000)) -> ValidationInput:
    """An alert every non-accounting rule passes: the risk rules decide alone."""
    return ValidationInput(
        direction="long", symbol="BTCUSDT", price=price, quantity=Decimal("0.001"), leverage=1,
        stop_loss=price * Decimal("0.98"), take_profit=price * Decimal("1.04"),
        predict={"model": "m", "direction": "long"},
        ensemble={"voters_configured": 3, "outcome": "agreement", "signal": "long", "confidence": 90.0},
        strategy={"known": True, "name": "bollinger", "win_rate": 0.6, "trades": 50},
        live_price=price, live_price_source="test",
    )  # fmt: skip


def _verdicts(runtime: Runtime, account_id: int) -> tuple[str, str | None, dict[str, str]]:
    risk = risk_state(runtime, account_id, "BTCUSDT")
    report = validate(_entry(), risk, ValidationConfig(symbols={"BTCUSDT"}))
    return report.action, report.reason, {r.rule: r.verdict for r in report.rules}


def _live_runtime_venue(runtime: Runtime, name: str, book: Book, url: str, cache: Cache) -> Venue:
    cipher = EnvelopeCipher(KeyRing(Kek.generate()))
    engine = runtime.engine()
    return Venue(name, book, url, engine, cache, cipher, _make_account(engine, cipher, name, rest_url=url))


@pytest.mark.parametrize("name", ["binanceusdm", "okx"])
def test_max_daily_loss_fires_on_the_venues_realised_loss(
    runtime: Runtime, cache: Cache, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    server = binance_server() if name == "binanceusdm" else okx_server()
    with server:
        venue = _live_runtime_venue(runtime, name, server.book, server.url, cache)
        _round_trip(venue, monkeypatch, exit_price=Decimal(49000))  # -20 realised, 0.99 fees, -0.1 funding
        sync_account(venue.sessions, venue.exchange(), venue.account_id)
        with session_scope(venue.engine) as s:
            s.execute(update(Account).where(Account.id == venue.account_id).values(max_daily_loss_usd=Decimal(25)))
        action, reason, verdicts = _verdicts(runtime, venue.account_id)
        assert (action, verdicts["max_daily_loss"]) == ("trade", "pass"), reason  # lost 21.09 < 25

        with session_scope(venue.engine) as s:
            s.execute(update(Account).where(Account.id == venue.account_id).values(max_daily_loss_usd=Decimal(20)))
        action, reason, verdicts = _verdicts(runtime, venue.account_id)
        assert (action, verdicts["max_daily_loss"]) == ("reject", "fail")
        assert reason == (
            "max_daily_loss: lost 21.09 USDT today (net of fees and funding; venue records synced "
            f"{risk_state(runtime, venue.account_id, 'BTCUSDT').accounting_synced_at}) >= limit 20 USDT"
        )


@pytest.mark.parametrize("name", ["binanceusdm", "okx"])
def test_max_drawdown_fires_on_the_equity_series(
    runtime: Runtime, cache: Cache, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    server = binance_server() if name == "binanceusdm" else okx_server()
    with server:
        venue = _live_runtime_venue(runtime, name, server.book, server.url, cache)
        action, _, verdicts = _verdicts(runtime, venue.account_id)
        assert verdicts["max_drawdown"] == "skip"  # no equity recorded yet
        sync_account(venue.sessions, venue.exchange(), venue.account_id)  # equity 10,000: the peak
        _round_trip(venue, monkeypatch, exit_price=Decimal(40000))  # -200 realised, fees and funding
        sync_account(venue.sessions, venue.exchange(), venue.account_id)
        with session_scope(venue.engine) as s:
            series = acc.equity_series(s, venue.account_id)
            assert [e for _, e in series] == [Decimal(10_000), server.book.wallet]
            limits = {"max_drawdown_pct": Decimal(5), "max_daily_loss_usd": Decimal(1000)}
            s.execute(update(Account).where(Account.id == venue.account_id).values(**limits))
        action, reason, verdicts = _verdicts(runtime, venue.account_id)
        assert (action, verdicts["max_drawdown"]) == ("trade", "pass"), reason  # 2.0 % below the peak

        with session_scope(venue.engine) as s:
            s.execute(update(Account).where(Account.id == venue.account_id).values(max_drawdown_pct=Decimal(2)))
        action, reason, verdicts = _verdicts(runtime, venue.account_id)
        assert (action, verdicts["max_drawdown"]) == ("reject", "fail")
        drop = (Decimal(10_000) - server.book.wallet) / Decimal(100)
        assert reason == (
            f"max_drawdown: equity {server.book.wallet:.2f} USDT is {drop:.2f} % below its peak 10000.00 USDT "
            ">= limit 2 %"
        )


# ---------------------------------------------------------------- the CLI view


def test_pnl_view_per_day_and_equity(live: Venue, monkeypatch: pytest.MonkeyPatch) -> None:
    _round_trip(live, monkeypatch, exit_price=Decimal(51000))
    with session_scope(live.engine) as s:
        name = s.get(Account, live.account_id).name  # type: ignore[union-attr]
    view = run_pnl(live.engine, name, 3, sync=live.factory())
    assert view.sync is not None and view.sync["trades_new"] == 2
    today = dt.datetime.now(dt.UTC).date()
    assert [(d.day, d.trades, d.realized, d.fees, d.funding, d.net) for d in view.days] == [
        (today, 2, Decimal(20), Decimal("1.01"), Decimal("-0.1"), Decimal("18.89"))
    ]
    assert view.equity[-1][1] == live.book.wallet and view.drawdown_pct == 0
    assert view.to_dict()["days"][0]["net"] == "18.890000000000000000"
    with pytest.raises(ValueError, match=r"^--days: 0 is not a positive number of days"):
        run_pnl(live.engine, name, 0)


# ---------------------------------------------------------------- wired into the Execute stage


def test_the_execute_stage_syncs_the_account_after_its_orders(
    local: Any, account: tuple[int, str], live_btc: Any
) -> None:
    """The whole state machine (moto's interpreter, the real handlers) on a paper account: right
    after its orders, the Execute stage stored the paper ledger's trade and an equity point."""
    from tradingbot.adapters.persistence.models import PaperOrder

    from .test_pipeline import alert_body, run_alert

    desc, decision = run_alert(local, alert_body(account[1]))
    assert desc["status"] == "SUCCEEDED" and decision is not None and decision.final_action == "long"
    with session_scope(local.runtime.engine()) as s:
        entry = s.scalars(select(PaperOrder).where(PaperOrder.filled > 0)).one()
        trade = s.scalars(select(AccountTrade)).one()
        assert (trade.venue_trade_id, trade.fee, trade.quantity) == (str(entry.id), entry.fee, entry.filled)
        assert s.scalars(select(Fill.fee)).all() == [entry.fee]
        assert s.scalar(select(func.count(EquitySnapshot.id))) == 1
        cursor = acc.cursor(s, account[0])
        assert cursor is not None and cursor.last_error is None
