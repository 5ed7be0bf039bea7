from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import make_candles
from tradingbot.domain.backtest import BacktestConfig, BacktestConfigError, run_backtest, run_grid, run_strategy
from tradingbot.domain.backtest.kernel import STAT_NAMES
from tradingbot.domain.strategies import Signals, get_strategy

FEE = 0.0004
# the engine's maths with stated costs (the defaults are domain.costs' venue figures, which may change)
NO_SLIP = BacktestConfig(fee=FEE, slippage_bps=0.0)


def signals(n: int, **events: list[int]) -> Signals:
    arrays = {k: np.zeros(n, dtype=np.bool_) for k in Signals._fields}
    for name, bars in events.items():
        arrays[name][bars] = True
    return Signals(**arrays)


def test_decision_at_close_fills_next_open_with_fees() -> None:
    closes = [100, 100, 100, 110, 110, 110]
    candles = make_candles(closes)  # open[i] == close[i-1]
    res = run_backtest(candles, signals(6, long_entry=[1], long_exit=[3]), NO_SLIP)
    (trade,) = res.trades.itertuples()
    assert (trade.entry_bar, trade.exit_bar) == (2, 4)
    assert trade.entry_price == 100 and trade.exit_price == 110
    qty = 10_000 / (100 * (1 + FEE))  # margin + opening fee = all equity at 1x
    assert trade.quantity == pytest.approx(qty)
    fees = qty * 100 * FEE + qty * 110 * FEE
    assert trade.fees == pytest.approx(fees)
    assert trade.pnl == pytest.approx(qty * 10 - fees)
    assert res.equity.iloc[-1] == pytest.approx(10_000 + qty * 10 - fees)
    assert res.metrics["total_return"] == pytest.approx((qty * 10 - fees) / 10_000)
    assert res.equity.iloc[1] == 10_000  # nothing happens before the fill


def test_short_with_slippage_and_leverage() -> None:
    candles = make_candles([100, 100, 100, 90, 90])
    cfg = BacktestConfig(fee=FEE, slippage_bps=10, leverage=5, size=0.5)
    res = run_backtest(candles, signals(5, short_entry=[1], short_exit=[3]), cfg)
    (t,) = res.trades.itertuples()
    entry = 100 * (1 - 0.001)  # a short sells lower
    exit_ = 90 * (1 + 0.001)  # and buys back higher
    qty = 0.5 * 10_000 / (entry * (1 / 5 + FEE))
    assert (t.side, t.entry_price, t.exit_price) == ("short", pytest.approx(entry), pytest.approx(exit_))
    assert t.quantity == pytest.approx(qty)
    assert t.pnl == pytest.approx(qty * (entry - exit_) - qty * (entry + exit_) * FEE)


def test_opposite_entry_reverses_at_the_same_open() -> None:
    candles = make_candles([100] * 3 + [105] * 3)
    res = run_backtest(candles, signals(6, long_entry=[0], short_entry=[3]))
    assert res.trades["side"].tolist() == ["long", "short"]
    assert res.trades["exit_bar"].iloc[0] == res.trades["entry_bar"].iloc[1] == 4
    assert res.trades["exit_reason"].tolist() == ["signal", "end"]


def test_no_pyramiding_and_ambiguous_entries_are_ignored() -> None:
    candles = make_candles([100] * 8)
    res = run_backtest(candles, signals(8, long_entry=[0, 2, 3], short_entry=[0]))
    # bar 0 is ambiguous (both), bars 2 and 3 open one long only
    assert len(res.trades) == 1 and res.trades["entry_bar"].iloc[0] == 3


def _bar(candles: pd.DataFrame, i: int, o: float, h: float, lo: float, c: float) -> None:
    candles.iloc[i, :4] = [o, h, lo, c]


def test_stop_loss_wins_when_stop_and_target_share_a_bar() -> None:
    candles = make_candles([100] * 6, spread=0.0)
    _bar(candles, 3, 100, 112, 94, 100)  # both +10 % and -5 % inside bar 3
    cfg = BacktestConfig(stop_loss=0.05, take_profit=0.10)
    res = run_backtest(candles, signals(6, long_entry=[1]), cfg)
    t = res.trades.iloc[0]
    assert t.exit_reason == "stop_loss" and t.exit_bar == 3 and t.exit_price == pytest.approx(95)


def test_take_profit_and_gap_through_stop_fills_at_the_open() -> None:
    candles = make_candles([100] * 6, spread=0.0)
    _bar(candles, 3, 100, 111, 99, 108)
    res = run_backtest(candles, signals(6, long_entry=[1]), BacktestConfig(fee=FEE, slippage_bps=0.0, take_profit=0.10))
    assert res.trades.iloc[0].exit_reason == "take_profit"
    assert res.trades.iloc[0].exit_price == pytest.approx(110)

    gapped = make_candles([100] * 6, spread=0.0)
    _bar(gapped, 3, 90, 91, 88, 90)  # opens below the 95 stop
    res = run_backtest(gapped, signals(6, long_entry=[1]), BacktestConfig(fee=FEE, slippage_bps=0.0, stop_loss=0.05))
    assert res.trades.iloc[0].exit_reason == "stop_loss"
    assert res.trades.iloc[0].exit_price == pytest.approx(90)  # the gap, not the stop level


def test_stop_checked_on_the_entry_bar_itself() -> None:
    candles = make_candles([100] * 5, spread=0.0)
    _bar(candles, 2, 100, 100, 90, 95)
    res = run_backtest(candles, signals(5, short_entry=[], long_entry=[1]), BacktestConfig(stop_loss=0.02))
    assert res.trades.iloc[0].exit_bar == 2 and res.trades.iloc[0].exit_price == pytest.approx(98)


