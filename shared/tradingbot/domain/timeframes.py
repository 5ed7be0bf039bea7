"""Which market an alert is about: its symbol in ccxt's unified form and its bar timeframe.

Pure and small (no pandas): the webhook validates ``interval`` with it before anything is started.

TradingView's ``{{interval}}`` placeholder is the chart's resolution in the charting library's
format (https://www.tradingview.com/charting-library-docs/latest/core_concepts/Resolution):
``xS`` seconds, a bare number of minutes (hours are minutes: ``60``, ``240``), ``xD`` days,
``xW`` weeks, ``xM`` months, ``xT`` ticks; "you can also omit the number of units if it is equal
to 1" (``D`` = ``1D``). Each resolution maps to ccxt's timeframe spelling (``1m`` .. ``1M``); a
venue trades on it only when the timeframe is among that ccxt exchange's ``timeframes``
(:data:`VENUE_TIMEFRAMES`, copied from ccxt and held equal to it by a unit test).
"""

from __future__ import annotations

import re
from typing import Final

from tradingbot.errors import PermanentError

DEFAULT_TIMEFRAME: Final = "1h"

# ccxt ``binanceusdm().timeframes`` without ``1s`` (ccxt: "spot only for now"; USD-M klines have no
# 1s interval: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Kline-Candlestick-Data)
# and ccxt ``okx().timeframes`` (https://www.okx.com/docs-v5/en/#public-data-rest-api-get-candlesticks, "bar").
VENUE_TIMEFRAMES: Final[dict[str, frozenset[str]]] = {
    "binanceusdm": frozenset(
        {"1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"}
    ),
    "okx": frozenset({"1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "1w", "1M", "3M"}),
}

_MINUTE_MS: Final = 60_000
_UNIT_MS: Final = {"m": _MINUTE_MS, "h": 60 * _MINUTE_MS, "d": 1440 * _MINUTE_MS, "w": 7 * 1440 * _MINUTE_MS}
_RESOLUTION = re.compile(r"^(?P<n>[1-9][0-9]{0,3})?(?P<unit>[SDWMT]?)$")


class TimeframeError(PermanentError, ValueError):
    """An interval that is not a TradingView resolution, or one no supported venue trades on."""


class MarketSymbolError(PermanentError, ValueError):
    """A ticker that does not name a USDT-margined perpetual."""


def timeframe_for_interval(interval: str) -> str:
    """TradingView resolution -> ccxt timeframe: ``"60"`` -> ``"1h"``, ``"1D"`` -> ``"1d"``,
    ``"240"`` -> ``"4h"``, ``"1W"`` -> ``"1w"``, ``"1M"`` -> ``"1M"``. Raises :class:`TimeframeError`
    for anything else, seconds and ticks included (no venue here has such bars)."""
    text = interval.strip().upper()
    m = _RESOLUTION.match(text)
    if m is None or not text:
        raise TimeframeError(
            f"{interval!r} is not a TradingView resolution (minutes like '60', or '1S', '1D', '1W', '1M')"
        )
    n = int(m["n"] or 1)
    unit = m["unit"]
    if unit in ("S", "T"):
        raise TimeframeError(f"{interval!r}: {'second' if unit == 'S' else 'tick'} bars are not traded here")
    if unit == "":
        if not m["n"]:
            raise TimeframeError(f"{interval!r} is not a TradingView resolution")
        for size, letter in ((10080, "w"), (1440, "d"), (60, "h"), (1, "m")):
            if n % size == 0:
                tf = f"{n // size}{letter}"
                break
    else:
        tf = f"{n}{'M' if unit == 'M' else unit.lower()}"
    if not any(tf in tfs for tfs in VENUE_TIMEFRAMES.values()):
        raise TimeframeError(f"{interval!r} ({tf}) is not a bar interval Binance USD-M or OKX offers")
    return tf


def check_venue_timeframe(venue: str, timeframe: str) -> None:
    supported = VENUE_TIMEFRAMES.get(venue)
    if supported is None:
        raise TimeframeError(f"no candles from venue {venue!r} (known: {', '.join(sorted(VENUE_TIMEFRAMES))})")
    if timeframe not in supported:
        raise TimeframeError(
            f"{venue} has no {timeframe} candles (it offers {', '.join(sorted(supported, key=timeframe_ms))})"
        )


def timeframe_ms(timeframe: str) -> int:
    """Bar length in ms; months count 30 days and years are not bars (ccxt's ``parse_timeframe``
    convention). Use :func:`next_open_ms` to step bars: months are calendar months."""
    n, unit = int(timeframe[:-1]), timeframe[-1]
    if unit == "M":
        return n * 30 * _UNIT_MS["d"]
    if unit not in _UNIT_MS:
        raise TimeframeError(f"{timeframe!r} is not a ccxt timeframe")
    return n * _UNIT_MS[unit]


def next_open_ms(open_ms: int, timeframe: str) -> int:
    """Open time of the bar after the one opening at ``open_ms`` (calendar months for ``xM``)."""
    if timeframe[-1] != "M":
        return open_ms + timeframe_ms(timeframe)
    import datetime as dt

    t = dt.datetime.fromtimestamp(open_ms / 1000, dt.UTC)
    months = t.month - 1 + int(timeframe[:-1])
    nxt = t.replace(year=t.year + months // 12, month=months % 12 + 1)
    return int(nxt.timestamp() * 1000)


def unified_symbol(ticker: str) -> str:
    """TradingView ticker -> ccxt unified USDT-margined perpetual: ``BTCUSDT`` / ``BTCUSDT.P`` ->
    ``BTC/USDT:USDT`` (https://docs.ccxt.com/#/README?id=contract-naming-conventions:
    ``BASE/QUOTE:SETTLE``). Only USDT-settled linear swaps are traded, so other quotes are refused."""
    t = ticker.strip().upper().removesuffix(".P")
    base = t.removesuffix("USDT")
    if not base or base == t or not base.isalnum():
        raise MarketSymbolError(f"{ticker!r} is not a USDT perpetual ticker (e.g. BTCUSDT or BTCUSDT.P)")
    return f"{base}/USDT:USDT"
