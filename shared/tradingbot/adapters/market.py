"""Where the pipeline's candles come from.

On AWS the market-feed service keeps recent candles in Redis; locally (``make run``) and in tests
the market is the bundled real BTC/USDT hourly series, and "now" is its last bar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from tradingbot.errors import PermanentError

if TYPE_CHECKING:  # the webhook imports this module and must not load pandas
    import pandas as pd


class MarketDataUnavailable(PermanentError, RuntimeError):  # noqa: N818 - reads as the state it reports
    """No trustworthy candles for the symbol: the stage fails closed instead of guessing.

    Permanent, although named for a state: an alert is about the bar it fired on, and a retry
    minutes later would decide on other candles. (Not to be confused with
    :class:`~tradingbot.domain.candles.CandleDataError`: candles that were read but are invalid.)"""


class CandleSource(Protocol):
    def candles(self, symbol: str, bars: int) -> pd.DataFrame: ...


class BundledCandles:
    """The packaged BTCUSDT 1h history, offered for every allow-listed symbol in local runs."""

    def __init__(self) -> None:
        from tradingbot.domain.candles import bundled_path, load_candles

        self._frame = load_candles(bundled_path())

    def candles(self, symbol: str, bars: int) -> pd.DataFrame:
        if bars < 2:
            raise MarketDataUnavailable(f"{symbol}: at least 2 bars needed, asked for {bars}")
        return self._frame.iloc[-bars:]

    def last_price(self) -> float:
        return float(self._frame["close"].iloc[-1])


# The local market is no longer one pinned price: `tradingbot serve` runs the live feed or the
# labelled offline replay (tradingbot.entrypoints.local.market), which write the same Redis keys
# as the feed on AWS.
