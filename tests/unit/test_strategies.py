from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_candles
from tradingbot.domain.backtest import run_backtest
from tradingbot.domain.indicators import Indicators
from tradingbot.domain.strategies import REGISTRY, StrategyError, get_strategy

SIX = {"supertrend", "rsi_ema", "macd_stochastic", "ichimoku", "bollinger", "ema_crossover"}


def phases(*legs: tuple[int, float], start: float = 100.0) -> np.ndarray:
    """Closes built from (bars, return per bar) legs."""
    closes = [start]
    for bars, ret in legs:
        for _ in range(bars):
            closes.append(closes[-1] * (1 + ret))
    return np.array(closes)


def where(a: np.ndarray) -> list[int]:
    return np.flatnonzero(a).tolist()


def test_registry_has_the_six_with_declared_ranges() -> None:
    assert set(REGISTRY) == SIX
    for strat in REGISTRY.values():
        assert strat.params, strat.name
        for p in strat.params:
            assert p.low <= p.default <= p.high, (strat.name, p.name)
        assert strat.resolve() == strat.defaults  # defaults satisfy the constraints


def test_unknown_strategy_and_parameter_list_the_valid_ones() -> None:
    with pytest.raises(StrategyError, match="valid: bollinger, ema_crossover, ichimoku"):
        get_strategy("turtle")
    with pytest.raises(StrategyError, match="valid: fast, slow"):
        get_strategy("ema_crossover").resolve({"fastest": 3})
    with pytest.raises(StrategyError, match=r"fast \(30\) must be smaller than slow \(20\)"):
        get_strategy("ema_crossover").resolve({"fast": 30, "slow": 20})
    with pytest.raises(StrategyError, match="outside its range"):
        get_strategy("ema_crossover").resolve({"fast": 1})
    with pytest.raises(StrategyError, match="must be an integer"):
        get_strategy("ema_crossover").resolve({"fast": "2.5"})
    with pytest.raises(StrategyError, match="not a number"):
        get_strategy("bollinger").resolve({"std": "wide"})


def test_grid_skips_invalid_combinations() -> None:
    combos = list(get_strategy("ema_crossover").grid({"fast": [5, 10, 30], "slow": [10, 20]}))
    assert combos == [{"fast": 5, "slow": 10}, {"fast": 5, "slow": 20}, {"fast": 10, "slow": 20}]


def test_ema_crossover_long_on_cross_up_short_on_cross_down_always_in_market() -> None:
    closes = phases((40, 0.0), (40, 0.01), (40, -0.01), (40, 0.01))
    candles = make_candles(closes)
    sig = get_strategy("ema_crossover").signals(candles, fast=5, slow=20)
    longs, shorts = where(sig.long_entry), where(sig.short_entry)
    assert len(longs) == 2 and len(shorts) == 1
    assert 41 <= longs[0] <= 46  # just after the first rise starts at bar 41
    assert 81 <= shorts[0] <= 92  # EMAs lag: the fast one needs a few bars to cross back
    assert 121 <= longs[1] <= 132
    assert sig.long_exit.tolist() == sig.short_entry.tolist()
    assert sig.short_exit.tolist() == sig.long_entry.tolist()
    res = run_backtest(candles, sig)
    # one trade per cross, each position held until the next cross, the last closed at the end
    assert res.trades["side"].tolist() == ["long", "short", "long"]
    assert res.trades["entry_bar"].tolist() == [longs[0] + 1, shorts[0] + 1, longs[1] + 1]
    assert res.trades["exit_bar"].tolist()[:2] == [shorts[0] + 1, longs[1] + 1]


def test_supertrend_flips_once_per_trend_change() -> None:
    closes = phases((60, -0.006), (60, 0.008))
    sig = get_strategy("supertrend").signals(make_candles(closes), length=10, multiplier=2.0)
    longs = where(sig.long_entry)
    assert len(longs) == 1 and 61 <= longs[0] <= 75
    assert not sig.short_entry[longs[0] :].any()


