"""A live market for the pipeline's tests: the REAL market feed (``FeedService``) against the local
Binance USD-M stand-in (``_feed_server.FakeBinance``), writing prices, candles and funding into real
Redis from a background event loop, while a test runs the pipeline in the foreground.

Series are the packaged real BTCUSDT hourly candles, shifted in time so that their last bar is the
one forming now, and scaled per symbol (``ETHUSDT`` at 1/18 of BTC's prices, so an ETH decision on
BTC's candles would be visible in every price). The stand-in keeps streaming the forming bar, a
trade at the series' last close and a mark price, as Binance's streams do; on the feed's first bar
it backfills ``candles_kept`` closed bars over REST (the warm-up), like on an exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from tradingbot.adapters.feed.messages import BINANCE
from tradingbot.adapters.feed.pool import Subscription, Venue
from tradingbot.adapters.feed.service import FeedConfig, FeedService

from ._feed_server import INTERVAL_MS, FakeBinance, kline_frame_row, mark_frame, trade_frame

HOUR = 3_600_000
SCALE = {"BTC": 1.0, "ETH": 1 / 18, "SOL": 1 / 400}


def _bundled_rows() -> list[list[float]]:
    from tradingbot.domain.candles import bundled_path, load_candles

    frame = load_candles(bundled_path())
    return [[0.0, *map(float, row)] for row in frame.to_numpy()[-600:]]


_BUNDLED: list[list[float]] | None = None


def series(base: str, *, bars: int = 560, interval: str = "1h", now_ms: int | None = None) -> list[list[float]]:
    """``bars`` rows ending with the bar forming at ``now_ms``: the bundled candles' last ``bars - 1``
    bars as the closed ones, re-timed to ``interval`` bars, prices x ``SCALE[base]``, then the forming
    bar, opened at the last close and not moved yet."""
    global _BUNDLED  # noqa: PLW0603 - read the packaged file once per test session
    if _BUNDLED is None:
        _BUNDLED = _bundled_rows()
    step = INTERVAL_MS[interval]
    now = int(time.time() * 1000) if now_ms is None else now_ms
    forming = now // step * step
    k = SCALE[base]
    src = _BUNDLED[-(bars - 1) :]
    rows = [[forming - (len(src) - i) * step, r[1] * k, r[2] * k, r[3] * k, r[4] * k, r[5]] for i, r in enumerate(src)]
    last = rows[-1][4]
    return [*rows, [forming, last, last, last, last, 0.0]]


@dataclass
class Market:
    """What the stand-in serves for one symbol (Binance id, e.g. ``ETHUSDT``)."""

    rows: list[list[float]]  # oldest first; the last one is the bar forming now
    price: float | None = None  # trade price streamed; default: the forming bar's close
    stream: bool = True  # False: nothing on the WebSocket for this symbol (a cold cache)

    @property
    def last_price(self) -> float:
        return self.price if self.price is not None else self.rows[-1][4]


@dataclass
class LiveMarket:
    redis_url: str
    markets: dict[str, Market]
    interval: str = "1h"
    listed: Sequence[str] = ("BTC", "ETH", "SOL")
    kline_delay_s: float = 0.0
    stream_every_s: float = 0.1
    fake: FakeBinance | None = field(default=None, init=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _ready: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _stop: asyncio.Event | None = field(default=None, init=False, repr=False)
    _error: BaseException | None = field(default=None, init=False, repr=False)

    @property
    def rest_url(self) -> str:
        assert self.fake is not None
        return self.fake.rest_url

    def klines(self, symbol: str, interval: str) -> list[list[float]]:
        m = self.markets.get(symbol)
        return [] if m is None or interval != self.interval else m.rows

    async def _script(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        with contextlib.suppress(ConnectionError):  # the feed hung up (it is stopping)
            await self._stream(ws)

    async def _stream(self, ws: web.WebSocketResponse) -> None:
        while not ws.closed:
            now = int(time.time() * 1000)
            for sym, m in self.markets.items():
                if not m.stream:
                    continue
                await ws.send_str(kline_frame_row(m.rows[-1], self.interval, closed=False, symbol=sym, event_ms=now))
                await ws.send_str(trade_frame(repr(m.last_price), now, symbol=sym))
                await ws.send_str(mark_frame(repr(m.last_price), "0.0001", now, symbol=sym))
            await asyncio.sleep(self.stream_every_s)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self.fake = FakeBinance([self._script], lambda: [], klines=self.klines, listed=self.listed,
                                kline_delay_s=self.kline_delay_s)  # fmt: skip
        await self.fake.start()
        client = aioredis.Redis.from_url(self.redis_url)
        streamed = [s for s, m in self.markets.items() if m.stream]
        subs = [Subscription(f"{s.removesuffix('USDT')}/USDT:USDT", (self.interval,)) for s in streamed]
        service = FeedService(
            client, [Venue(BINANCE, self.fake.ws_url, self.fake.rest_url)], subs,
            FeedConfig(idle_timeout_s=5.0, backoff_base_s=0.05, backoff_cap_s=0.2, candles_kept=500),
        )  # fmt: skip
        task = asyncio.create_task(service.run()) if subs else None
        try:
            await self._wait_written(client, streamed)
            self._ready.set()
            await self._stop.wait()
        finally:
            if task is not None:
                service.stop()
                await asyncio.wait_for(task, 5)
            await client.aclose()
            await self.fake.stop()

    async def _wait_written(self, client: aioredis.Redis, streamed: list[str]) -> None:
        from tradingbot.adapters.feed.store import candles_key, price_key

        deadline = time.monotonic() + 15
        for sym in streamed:
            unified = f"{sym.removesuffix('USDT')}/USDT:USDT"
            keys = (candles_key(BINANCE, unified, self.interval), price_key(BINANCE, unified))
            while not all([await client.exists(k) for k in keys]):
                if time.monotonic() > deadline:
                    raise AssertionError(f"the feed wrote no candles/price for {sym} in time")
                await asyncio.sleep(0.02)
            # the warm-up backfill lands before the live bar: wait for the whole series
            while len(json.loads(await client.get(keys[0]) or b"[]")) < min(500, len(self.markets[sym].rows)):
                if time.monotonic() > deadline:
                    raise AssertionError(f"the feed's warm-up backfill for {sym} did not finish in time")
                await asyncio.sleep(0.02)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced to the test by __enter__
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    def __enter__(self) -> LiveMarket:
        self._thread = threading.Thread(target=self._run, name="live-market", daemon=True)
        self._thread.start()
        self._ready.wait(20)
        if self._error is not None:
            raise self._error
        if not self._ready.is_set():
            raise AssertionError("the live market did not start")
        return self

    def stop_streaming(self) -> None:
        """The feed goes quiet (its keys expire after their TTL, as on a dead feed)."""
        for m in self.markets.values():
            m.stream = False

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)


def point_runtime_at(runtime: Any, market: LiveMarket, **pipeline: Any) -> None:
    """Point the runtime's REST backfill at the stand-in (and adjust pipeline settings)."""
    cfg = runtime.config
    feed = cfg.feed.model_copy(update={"binance_rest_url": market.rest_url})
    runtime.config = cfg.model_copy(update={"feed": feed, "pipeline": cfg.pipeline.model_copy(update=pipeline)})
    runtime.live_candles = None


Factory = Callable[..., LiveMarket]
