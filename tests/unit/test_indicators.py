from __future__ import annotations

import numpy as np
import pandas as pd
import pandas_ta as ta
import pytest

from tradingbot.domain.indicators import Indicators, crossed_above, crossed_below


@pytest.mark.parametrize(("length", "multiplier"), [(10, 3.0), (7, 1.5), (22, 4.25)])
def test_compiled_supertrend_matches_pandas_ta_bar_for_bar(
    btc_1h: pd.DataFrame, length: int, multiplier: float
) -> None:
    ours = Indicators(btc_1h).supertrend_direction(length, multiplier)
    ref = ta.supertrend(btc_1h.high, btc_1h.low, btc_1h.close, length=length, multiplier=multiplier)
    theirs = ref.filter(like="SUPERTd").iloc[:, 0].to_numpy(np.float64)
    np.testing.assert_array_equal(ours, theirs)


def test_indicators_are_memoised(btc_1h: pd.DataFrame) -> None:
    ind = Indicators(btc_1h)
    assert ind.ema(20) is ind.ema(20)
    assert ind.ema(20) is not ind.ema(21)
    np.testing.assert_allclose(ind.ema(20), ta.ema(btc_1h.close, length=20).to_numpy(), equal_nan=True)


def test_shared_memo_is_one_per_distinct_window_and_read_only(btc_1h: pd.DataFrame) -> None:
    window = btc_1h.iloc[-500:]
    shared = Indicators.shared(window)
    assert Indicators.shared(window.copy()) is shared  # the same bars in another frame: the same memo
    newer = btc_1h.iloc[-499:]  # one bar fewer at the start: another window
    assert Indicators.shared(newer) is not shared
    edited = window.copy()
    edited.iloc[-1, edited.columns.get_loc("close")] += 1.0
    assert Indicators.shared(edited) is not shared
    ema = shared.ema(20)
    with pytest.raises(ValueError, match="read-only"):  # no caller can alter what the others read
        ema[-1] = 0.0
    line, _ = shared.macd(12, 26, 9)
    assert not line.flags.writeable
    mine = btc_1h.iloc[-300:].copy()
    kept = Indicators.shared(mine)
    mine.iloc[-1, mine.columns.get_loc("close")] = 0.0  # the caller edits its frame afterwards
    assert kept.candles["close"].iloc[-1] == btc_1h["close"].iloc[-1]  # the memo's bars are its own


def test_short_series_gives_nan_not_an_error() -> None:
    idx = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC")
    candles = pd.DataFrame({"open": 1.0, "high": 1.1, "low": 0.9, "close": 1.0, "volume": 1.0}, index=idx)
    assert np.isnan(Indicators(candles).ema(50)).all()


def test_cross_helpers() -> None:
    a = np.array([np.nan, 1.0, 2.0, 3.0, 2.0, 1.0])
    b = np.full(6, 2.0)
    assert crossed_above(a, b).tolist() == [False, False, False, True, False, False]
    assert crossed_below(a, b).tolist() == [False, False, False, False, False, True]
    assert crossed_above(a, 2.5).tolist() == [False, False, False, True, False, False]


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (5, 40, 3)])
def test_composed_macd_equals_pandas_ta(btc_1h: pd.DataFrame, fast: int, slow: int, signal: int) -> None:
    line, sig = Indicators(btc_1h).macd(fast, slow, signal)
    ref = ta.macd(btc_1h.close, fast=fast, slow=slow, signal=signal)
    np.testing.assert_allclose(line, ref.iloc[:, 0].to_numpy(), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(sig, ref.iloc[:, 2].to_numpy(), rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize(("tenkan", "kijun", "senkou"), [(9, 26, 52), (7, 22, 44)])
def test_composed_ichimoku_equals_pandas_ta(btc_1h: pd.DataFrame, tenkan: int, kijun: int, senkou: int) -> None:
    ours = Indicators(btc_1h).ichimoku(tenkan, kijun, senkou)
    ref = ta.ichimoku(btc_1h.high, btc_1h.low, btc_1h.close, tenkan=tenkan, kijun=kijun, senkou=senkou)[0]
    for got, prefix in zip(ours, ("ITS", "IKS", "ISA", "ISB"), strict=True):
        np.testing.assert_allclose(got, ref.filter(like=prefix).iloc[:, 0].to_numpy(), equal_nan=True)


@pytest.mark.parametrize(("k", "d", "smooth_k"), [(14, 3, 3), (5, 2, 1)])
def test_composed_stochastic_equals_pandas_ta(btc_1h: pd.DataFrame, k: int, d: int, smooth_k: int) -> None:
    pct_k, pct_d = Indicators(btc_1h).stoch(k, d, smooth_k)
    ref = ta.stoch(btc_1h.high, btc_1h.low, btc_1h.close, k=k, d=d, smooth_k=smooth_k)
    # pandas' rolling mean and pandas-ta's numba SMA differ in the last bits only
    np.testing.assert_allclose(pct_k, ref.iloc[:, 0].to_numpy(), rtol=0, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(pct_d, ref.iloc[:, 1].to_numpy(), rtol=0, atol=1e-9, equal_nan=True)