def test_rsi_ema_buys_the_pullback_inside_an_uptrend() -> None:
    # a steady rise, a 5-bar pullback (bars 151-155) that stays above the EMA, then recovery
    closes = phases((150, 0.004), (5, -0.01), (20, 0.01))
    candles = make_candles(closes)
    strat = get_strategy("rsi_ema")
    sig = strat.signals(candles, rsi_length=5, ema_length=50, oversold=30, overbought=70)
    assert where(sig.long_entry) == [156]  # the first recovery bar lifts RSI back over 30
    rsi = Indicators(candles).rsi(5)
    first_exit = min(i for i in where(sig.long_exit) if i > 156)
    assert rsi[first_exit - 1] <= 70 < rsi[first_exit]  # exit when RSI crosses overbought
    assert not sig.short_entry.any()  # never shorts above the EMA


def test_macd_stochastic_enters_near_turning_points() -> None:
    period = 80
    t = np.arange(400)
    closes = 100 * (1 + 0.05 * np.sin(2 * np.pi * t / period))
    sig = get_strategy("macd_stochastic").signals(make_candles(closes))
    troughs, peaks = 60, 20  # sin minimum / maximum phase in bars

    def distance(i: int, phase: int) -> int:
        d = (i - phase) % period
        return min(d, period - d)

    assert len(where(sig.long_entry)) >= 4 and len(where(sig.short_entry)) >= 4
    assert all(distance(i, troughs) <= 8 for i in where(sig.long_entry))
    assert all(distance(i, peaks) <= 8 for i in where(sig.short_entry))


def test_ichimoku_breakout_long_and_exit_below_kijun() -> None:
    closes = phases((100, 0.0), (40, 0.01), (30, -0.015))
    candles = make_candles(closes)
    sig = get_strategy("ichimoku").signals(candles)
    longs = where(sig.long_entry)
    assert len(longs) == 1 and 101 <= longs[0] <= 115
    _tk, kijun, _, _ = Indicators(candles).ichimoku(9, 26, 52)
    exits = [i for i in where(sig.long_exit) if i > longs[0]]
    assert exits and 141 <= exits[0] <= 155  # soon after the fall starts at bar 141
    assert candles["close"].iloc[exits[0]] < kijun[exits[0]]
    assert not sig.short_entry[:141].any()


def test_bollinger_fades_a_spike_and_exits_at_the_middle_band() -> None:
    rng = np.random.default_rng(7)
    closes = 100 + rng.normal(0, 0.2, 80)
    closes[60] = 95.0  # a flush far below the lower band
    closes[61:] = 100 + rng.normal(0, 0.05, 19)
    sig = get_strategy("bollinger").signals(make_candles(closes), length=20, std=2.0)
    assert 60 in where(sig.long_entry)
    assert not sig.long_entry[61:].any()
    assert where(sig.long_exit) and min(i for i in where(sig.long_exit) if i > 60) <= 63


@st.composite
def random_walk(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    seed = draw(st.integers(0, 2**32 - 1))
    n = 320
    cut = draw(st.integers(60, n - 1))
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    other = closes.copy()
    other[cut:] = closes[cut - 1] * np.exp(np.cumsum(rng.normal(0, 0.03, n - cut)))
    return make_candles(closes), make_candles(other), cut


@pytest.mark.parametrize("name", sorted(SIX))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=random_walk())
def test_changing_future_bars_never_changes_past_signals(
    name: str, data: tuple[pd.DataFrame, pd.DataFrame, int]
) -> None:
    original, rewritten, cut = data
    strat = get_strategy(name)
    params = strat.defaults
    if name == "rsi_ema":
        params["ema_length"] = 50  # short enough that signals occur in 320 bars
    a = strat.signals(original, **params)
    b = strat.signals(rewritten, **params)
    c = strat.signals(original.iloc[:cut], **params)
    for field, x, y, z in zip(a._fields, a, b, c, strict=True):
        assert (x[:cut] == y[:cut]).all(), f"{name}.{field} changed before bar {cut}"
        assert (x[:cut] == z).all(), f"{name}.{field} on a prefix differs"
