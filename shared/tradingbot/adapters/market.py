"""The candle-source contract and the packaged offline sample; not where the pipeline's candles come from.

The pipeline's stages decide on the live market: :class:`tradingbot.adapters.live_candles.LiveCandles`
reads the market feed's Redis keys for the alert's own venue, symbol and timeframe (filled by the
feed on AWS, by the feed or the labelled offline replay in ``tradingbot serve``), backfills a cold
key over REST, and fails closed with :class:`MarketDataUnavailable` (docs/adr/0006-decisions-on-live-candles.md).
This module holds what that and the rest share:

* :class:`MarketDataUnavailable`: the one error for "no trustworthy candles for this symbol", raised
  by the live candle source and turned into a stage failure with its reason (``pipeline/common.py``);
* :class:`CandleSource`: the read interface (``candles(symbol, bars)``);
* :class:`BundledCandles`: the packaged BTCUSDT 1h sample (``tradingbot/datasets``), used where a
  fixed series is wanted: ``Runtime.candles()`` for backtests and benchmarks, and ``tradingbot
  serve``'s sample-alert price when no market price arrives. It is never offered as another
  symbol's candles by the pipeline.
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
    """The packaged BTCUSDT 1h history (the offline sample; ``symbol`` is not looked at: callers ask
    for BTC's series, the pipeline never reads this)."""

    def __init__(self) -> None:
        from tradingbot.domain.candles import bundled_path, load_candles

        self._frame = load_candles(bundled_path())

    def candles(self, symbol: str, bars: int) -> pd.DataFrame:
        if bars < 2:
            raise MarketDataUnavailable(f"{symbol}: at least 2 bars needed, asked for {bars}")
        return self._frame.iloc[-bars:]

    def last_price(self) -> float:
        return float(self._frame["close"].iloc[-1])
