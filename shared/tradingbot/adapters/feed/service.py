"""The market feed: exchange WebSocket streams -> Redis, with reconnects and gap backfill.

One asyncio task per connection (pool.py decides how streams are spread over connections) reads
frames, parses them (messages.py; garbage is logged and skipped), checks candles for missed bars
(a jump in open time, or a bar that never closed before a disconnect) and backfills them over
REST before the live bar, then hands events to a bounded buffer (buffer.py documents its
drop/coalesce policy). One writer task drains the buffer into Redis with one pipeline per batch
under the key schema in store.py.

Why aiohttp and not ccxt.pro's ``watch_*``: we need the raw frames (to count them, to time them
from the exchange's event time to the Redis write, and to see bar open times for gap detection)
and a connection layout we control; ccxt.pro hides all three. ccxt stays the order path.

Resilience: an idle socket (no frame for ``idle_timeout_s``) gets one ping (OKX: the text
``ping`` its docs ask for; Binance: a WebSocket ping), and is dropped if still silent. Each drop
reconnects after a full-jitter exponential backoff (``uniform(0, min(cap, base * 2**n))``), with
``n`` reset once a connection delivered data, so a fleet of feeds does not reconnect in lockstep.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tradingbot.adapters import metrics as business_metrics
from tradingbot.adapters.cache import CANDLES_TTL_S, PRICE_TTL_S
from tradingbot.adapters.feed import backfill
from tradingbot.adapters.feed.buffer import EventBuffer
from tradingbot.adapters.feed.messages import (
    OKX,
    PARSERS,
    TIMEFRAME_MS,
    Candle,
    Event,
    FeedParseError,
    MarkPrice,
    Price,
)
from tradingbot.adapters.feed.pool import ConnectionPlan, Subscription, Venue, plan
from tradingbot.adapters.feed.settings import subscriptions, venues
from tradingbot.adapters.feed.store import (
    FUNDING_TTL_S,
    TICKS_CHANNEL,
    CandleSeries,
    candles_key,
    funding_key,
    price_key,
)

if TYPE_CHECKING:
    from tradingbot.settings import FeedSection

log = logging.getLogger(__name__)

BarKey = tuple[str, str, str]  # exchange, symbol, timeframe
_WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_close=2.0)
_LOGGED_PARSE_ERRORS = 20  # log the first few in full, then one in every 1000
_YIELD_EVERY = 64  # frames read before the reader yields to the writer


@dataclass
class FeedConfig:
    idle_timeout_s: float = 30.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    rest_timeout_s: float = 10.0
    max_closed_queue: int = 10_000
    candles_kept: int = 500
    warmup: bool = True
    backfill_retry_s: float = 5.0
    # at most one Redis pipeline per interval: a busy feed coalesces more per batch (fewer
    # commands) at the price of up to this much extra lag
    flush_interval_s: float = 0.005
    # issue 17: business metrics (lag, reconnects) as one EMF line per interval (adapters/metrics.py)
    metrics_flush_s: float = 60.0


@dataclass
class Metrics:
    started: float = field(default_factory=time.monotonic)
    messages: int = 0
    parse_errors: int = 0
    reconnects: int = 0
    backfilled: int = 0
    backfill_errors: int = 0
    redis_writes: int = 0  # keys written
    write_errors: int = 0
    lags_ms: deque[float] = field(default_factory=lambda: deque(maxlen=50_000))
    window_lags_ms: list[float] = field(default_factory=list)  # since the last EMF flush (issue 17)
    emitted: tuple[int, int] = (0, 0)  # reconnects, messages at the last EMF flush
    connected: dict[str, bool] = field(default_factory=dict)
    last_frame: dict[str, float] = field(default_factory=dict)  # monotonic time of each connection's last frame
    last_write_ok: float = 0.0
    _mark: tuple[float, int] = (0.0, 0)

    def rate(self) -> float:
        """Messages per second since the previous call (since start on the first)."""
        now = time.monotonic()
        then, count = self._mark if self._mark[0] else (self.started, 0)
        self._mark = (now, self.messages)
        return (self.messages - count) / max(now - then, 1e-9)

    def lag_percentile(self, q: float) -> float | None:
        if not self.lags_ms:
            return None
        ordered = sorted(self.lags_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def snapshot(self, buffer: EventBuffer | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "messages": self.messages,
            "messages_per_s": round(self.rate(), 1),
            "lag_p50_ms": self.lag_percentile(0.50),
            "lag_p99_ms": self.lag_percentile(0.99),
            "reconnects": self.reconnects,
            "parse_errors": self.parse_errors,
            "backfilled": self.backfilled,
            "backfill_errors": self.backfill_errors,
            "redis_writes": self.redis_writes,
            "write_errors": self.write_errors,
            "connected": dict(self.connected),
        }
        if buffer is not None:
            doc |= {"queued": len(buffer), "queue_high_water": buffer.high_water, "coalesced": buffer.coalesced}
        return doc


def backoff_s(attempt: int, base: float, cap: float) -> float:
    """Full jitter: a random delay in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0.0, min(cap, base * (2 ** min(attempt, 30))))


