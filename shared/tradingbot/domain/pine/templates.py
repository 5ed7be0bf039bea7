"""The Pine Script body of each built-in strategy: the same indicators and the same four signals
(long entry / long exit / short entry / short exit) as ``domain/strategies/builtin.py``.

Every parameter is referenced as ``p_<name>``: the exporter declares those as ``input.*`` from the
strategy's declared :class:`~tradingbot.domain.strategies.base.Param` list, so defaults, ranges and
steps are never copied by hand. Each body must define ``longEntry``, ``longExit``, ``shortEntry``
and ``shortExit`` (bool series). ``ta.*`` calls sit at the top level, never inside ``and``/``or``
or ``if``, so Pine evaluates them on every bar (its documented requirement for consistent results).

Where Pine's built-in differs from the pandas-ta call we use, the difference is listed in
``docs/tradingview.md`` (warm-up seeds, SuperTrend's sign and band rule).
"""

from __future__ import annotations

from typing import Final

EMA_CROSSOVER: Final = """\
fastEma = ta.ema(close, p_fast)
slowEma = ta.ema(close, p_slow)
crossUp = ta.crossover(fastEma, slowEma)
crossDown = ta.crossunder(fastEma, slowEma)
plot(fastEma, "fast EMA", color.teal)
plot(slowEma, "slow EMA", color.orange)
longEntry = crossUp
longExit = crossDown
shortEntry = crossDown
shortExit = crossUp
"""

SUPERTREND: Final = """\
[stLine, stDir] = ta.supertrend(p_multiplier, p_length)
// Pine's direction is -1 in an uptrend and +1 in a downtrend: the opposite sign of ours
flipUp = stDir < 0 and stDir[1] > 0
flipDown = stDir > 0 and stDir[1] < 0
plot(stLine, "SuperTrend", stDir < 0 ? color.green : color.red)
longEntry = flipUp
longExit = flipDown
shortEntry = flipDown
shortExit = flipUp
"""

RSI_EMA: Final = """\
trendEma = ta.ema(close, p_ema_length)
rsiValue = ta.rsi(close, p_rsi_length)
ready = not na(trendEma) and not na(rsiValue)
rsiUpOversold = ta.crossover(rsiValue, p_oversold)
rsiUpOverbought = ta.crossover(rsiValue, p_overbought)
rsiDownOverbought = ta.crossunder(rsiValue, p_overbought)
rsiDownOversold = ta.crossunder(rsiValue, p_oversold)
closeDownEma = ta.crossunder(close, trendEma)
closeUpEma = ta.crossover(close, trendEma)
plot(trendEma, "trend EMA", color.orange)
longEntry = ready and close > trendEma and rsiUpOversold
longExit = rsiUpOverbought or closeDownEma
shortEntry = ready and close < trendEma and rsiDownOverbought
shortExit = rsiDownOversold or closeUpEma
"""

MACD_STOCHASTIC: Final = """\
[macdLine, macdSignal, macdHist] = ta.macd(close, p_fast, p_slow, p_signal)
stochK = ta.sma(ta.stoch(close, high, low, p_k), 3)
stochD = ta.sma(stochK, p_d)
ready = not na(macdLine) and not na(macdSignal) and not na(stochK) and not na(stochD)
macdUp = ta.crossover(macdLine, macdSignal)
macdDown = ta.crossunder(macdLine, macdSignal)
kDownOverbought = ta.crossunder(stochK, p_overbought)
kUpOversold = ta.crossover(stochK, p_oversold)
longEntry = ready and macdUp and stochK > stochD and stochK < p_overbought
longExit = macdDown or kDownOverbought
shortEntry = ready and macdDown and stochK < stochD and stochK > p_oversold
shortExit = macdUp or kUpOversold
"""

ICHIMOKU: Final = """\
donchianMid(int len) =>
    math.avg(ta.lowest(low, len), ta.highest(high, len))
tenkanLine = donchianMid(p_tenkan)
kijunLine = donchianMid(p_kijun)
spanALead = (tenkanLine + kijunLine) / 2
spanBLead = donchianMid(p_senkou)
// the cloud as the chart shows it at each bar: both spans displaced forward by kijun - 1 bars
spanA = spanALead[p_kijun - 1]
spanB = spanBLead[p_kijun - 1]
cloudTop = math.max(spanA, spanB)
cloudBottom = math.min(spanA, spanB)
ready = not na(tenkanLine) and not na(kijunLine) and not na(spanA) and not na(spanB)
bull = ready and close > cloudTop and tenkanLine > kijunLine
bear = ready and close < cloudBottom and tenkanLine < kijunLine
plot(tenkanLine, "tenkan", color.blue)
plot(kijunLine, "kijun", color.maroon)
longEntry = bull and not bull[1]
longExit = ready and close < kijunLine
shortEntry = bear and not bear[1]
shortExit = ready and close > kijunLine
"""

BOLLINGER: Final = """\
[bbMiddle, bbUpper, bbLower] = ta.bb(close, p_length, p_std)
ready = not na(bbMiddle) and not na(bbUpper) and not na(bbLower)
plot(bbUpper, "upper band", color.gray)
plot(bbMiddle, "middle band", color.orange)
plot(bbLower, "lower band", color.gray)
longEntry = ready and close < bbLower
longExit = ready and close >= bbMiddle
shortEntry = ready and close > bbUpper
shortExit = ready and close <= bbMiddle
"""

BODIES: Final[dict[str, str]] = {
    "ema_crossover": EMA_CROSSOVER,
    "supertrend": SUPERTREND,
    "rsi_ema": RSI_EMA,
    "macd_stochastic": MACD_STOCHASTIC,
    "ichimoku": ICHIMOKU,
    "bollinger": BOLLINGER,
}
"""Strategy name -> Pine body; tests/unit/test_pine.py checks it covers every registered strategy."""

# Pine built-in -> our pandas-ta call, for docs/tradingview.md and `pine check`'s report
BUILTIN_EQUIVALENTS: Final[dict[str, str]] = {
    "ta.ema": "pandas_ta.ema",
    "ta.rsi": "pandas_ta.rsi",
    "ta.macd": "pandas_ta.ema (Indicators.macd composes pandas-ta's macd from memoised EMAs)",
    "ta.stoch": "pandas-ta stoch's formula (Indicators.stoch)",
    "ta.bb": "pandas_ta.bbands",
    "ta.supertrend": "pandas_ta.hl2 + pandas_ta.atr, SuperTrend recursion (Indicators.supertrend_direction)",
    "ta.lowest / ta.highest": "pandas_ta.midprice (Ichimoku's lines)",
}
