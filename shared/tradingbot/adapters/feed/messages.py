"""Parse exchange stream frames into typed events.

Two venues, one event vocabulary:

* Binance USDT-M combined streams: ``{"stream": "btcusdt@aggTrade", "data": {...}}`` with
  ``aggTrade`` / ``trade`` / ``24hrTicker`` / ``24hrMiniTicker`` (last price), ``kline`` (candle)
  and ``markPriceUpdate`` (mark price + funding rate) payloads. A raw (non-combined) payload is
  accepted too.
* OKX v5 public/business WS: ``{"arg": {"channel": "mark-price", "instId": "BTC-USDT-SWAP"},
  "data": [...]}`` for ``trades``, ``tickers``, ``mark-price``, ``funding-rate`` and
  ``candle<bar>``.

Every parser returns a list of events (OKX batches several rows per frame) or raises
:class:`FeedParseError`; the caller logs and skips that frame, it never stops the stream. Control
frames (subscription acks, ``pong``) parse to an empty list.

Prices stay strings from the wire so that nothing is lost to float formatting before Redis;
candle OHLCV are floats because the cache's candle rows use ccxt's float shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tradingbot.errors import PermanentError

_loads: Callable[[str | bytes], Any]
try:  # ccxt depends on orjson; it parses these frames 3-4x faster than json (the feed's hot path)
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson missing: correct, just slower
    _loads = json.loads

BINANCE = "binanceusdm"
OKX = "okx"

TIMEFRAME_MS: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}
# OKX spells hours and days in upper case: candle1H, candle1D
_OKX_BAR = {"1h": "1H", "2h": "2H", "4h": "4H", "1d": "1D"}


class FeedParseError(PermanentError, ValueError):
    """A frame that is not what the venue documents; the message says which part and why."""


@dataclass(slots=True)  # not frozen: frozen __init__ costs ~1 us per field on the hot path
class Price:
    """Last traded (or ticker) price."""

    exchange: str
    symbol: str
    price: str
    event_ms: int


@dataclass(slots=True)  # not frozen: frozen __init__ costs ~1 us per field on the hot path
class Candle:
    exchange: str
    symbol: str
    timeframe: str
    open_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool
    event_ms: int  # 0 where the venue sends no event time

    def row(self) -> list[float]:
        """The cache's candle row shape: [ts_ms, open, high, low, close, volume]."""
        return [self.open_ms, self.open, self.high, self.low, self.close, self.volume]


@dataclass(slots=True)  # not frozen: frozen __init__ costs ~1 us per field on the hot path
class MarkPrice:
    """Mark price, with the funding rate and next funding time where the frame carries them."""

    exchange: str
    symbol: str
    mark: str | None
    funding_rate: str | None
    next_funding_ms: int | None
    event_ms: int


Event = Price | Candle | MarkPrice


# ---------------------------------------------------------------- symbols


def binance_id(symbol: str) -> str:
    """'BTC/USDT:USDT' -> 'BTCUSDT'."""
    base, rest = symbol.split("/", 1)
    return base + rest.split(":", 1)[0]


def okx_id(symbol: str) -> str:
    """'BTC/USDT:USDT' -> 'BTC-USDT-SWAP'."""
    base, rest = symbol.split("/", 1)
    return f"{base}-{rest.split(':', 1)[0]}-SWAP"


def okx_bar(timeframe: str) -> str:
    return _OKX_BAR.get(timeframe, timeframe)


def _binance_unified(native: str, symbols: Mapping[str, str]) -> str:
    known = symbols.get(native)
    if known is not None:
        return known
    # not configured: derive for the common linear quotes rather than drop the event
    for quote in ("USDT", "USDC"):
        if native.endswith(quote) and len(native) > len(quote):
            return f"{native[: -len(quote)]}/{quote}:{quote}"
    raise FeedParseError(f"unknown Binance symbol {native!r}")


def _okx_unified(native: str, symbols: Mapping[str, str]) -> str:
    known = symbols.get(native)
    if known is not None:
        return known
    parts = native.split("-")
    if len(parts) == 3 and parts[2] == "SWAP":
        return f"{parts[0]}/{parts[1]}:{parts[1]}"
    raise FeedParseError(f"unknown OKX instrument {native!r}")


# ---------------------------------------------------------------- Binance


def _load(raw: str | bytes) -> Any:
    try:
        return _loads(raw)
    except (ValueError, TypeError) as exc:
        raise FeedParseError(f"not JSON: {str(raw)[:80]!r}") from exc


