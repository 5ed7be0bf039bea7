"""The six built-in strategies. Each reads only indicators defined up to the signal bar's close."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from tradingbot.domain.indicators import Indicators, crossed_above, crossed_below
from tradingbot.domain.strategies.base import Param, Params, Signals, no_nan, register


def _rising_edge(cond: np.ndarray) -> np.ndarray:
    """True where ``cond`` becomes true (it was false, or undefined, on the previous bar)."""
    out = cond.copy()
    out[1:] &= ~cond[:-1]
    return out


def _ordered(*names: str) -> Callable[[Params], str | None]:
    def check(p: Params) -> str | None:
        for a, b in itertools.pairwise(names):
            if not p[a] < p[b]:
                return f"{a} ({p[a]}) must be smaller than {b} ({p[b]})"
        return None

    return check


@register(
    "ema_crossover",
    [
        Param("fast", "int", 12, 2, 60, 1, "fast EMA length"),
        Param("slow", "int", 26, 5, 250, 5, "slow EMA length"),
    ],
    "Long when the fast EMA crosses above the slow one, short when it crosses below; "
    "always in the market after the first cross.",
    constraint=_ordered("fast", "slow"),
)
def ema_crossover(ind: Indicators, fast: int, slow: int) -> Signals:
    f, s = ind.ema(fast), ind.ema(slow)
    up, down = crossed_above(f, s), crossed_below(f, s)
    return Signals(long_entry=up, long_exit=down, short_entry=down, short_exit=up)


@register(
    "supertrend",
    [
        Param("length", "int", 10, 5, 40, 1, "ATR length"),
        Param("multiplier", "float", 3.0, 1.0, 6.0, 0.25, "ATR multiplier for the bands"),
    ],
    "Trend following: long when SuperTrend flips up, short when it flips down (stop-and-reverse).",
)
def supertrend(ind: Indicators, length: int, multiplier: float) -> Signals:
    d = ind.supertrend_direction(length, multiplier)
    up = np.zeros(d.shape, dtype=np.bool_)
    down = np.zeros(d.shape, dtype=np.bool_)
    with np.errstate(invalid="ignore"):
        up[1:] = (d[1:] == 1.0) & (d[:-1] == -1.0)
        down[1:] = (d[1:] == -1.0) & (d[:-1] == 1.0)
    return Signals(long_entry=up, long_exit=down, short_entry=down, short_exit=up)


@register(
    "rsi_ema",
    [
        Param("rsi_length", "int", 14, 5, 30, 1, "RSI length"),
        Param("ema_length", "int", 200, 20, 300, 10, "trend filter EMA length"),
        Param("oversold", "float", 30, 10, 45, 5, "RSI level a long entry crosses up through"),
        Param("overbought", "float", 70, 55, 90, 5, "RSI level a short entry crosses down through"),
    ],
    "Pullbacks in the trend: long above the EMA when RSI crosses up out of oversold, exit at "
    "overbought or below the EMA; shorts mirror it.",
    constraint=_ordered("oversold", "overbought"),
)
def rsi_ema(ind: Indicators, rsi_length: int, ema_length: int, oversold: float, overbought: float) -> Signals:
    close, ema, rsi = ind.close_arr(), ind.ema(ema_length), ind.rsi(rsi_length)
    ok = no_nan(ema, rsi)
    above, below = ok & (close > ema), ok & (close < ema)
    return Signals(
        long_entry=above & crossed_above(rsi, oversold),
        long_exit=crossed_above(rsi, overbought) | crossed_below(close, ema),
        short_entry=below & crossed_below(rsi, overbought),
        short_exit=crossed_below(rsi, oversold) | crossed_above(close, ema),
    )


@register(
    "macd_stochastic",
    [
        Param("fast", "int", 12, 4, 20, 1, "MACD fast EMA"),
        Param("slow", "int", 26, 10, 50, 2, "MACD slow EMA"),
        Param("signal", "int", 9, 3, 15, 1, "MACD signal EMA"),
        Param("k", "int", 14, 5, 30, 1, "stochastic %K lookback"),
        Param("d", "int", 3, 2, 6, 1, "stochastic %D smoothing"),
        Param("overbought", "float", 80, 60, 95, 5, "stochastic overbought level"),
        Param("oversold", "float", 20, 5, 40, 5, "stochastic oversold level"),
    ],
    "Momentum: long when MACD crosses above its signal while stochastic %K is above %D and not "
    "overbought; exit on the opposite MACD cross or when %K falls back out of overbought. Shorts mirror it.",
    constraint=lambda p: _ordered("fast", "slow")(p) or _ordered("oversold", "overbought")(p),
)
def macd_stochastic(
    ind: Indicators, fast: int, slow: int, signal: int, k: int, d: int, overbought: float, oversold: float
) -> Signals:
    macd, sig = ind.macd(fast, slow, signal)
    pk, pd_ = ind.stoch(k, d, 3)
    ok = no_nan(macd, sig, pk, pd_)
    up, down = crossed_above(macd, sig), crossed_below(macd, sig)
    return Signals(
        long_entry=ok & up & (pk > pd_) & (pk < overbought),
        long_exit=down | crossed_below(pk, overbought),
        short_entry=ok & down & (pk < pd_) & (pk > oversold),
        short_exit=up | crossed_above(pk, oversold),
    )


@register(
    "ichimoku",
    [
        Param("tenkan", "int", 9, 5, 20, 1, "conversion line length"),
        Param("kijun", "int", 26, 10, 60, 2, "base line length (and cloud displacement)"),
        Param("senkou", "int", 52, 30, 120, 4, "leading span B length"),
    ],
    "Cloud breakout: long when price closes above the cloud with tenkan above kijun, exit below "
    "kijun; shorts mirror it. The look-ahead chikou span is not used.",
    constraint=_ordered("tenkan", "kijun", "senkou"),
)
def ichimoku(ind: Indicators, tenkan: int, kijun: int, senkou: int) -> Signals:
    close = ind.close_arr()
    tk, kj, span_a, span_b = ind.ichimoku(tenkan, kijun, senkou)
    ok = no_nan(tk, kj, span_a, span_b)
    top, bottom = np.fmax(span_a, span_b), np.fmin(span_a, span_b)
    bull = ok & (close > top) & (tk > kj)
    bear = ok & (close < bottom) & (tk < kj)
    return Signals(
        long_entry=_rising_edge(bull),
        long_exit=ok & (close < kj),
        short_entry=_rising_edge(bear),
        short_exit=ok & (close > kj),
    )


@register(
    "bollinger",
    [
        Param("length", "int", 20, 10, 60, 2, "moving average length"),
        Param("std", "float", 2.0, 1.0, 3.5, 0.25, "band width in standard deviations"),
    ],
    "Mean reversion: long on a close below the lower band, short above the upper band, exit at the middle band.",
)
def bollinger(ind: Indicators, length: int, std: float) -> Signals:
    close = ind.close_arr()
    lower, mid, upper = ind.bbands(length, std)
    ok = no_nan(lower, mid, upper)
    return Signals(
        long_entry=ok & (close < lower),
        long_exit=ok & (close >= mid),
        short_entry=ok & (close > upper),
        short_exit=ok & (close <= mid),
    )
