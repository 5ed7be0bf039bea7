"""Paper venue: a price update -> the resting paper stop it crosses is filled (target p99 < 50 ms).

Set-up: embedded PostgreSQL and Redis (tradingbot.entrypoints.local.servers); one paper account with a
long BTC position and a reduce-only stop below the price; the paper matcher running in a thread of
this process (as `make run` starts it). Each round: the feed's own :class:`RedisWriter` writes a price
that crosses the stop (SETs the key and PUBLISHes the tick in one script), and we time from just
before that write to the commit of the stop's fill in the matcher (its on_market transaction).

Reference, same run: the same match done the way it happened before the matcher existed, by an
account read (``PaperExchange.fetch_balance`` right after the price is written). That is its best
case; in practice it waited for whatever read the account next (the next alert), without bound.

Also printed, for docs/adr/0007-paper-matching.md: how long a message takes to reach a consumer
over Redis pub/sub (PUBLISH -> a blocked get_message) versus a Redis stream (XADD -> XREAD BLOCK).

Run: ``python benchmarks/bench_paper.py [rounds | --quick]`` (about 20 s on an idle machine).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.exchange.paper import PaperExchange
from tradingbot.adapters.exchange.paper_matcher import start_paper_matcher
from tradingbot.adapters.feed.messages import BINANCE, Price
from tradingbot.adapters.feed.service import RedisWriter
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import create_db_engine, session_scope
from tradingbot.domain.exchange import OrderRequest
from tradingbot.entrypoints.local.servers import running_servers

BTC = "BTC/USDT:USDT"
TARGET_P99_MS = 50.0
# `python benchmarks/bench_paper.py [rounds|--quick]` (run_all.py passes --quick through)
_ARG = sys.argv[1] if len(sys.argv) > 1 else ""
ROUNDS = 50 if _ARG == "--quick" else int(_ARG) if _ARG.isdigit() else 200


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def _row(name: str, samples: list[float], ref: list[float] | None = None) -> None:
    p50, p99 = _pct(samples, 50), _pct(samples, 99)
    tail = ""
    if ref:
        tail = f" {_pct(ref, 50):>9.2f} {_pct(ref, 99):>9.2f} {p50 / _pct(ref, 50):>7.2f}x {p99 / _pct(ref, 99):>7.2f}x"
    print(f"{name:<44} {len(samples):>5} {p50:>9.2f} {p99:>9.2f}{tail}")


def _wait(check: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not in time")
        time.sleep(0.0005)


def _arm(ex: PaperExchange, cache: Cache, i: int) -> str:
    """Price 50000, a long of 0.01 BTC and a stop at 49000 under it; returns the stop's id."""
    cache.put_price(BINANCE, BTC, Decimal(50000))
    ex.create_order(OrderRequest(BTC, "buy", "market", Decimal("0.01"), f"open-{i}"))
    cid = f"sl-{i}"
    ex.create_order(OrderRequest(BTC, "sell", "stop_market", Decimal("0.01"), cid, trigger_price=Decimal(49000),
                                 reduce_only=True))  # fmt: skip
    return cid


def bench_matcher(database_url: str, redis_url: str, account_id: int, statements: list[int]) -> list[float]:
    engine = create_db_engine(database_url)
    cache = Cache.from_url(redis_url)

    def sessions() -> AbstractContextManager[Session]:
        return session_scope(engine)

    ex = PaperExchange(sessions, cache, account_id)
    handle = start_paper_matcher(database_url, redis_url, refresh_s=600)
    matcher = handle.matcher
    filled_at: dict[str, float] = {}
    filled = threading.Event()
    original = PaperExchange.on_market
    sent = threading.local()  # SQL statements this thread sent (every engine; only the matcher's runs here)

    def count(*_args: Any) -> None:
        sent.n = getattr(sent, "n", 0) + 1

    event.listen(Engine, "before_cursor_execute", count)

    def timed(self: PaperExchange, *args: Any, **kwargs: Any) -> list[str]:
        before = getattr(sent, "n", 0)
        done = original(self, *args, **kwargs)  # returns after the fill's commit
        now = time.perf_counter()
        for cid in done:
            filled_at[cid] = now
        if done:
            statements.append(getattr(sent, "n", 0) - before)
            filled.set()
        return done

    PaperExchange.on_market = timed  # type: ignore[method-assign]
    samples: list[float] = []

    async def rounds() -> None:
        client = aioredis.Redis.from_url(redis_url)
        writer = RedisWriter(client)
        try:
            for i in range(ROUNDS):
                cid = _arm(ex, cache, i)
                _wait(lambda: any(lv.price == 49000 for lv in matcher.levels.get(BTC, ())), "stop loaded")
                filled.clear()
                t0 = time.perf_counter()
                await writer.write([Price(BINANCE, BTC, "48990.0", int(time.time() * 1000))])
                # block (no polling loop competing with the matcher thread for the GIL); a loaded
                # machine can take seconds, which is a sample too, not a crash
                await asyncio.get_running_loop().run_in_executor(None, filled.wait, 60.0)
                if cid not in filled_at:
                    raise RuntimeError(f"round {i}: the stop {cid} was not filled within 60 s")
                samples.append((filled_at[cid] - t0) * 1000)
        finally:
            await client.aclose()

    try:
        _wait(lambda: matcher.stats.reloads > 0, "matcher started")
        asyncio.run(rounds())
    finally:
        PaperExchange.on_market = original  # type: ignore[method-assign]
        event.remove(Engine, "before_cursor_execute", count)
        handle.stop()
        cache.client.close()
        engine.dispose()
    return samples


