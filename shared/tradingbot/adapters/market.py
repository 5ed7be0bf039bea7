"""Where the pipeline's candles come from.

On AWS the market-feed service keeps recent candles in Redis; locally (``make run``) and in tests
the market is the bundled real BTC/USDT hourly series, and "now" is its last bar.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from tradingbot.adapters.cache import Cache
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


log = logging.getLogger(__name__)

# the paper exchange prices BTC/USDT:USDT from the binanceusdm feed's cache key
PAPER_PRICE_SOURCE = "binanceusdm"


def start_price_feeder(cache: Callable[[], Cache], symbol: str, price: float, every_s: float = 5.0) -> threading.Event:
    """Local market: keep the cached price (TTL 15 s) fresh at ``price`` until the event is set.
    On AWS the market-feed service writes these keys from the exchange streams."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                cache().put_price(PAPER_PRICE_SOURCE, symbol, Decimal(str(price)))
            except Exception as exc:  # Redis restarting: the order path refuses meanwhile (ADR 0003)
                log.warning("local price feed: %s", type(exc).__name__)
            if stop.wait(every_s):
                return

    threading.Thread(target=loop, name="local-price-feed", daemon=True).start()
    return stop
