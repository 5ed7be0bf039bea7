"""Redis key schema of the market feed, the in-memory candle book, and the readers' helpers.

Keys (``tb:`` is ``tradingbot.adapters.cache.PREFIX``; ``{exchange}`` is the ccxt id, ``binanceusdm`` or
``okx``; ``{symbol}`` the unified ccxt symbol, e.g. ``BTC/USDT:USDT``):

=====================================  ==========================================  =========
key                                    value (JSON)                                TTL
=====================================  ==========================================  =========
``tb:px:{exchange}:{symbol}``          ``{"p": "<price>", "t": <event ms>}``       15 s
``tb:ohlcv:{exchange}:{symbol}:{tf}``  ``[[open ms, o, h, l, c, v], ...]`` oldest   15 s
                                       first, at most 500 rows, one per open time;
                                       the last row may be the bar still forming
``tb:funding:{exchange}:{symbol}``     ``{"mark": "<px>"|null, "rate": "<r>"|null,  15 s
                                       "next": <ms>|null, "t": <event ms>}``
=====================================  ==========================================  =========

After each batch the writer also PUBLISHes one message on ``tb:ticks`` (:data:`TICKS_CHANNEL`), in the
same script as the SETs: ``{"t": <write ms>, "u": [[exchange, symbol, last|null, mark|null,
rate|null, next funding ms|null], ...]}``, one row per (exchange, symbol) whose price or funding
document the batch changed. The paper matcher (``adapters/exchange/paper_matcher.py``) consumes it.
Pub/sub is at most once: a subscriber that was away misses messages, which is why the matcher
re-reads its state on (re)subscribe and every few seconds, and why the keys stay the record.

The price and candle keys are the ones :class:`tradingbot.adapters.cache.Cache` reads (``get_price``,
``get_candles``), so the paper exchange and the pipeline need nothing new. The short TTLs make a
dead feed visible: its keys vanish within 15 s instead of serving old prices. Readers should
still use :func:`latest_price` / :func:`latest_funding`, which also refuse values older than
``max_age_s`` (a price 14 s old is not current for an order).
"""

from __future__ import annotations

import bisect
import json
import time
from dataclasses import dataclass
from decimal import Decimal

from redis.exceptions import RedisError

from tradingbot.adapters.cache import PREFIX, PRICE_TTL_S, Cache, PriceQuote
from tradingbot.adapters.feed.messages import Candle

FUNDING_TTL_S = PRICE_TTL_S
TICKS_CHANNEL = f"{PREFIX}ticks"
CANDLES_KEPT = 500
DEFAULT_MAX_AGE_S = 5.0


def price_key(exchange: str, symbol: str) -> str:
    return f"{PREFIX}px:{exchange}:{symbol}"


def candles_key(exchange: str, symbol: str, timeframe: str) -> str:
    return f"{PREFIX}ohlcv:{exchange}:{symbol}:{timeframe}"


def funding_key(exchange: str, symbol: str) -> str:
    return f"{PREFIX}funding:{exchange}:{symbol}"


# ---------------------------------------------------------------- readers


def _now_ms() -> int:
    return int(time.time() * 1000)


def latest_price(
    cache: Cache, exchange: str, symbol: str, *, max_age_s: float = DEFAULT_MAX_AGE_S, now_ms: int | None = None
) -> PriceQuote | None:
    """The cached price, or None when missing or older than ``max_age_s``: stale is unavailable."""
    quote = cache.get_price(exchange, symbol)
    if quote is None:
        return None
    now = _now_ms() if now_ms is None else now_ms
    return quote if now - quote.ts_ms <= max_age_s * 1000 else None


@dataclass(frozen=True)
class Funding:
    mark: Decimal | None
    rate: Decimal | None
    next_funding_ms: int | None
    ts_ms: int


def latest_funding(
    cache: Cache, exchange: str, symbol: str, *, max_age_s: float = DEFAULT_MAX_AGE_S, now_ms: int | None = None
) -> Funding | None:
    """Mark price and funding rate, or None when missing or older than ``max_age_s``."""
    try:
        raw = cache.client.get(funding_key(exchange, symbol))
    except (RedisError, OSError):  # unreachable is a miss, as in Cache.get_price
        return None
    if raw is None:
        return None
    doc = json.loads(raw)
    now = _now_ms() if now_ms is None else now_ms
    if now - int(doc["t"]) > max_age_s * 1000:
        return None
    return Funding(
        mark=None if doc.get("mark") is None else Decimal(doc["mark"]),
        rate=None if doc.get("rate") is None else Decimal(doc["rate"]),
        next_funding_ms=doc.get("next"),
        ts_ms=int(doc["t"]),
    )


# ---------------------------------------------------------------- candle book


class CandleSeries:
    """Rolling candles of one (exchange, symbol, timeframe): one row per open time, ordered,
    at most ``keep`` rows. A forming bar never overwrites a bar already known to be closed."""

    def __init__(self, keep: int = CANDLES_KEPT) -> None:
        self.keep = keep
        self.opens: list[int] = []
        self.rows: list[list[float]] = []
        self.last_closed_ms = -1
        self._head_json: str | None = None  # JSON of rows[:-1]: only the forming bar changes often

    def upsert(self, candle: Candle) -> bool:
        """Apply one candle; True when the series changed."""
        i = bisect.bisect_left(self.opens, candle.open_ms)
        held = i < len(self.opens) and self.opens[i] == candle.open_ms
        if held and not candle.closed and candle.open_ms <= self.last_closed_ms:
            return False  # a late partial update of a bar we already hold closed
        if candle.closed:
            self.last_closed_ms = max(self.last_closed_ms, candle.open_ms)
        if held:
            self.rows[i] = candle.row()  # same bar: replace, never duplicate
            if i != len(self.rows) - 1:
                self._head_json = None
            return True
        self._head_json = None
        if len(self.opens) >= self.keep and i == 0:
            return False  # older than everything we keep
        self.opens.insert(i, candle.open_ms)
        self.rows.insert(i, candle.row())
        if len(self.opens) > self.keep:
            del self.opens[0], self.rows[0]
        return True

    def to_json(self) -> str:
        """The rows as a JSON list; the part before the last row is cached, since a live series
        changes mostly in its last (forming) bar and 500 rows cost ~0.2 ms to encode."""
        if not self.rows:
            return "[]"
        if self._head_json is None:
            self._head_json = json.dumps(self.rows[:-1], separators=(",", ":"))[:-1]
        last = json.dumps(self.rows[-1], separators=(",", ":"))
        return f"{self._head_json},{last}]" if len(self.rows) > 1 else f"[{last}]"
