"""Model features: equal to pandas-ta, causal (property test), fail closed on bad input. No TensorFlow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas_ta as ta
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_candles
from tradingbot.domain import features as ft
from tradingbot.domain.indicators import Indicators


def _same(ours: np.ndarray, ref: pd.Series | np.ndarray, rtol: float = 1e-10) -> None:
    ref = np.asarray(ref, dtype=np.float64)
    assert np.array_equal(np.isnan(ours), np.isnan(ref)), "warm-up NaNs differ"
    np.testing.assert_allclose(ours[~np.isnan(ours)], ref[~np.isnan(ref)], rtol=rtol)


def test_indicators_equal_pandas_ta(btc_1h: pd.DataFrame) -> None:
    close = btc_1h["close"]
    c = close.to_numpy()
    for length in (20, 50, 200):
        _same(ft.ema(c, length), ta.ema(close, length=length))
    _same(ft.rsi(c, 14), ta.rsi(close, length=14))
    ref = ta.macd(close, 12, 26, 9)
    line, sig = ft.macd(c)
    _same(line, ref["MACD_12_26_9"])
    _same(sig, ref["MACDs_12_26_9"])
    _same(sig, Indicators(btc_1h).macd(12, 26, 9)[1])  # and the project's memoised composition
    bb = ta.bbands(close, length=20, lower_std=2.0, upper_std=2.0)
    for ours, col in zip(ft.bbands(c), bb.columns[:3], strict=True):
        _same(ours, bb[col], rtol=1e-9)  # rolling variance: pandas sums online, numpy per window


def test_feature_matrix_shape_warmup_and_stationarity(btc_1h: pd.DataFrame) -> None:
    x = ft.feature_matrix(btc_1h)
    assert x.shape == (len(btc_1h), len(ft.FEATURES))
    assert np.isnan(x[: ft.WARMUP_BARS]).all()
    assert np.isfinite(x[ft.WARMUP_BARS :]).all()
    # price-level features are relative to the close: no column scales with BTC's price (~60 k)
    assert np.nanmax(np.abs(x[:, [i for i, n in enumerate(ft.FEATURES) if n != "volume_rel"]])) < 5


def test_windows_align_with_targets(btc_1h: pd.DataFrame) -> None:
    x = ft.feature_matrix(btc_1h)
    y = ft.next_log_returns(btc_1h)
    ends = ft.window_ends(len(btc_1h))
    assert ends[0] == ft.MIN_CANDLES - 1
    w = ft.windows(x, ends[:3])
    assert w.shape == (3, ft.WINDOW, len(ft.FEATURES))
    np.testing.assert_array_equal(w[1, -1], x[ends[1]])  # the window ends on its own bar
    np.testing.assert_array_equal(w[1, 0], x[ends[1] - ft.WINDOW + 1])
    c = btc_1h["close"].to_numpy()
    assert y[ends[0]] == pytest.approx(np.log(c[ends[0] + 1] / c[ends[0]]))  # target: the next bar
    assert np.isnan(y[-1])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    extra=st.integers(1, 40),
    cut=st.integers(0, 39),
    scale=st.floats(0.2, 5.0),
)
def test_window_never_reads_a_bar_after_the_one_it_predicts_from(seed: int, extra: int, cut: int, scale: float) -> None:
    """Changing (or dropping) every bar after t never changes the window ending at t."""
    rng = np.random.default_rng(seed)
    n = ft.MIN_CANDLES + extra
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    base = make_candles(closes)
    base["volume"] = rng.uniform(1, 1000, n)
    t = ft.MIN_CANDLES - 1 + min(cut, extra - 1)  # a bar that has at least one bar after it

    future = base.copy()
    k = n - t - 1
    future.iloc[t + 1 :, :4] = (future.iloc[t + 1 :, :4].to_numpy() * scale * rng.uniform(0.5, 2.0, (k, 1))).clip(1e-3)
    future.iloc[t + 1 :, 4] = rng.uniform(0, 1e6, k)

    want = ft.windows(ft.feature_matrix(base), np.array([t]))
    np.testing.assert_array_equal(ft.windows(ft.feature_matrix(future), np.array([t])), want)
    np.testing.assert_array_equal(ft.windows(ft.feature_matrix(base.iloc[: t + 1]), np.array([t])), want)


def test_scaler_is_fitted_and_round_trips() -> None:
    rows = np.column_stack([np.arange(10.0), np.full(10, 3.0)])
    s = ft.Scaler.fit(rows)
    out = s.transform(rows)
    assert out.dtype == np.float32
    assert out[:, 0].mean() == pytest.approx(0, abs=1e-6) and out[:, 0].std() == pytest.approx(1, rel=1e-5)
    assert (out[:, 1] == 0).all()  # a constant column is not divided by zero
    assert ft.Scaler.from_dict(s.to_dict()) == s
    with pytest.raises(ft.FeatureMismatchError):
        s.transform(np.zeros((2, 3)))
    with pytest.raises(ft.FeatureMismatchError):
        ft.Scaler.from_dict({"mean": [0.0], "std": [0.0]})


def test_check_window_fails_closed_on_nan() -> None:
    w = np.zeros((ft.WINDOW, len(ft.FEATURES)))
    ft.check_window(w)
    w[-3, 5] = np.nan
    with pytest.raises(ft.FeatureError, match=r"rsi_14 is not finite 2 bar\(s\) before the last candle"):
        ft.check_window(w)


def test_bad_candles_fail_closed() -> None:
    with pytest.raises(ft.FeatureMismatchError, match="close"):
        ft.feature_matrix({"open": [1.0], "high": [1.0], "low": [1.0], "volume": [1.0]})
    frame = make_candles(np.linspace(100, 110, 300))
    frame.iloc[5, 3] = -1.0
    with pytest.raises(ft.FeatureError, match="positive"):
        ft.feature_matrix(frame)
    with pytest.raises(ft.InsufficientCandlesError):
        ft.windows(np.zeros((10, len(ft.FEATURES))), np.array([5]))
