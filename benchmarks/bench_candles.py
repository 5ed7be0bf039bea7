"""Candle read and validation per stage: live candles from the feed's Redis key beside today's
packaged-file read, on loopback (embedded Redis).

    python benchmarks/bench_candles.py [--quick]

Every stage (predict, each vote seat, strategies) reads its candles once per alert. Ours: GET of the
feed key ``tb:ohlcv:binanceusdm:BTC/USDT:USDT:1h`` (500 rows, as the feed keeps them), JSON decode,
closed-bar cut, staleness and length checks, ``candles_from_rows`` (``validate_candles``' rules on
numpy arrays) and the gap check
(``LiveCandles.window``). References, measured in the same run: the packaged file as the stages read
it until now (``BundledCandles.candles``: a slice of a frame loaded once per process), and that
file's cold load (``BundledCandles()``: what each new Lambda container paid once).

``seed_live_market`` is also what bench_pipeline.py uses to give the pipeline a live market: the
packaged real candles re-timed so the last bar is the one forming now, rewritten every second
(the keys' TTL is 15 s) with the price, as the feed would.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.feed.store import CANDLES_KEPT, candles_key
from tradingbot.adapters.live_candles import LiveCandles
from tradingbot.adapters.market import BundledCandles
from tradingbot.entrypoints.local.servers import running_servers

HOUR = 3_600_000
SYMBOL = "BTC/USDT:USDT"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def live_rows(now_ms: int | None = None) -> list[list[float]]:
    """The packaged candles' last 499 bars as closed 1h bars ending now, plus the forming bar."""
    frame = BundledCandles()._frame.iloc[-(CANDLES_KEPT - 1) :]
    forming = (int(time.time() * 1000) if now_ms is None else now_ms) // HOUR * HOUR
    n = len(frame)
    rows = [[forming - (n - i) * HOUR, *map(float, r)] for i, r in enumerate(frame.to_numpy())]
    last = rows[-1][4]
    return [*rows, [forming, last, last, last, last, 0.0]]


def seed_live_market(cache: Callable[[], Cache], every_s: float = 1.0) -> tuple[threading.Event, float]:
    """Keep the feed's candle and price keys for BTC/USDT:USDT 1h fresh until the event is set;
    returns it and the price written (the last close)."""
    stop = threading.Event()
    rows = live_rows()
    price = rows[-1][4]

    def loop() -> None:
        while True:
            c = cache()
            c.client.set(candles_key("binanceusdm", SYMBOL, "1h"), json.dumps(rows), ex=15)
            c.put_price("binanceusdm", SYMBOL, Decimal(repr(price)))
            if stop.wait(every_s):
                return

    threading.Thread(target=loop, name="bench-live-market", daemon=True).start()
    time.sleep(0.05)
    return stop, price


CPU: list[float] = []  # this thread's CPU time per call of the last timed() run, ms


def timed(fn: Callable[[], object], n: int) -> list[float]:
    """Wall time per call, ms; the thread's CPU time per call goes to CPU (on a machine shared with
    other work the wall time includes waiting for a core, the CPU time does not)."""
    out = []
    CPU.clear()
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
        CPU.append((time.thread_time() - c0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 50 if args.quick else 500
    base = Path(tempfile.mkdtemp(prefix="tradingbot-bench-"))
    base.chmod(0o755)
    try:
        with running_servers(base, purpose="test") as servers:
            cache = Cache.from_url(servers.redis_url)
            stop, _ = seed_live_market(lambda: cache)
            live = LiveCandles(lambda: cache, grace_s=30)

            def read_live() -> object:
                return live.window("binanceusdm", "BTCUSDT", "1h", bars=500, min_bars=300)

            window = read_live()
            assert len(window.frame) == CANDLES_KEPT - 1  # type: ignore[attr-defined]
            timed(read_live, 20)  # warm: imports, pandas caches
            ours = timed(read_live, n)
            ours_cpu = list(CPU)
            bundled = BundledCandles()
            ref = timed(lambda: bundled.candles("BTCUSDT", 500), n)
            ref_cpu = list(CPU)
            cold = timed(BundledCandles, max(5, n // 50))
            stop.set()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    p50, p99 = pct(ours, 0.5), pct(ours, 0.99)
    print(f"candle read + validation per stage, {n} reads of 499 closed 1h bars:")
    print(f"  live (Redis GET + decode + stale/length checks + candles_from_rows + gap check): "
          f"p50 {p50:.2f} ms / p99 {p99:.2f} ms")  # fmt: skip
    r50, r99 = pct(ref, 0.5), pct(ref, 0.99)
    print(f"  reference, packaged file as the stages read it (slice of a frame loaded once): "
          f"p50 {r50:.3f} ms / p99 {r99:.3f} ms -> ratio {p50 / r50:.0f}x / {p99 / r99:.0f}x")  # fmt: skip
    print(f"  CPU time of this thread per read, p50: live {pct(ours_cpu, 0.5):.2f} ms, packaged slice "
          f"{pct(ref_cpu, 0.5):.3f} ms (wall time above includes waiting for a core on a shared machine)")  # fmt: skip
    c50 = pct(cold, 0.5)
    print(f"  reference, packaged file loaded cold (once per container until now): p50 {c50:.1f} ms "
          f"-> live read is {p50 / c50:.2f}x of it")  # fmt: skip
    print(f"  per alert (predict + 3 vote seats + strategies = 5 reads): {5 * p50:.1f} ms at p50")


if __name__ == "__main__":
    main()