def test_funding_every_8h_charged_to_longs_and_paid_to_shorts() -> None:
    candles = make_candles([100.0] * 30)
    times = pd.date_range("2024-01-01", periods=4, freq="8h", tz="UTC")  # 00:00, 08:00, 16:00, 00:00+1d
    funding = pd.Series(0.0001, index=times)
    for side, sign in (("long_entry", 1), ("short_entry", -1)):
        res = run_backtest(candles, signals(30, **{side: [0]}), funding=funding)
        t = res.trades.iloc[0]
        # entered at bar 1's open: the events at 08:00 and 16:00 and 00:00 (+1 d: bar 24) apply
        assert t.funding == pytest.approx(sign * 3 * t.quantity * 100 * 0.0001)
        assert res.metrics["funding"] == pytest.approx(t.funding)
        assert res.equity.iloc[-1] == pytest.approx(10_000 + t.pnl)


def test_liquidation_loses_the_balance_and_stops_trading() -> None:
    closes = [100, 100, 100, 95, 90, 88, 100, 100]
    candles = make_candles(closes, spread=0.0)
    cfg = BacktestConfig(leverage=10, size=1.0)
    res = run_backtest(candles, signals(8, long_entry=[1, 6]), cfg)
    t = res.trades.iloc[0]
    assert t.exit_reason == "liquidation"
    # cross margin: equity (wallet + unrealised) reaches maintenance margin near -9.5 %
    assert 90 < t.exit_price < 91
    assert res.equity.iloc[-1] == 0.0 and len(res.trades) == 1
    assert res.metrics["liquidated"] == 1 and res.metrics["total_return"] == -1.0


def test_bad_config_names_the_field() -> None:
    with pytest.raises(BacktestConfigError, match="leverage=200"):
        BacktestConfig(leverage=200)
    with pytest.raises(BacktestConfigError, match=r"size=1\.5"):
        BacktestConfig(size=1.5)
    with pytest.raises(BacktestConfigError, match=r"fee=-0\.1"):
        BacktestConfig(fee=-0.1)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[pd.DataFrame, Signals, BacktestConfig, pd.Series]:
    n = draw(st.integers(5, 120))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, draw(st.sampled_from([0.005, 0.02, 0.06])), n)))
    candles = make_candles(closes, spread=draw(st.sampled_from([0.0, 0.002, 0.02])))
    density = draw(st.sampled_from([0.02, 0.1, 0.4]))
    sig = Signals(*(rng.random(n) < density for _ in range(4)))
    cfg = BacktestConfig(
        fee=draw(st.sampled_from([0.0, 0.0004, 0.001])),
        slippage_bps=draw(st.sampled_from([0.0, 5.0])),
        leverage=draw(st.sampled_from([1.0, 3.0, 20.0])),
        size=draw(st.sampled_from([0.1, 0.5, 1.0])),
        stop_loss=draw(st.sampled_from([0.0, 0.01, 0.05])),
        take_profit=draw(st.sampled_from([0.0, 0.02, 0.1])),
    )
    times = pd.date_range(candles.index[0], candles.index[-1], freq="8h")
    funding = pd.Series(rng.normal(0, 0.0003, len(times)), index=times)
    return candles, sig, cfg, funding


@settings(max_examples=300, deadline=None)
@given(case=scenario())
def test_engine_invariants(case: tuple[pd.DataFrame, Signals, BacktestConfig, pd.Series]) -> None:
    candles, sig, cfg, funding = case
    res = run_backtest(candles, sig, cfg, funding=funding)
    tr = res.trades
    eq = res.equity.to_numpy()
    assert np.isfinite(eq).all() and (eq >= 0).all()
    assert (tr["fees"] >= 0).all() and (tr["quantity"] > 0).all()
    # equity = cash + marked position: after the last bar everything is closed, so the final
    # equity is the starting balance plus every trade's net PnL
    assert eq[-1] == pytest.approx(cfg.initial_cash + tr["pnl"].sum(), rel=1e-9, abs=1e-6)
    # trades never overlap, and fills are inside the bar's range (slippage aside)
    assert (tr["entry_bar"].to_numpy()[1:] >= tr["exit_bar"].to_numpy()[:-1]).all()
    slip = cfg.slippage_bps / 10_000
    for t in tr.itertuples():
        lo = candles["low"].iloc[t.exit_bar] * (1 - slip) - 1e-9
        hi = candles["high"].iloc[t.exit_bar] * (1 + slip) + 1e-9
        if t.exit_reason != "liquidation":
            assert lo <= t.exit_price <= hi
    # sizing: margin + opening fee == size x equity just before the entry
    for t in tr.itertuples():
        before = res.equity.iloc[t.entry_bar - 1]
        margin = t.quantity * t.entry_price / cfg.leverage
        opening_fee = t.quantity * t.entry_price * cfg.fee
        if t.entry_bar not in set(tr["exit_bar"]):  # flat since the last close: wallet == equity
            assert margin + opening_fee == pytest.approx(cfg.size * before, rel=1e-9)


def test_grid_row_equals_the_single_run(btc_1h: pd.DataFrame) -> None:
    strat = get_strategy("ema_crossover")
    combos = [{"fast": 5, "slow": 30}, {"fast": 12, "slow": 26}, {"fast": 40, "slow": 200}]
    cfg = BacktestConfig(slippage_bps=2, leverage=2, stop_loss=0.03)
    grid = run_grid(btc_1h, strat, combos, cfg, chunk=2)
    assert len(grid) == 3
    for row, params in zip(grid.itertuples(), combos, strict=True):
        single = run_strategy(btc_1h, strat, params, cfg).metrics
        for name in STAT_NAMES:
            assert getattr(row, name) == pytest.approx(single[name], rel=1e-12), name
