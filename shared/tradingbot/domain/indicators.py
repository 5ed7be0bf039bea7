"""Memoised pandas-ta indicators over one candle frame.

Strategies ask an :class:`Indicators` object for what they need; identical requests are computed
once. A parameter grid therefore pays for each distinct indicator only once (an EMA crossover grid
of 1,000 combinations needs about 100 EMAs, not 2,000).

Everything returned is a float64 numpy array aligned with the candles, NaN during warm-up.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable

import numba
import numpy as np
import pandas as pd
import pandas_ta as ta
from pandas_ta.utils import non_zero_range

from tradingbot.domain.candles import frame_digest

FloatArray = np.ndarray

# pandas-ta 0.4.71b0 emits pandas FutureWarnings on some paths; they are not actionable here.
warnings.filterwarnings("ignore", category=FutureWarning, module="pandas_ta")


#: distinct candle windows whose indicators one process keeps (:meth:`Indicators.shared`)
SHARED_WINDOWS = 16
_shared: OrderedDict[bytes, Indicators] = OrderedDict()
_shared_lock = threading.Lock()


def _freeze(value: object) -> object:
    """Memoised arrays are shared by every caller of the memo: read-only, so none can alter another's."""
    for arr in value if isinstance(value, tuple) else (value,):
        if isinstance(arr, np.ndarray):
            arr.flags.writeable = False
    return value