def parse_binance(raw: str | bytes, symbols: Mapping[str, str] | None = None) -> list[Event]:
    """One Binance frame -> events. ``symbols`` maps 'BTCUSDT' to 'BTC/USDT:USDT'."""
    doc = _load(raw)
    if not isinstance(doc, dict):
        raise FeedParseError(f"Binance frame is not an object: {type(doc).__name__}")
    if "result" in doc and "id" in doc:  # SUBSCRIBE acknowledgement
        return []
    data = doc.get("data", doc)
    if not isinstance(data, dict):
        raise FeedParseError("Binance 'data' is not an object")
    try:
        return _binance_event(data, symbols or {})
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, FeedParseError):
            raise
        raise FeedParseError(f"Binance {data.get('e')!r} event: bad or missing field {exc}") from exc


def _binance_event(data: dict[str, Any], symbols: Mapping[str, str]) -> list[Event]:
    kind = data["e"]
    symbol = _binance_unified(str(data["s"]), symbols)
    event_ms = int(data["E"])
    if kind in ("aggTrade", "trade"):
        return [Price(BINANCE, symbol, _price(data["p"]), event_ms)]
    if kind in ("24hrTicker", "24hrMiniTicker"):
        return [Price(BINANCE, symbol, _price(data["c"]), event_ms)]
    if kind == "kline":
        k = data["k"]
        candle = Candle(
            BINANCE, symbol, str(k["i"]), int(k["t"]),
            float(k["o"]), float(k["h"]), float(k["l"]), float(k["c"]), float(k["v"]),
            bool(k["x"]), event_ms,
        )  # fmt: skip
        return [candle]
    if kind == "markPriceUpdate":
        return [MarkPrice(BINANCE, symbol, _price(data["p"]), str(data["r"]) or None, int(data["T"]), event_ms)]
    raise FeedParseError(f"unsupported Binance event {kind!r}")


def _price(value: Any) -> str:
    text = str(value)
    if float(text) <= 0:  # raises ValueError for non-numbers too
        raise FeedParseError(f"price {text!r} is not positive")
    return text


# ---------------------------------------------------------------- OKX


def parse_okx(raw: str | bytes, symbols: Mapping[str, str] | None = None) -> list[Event]:
    """One OKX v5 frame -> events. ``symbols`` maps 'BTC-USDT-SWAP' to 'BTC/USDT:USDT'."""
    if raw in ("pong", b"pong"):
        return []
    doc = _load(raw)
    if not isinstance(doc, dict):
        raise FeedParseError(f"OKX frame is not an object: {type(doc).__name__}")
    if "event" in doc:
        if doc["event"] == "error":
            raise FeedParseError(f"OKX error {doc.get('code')}: {doc.get('msg')}")
        return []  # subscribe / unsubscribe acknowledgements
    try:
        arg, rows = doc["arg"], doc["data"]
        channel = str(arg["channel"])
        symbol = _okx_unified(str(arg["instId"]), symbols or {})
        return [_okx_row(channel, symbol, row) for row in rows]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, FeedParseError):
            raise
        raise FeedParseError(f"OKX frame: bad or missing field {exc}") from exc


def _okx_row(channel: str, symbol: str, row: Any) -> Event:
    if channel == "trades":
        return Price(OKX, symbol, _price(row["px"]), int(row["ts"]))
    if channel == "tickers":
        return Price(OKX, symbol, _price(row["last"]), int(row["ts"]))
    if channel == "mark-price":
        return MarkPrice(OKX, symbol, _price(row["markPx"]), None, None, int(row["ts"]))
    if channel == "funding-rate":
        return MarkPrice(OKX, symbol, None, str(row["fundingRate"]), int(row["fundingTime"]), int(row["ts"]))
    if channel.startswith("candle"):
        bar = channel.removeprefix("candle")
        timeframe = bar.lower()
        if timeframe not in TIMEFRAME_MS:
            raise FeedParseError(f"unsupported OKX candle bar {bar!r}")
        # [ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]; confirm "1" = the bar is closed
        open_ms = int(row[0])
        return Candle(
            OKX, symbol, timeframe, open_ms,
            float(row[1]), float(row[2]), float(row[3]), float(row[4]), float(row[5]),
            str(row[8]) == "1", 0,  # OKX candle frames carry no event time: lag is not measured
        )  # fmt: skip
    raise FeedParseError(f"unsupported OKX channel {channel!r}")


PARSERS = {BINANCE: parse_binance, OKX: parse_okx}