# SET each KEYS[i] to ARGV[i] with a TTL of ARGV[n + i] seconds (n = #KEYS), then, when given,
# PUBLISH ARGV[2n + 2] on channel ARGV[2n + 1]: the batch's price updates reach the paper matcher in
# the same round trip, after the keys they describe are written (docs/adr/0007-paper-matching.md).
# The keys of one batch are independent, so a cluster-mode Redis would need one call per hash slot;
# ElastiCache here runs with cluster mode disabled.
_SET_MANY_LUA = """
local n = #KEYS
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[i], 'EX', ARGV[n + i])
end
if ARGV[2 * n + 2] then
  redis.call('PUBLISH', ARGV[2 * n + 1], ARGV[2 * n + 2])
end
return n
"""


class RedisWriter:
    """Applies event batches to the candle book and writes the changed keys in one pipeline; with
    ``publish`` the batch's prices and marks also go out on :data:`~.store.TICKS_CHANNEL`."""

    def __init__(self, client: aioredis.Redis, candles_kept: int = 500, *, publish: bool = True) -> None:
        self.client = client
        self.candles_kept = candles_kept
        self.publish = publish
        self._ticks: dict[tuple[str, str], str] = {}
        self.series: dict[BarKey, CandleSeries] = {}
        self.funding: dict[tuple[str, str], dict[str, Any]] = {}
        self._dirty_bars: set[BarKey] = set()
        self._dirty_funding: set[tuple[str, str]] = set()
        self._set_many = client.register_script(_SET_MANY_LUA)

    def _apply(self, events: Sequence[Event]) -> dict[str, str]:
        prices: dict[str, str] = {}
        for ev in events:
            if isinstance(ev, Price):
                # same JSON as Cache.put_price; built by hand because this is the hot path
                prices[price_key(ev.exchange, ev.symbol)] = f'{{"p":"{ev.price}","t":{ev.event_ms}}}'
                self._ticks[(ev.exchange, ev.symbol)] = ev.price
            elif isinstance(ev, Candle):
                key = (ev.exchange, ev.symbol, ev.timeframe)
                series = self.series.get(key)
                if series is None:
                    series = self.series[key] = CandleSeries(self.candles_kept)
                if series.upsert(ev):
                    self._dirty_bars.add(key)
            else:
                self._apply_mark(ev)
        return prices

    def _apply_mark(self, ev: MarkPrice) -> None:
        doc = self.funding.setdefault((ev.exchange, ev.symbol), {"mark": None, "rate": None, "next": None, "t": 0})
        if ev.mark is not None:
            doc["mark"] = ev.mark
        if ev.funding_rate is not None:
            doc["rate"], doc["next"] = ev.funding_rate, ev.next_funding_ms
        doc["t"] = max(doc["t"], ev.event_ms)
        self._dirty_funding.add((ev.exchange, ev.symbol))

    async def write(self, events: Sequence[Event]) -> int:
        """Write one batch; returns the number of keys written. Raises RedisError/OSError."""
        prices = self._apply(events)
        keys = list(prices)
        values = list(prices.values())
        ttls = [PRICE_TTL_S] * len(keys)
        for ex, sym, tf in self._dirty_bars:
            keys.append(candles_key(ex, sym, tf))
            values.append(self.series[(ex, sym, tf)].to_json())
            ttls.append(CANDLES_TTL_S)
        for ex, sym in self._dirty_funding:
            keys.append(funding_key(ex, sym))
            values.append(json.dumps(self.funding[(ex, sym)]))
            ttls.append(FUNDING_TTL_S)
        extra: list[str] = []
        if self.publish and (self._ticks or self._dirty_funding):
            extra = [TICKS_CHANNEL, self._tick_message()]
        if keys:
            # one EVALSHA per batch instead of one SET per key: redis-py spends ~70 us of client
            # CPU per pipelined command, which capped the feed below 20k messages/s
            await self._set_many(keys=keys, args=[*values, *ttls, *extra])
        # cleared only after a successful write: a failed batch's candles go out with the next one
        self._dirty_bars.clear()
        self._dirty_funding.clear()
        self._ticks.clear()
        return len(keys)

    def _tick_message(self) -> str:
        """``{"t": ms, "u": [[exchange, symbol, last|null, mark|null, rate|null, next ms|null], ...]}``
        (store.py documents it): what the batch changed, for the paper matcher."""
        # built by hand (hot path): exchange ids, unified symbols and wire prices need no JSON escaping
        rows = [f'["{ex}","{sym}","{p}",null,null,null]' for (ex, sym), p in self._ticks.items()
                if (ex, sym) not in self._dirty_funding]  # fmt: skip
        for k in self._dirty_funding:
            doc = self.funding[k]
            rows.append(json.dumps([k[0], k[1], self._ticks.get(k), doc["mark"], doc["rate"], doc["next"]]))
        return f'{{"t":{int(time.time() * 1000)},"u":[{",".join(rows)}]}}'


