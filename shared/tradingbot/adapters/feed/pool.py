"""Which streams go on which connection, and how each connection subscribes.

Per-connection limits (see docs/feed.md for sources):

* Binance USDT-M: at most 1024 streams per connection; the streams are named in the URL of a
  combined stream (``/stream?streams=a/b/c``), so a reconnect resubscribes by construction and no
  SUBSCRIBE message (10 incoming messages/s limit) is needed. We cap lower (200 by default)
  because 1024 names make a ~30 KB URL that proxies may refuse.
* OKX v5: no documented cap on channels per connection, but a subscribe request must stay under
  64 KB and a connection may send 480 subscribe requests per hour; we cap at 100 channels per
  connection and send them in one ``subscribe`` op after each (re)connect. Candles live on the
  ``/business`` endpoint, the rest on ``/public``, so they never share a connection.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from tradingbot.adapters.feed.messages import BINANCE, OKX, TIMEFRAME_MS, binance_id, okx_bar, okx_id

BINANCE_MAX_STREAMS = 1024  # documented hard limit
OKX_MAX_CHANNELS = 100  # our choice; see the module docstring
DEFAULT_STREAMS_PER_CONNECTION = {BINANCE: 200, OKX: OKX_MAX_CHANNELS}
HARD_LIMITS = {BINANCE: BINANCE_MAX_STREAMS, OKX: OKX_MAX_CHANNELS}


@dataclass(frozen=True)
class Venue:
    exchange: str  # "binanceusdm" | "okx"
    ws_url: str  # Binance: wss://fstream.binance.com ; OKX: wss://ws.okx.com:8443/ws/v5
    rest_url: str  # Binance: https://fapi.binance.com ; OKX: https://www.okx.com
    streams_per_connection: int = 0  # 0 = the default for the exchange

    def limit(self) -> int:
        chosen = self.streams_per_connection or DEFAULT_STREAMS_PER_CONNECTION[self.exchange]
        return max(1, min(chosen, HARD_LIMITS[self.exchange]))


@dataclass(frozen=True)
class Subscription:
    """What we want from one symbol on one venue."""

    symbol: str  # unified, e.g. "BTC/USDT:USDT"
    timeframes: tuple[str, ...] = ("1m", "1h")
    trades: bool = True
    mark: bool = True


@dataclass(frozen=True)
class ConnectionPlan:
    """One socket: where to connect, what to send once connected, which symbols it serves."""

    exchange: str
    url: str
    subscribe_frames: tuple[str, ...]
    streams: tuple[str, ...]
    symbols: dict[str, str] = field(default_factory=dict)  # native id -> unified symbol
    timeframes: tuple[str, ...] = ()  # candle timeframes carried (for gap tracking)

    @property
    def name(self) -> str:
        return f"{self.exchange}[{self.streams[0]}..+{len(self.streams) - 1}]"


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def binance_streams(sub: Subscription) -> list[str]:
    low = binance_id(sub.symbol).lower()
    names = [f"{low}@aggTrade"] if sub.trades else []
    names += [f"{low}@kline_{tf}" for tf in sub.timeframes]
    if sub.mark:
        names.append(f"{low}@markPrice@1s")  # mark price + funding rate every second
    return names


def plan_binance(venue: Venue, subs: Sequence[Subscription]) -> list[ConnectionPlan]:
    names = [name for sub in subs for name in binance_streams(sub)]
    symbols = {binance_id(s.symbol): s.symbol for s in subs}
    timeframes = tuple(sorted({tf for s in subs for tf in s.timeframes}))
    base = venue.ws_url.rstrip("/")
    return [
        ConnectionPlan(BINANCE, f"{base}/stream?streams={'/'.join(chunk)}", (), tuple(chunk), symbols, timeframes)
        for chunk in _chunks(names, venue.limit())
    ]


def okx_channels(sub: Subscription) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(public channels, business channels) for one symbol."""
    inst = okx_id(sub.symbol)
    public = [{"channel": "trades", "instId": inst}] if sub.trades else []
    if sub.mark:
        public += [{"channel": "mark-price", "instId": inst}, {"channel": "funding-rate", "instId": inst}]
    business = [{"channel": f"candle{okx_bar(tf)}", "instId": inst} for tf in sub.timeframes]
    return public, business


def plan_okx(venue: Venue, subs: Sequence[Subscription]) -> list[ConnectionPlan]:
    symbols = {okx_id(s.symbol): s.symbol for s in subs}
    timeframes = tuple(sorted({tf for s in subs for tf in s.timeframes}))
    public: list[dict[str, str]] = []
    business: list[dict[str, str]] = []
    for sub in subs:
        pub, bus = okx_channels(sub)
        public += pub
        business += bus
    base = venue.ws_url.rstrip("/")
    plans: list[ConnectionPlan] = []
    for path, args, tfs in (("public", public, ()), ("business", business, timeframes)):
        for i in range(0, len(args), venue.limit()):
            chunk = args[i : i + venue.limit()]
            frame = json.dumps({"op": "subscribe", "args": chunk})
            streams = tuple(f"{a['channel']}:{a['instId']}" for a in chunk)
            plans.append(ConnectionPlan(OKX, f"{base}/{path}", (frame,), streams, symbols, tfs))
    return plans


def plan(venue: Venue, subs: Sequence[Subscription]) -> list[ConnectionPlan]:
    """All connections for one venue, each within the venue's streams-per-connection limit."""
    for sub in subs:
        unknown = [tf for tf in sub.timeframes if tf not in TIMEFRAME_MS]
        if unknown:
            raise ValueError(f"{sub.symbol}: unsupported timeframes {unknown}")
    if venue.exchange == BINANCE:
        return plan_binance(venue, subs)
    if venue.exchange == OKX:
        return plan_okx(venue, subs)
    raise ValueError(f"unsupported exchange {venue.exchange!r}")