def bench_account_read(database_url: str, redis_url: str, account_id: int) -> list[float]:
    engine = create_db_engine(database_url)
    cache = Cache.from_url(redis_url)

    def sessions() -> AbstractContextManager[Session]:
        return session_scope(engine)

    ex = PaperExchange(sessions, cache, account_id)
    samples: list[float] = []
    try:
        for i in range(ROUNDS):
            cid = _arm(ex, cache, 10_000 + i)
            t0 = time.perf_counter()
            cache.put_price(BINANCE, BTC, Decimal("48990.0"))
            ex.fetch_balance()  # the read path's _match fills the stop
            samples.append((time.perf_counter() - t0) * 1000)
            with session_scope(engine) as s:
                order = repo.paper_order(s, account_id, cid)
                assert order is not None and order.status == "filled", order
    finally:
        cache.client.close()
        engine.dispose()
    return samples


def bench_delivery(redis_url: str, n: int = 2000) -> tuple[list[float], list[float]]:
    """PUBLISH -> subscriber, and XADD -> XREAD BLOCK consumer: one-message latency, ms."""
    client = redis.Redis.from_url(redis_url)
    pubsub_ms: list[float] = []
    stream_ms: list[float] = []
    ready = threading.Event()

    def consume_pubsub() -> None:
        sub = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        sub.subscribe("bench:ticks")
        ready.set()
        got = 0
        while got < n:
            msg = sub.get_message(timeout=1.0)
            if msg is not None:
                pubsub_ms.append((time.perf_counter() - float(msg["data"])) * 1000)
                got += 1
        sub.close()

    def consume_stream() -> None:
        reader = redis.Redis.from_url(redis_url)
        last = "$"
        ready.set()
        got = 0
        while got < n:
            for _, entries in reader.xread({"bench:stream": last}, block=1000) or []:
                for entry_id, fields in entries:
                    stream_ms.append((time.perf_counter() - float(fields[b"t"])) * 1000)
                    last = entry_id
                    got += 1
        reader.close()

    for consume, send in (
        (consume_pubsub, lambda: client.publish("bench:ticks", repr(time.perf_counter()))),
        (consume_stream, lambda: client.xadd("bench:stream", {"t": repr(time.perf_counter())}, maxlen=1000)),
    ):
        ready.clear()
        t = threading.Thread(target=consume)
        t.start()
        ready.wait()
        time.sleep(0.05)
        for _ in range(n):
            send()
            time.sleep(0.0005)
        t.join(10)
    client.close()
    return pubsub_ms, stream_ms


def main() -> int:
    base = Path(tempfile.mkdtemp(prefix="tradingbot-bench-paper-"))
    base.chmod(0o755)
    try:
        with running_servers(base, purpose="test") as servers:
            engine = create_db_engine(servers.database_url)
            with session_scope(engine) as s:
                a, _ = repo.create_account(s, name=f"bench-{time.time_ns()}", exchange="paper", testnet=True)
                b, _ = repo.create_account(s, name=f"bench-ref-{time.time_ns()}", exchange="paper", testnet=True)
                ours_id, ref_id = a.id, b.id
            engine.dispose()
            per_fill: list[int] = []
            ours = bench_matcher(servers.database_url, servers.redis_url, ours_id, per_fill)
            ref = bench_account_read(servers.database_url, servers.redis_url, ref_id)
            pubsub_ms, stream_ms = bench_delivery(servers.redis_url)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("paper venue: price update -> resting stop filled (embedded PostgreSQL + Redis, matcher thread)")
    head = ("measure", "n", "p50 ms", "p99 ms", "ref p50", "ref p99", "p50/ref", "p99/ref")
    print(f"{head[0]:<44} {head[1]:>5} " + " ".join(f"{h:>9}" for h in head[2:6]) + f" {head[6]:>8} {head[7]:>8}")
    _row("feed write -> matcher fill committed", ours, ref)
    _row("reference: put_price -> fetch_balance match", ref)
    _row("delivery: PUBLISH -> pub/sub subscriber", pubsub_ms, stream_ms)
    _row("delivery: XADD -> XREAD BLOCK (reference)", stream_ms)
    counts = sorted(set(per_fill))
    print(f"SQL statements per stop fill in the matcher: {'/'.join(map(str, counts))} (besides BEGIN and COMMIT;")
    print("the matcher's engine sends no pool pre-ping); 8 plus the ping before, docs/adr/0007-paper-matching.md")
    p99 = _pct(ours, 99)
    verdict = "meets" if p99 < TARGET_P99_MS else "MISSES"
    print(f"target p99 < {TARGET_P99_MS:.0f} ms: {p99:.2f} ms ({verdict}); the reference is a best case: before the")
    print("matcher a stop filled only when something read the account, after any delay")
    return 0 if p99 < TARGET_P99_MS else 1


if __name__ == "__main__":
    sys.exit(main())
