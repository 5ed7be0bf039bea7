"""The paper exchange on real PostgreSQL and Redis: fills at cached prices with slippage and fees,
margin, stops, funding, state that survives a restart; and the reconcile command over it."""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.crypto import EnvelopeCipher, Kek, KeyRing
from tradingbot.adapters.exchange.paper import PaperExchange
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.config import Servers
from tradingbot.adapters.persistence.db import create_db_engine, session_scope
from tradingbot.adapters.persistence.models import Order
from tradingbot.adapters.persistence.models import Position as StoredPosition
from tradingbot.domain.exchange import (
    BelowMinimum,
    DuplicateOrder,
    ExchangeFailedNotPlaced,
    InsufficientMargin,
    OrderRejected,
    OrderRequest,
)
from tradingbot.domain.positions import TradeIntent, client_order_id
from tradingbot.pipeline.order_service import default_exchange_factory, execute_intent
from tradingbot.pipeline.reconcile import reconcile_account

BTC = "BTC/USDT:USDT"


def _account(engine: Engine, **limits: object) -> int:
    with session_scope(engine) as s:
        acct, _ = repo.create_account(s, name="paper", exchange="paper", testnet=True,
                                      limits=repo.RiskLimits(**limits))  # type: ignore[arg-type]  # fmt: skip
        return acct.id


def _paper(engine: Engine, cache: Cache, account_id: int) -> PaperExchange:
    def sessions() -> AbstractContextManager[Session]:
        return session_scope(engine)

    return PaperExchange(sessions, cache, account_id)


def test_market_order_fills_at_cached_price_with_slippage_and_fee(db: Engine, cache: Cache) -> None:
    acct = _account(db)
    cache.put_price("binanceusdm", BTC, Decimal(50000))
    ex = _paper(db, cache, acct)
    ex.set_leverage(BTC, 5)
    result = ex.create_order(OrderRequest(BTC, "buy", "market", Decimal("0.1"), "c1"))
    # 5 bps of slippage against the buyer, 5 bps taker fee on the notional
    assert (result.status, result.filled, result.average_price) == ("filled", Decimal("0.1"), Decimal("50025.0000"))
    assert result.fee == Decimal("0.1") * Decimal("50025") * Decimal("0.0005")
    [pos] = ex.fetch_positions()
    assert (pos.side, pos.quantity, pos.entry_price, pos.leverage) == ("long", Decimal("0.1"), Decimal("50025"), 5)
    bal = ex.fetch_balance()
    assert bal.used == Decimal("0.1") * Decimal("50025") / 5
    assert Decimal(bal.extra["wallet"]) == Decimal(10_000) - result.fee
    with pytest.raises(DuplicateOrder):
        ex.create_order(OrderRequest(BTC, "buy", "market", Decimal("0.1"), "c1"))


def test_rejections_name_the_field(db: Engine, cache: Cache) -> None:
    acct = _account(db)
    ex = _paper(db, cache, acct)
    with pytest.raises(OrderRejected, match=r"^price: no fresh BTC/USDT:USDT price in the cache"):
        ex.create_order(OrderRequest(BTC, "buy", "market", Decimal("0.1"), "p0"))
    cache.put_price("binanceusdm", BTC, Decimal(50000))
    with pytest.raises(InsufficientMargin, match=r"^margin: BTC/USDT:USDT needs .* at 1x; 10000.00 USDT is free"):
        ex.create_order(OrderRequest(BTC, "buy", "market", Decimal(1), "p1"))
    with pytest.raises(OrderRejected, match="reduce_only: no BTC/USDT:USDT position to reduce"):
        ex.create_order(OrderRequest(BTC, "sell", "market", Decimal("0.01"), "p2", reduce_only=True))
    with pytest.raises(BelowMinimum, match="quantity"):
        ex.amount_to_precision(BTC, Decimal("0.0004"))
    with session_scope(db) as s:
        assert s.scalars(select(Order)).all() == []  # the paper book stores only accepted orders elsewhere


def test_an_unreachable_price_source_fails_the_send_unbooked_and_the_same_id_fills_later(
    db: Engine, cache: Cache, closed_port: int
) -> None:
    """Redis away while an order arrives is the venue failing the request, not "no price" (a final
    rejection): nothing is booked, and the order path may send it again under the same client id."""
    acct = _account(db)
    cache.put_price("binanceusdm", BTC, Decimal(50000))
    down = _paper(db, Cache.from_url(f"redis://127.0.0.1:{closed_port}/0", timeout_s=0.2), acct)
    request = OrderRequest(BTC, "buy", "market", Decimal("0.1"), "r1")
    with pytest.raises(ExchangeFailedNotPlaced, match="price source is unreachable"):
        down.create_order(request)
    up = _paper(db, cache, acct)
    assert up.fetch_positions() == [] and Decimal(up.fetch_balance().extra["wallet"]) == Decimal(10_000)
    assert up.fetch_order_by_client_id(BTC, "r1") is None  # nothing under its id: a resend is no duplicate
    result = up.create_order(request)
    assert (result.status, result.filled, result.client_order_id) == ("filled", Decimal("0.1"), "r1")


