"""Market feed: exchange WebSocket streams -> Redis (see docs/feed.md and store.py for the keys)."""

from tradingbot.adapters.feed.messages import Candle, Event, FeedParseError, MarkPrice, Price, parse_binance, parse_okx
from tradingbot.adapters.feed.store import latest_funding, latest_price

__all__ = [
    "Candle",
    "Event",
    "FeedParseError",
    "MarkPrice",
    "Price",
    "latest_funding",
    "latest_price",
    "parse_binance",
    "parse_okx",
]
