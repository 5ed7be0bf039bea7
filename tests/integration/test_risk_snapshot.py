"""The Validate stage's risk inputs in one statement (``repositories.risk``) against real PostgreSQL:
the same answers as the per-aggregate repository functions it replaces, on an account with rows on
both sides of every boundary (yesterday's trades, other currencies, other accounts, closed rows)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Engine, update

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import AccountingCursor
from tradingbot.adapters.persistence.repositories import accounting as acc
from tradingbot.adapters.persistence.repositories import kill_switches
from tradingbot.adapters.persistence.repositories.risk import risk_snapshot
from tradingbot.domain.accounting import FundingPayment, VenueTrade, ms
from tradingbot.domain.exchange import Position
from tradingbot.pipeline import kill_switch
from tradingbot.pipeline.runtime import Runtime
from tradingbot.pipeline.validate import risk_state

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
NOW = dt.datetime.now(dt.UTC)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)


def _trade(n: int, at: dt.datetime, pnl: str, fee: str, currency: str = "USDT") -> VenueTrade:
    return VenueTrade(trade_id=f"t{n}", exchange_order_id=f"o{n}", symbol=BTC, side="sell", price=Decimal(50_000),
                      quantity=Decimal("0.01"), fee=Decimal(fee), fee_currency=currency, realized_pnl=Decimal(pnl),
                      ts_ms=ms(at))  # fmt: skip


def _populated(engine: Engine) -> tuple[int, int]:
    """Two accounts; the first with two open positions (one closed before), equity, trades, funding,
    a sync cursor and its own kill switch; the second with rows that must not count."""
    with session_scope(engine) as s:
        mine, _ = repo.create_account(s, name="mine", exchange="paper", testnet=True)
        other, _ = repo.create_account(s, name="other", exchange="paper", testnet=True)
        long_btc = Position(symbol=BTC, side="long", quantity=Decimal("0.01"), entry_price=Decimal(50_000))
        repo.sync_positions(s, mine.id, [long_btc])
        repo.sync_positions(s, mine.id, [])  # closed: history only
        repo.sync_positions(s, mine.id, [long_btc, Position(symbol=ETH, side="short", quantity=Decimal(1),
                                                            entry_price=Decimal(3_000))])  # fmt: skip
        repo.sync_positions(s, other.id, [long_btc])
        for at, equity in ((NOW - dt.timedelta(hours=3), "1200"), (NOW - dt.timedelta(hours=2), "1500"),
                           (NOW - dt.timedelta(hours=1), "1100")):  # fmt: skip
            acc.record_equity(s, mine.id, at=at, equity=Decimal(equity), free=Decimal(equity))
        acc.record_equity(s, other.id, at=NOW, equity=Decimal(99_999), free=Decimal(0))
        acc.record_trades(s, mine.id, [
            _trade(1, TODAY + dt.timedelta(minutes=1), "-30", "1.5"),
            _trade(2, TODAY + dt.timedelta(minutes=2), "10", "0.5"),
            _trade(3, TODAY + dt.timedelta(minutes=3), "0", "0.001", currency="BNB"),  # not converted
            _trade(4, TODAY - dt.timedelta(minutes=1), "-500", "9"),  # yesterday
        ])  # fmt: skip
        acc.record_trades(s, other.id, [_trade(5, TODAY + dt.timedelta(minutes=1), "-700", "7")])
        acc.record_funding(s, mine.id, [
            FundingPayment("f1", BTC, Decimal("-0.75"), "USDT", ms(TODAY + dt.timedelta(hours=1))),
            FundingPayment("f2", BTC, Decimal("-40"), "USDT", ms(TODAY - dt.timedelta(hours=1))),  # yesterday
        ])  # fmt: skip
        s.add(AccountingCursor(account_id=mine.id, synced_until=NOW))
        kill_switches.engage_kill_switch(s, kill_switch.scope_of(mine.id), "operator: flat for the night")
        kill_switches.engage_kill_switch(s, kill_switch.scope_of(other.id), "not mine")
        return mine.id, other.id


def test_one_statement_answers_as_the_per_aggregate_queries(db: Engine) -> None:
    mine, other = _populated(db)
    with session_scope(db) as s:
        repo.set_limits(s, "mine", max_open_positions=2, max_drawdown_pct=Decimal(15))
    scopes = kill_switch.scopes_of(mine)
    with session_scope(db) as s:
        snap = risk_snapshot(s, mine, symbol=ETH, since=TODAY, kill_switch_scopes=scopes)
        account = repo.account_by_id(s, mine)
        positions = repo.open_positions(s, mine)
        peak, last, _ = acc.equity_peak_and_last(s, mine) or (None, None, None)
        cursor = acc.cursor(s, mine)
        net = acc.net_pnl_since(s, mine, TODAY)
        switches = kill_switches.kill_switch_reasons(s, scopes)
        assert snap is not None and account is not None and cursor is not None
        assert (snap.open_positions, snap.has_position_in_symbol) == (len(positions), True) == (2, True)
        assert (snap.equity_peak, snap.equity_now) == (peak, last) == (Decimal(1500), Decimal(1100))
        assert snap.net_pnl_since == net == Decimal("-30") + 10 - Decimal("1.5") - Decimal("0.5") - Decimal("0.75")
        assert snap.accounting_synced_at == cursor.last_sync_at
        assert snap.kill_switches == switches == {f"account:{mine}": "operator: flat for the night"}
        limits = (account.max_position_usd, account.max_leverage, account.max_daily_loss_usd,
                  account.max_open_positions, account.max_drawdown_pct)  # fmt: skip
        assert (snap.max_position_usd, snap.max_leverage, snap.max_daily_loss_usd, snap.max_open_positions,
                snap.max_drawdown_pct) == limits  # fmt: skip
        assert (limits[3], limits[4]) == (2, Decimal(15))
        # no position in SOL; an account with nothing recorded; an account that does not exist
        sol = risk_snapshot(s, mine, symbol="SOL/USDT:USDT", since=TODAY, kill_switch_scopes=scopes)
        assert sol is not None and not sol.has_position_in_symbol
    with session_scope(db) as s:
        s.execute(update(AccountingCursor).values(last_sync_at=NOW))
        empty, _ = repo.create_account(s, name="empty", exchange="paper", testnet=True)
        blank = risk_snapshot(s, empty.id, symbol=BTC, since=TODAY, kill_switch_scopes=kill_switch.scopes_of(empty.id))
        assert blank is not None
        assert (blank.open_positions, blank.equity_peak, blank.equity_now, blank.accounting_synced_at,
                blank.net_pnl_since, blank.kill_switches) == (0, None, None, None, Decimal(0), {})  # fmt: skip
        assert risk_snapshot(s, 10_000 + other, symbol=BTC, since=TODAY, kill_switch_scopes=[]) is None


def test_the_alerts_ticker_finds_the_position_held_under_the_unified_symbol(runtime: Runtime, cache: Cache) -> None:
    """TradingView sends ``BTCUSDT``; positions are stored as ``BTC/USDT:USDT``. At the open-positions
    limit, an alert on a symbol already held (adding to it, or closing it) is not a new position."""
    mine, _ = _populated(runtime.engine())
    with session_scope(runtime.engine()) as s:
        repo.set_limits(s, "mine", max_open_positions=2)
    cache.release_kill_switch(account_id=mine)  # Redis knows nothing: PostgreSQL's switch must count
    risk = risk_state(runtime, mine, "BTCUSDT")
    assert (risk.open_positions, risk.max_open_positions, risk.has_position_in_symbol) == (2, 2, True)
    assert risk_state(runtime, mine, "SOLUSDT").has_position_in_symbol is False
    assert risk.kill_switch == "operator: flat for the night"
    assert cache.kill_switch(mine) == "operator: flat for the night"  # re-seeded from PostgreSQL
    assert risk.realized_pnl_today == Decimal("-22.75") and risk.equity_peak == Decimal(1500)