def test_state_survives_a_restart(db: Engine, cache: Cache, servers: Servers) -> None:
    acct = _account(db)
    cache.put_price("binanceusdm", BTC, Decimal(50000))
    ex = _paper(db, cache, acct)
    ex.set_leverage(BTC, 10)
    ex.create_order(OrderRequest(BTC, "sell", "market", Decimal("0.05"), "s1"))
    ex.create_order(OrderRequest(BTC, "buy", "stop_market", Decimal("0.05"), "s2", trigger_price=Decimal(51000),
                                 reduce_only=True))  # fmt: skip
    before = (ex.fetch_positions(), ex.fetch_balance(), ex.fetch_order_by_client_id(BTC, "s2"))

    fresh_engine = create_db_engine(servers.database_url)  # a new process: new engine, new pool
    try:
        again = _paper(fresh_engine, cache, acct)
        after = (again.fetch_positions(), again.fetch_balance(), again.fetch_order_by_client_id(BTC, "s2"))
        assert after == before
        assert after[0][0].side == "short" and after[0][0].leverage == 10
        # the stop rests on the paper book until the price crosses it
        cache.put_price("binanceusdm", BTC, Decimal(51500))
        assert again.fetch_positions() == []
        stop = again.fetch_order_by_client_id(BTC, "s2")
        # 51500 + 5 bps = 51525.75, filled at BTCUSDT's 0.1 tick
        assert stop is not None and stop.status == "filled" and stop.average_price == Decimal("51525.8")
    finally:
        fresh_engine.dispose()


def test_funding_charges_longs_and_credits_shorts(db: Engine, cache: Cache) -> None:
    acct = _account(db)
    cache.put_price("binanceusdm", BTC, Decimal(50000))
    ex = _paper(db, cache, acct)
    ex.create_order(OrderRequest(BTC, "buy", "market", Decimal("0.1"), "f1"))
    wallet = Decimal(ex.fetch_balance().extra["wallet"])
    at = dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)
    paid = ex.settle_funding(BTC, at, Decimal("0.0001"), mark=Decimal(50000))
    assert paid == Decimal("0.1") * Decimal(50000) * Decimal("0.0001")
    assert ex.settle_funding(BTC, at, Decimal("0.0001"), mark=Decimal(50000)) is None  # once per funding time
    assert Decimal(ex.fetch_balance().extra["wallet"]) == wallet - paid
    with session_scope(db) as s:
        short_id = repo.create_account(s, name="short", exchange="paper", testnet=True)[0].id
    short = _paper(db, cache, short_id)
    short.create_order(OrderRequest(BTC, "sell", "market", Decimal("0.1"), "f2"))
    assert short.settle_funding(BTC, at, Decimal("0.0001"), mark=Decimal(50000)) == -paid  # shorts receive


def test_execute_intent_on_paper_with_stop_and_replay(db: Engine, cache: Cache) -> None:
    acct = _account(db, max_leverage=10)
    cache.put_price("binanceusdm", BTC, Decimal(50000))

    def sessions() -> AbstractContextManager[Session]:
        return session_scope(db)

    factory = default_exchange_factory(sessions, cache, EnvelopeCipher(KeyRing(Kek.generate())))
    intent = TradeIntent(decision_id="tv-1-x", symbol="BTCUSDT", action="long", reference_price=Decimal(50000),
                         stop_loss=Decimal(49000), leverage=2)  # fmt: skip
    report = execute_intent(sessions, cache, acct, intent, factory)
    assert report.status == "filled", report.to_dict()
    assert [(o.leg, o.status, o.quantity) for o in report.orders] == [
        ("open", "filled", Decimal("0.02")), ("sl", "open", Decimal("0.02"))
    ]  # fmt: skip
    assert report.orders[0].client_order_id == client_order_id(acct, "tv-1-x", "open")
    assert execute_intent(sessions, cache, acct, intent, factory).to_dict() == report.to_dict()

    # the stop fires while nobody is watching; reconcile notices and repairs the stored state
    cache.put_price("binanceusdm", BTC, Decimal(48900))
    paper = _paper(db, cache, acct)
    drift = reconcile_account(sessions, paper, acct, fix=True)
    assert {(d.kind, d.stored, d.exchange.split(" (")[0]) for d in drift.drifts} == {
        ("order", "open", "filled"),
        ("position", "long 0.02 @ 50025", "flat"),
    }
    with session_scope(db) as s:
        assert s.scalars(select(StoredPosition).where(StoredPosition.closed_at.is_(None))).all() == []
    assert reconcile_account(sessions, paper, acct).drifts == []


def test_reconcile_command(db: Engine, cache: Cache, servers: Servers, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    from tradingbot.entrypoints.cli.exchange import reconcile

    acct = _account(db)
    with session_scope(db) as s:  # a row written, then the process died before sending
        repo.create_order(s, account_id=acct, client_order_id="tb-lost", symbol=BTC, side="buy",
                          quantity=Decimal("0.01"))  # fmt: skip
        s.execute(update(Order).values(created_at=Order.created_at - dt.timedelta(hours=1)))
    monkeypatch.setenv("DATABASE_URL", servers.database_url)
    monkeypatch.setenv("TRADINGBOT_KEK", Kek.generate().to_base64())  # no .data/kek written by a test
    monkeypatch.setenv("REDIS_URL", servers.redis_url)
    app = typer.Typer()
    app.command()(reconcile)
    runner = CliRunner()
    dry = runner.invoke(app, ["--account", "paper"])
    assert dry.exit_code == 3, dry.output
    assert "drift order tb-lost: stored 'pending', exchange 'unknown to the exchange'" in dry.output
    fixed = runner.invoke(app, ["--account", "paper", "--fix"])
    assert fixed.exit_code == 0, fixed.output
    assert "fixed order tb-lost" in fixed.output
    with session_scope(db) as s:
        assert s.scalar(select(Order.status)) == "failed"
    missing = runner.invoke(app, ["--account", "nobody"])
    assert missing.exit_code == 2 and "no account named 'nobody'" in missing.output
