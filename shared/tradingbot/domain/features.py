"""Model features: the one definition that training (TensorFlow) and inference (ONNX Runtime) share.

Numpy only, on purpose: the predict Lambda ships numpy + onnxruntime and nothing else (pandas-ta
pulls in numba and llvmlite, ~150 MB). The indicators are the source document's set, computed
exactly as pandas-ta 0.4.71b0 computes them (EMA seeded with an SMA, RSI on Wilder's RMA, MACD
12/26/9 composed from those EMAs, Bollinger 20/2 with a sample standard deviation); the unit tests
check equality with pandas-ta itself, so "features on pandas-ta" holds without importing it here.

Every price-level feature is expressed relative to the bar's close (log ratios, or divided by the
close): the scaler is fitted on one period and applied to another, which only works when the
feature's distribution does not drift with the price level.

Causality: the feature row of bar t reads bars 0..t only. A window "ending at t" is rows
t-WINDOW+1..t, and the target of that window is the log return of bar t+1. The property test in
tests/unit/test_model_features.py checks that changing bars after t never changes the window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tradingbot.errors import PermanentError

FloatArray = np.ndarray

# Bump FEATURE_SET when the definition below changes: an artifact trained on another definition is
# refused (a silent feature drift would give confident nonsense).
FEATURE_SET = "ohlcv-rsi14-macd12.26.9-bb20.2-ema20.50.200/v1"
FEATURES: tuple[str, ...] = (
    "log_return",  # log(close_t / close_t-1)
    "open_rel",  # log(open / close)
    "high_rel",  # log(high / close)
    "low_rel",  # log(low / close)
    "volume_rel",  # log1p(volume) minus its 20-bar mean: volume relative to its recent level
    "rsi_14",  # RSI / 100
    "macd",  # MACD line / close
    "macd_signal",  # signal line / close
    "macd_hist",  # (line - signal) / close
    "bb_pos",  # (close - middle) / (upper - lower): where the close sits in the band
    "bb_width",  # (upper - lower) / middle
    "ema_20_rel",  # log(close / EMA 20)
    "ema_50_rel",
    "ema_200_rel",
)
WINDOW = 60
# EMA 200 is seeded by the SMA of its first 200 closes, so bar 199 is the first with every feature.
WARMUP_BARS = 199
MIN_CANDLES = WARMUP_BARS + WINDOW  # the first window ends on bar 258
VOLUME_MEAN = 20


class FeatureError(PermanentError, ValueError):
    """Candles the model cannot be fed honestly: too few, non-finite, or the wrong feature set.

    A ``ValueError`` so the pipeline's predict stage turns it into a stage error (fail closed)."""


class InsufficientCandlesError(FeatureError):
    pass


class FeatureMismatchError(FeatureError):
    pass


class CandleLike(Protocol):
    """A pandas candle frame, or any mapping of column name to array."""

    def __getitem__(self, key: str, /) -> Any: ...


# ------------------------------------------------------------------ indicators (pandas-ta exact)


def ema(close: FloatArray, length: int) -> FloatArray:
    """pandas-ta ``ema(presma=True)``: SMA of the first ``length`` values, then ``ewm(adjust=False)``."""
    out = np.full(close.shape[0], np.nan)
    if close.shape[0] < length:
        return out
    alpha = 2.0 / (length + 1)
    return _ewm_from(close, length - 1, float(np.mean(close[:length])), alpha, out)


def _ewm_from(x: FloatArray, start: int, seed: float, alpha: float, out: FloatArray) -> FloatArray:
    # A Python loop over a few thousand bars costs ~1 ms; a vectorised recursion (lfilter) would
    # need scipy in the Lambda for no measurable gain at inference sizes (hundreds of bars).
    value = seed
    out[start] = value
    beta = 1.0 - alpha
    for i in range(start + 1, x.shape[0]):
        value = alpha * x[i] + beta * value
        out[i] = value
    return out


