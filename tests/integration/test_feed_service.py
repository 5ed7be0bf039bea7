"""The market feed against a local Binance look-alike: prices and candles land in real Redis,
a dropped connection is reconnected and its missed bars backfilled over REST (no gap, no
duplicate), garbage frames are skipped, a slow Redis does not grow the buffer past its bound,
and replay writes a file's candles in order."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.feed.health import make_app
from tradingbot.adapters.feed.messages import BINANCE, OKX, Candle
from tradingbot.adapters.feed.pool import Subscription, Venue
from tradingbot.adapters.feed.replay import replay
from tradingbot.adapters.feed.service import FeedConfig, FeedService
from tradingbot.adapters.feed.store import candles_key, funding_key, latest_funding, latest_price
from tradingbot.adapters.persistence.config import Servers

from ._feed_server import (
    FakeBinance,
    FakeOkx,
    bar,
    drop,
    kline_frame,
    mark_frame,
    okx_candle_frame,
    okx_public_frames,
    trade_frame,
)

SYM = "BTC/USDT:USDT"
pytestmark = pytest.mark.timeout(30)


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def _with_service(
    servers: Servers,
    fake: FakeBinance,
    config: FeedConfig,
    body: Callable[[FeedService, aioredis.Redis], Awaitable[None]],
    before_write: Callable[[], Awaitable[None]] | None = None,
) -> FeedService:
    await fake.start()
    client = aioredis.Redis.from_url(servers.redis_url)
    service = FeedService(
        client,
        [Venue(BINANCE, fake.ws_url, fake.rest_url)],
        [Subscription(SYM, ("1m",))],
        config,
        before_write=before_write,
    )
    task = asyncio.create_task(service.run())
    try:
        await body(service, client)
    finally:
        service.stop()
        await asyncio.wait_for(task, 5)
        await client.aclose()
        await fake.stop()
    return service


def _fast(**kw: object) -> FeedConfig:
    base: dict[str, object] = {"idle_timeout_s": 2.0, "backoff_base_s": 0.05, "backoff_cap_s": 0.2}
    return FeedConfig(**(base | kw))  # type: ignore[arg-type]


def test_disconnect_reconnects_and_backfills_without_gap_or_duplicate(
    cache: Cache, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    history = range(-5, 0)  # served over REST only: the warm-up backfill

    async def first(ws: web.WebSocketResponse, request: web.Request) -> None:
        now = _now_ms()
        await ws.send_str(mark_frame("100.5", "0.0001", now))
        for i in range(5):
            await ws.send_str(kline_frame(i, closed=False, close=999.0))
            await ws.send_str("}{ garbage")
            await ws.send_str(kline_frame(i, closed=True))
        await ws.send_str(kline_frame(5, closed=False, close=555.0))  # bar 5 never closes on this socket
        await ws.send_str(trade_frame("105.25", now))
        await asyncio.sleep(0.2)
        drop(request)  # mid-stream: bars 5..8 are lost with the connection

    async def second(ws: web.WebSocketResponse, request: web.Request) -> None:
        await ws.send_str(kline_frame(9, closed=True))
        await ws.send_str(kline_frame(10, closed=False))
        while not ws.closed:
            await ws.send_str(trade_frame("110.75", _now_ms()))
            await ws.send_str(mark_frame("110.5", "0.0002", _now_ms()))
            await asyncio.sleep(0.05)

    fake = FakeBinance([first, second], lambda: [bar(i) for i in (*history, *range(0, 11))])
    key = candles_key(BINANCE, SYM, "1m")

    async def body(service: FeedService, client: aioredis.Redis) -> None:
        async def done() -> bool:
            raw = await client.get(key)
            return raw is not None and json.loads(raw)[-1][0] == bar(10)[0]

        await _until(done)
        # health: connected, fresh, writing
        async with _Health(service) as url, aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 200, await resp.text()

    with caplog.at_level(logging.WARNING, logger="tradingbot.adapters.feed"):
        service = asyncio.run(_with_service(servers, fake, _fast(), body))

    rows = cache.get_candles(BINANCE, SYM, "1m")
    assert rows is not None
    opens = [int(r[0]) for r in rows]
    assert opens == [bar(i)[0] for i in range(-5, 11)]  # contiguous: no gap, no duplicate
    assert rows[:-1] == [bar(i) for i in range(-5, 10)]  # closed values, not the partial 999/555 closes
    assert service.metrics.reconnects >= 1 and fake.connections >= 2
    assert service.metrics.parse_errors == 5 and "skipped frame" in caplog.text
    assert service.metrics.backfilled == 5 + 4  # warm-up history, then bars 5..8
    gap = fake.kline_requests[-1]
    assert (int(gap["startTime"]), int(gap["endTime"])) == (bar(5)[0], bar(9)[0] - 1)
    assert fake.stream_queries[0] == fake.stream_queries[1] == "btcusdt@aggTrade/btcusdt@kline_1m/btcusdt@markPrice@1s"
    quote = latest_price(cache, BINANCE, SYM)
    assert quote is not None and quote.price == Decimal("110.75")
    funding = latest_funding(cache, BINANCE, SYM)
    assert funding is not None and funding.rate == Decimal("0.0002") and funding.mark == Decimal("110.5")


class _Health:
    """Serve the service's /health on a free loopback port for the duration of a block."""

    def __init__(self, service: FeedService) -> None:
        self.runner = web.AppRunner(make_app(service, fresh_s=5.0), access_log=None)

    async def __aenter__(self) -> str:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}/health"

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