class FeedService:
    def __init__(
        self,
        redis_client: aioredis.Redis,
        venues: Sequence[Venue],
        subscriptions: Sequence[Subscription],
        config: FeedConfig | None = None,
        *,
        before_write: Callable[[], Awaitable[None]] | None = None,  # tests: simulate a slow Redis
    ) -> None:
        self.config = config or FeedConfig()
        self.venues = {v.exchange: v for v in venues}
        self.plans = [p for v in venues for p in plan(v, subscriptions)]
        self.buffer = EventBuffer(self.config.max_closed_queue)
        self.writer = RedisWriter(redis_client, self.config.candles_kept)
        self.metrics = Metrics()
        self._before_write = before_write
        self._last_bar: dict[BarKey, tuple[int, bool]] = {}  # open time and closed flag of the newest bar seen
        self._retry_at: dict[BarKey, float] = {}
        self._session: aiohttp.ClientSession | None = None
        self._rest: aiohttp.ClientSession | None = None
        self._stop = asyncio.Event()

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Run until :meth:`stop`; connection failures are retried, never raised."""
        # two sessions: a total timeout suits REST calls but would cut long-lived sockets
        rest_timeout = aiohttp.ClientTimeout(total=self.config.rest_timeout_s)
        ws_timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.config.rest_timeout_s)
        async with (
            aiohttp.ClientSession(timeout=ws_timeout) as session,
            aiohttp.ClientSession(timeout=rest_timeout) as rest,
        ):
            self._session, self._rest = session, rest
            tasks = [asyncio.create_task(self._connection(p), name=p.name) for p in self.plans]
            tasks.append(asyncio.create_task(self._write_loop(), name="redis-writer"))
            tasks.append(asyncio.create_task(self._metrics_loop(), name="emf-metrics"))
            try:
                await self._stop.wait()
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        self._stop.set()

    def healthy(self, fresh_s: float) -> tuple[bool, str]:
        now = time.monotonic()
        for p in self.plans:
            if not self.metrics.connected.get(p.name):
                return False, f"{p.name} not connected"
            if now - self.metrics.last_frame.get(p.name, 0.0) > fresh_s:
                return False, f"{p.name} silent for more than {fresh_s:g} s"
        if now - self.metrics.last_write_ok > fresh_s:
            return False, f"no successful Redis write for more than {fresh_s:g} s"
        return True, "ok"

    # ------------------------------------------------------------ reading

    async def _connection(self, cp: ConnectionPlan) -> None:
        assert self._session is not None
        attempt = 0
        while not self._stop.is_set():
            delivered = False
            try:
                async with self._session.ws_connect(cp.url, autoping=True, timeout=_WS_TIMEOUT) as ws:
                    for frame in cp.subscribe_frames:  # resubscribe on every (re)connect
                        await ws.send_str(frame)
                    self.metrics.connected[cp.name] = True
                    log.info("connected %s (%d streams)", cp.name, len(cp.streams))
                    delivered = await self._read(ws, cp)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning("%s: %s: %s", cp.name, type(exc).__name__, exc)
            finally:
                self.metrics.connected[cp.name] = False
            if self._stop.is_set():
                return
            self.metrics.reconnects += 1
            attempt = 0 if delivered else attempt + 1
            delay = backoff_s(attempt, self.config.backoff_base_s, self.config.backoff_cap_s)
            log.info("reconnecting %s in %.2f s", cp.name, delay)
            await asyncio.sleep(delay)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, cp: ConnectionPlan) -> bool:
        """Read until the socket closes (or the watchdog closes it); True if any frame arrived."""
        parse = PARSERS[cp.exchange]
        delivered = False
        frames = 0
        self.metrics.last_frame[cp.name] = time.monotonic()
        watchdog = asyncio.create_task(self._watchdog(ws, cp))
        try:
            while True:
                # no receive(timeout=...): a timeout context per frame costs more than parsing it
                msg = await ws.receive()
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    log.warning("%s closed: %s %s", cp.name, msg.type.name, msg.extra or "")
                    return delivered
                delivered = True
                self.metrics.last_frame[cp.name] = time.monotonic()
                candles = self._handle(msg.data, cp, parse)
                for bar in candles:  # rare next to prices: may wait on REST or on a full FIFO
                    await self._fill_gap(bar)
                    await self.buffer.put(bar)
                frames += 1
                if frames % _YIELD_EVERY == 0:
                    # aiohttp returns buffered frames without suspending; let the writer run
                    await asyncio.sleep(0)
        finally:
            watchdog.cancel()

    async def _watchdog(self, ws: aiohttp.ClientWebSocketResponse, cp: ConnectionPlan) -> None:
        """Heartbeat: after ``idle_timeout_s`` of silence send one ping; after another, close the
        socket so the reader returns and the connection is re-made."""
        idle = self.config.idle_timeout_s
        pinged = False
        while not ws.closed:
            await asyncio.sleep(idle / 2)
            silent_s = time.monotonic() - self.metrics.last_frame.get(cp.name, 0.0)
            if silent_s < idle:
                pinged = False
            elif not pinged:
                pinged = True
                await (ws.send_str("ping") if cp.exchange == OKX else ws.ping())
            elif silent_s >= 2 * idle:
                log.warning("%s silent for %.1f s after a ping; reconnecting", cp.name, silent_s)
                await ws.close()
                return

    def _handle(
        self, raw: str | bytes, cp: ConnectionPlan, parse: Callable[[str | bytes, Mapping[str, str]], list[Event]]
    ) -> list[Candle]:
        """Parse one frame and queue its prices; return its candles for the caller to queue."""
        self.metrics.messages += 1
        try:
            events = parse(raw, cp.symbols)
        except FeedParseError as exc:
            self.metrics.parse_errors += 1
            n = self.metrics.parse_errors
            if n <= _LOGGED_PARSE_ERRORS or n % 1000 == 0:
                log.warning("%s: skipped frame (%d so far): %s", cp.name, n, exc)
            return []
        candles: list[Candle] = []
        for ev in events:
            if isinstance(ev, Candle):
                candles.append(ev)
            else:
                self.buffer.offer(ev)  # coalescing slot: never refused
        return candles

    # ------------------------------------------------------------ gaps

    async def _fill_gap(self, bar: Candle) -> None:
        """Before ``bar`` is queued, queue any bars missed since the last one seen (closed, from REST)."""
        key = (bar.exchange, bar.symbol, bar.timeframe)
        prev = self._last_bar.get(key)
        if prev is not None and bar.open_ms <= prev[0]:
            if bar.open_ms == prev[0]:
                self._last_bar[key] = (bar.open_ms, prev[1] or bar.closed)
            return
        tf_ms = TIMEFRAME_MS[bar.timeframe]
        if prev is None:
            start = bar.open_ms - self.config.candles_kept * tf_ms if self.config.warmup else bar.open_ms
        else:
            # a bar that never closed before the disconnect is fetched again for its final values
            start = prev[0] if not prev[1] else prev[0] + tf_ms
        # nothing older than what the book keeps is worth fetching
        start = max(start, bar.open_ms - self.config.candles_kept * tf_ms)
        if start < bar.open_ms and not await self._backfill(key, start, bar.open_ms - 1):
            return  # keep the old mark: the next bar retries the whole range
        self._last_bar[key] = (bar.open_ms, bar.closed)

    async def _backfill(self, key: BarKey, start_ms: int, end_ms: int) -> bool:
        if time.monotonic() < self._retry_at.get(key, 0.0):
            return False
        exchange, symbol, timeframe = key
        assert self._rest is not None
        try:
            bars = await backfill.fetch(
                self._rest, exchange, self.venues[exchange].rest_url, symbol, timeframe, start_ms, end_ms
            )
        except backfill.BackfillError as exc:
            self.metrics.backfill_errors += 1
            self._retry_at[key] = time.monotonic() + self.config.backfill_retry_s
            log.warning("backfill %s %s %s [%d, %d] failed: %s", *key, start_ms, end_ms, exc)
            return False
        for b in bars:
            await self.buffer.put(b)
        self.metrics.backfilled += len(bars)
        log.info("backfilled %d %s %s %s bars in [%d, %d]", len(bars), *key, start_ms, end_ms)
        return True

    # ------------------------------------------------------------ writing

    async def _write_loop(self) -> None:
        last = 0.0
        while True:
            wait = last + self.config.flush_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            events, oldest_ms = await self.buffer.take()
            last = time.monotonic()
            if self._before_write is not None:
                await self._before_write()
            try:
                self.metrics.redis_writes += await self.writer.write(events)
            except (RedisError, OSError) as exc:
                self.metrics.write_errors += 1
                log.warning("redis write of %d events failed: %s", len(events), type(exc).__name__)
                continue
            self.metrics.last_write_ok = time.monotonic()
            now_ms = time.time() * 1000
            lags = [now_ms - t for t in oldest_ms if t > 0]
            self.metrics.lags_ms.extend(lags)
            self.metrics.window_lags_ms.extend(lags)

    async def _metrics_loop(self) -> None:
        """Every ``metrics_flush_s``: the window's lag and the reconnects and messages since the last
        flush as CloudWatch EMF (off unless metrics are enabled; tradingbot.adapters.metrics)."""
        while True:
            await asyncio.sleep(self.config.metrics_flush_s)
            self.flush_metrics()

    def flush_metrics(self) -> dict[str, float]:
        m = self.metrics
        window, m.window_lags_ms = m.window_lags_ms, []
        reconnects, messages = m.emitted
        m.emitted = (m.reconnects, m.messages)
        return business_metrics.flush_feed(lags_ms=window, reconnects=m.reconnects - reconnects,
                                           messages=m.messages - messages)  # fmt: skip


def service_from_settings(settings: FeedSection) -> FeedService:
    """Build the service from ``Settings.feed``."""
    config = FeedConfig(
        idle_timeout_s=settings.idle_timeout_s,
        backoff_base_s=settings.backoff_base_s,
        backoff_cap_s=settings.backoff_cap_s,
        rest_timeout_s=settings.rest_timeout_s,
        max_closed_queue=settings.max_closed_queue,
        candles_kept=settings.candles_kept,
        warmup=settings.warmup,
    )
    client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    return FeedService(client, venues(settings), subscriptions(settings), config)