def rsi(close: FloatArray, length: int = 14) -> FloatArray:
    """pandas-ta ``rsi``: RMA (alpha = 1/length, no SMA seed) of gains and losses from bar 1."""
    n = close.shape[0]
    out = np.full(n, np.nan)
    if n < length + 1:
        return out
    diff = np.diff(close)
    alpha = 1.0 / length
    gain = _ewm_from(np.maximum(diff, 0.0), 0, max(float(diff[0]), 0.0), alpha, np.empty(n - 1))
    loss = _ewm_from(np.minimum(diff, 0.0), 0, min(float(diff[0]), 0.0), alpha, np.empty(n - 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out[1:] = 100.0 * gain / (gain + np.abs(loss))
    return out


def macd(close: FloatArray, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[FloatArray, FloatArray]:
    """(line, signal) as pandas-ta ``macd``: the signal is an SMA-seeded EMA of the valid line."""
    line = ema(close, fast) - ema(close, slow)
    sig = np.full(close.shape[0], np.nan)
    start = slow - 1
    if close.shape[0] > start:
        sig[start:] = ema(line[start:], signal)
    return line, sig


def bbands(close: FloatArray, length: int = 20, std: float = 2.0) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(lower, middle, upper): SMA +- ``std`` sample (ddof=1) standard deviations, as pandas-ta."""
    n = close.shape[0]
    mid = np.full(n, np.nan)
    dev = np.full(n, np.nan)
    if n >= length:
        view = sliding_window_view(close, length)
        mid[length - 1 :] = view.mean(axis=1)
        dev[length - 1 :] = view.std(axis=1, ddof=1)
    return mid - std * dev, mid, mid + std * dev


def _rolling_mean(x: FloatArray, length: int) -> FloatArray:
    out = np.full(x.shape[0], np.nan)
    if x.shape[0] >= length:
        out[length - 1 :] = sliding_window_view(x, length).mean(axis=1)
    return out


# ------------------------------------------------------------------ features


def ohlcv_arrays(candles: CandleLike) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Float64 arrays of open, high, low, close, volume from a candle frame (or a dict of arrays)."""
    try:
        cols = [np.asarray(candles[k], dtype=np.float64) for k in ("open", "high", "low", "close", "volume")]
    except (KeyError, ValueError, TypeError) as exc:
        raise FeatureMismatchError(f"candles need numeric open, high, low, close, volume columns: {exc}") from None
    return cols[0], cols[1], cols[2], cols[3], cols[4]


def feature_matrix(candles: CandleLike) -> FloatArray:
    """(n_bars, len(FEATURES)) float64; rows before ``WARMUP_BARS`` hold NaN."""
    o, h, lo, c, v = ohlcv_arrays(candles)
    n = c.shape[0]
    if np.any(c <= 0) or np.any(o <= 0) or np.any(h <= 0) or np.any(lo <= 0):
        raise FeatureError("candle prices must be positive")
    log_c = np.log(c)
    ret = np.full(n, np.nan)
    ret[1:] = np.diff(log_c)
    log_vol = np.log1p(np.maximum(v, 0.0))
    line, sig = macd(c)
    lower, mid, upper = bbands(c)
    with np.errstate(invalid="ignore", divide="ignore"):
        cols = [
            ret,
            np.log(o) - log_c,
            np.log(h) - log_c,
            np.log(lo) - log_c,
            log_vol - _rolling_mean(log_vol, VOLUME_MEAN),
            rsi(c, 14) / 100.0,
            line / c,
            sig / c,
            (line - sig) / c,
            (c - mid) / (upper - lower),
            (upper - lower) / mid,
            log_c - np.log(ema(c, 20)),
            log_c - np.log(ema(c, 50)),
            log_c - np.log(ema(c, 200)),
        ]
    out = np.column_stack(cols)
    out[:WARMUP_BARS] = np.nan  # one warm-up for all features, so every window has the same inputs
    return out


def next_log_returns(candles: CandleLike) -> FloatArray:
    """Target of the window ending at bar t: log(close_t+1 / close_t); NaN for the last bar."""
    c = ohlcv_arrays(candles)[3]
    out = np.full(c.shape[0], np.nan)
    out[:-1] = np.diff(np.log(c))
    return out


def window_ends(n_bars: int, window: int = WINDOW) -> np.ndarray:
    """Bars that can end a full window: ``WARMUP_BARS + window - 1`` .. ``n_bars - 1``."""
    return np.arange(WARMUP_BARS + window - 1, n_bars)


def windows(features: FloatArray, ends: np.ndarray, window: int = WINDOW) -> FloatArray:
    """(len(ends), window, n_features) stacked windows; window k covers rows ends[k]-window+1..ends[k]."""
    ends = np.asarray(ends, dtype=np.int64)
    if ends.size and (ends.min() < window - 1 or ends.max() >= features.shape[0]):
        raise InsufficientCandlesError(f"a window of {window} bars needs rows {window - 1}..{features.shape[0] - 1}")
    view = sliding_window_view(features, window, axis=0)  # (n - window + 1, n_features, window)
    out: FloatArray = np.ascontiguousarray(view[ends - window + 1].transpose(0, 2, 1))
    return out


# ------------------------------------------------------------------ scaling


@dataclass(frozen=True)
class Scaler:
    """Per-feature standardisation fitted on the training span only (never on the period it scores)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, rows: FloatArray) -> Scaler:
        rows = rows[np.all(np.isfinite(rows), axis=1)]
        if rows.shape[0] < 2:
            raise FeatureError("cannot fit a scaler on fewer than 2 complete feature rows")
        std = rows.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)  # a constant feature stays 0 instead of dividing by 0
        return cls(tuple(float(x) for x in rows.mean(axis=0)), tuple(float(x) for x in std))

    def transform(self, x: FloatArray) -> np.ndarray:
        """Scaled float32 (what the network takes)."""
        if x.shape[-1] != len(self.mean):
            raise FeatureMismatchError(f"scaler has {len(self.mean)} features, input has {x.shape[-1]}")
        out: np.ndarray = ((x - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)
        return out

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scaler:
        try:
            mean = tuple(float(x) for x in data["mean"])
            std = tuple(float(x) for x in data["std"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FeatureMismatchError(f"scaler in metadata is malformed: {exc}") from None
        if len(mean) != len(std) or not all(s > 0 for s in std):
            raise FeatureMismatchError("scaler in metadata is malformed: mean/std lengths differ or std <= 0")
        return cls(mean, std)


def check_window(window: FloatArray) -> None:
    """Fail closed on a window with NaN / inf (a gap in the candles, a zero-width band...)."""
    if not np.all(np.isfinite(window)):
        bad = np.argwhere(~np.isfinite(window))[0]
        raise FeatureError(
            f"feature {FEATURES[int(bad[-1])]} is not finite {window.shape[-2] - int(bad[-2]) - 1} bar(s) "
            "before the last candle; refusing to predict from it"
        )