class Indicators:
    """Every indicator is computed once per object and returned read-only (callers share the arrays)."""

    @classmethod
    def shared(cls, candles: pd.DataFrame) -> Indicators:
        """The process's memo for these bars: executions deciding on the same closed bars (a burst of
        alerts at one bar close) compute each indicator once between them. Keyed by the bars' content
        (:func:`tradingbot.domain.candles.frame_digest`), so a changed or newer bar is a new window;
        the last :data:`SHARED_WINDOWS` windows are kept. Thread-safe: two threads asking for the same
        missing indicator may both compute it, with identical results."""
        key = frame_digest(candles)
        with _shared_lock:
            found = _shared.get(key)
            if found is not None:
                _shared.move_to_end(key)
                return found
            made = _shared[key] = cls(candles.copy())  # its own bars: the caller may edit its frame later
            while len(_shared) > SHARED_WINDOWS:
                _shared.popitem(last=False)
            return made

    def __init__(self, candles: pd.DataFrame) -> None:
        self.candles = candles
        # pandas-ta aligns its intermediate series on the index; a RangeIndex makes that cheap
        # (a DatetimeIndex costs ~40 % more per call) and the outputs are positional arrays anyway.
        plain = candles.reset_index(drop=True)
        self.open = plain["open"]
        self.high = plain["high"]
        self.low = plain["low"]
        self.close = plain["close"]
        self._cache: dict[tuple[object, ...], object] = {}

    def __len__(self) -> int:
        return len(self.candles)

    def _memo(self, key: tuple[object, ...], compute: Callable[[], object]) -> object:
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = _freeze(compute())
        return found

    @staticmethod
    def _arr(series: pd.Series | None, n: int) -> FloatArray:
        # pandas-ta returns None when the series is shorter than the indicator's length
        if series is None:
            return np.full(n, np.nan)
        return np.asarray(series, dtype=np.float64)

    def close_arr(self) -> FloatArray:
        return self._memo(("close",), lambda: self.close.to_numpy(np.float64))  # type: ignore[return-value]

    def ema(self, length: int) -> FloatArray:
        n = len(self)
        return self._memo(("ema", length), lambda: self._arr(ta.ema(self.close, length=length), n))  # type: ignore[return-value]

    def rsi(self, length: int) -> FloatArray:
        n = len(self)
        return self._memo(("rsi", length), lambda: self._arr(ta.rsi(self.close, length=length), n))  # type: ignore[return-value]

    def macd(self, fast: int, slow: int, signal: int) -> tuple[FloatArray, FloatArray]:
        """(macd line, signal line), composed exactly as pandas-ta's ``macd`` composes them, but
        from the memoised EMAs so a grid shares them (tests check equality with ``ta.macd``)."""

        def compute() -> tuple[FloatArray, FloatArray]:
            line = self.ema(fast) - self.ema(slow)
            sig = np.full(len(self), np.nan)
            valid = np.flatnonzero(~np.isnan(line))
            if valid.size:
                start = int(valid[0])
                smoothed = ta.ema(pd.Series(line[start:]), length=signal)
                if smoothed is not None:
                    sig[start:] = smoothed.to_numpy(np.float64)
            return line, sig

        return self._memo(("macd", fast, slow, signal), compute)  # type: ignore[return-value]

    def stoch(self, k: int, d: int, smooth_k: int) -> tuple[FloatArray, FloatArray]:
        """(%K, %D): pandas-ta's ``stoch`` formula (its non_zero_range guard, SMA smoothing) without
        the composite's per-call overhead, half the time; tests check it against ``ta.stoch``."""

        def compute() -> tuple[FloatArray, FloatArray]:
            lowest = self.low.rolling(k).min()
            highest = self.high.rolling(k).max()
            raw = 100 * (self.close - lowest) / non_zero_range(highest, lowest)
            pct_k = raw if smooth_k == 1 else raw.rolling(smooth_k).mean()
            pct_d = pct_k.rolling(d).mean()
            return pct_k.to_numpy(np.float64), pct_d.to_numpy(np.float64)

        return self._memo(("stoch", k, d, smooth_k), compute)  # type: ignore[return-value]

    def bbands(self, length: int, std: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(lower, middle, upper)."""

        def compute() -> tuple[FloatArray, FloatArray, FloatArray]:
            df = ta.bbands(self.close, length=length, lower_std=std, upper_std=std)
            if df is None:
                nan = np.full(len(self), np.nan)
                return nan, nan, nan
            return (
                df.iloc[:, 0].to_numpy(np.float64),
                df.iloc[:, 1].to_numpy(np.float64),
                df.iloc[:, 2].to_numpy(np.float64),
            )

        return self._memo(("bbands", length, float(std)), compute)  # type: ignore[return-value]

    def atr(self, length: int) -> FloatArray:
        n = len(self)
        return self._memo(  # type: ignore[return-value]
            ("atr", length), lambda: self._arr(ta.atr(self.high, self.low, self.close, length=length), n)
        )

    def supertrend_direction(self, length: int, multiplier: float) -> FloatArray:
        """+1 / -1 trend direction, NaN for the first ``length`` bars; equal to pandas-ta's SUPERTd.

        pandas-ta's supertrend runs its band recursion as a Python loop over ``.iat`` (about 60 us a
        bar: 0.5 s for a year of hourly bars). We take its hl2 and ATR and run the identical
        recursion compiled; tests/unit/test_indicators.py checks the two agree bar for bar.
        """

        def compute() -> FloatArray:
            hl2 = np.asarray(ta.hl2(self.high, self.low), dtype=np.float64)
            matr = multiplier * self.atr(length)
            direction: FloatArray = _supertrend_direction(self.close_arr(), hl2 - matr, hl2 + matr, length)
            return direction

        return self._memo(("supertrend", length, float(multiplier)), compute)  # type: ignore[return-value]

    def ichimoku(self, tenkan: int, kijun: int, senkou: int) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """(tenkan, kijun, span_a, span_b) as seen on the chart at each bar.

        The spans are the cloud displaced forward (pandas-ta: by kijun - 1 bars), so at bar t they
        use data up to t - kijun + 1 only. The chikou span (close shifted *backwards*) would read the
        future and is never computed.
        """

        def compute() -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
            # pandas-ta's ichimoku, composed from its memoised midprices (equal to ``ta.ichimoku``'s
            # first frame, see tests): the spans are shifted forward by kijun - 1 bars.
            tk, kj, sb = self.midprice(tenkan), self.midprice(kijun), self.midprice(senkou)
            return tk, kj, _shift(0.5 * (tk + kj), kijun - 1), _shift(sb, kijun - 1)

        return self._memo(("ichimoku", tenkan, kijun, senkou), compute)  # type: ignore[return-value]

    def midprice(self, length: int) -> FloatArray:
        n = len(self)
        return self._memo(  # type: ignore[return-value]
            ("midprice", length), lambda: self._arr(ta.midprice(self.high, self.low, length=length), n)
        )


@numba.njit(cache=True)
def _supertrend_direction(close: FloatArray, lower: FloatArray, upper: FloatArray, length: int) -> FloatArray:
    m = close.shape[0]
    lb = lower.copy()
    ub = upper.copy()
    direction = np.ones(m)
    for i in range(1, m):
        if close[i] > ub[i - 1]:
            direction[i] = 1.0
        elif close[i] < lb[i - 1]:
            direction[i] = -1.0
        else:
            direction[i] = direction[i - 1]
            if direction[i] > 0 and lb[i] < lb[i - 1]:
                lb[i] = lb[i - 1]
            if direction[i] < 0 and ub[i] > ub[i - 1]:
                ub[i] = ub[i - 1]
    direction[: min(length, m)] = np.nan
    return direction


def _shift(a: FloatArray, k: int) -> FloatArray:
    out = np.full(a.shape, np.nan)
    if k < a.shape[0]:
        out[k:] = a[: a.shape[0] - k]
    return out


def crossed_above(a: FloatArray, b: FloatArray | float) -> np.ndarray:
    """True at t when a[t-1] <= b[t-1] and a[t] > b[t] (both defined)."""
    b_arr = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    out = np.zeros(a.shape, dtype=np.bool_)
    with np.errstate(invalid="ignore"):
        out[1:] = (a[:-1] <= b_arr[:-1]) & (a[1:] > b_arr[1:])
    return out


def crossed_below(a: FloatArray, b: FloatArray | float) -> np.ndarray:
    """True at t when a[t-1] >= b[t-1] and a[t] < b[t] (both defined)."""
    b_arr = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    out = np.zeros(a.shape, dtype=np.bool_)
    with np.errstate(invalid="ignore"):
        out[1:] = (a[:-1] >= b_arr[:-1]) & (a[1:] < b_arr[1:])
    return out