def test_health_is_503_until_connected(servers: Servers) -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(servers.redis_url)
        service = FeedService(client, [Venue(BINANCE, "ws://127.0.0.1:9", "http://127.0.0.1:9")], [Subscription(SYM)])
        async with _Health(service) as url, aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 503
            assert "not connected" in (await resp.json())["reason"]
        await client.aclose()

    asyncio.run(scenario())


def test_slow_redis_writer_does_not_grow_the_buffer(cache: Cache, servers: Servers) -> None:
    n_bars, n_trades, bound = 200, 4000, 20

    async def blast(ws: web.WebSocketResponse, request: web.Request) -> None:
        for i in range(n_bars):
            for j in range(n_trades // n_bars):
                await ws.send_str(trade_frame(f"{100 + j}.5", _now_ms()))
            await ws.send_str(kline_frame(i, closed=True))
        while not ws.closed:
            await asyncio.sleep(0.05)

    fake = FakeBinance([blast], lambda: [])

    async def slow() -> None:
        await asyncio.sleep(0.05)  # every batch waits: Redis is "slow"

    async def body(service: FeedService, client: aioredis.Redis) -> None:
        async def done() -> bool:
            raw = await client.get(candles_key(BINANCE, SYM, "1m"))
            return raw is not None and len(json.loads(raw)) == n_bars

        await _until(done, 15)

    service = asyncio.run(
        _with_service(servers, fake, _fast(max_closed_queue=bound, warmup=False), body, before_write=slow)
    )
    # closed bars wait (never dropped), prices coalesce: at most the bound plus one slot per stream
    assert bound <= service.buffer.high_water <= bound + 3  # the bound was reached, and held
    assert service.buffer.coalesced > n_trades / 2
    assert service.metrics.messages >= n_bars + n_trades
    rows = cache.get_candles(BINANCE, SYM, "1m")
    assert rows == [bar(i) for i in range(n_bars)]


def test_latest_price_treats_stale_as_unavailable(cache: Cache) -> None:
    now = _now_ms()
    cache.put_price(BINANCE, SYM, Decimal("101.5"), now - 8_000)
    assert latest_price(cache, BINANCE, SYM, max_age_s=5) is None
    assert latest_price(cache, BINANCE, SYM, max_age_s=10) is not None
    cache.client.set(funding_key(BINANCE, SYM), json.dumps({"mark": "1", "rate": None, "next": None, "t": now}))
    assert latest_funding(cache, BINANCE, SYM, now_ms=now + 6_000) is None
    assert latest_price(cache, BINANCE, "ETH/USDT:USDT") is None


def test_replay_writes_candles_in_order(cache: Cache, tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(6):
        lines.append(f"2024-01-01T{i:02d}:00:00Z,{100 + i},{102 + i},{99 + i},{101 + i},{10 + i}")
    path.write_text("\n".join(lines) + "\n")
    seen: list[tuple[int, list[float] | None, Decimal | None]] = []

    def on_bar(b: Candle) -> None:
        rows = cache.get_candles(BINANCE, SYM, "1h")
        quote = latest_price(cache, BINANCE, SYM)
        seen.append((b.open_ms, rows[-1] if rows else None, quote.price if quote else None))

    assert replay(path, math.inf, cache, on_bar=on_bar) == 6
    t0 = 1704067200000
    assert [s[0] for s in seen] == [t0 + i * 3_600_000 for i in range(6)]
    assert [s[1] for s in seen] == [[t0 + i * 3_600_000, 100 + i, 102 + i, 99 + i, 101 + i, 10 + i] for i in range(6)]
    assert [s[2] for s in seen] == [Decimal(f"{101 + i}.0") for i in range(6)]
    rows = cache.get_candles(BINANCE, SYM, "1h")
    assert rows is not None and [r[0] for r in rows] == [t0 + i * 3_600_000 for i in range(6)]

    # paced: 1h bars at 360x are 10 s apart, spent in 5 s sleeps that rewrite the keys (15 s TTL)
    sleeps: list[float] = []
    cache.client.flushdb()
    assert replay(path, 360, cache, warmup=3, sleep=sleeps.append) == 6
    assert sleeps == [5.0, 5.0] * 3  # bars 0-2 at once, then a pause before each of 3, 4, 5


def test_okx_public_and_business_reconnect_and_backfill(cache: Cache, servers: Servers) -> None:
    async def public(ws: web.WebSocketResponse, request: web.Request) -> None:
        while not ws.closed:
            for frame in okx_public_frames("42000.5", _now_ms()):
                await ws.send_str(frame)
            await asyncio.sleep(0.05)

    async def business_first(ws: web.WebSocketResponse, request: web.Request) -> None:
        for i in range(3):
            await ws.send_str(okx_candle_frame(i, confirmed=False, close=999.0))
            await ws.send_str(okx_candle_frame(i, confirmed=True))
        await ws.send_str(okx_candle_frame(3, confirmed=False, close=333.0))
        await asyncio.sleep(0.2)
        drop(request)

    async def business_second(ws: web.WebSocketResponse, request: web.Request) -> None:
        await ws.send_str(okx_candle_frame(6, confirmed=True))
        await ws.send_str(okx_candle_frame(7, confirmed=False))
        while not ws.closed:
            await asyncio.sleep(0.05)

    fake = FakeOkx(
        {"public": [public], "business": [business_first, business_second]},
        lambda: [bar(i) for i in range(-3, 8)],
    )
    key = candles_key(OKX, SYM, "1m")

    async def scenario() -> FeedService:
        await fake.start()
        client = aioredis.Redis.from_url(servers.redis_url)
        service = FeedService(client, [Venue(OKX, fake.ws_url, fake.rest_url)], [Subscription(SYM, ("1m",))], _fast())
        task = asyncio.create_task(service.run())
        try:

            async def done() -> bool:
                raw = await client.get(key)
                return raw is not None and json.loads(raw)[-1][0] == bar(7)[0] and len(json.loads(raw)) == 11

            await _until(done)
            async with _Health(service) as url, aiohttp.ClientSession() as http, http.get(url) as resp:
                assert resp.status == 200, await resp.text()
        finally:
            service.stop()
            await asyncio.wait_for(task, 5)
            await client.aclose()
            await fake.stop()
        return service

    service = asyncio.run(scenario())
    rows = cache.get_candles(OKX, SYM, "1m")
    assert rows is not None
    assert [int(r[0]) for r in rows] == [bar(i)[0] for i in range(-3, 8)]
    assert rows[:-1] == [bar(i) for i in range(-3, 7)]  # bar 3's final values came from REST
    assert service.metrics.reconnects >= 1 and fake.connections["business"] >= 2
    assert fake.subscriptions["business"][0] == fake.subscriptions["business"][1]  # resubscribed
    assert {a["channel"] for a in fake.subscriptions["public"][0]["args"]} == {"trades", "mark-price", "funding-rate"}
    quote = latest_price(cache, OKX, SYM)
    assert quote is not None and quote.price == Decimal("42000.5")
    funding = latest_funding(cache, OKX, SYM)
    assert funding is not None and funding.mark == Decimal("42000.5") and funding.rate == Decimal("0.0003")


def test_cli_feed_replay(cache: Cache, servers: Servers, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from tradingbot.entrypoints.cli.feed import feed

    app = typer.Typer()
    app.callback()(lambda: None)
    app.command("feed")(feed)  # as the main CLI mounts it
    path = tmp_path / "bars.csv"
    rows = [f"2024-01-01T{i:02d}:00:00Z,{100 + i},{102 + i},{99 + i},{101 + i},{10 + i}" for i in range(4)]
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    args = ["feed", "--replay", str(path), "--speed", "inf", "--redis-url", servers.redis_url]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    candles = cache.get_candles(BINANCE, SYM, "1h")
    assert candles is not None and [c[4] for c in candles] == [101, 102, 103, 104]
    bad = CliRunner().invoke(app, ["feed", "--replay", str(tmp_path / "missing.csv"), "--redis-url", servers.redis_url])
    assert bad.exit_code == 2 and "not found" in bad.output


def test_silent_connection_is_pinged_then_replaced(
    cache: Cache, servers: Servers, caplog: pytest.LogCaptureFixture
) -> None:
    async def silent(ws: web.WebSocketResponse, request: web.Request) -> None:
        await ws.send_str(kline_frame(0, closed=True))
        while not ws.closed:  # the socket stays open but nothing more arrives (pongs are not data)
            await asyncio.sleep(0.05)

    async def live(ws: web.WebSocketResponse, request: web.Request) -> None:
        await ws.send_str(kline_frame(1, closed=True))
        while not ws.closed:
            await ws.send_str(trade_frame("120.5", _now_ms()))
            await asyncio.sleep(0.05)

    fake = FakeBinance([silent, live], lambda: [bar(i) for i in range(2)])

    async def body(service: FeedService, client: aioredis.Redis) -> None:
        async def done() -> bool:
            raw = await client.get(candles_key(BINANCE, SYM, "1m"))
            return raw is not None and len(json.loads(raw)) == 2

        await _until(done)

    with caplog.at_level(logging.WARNING, logger="tradingbot.adapters.feed"):
        service = asyncio.run(_with_service(servers, fake, _fast(idle_timeout_s=0.3, warmup=False), body))
    assert service.metrics.reconnects >= 1 and "after a ping; reconnecting" in caplog.text
    assert cache.get_candles(BINANCE, SYM, "1m") == [bar(0), bar(1)]
