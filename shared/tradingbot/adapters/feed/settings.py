"""What the feed subscribes to, from ``Settings.feed`` (the ``FEED_*`` variables and ``REDIS_URL``).

The section itself lives in :mod:`tradingbot.settings`; the pool's types live here, in the
adapter, so the settings module stays free of adapter imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradingbot.adapters.feed.messages import BINANCE, OKX
from tradingbot.adapters.feed.pool import Subscription, Venue

if TYPE_CHECKING:
    from tradingbot.settings import FeedSection


def subscriptions(settings: FeedSection) -> list[Subscription]:
    return [Subscription(symbol, settings.timeframes) for symbol in settings.symbols]


def venues(settings: FeedSection) -> list[Venue]:
    """One venue per configured exchange (the settings already refused an unknown one)."""
    urls = {
        BINANCE: (settings.binance_ws_url, settings.binance_rest_url),
        OKX: (settings.okx_ws_url, settings.okx_rest_url),
    }
    return [Venue(n, *urls[n], streams_per_connection=settings.streams_per_connection) for n in settings.exchanges]
