"""Where the pipeline's candles come from.

On AWS the market-feed service keeps recent candles in Redis; locally (``make run``) and in tests
the market is the bundled real BTC/USDT hourly series, and "now" is its last bar.
"""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from tradingbot.marketdata import bundled_path, load_candles


class MarketDataError(RuntimeError):
    """No trustworthy candles for the symbol: the stage fails closed instead of guessing."""


class CandleSource(Protocol):
    def candles(self, symbol: str, bars: int) -> pd.DataFrame: ...


class BundledCandles:
    """The packaged BTCUSDT 1h history, offered for every allow-listed symbol in local runs."""

    def __init__(self) -> None:
        self._frame = load_candles(bundled_path())

    def candles(self, symbol: str, bars: int) -> pd.DataFrame:
        if bars < 2:
            raise MarketDataError(f"{symbol}: at least 2 bars needed, asked for {bars}")
        return self._frame.iloc[-bars:]

    def last_price(self) -> float:
        return float(self._frame["close"].iloc[-1])
