"""Replay candles from a file into Redis as if they arrived live (``tradingbot feed --replay``).

Each bar is written as a closed candle (``tb:ohlcv:...``, rolling window of ``keep`` bars) and its
close as the latest price (``tb:px:...``), stamped with the wall clock, not the bar's historical
time: readers judge freshness by that stamp and must see a replayed market as current. Bars are
spaced by their own interval divided by ``speed``; while waiting longer than a few seconds the
keys are rewritten so their 15 s TTL does not lapse between slow bars.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.feed.messages import BINANCE, TIMEFRAME_MS, Candle
from tradingbot.adapters.feed.store import CANDLES_KEPT, CandleSeries

REFRESH_S = 5.0  # well inside the 15 s TTL


def timeframe_of(interval_ms: int) -> str:
    for name, ms in TIMEFRAME_MS.items():
        if ms == interval_ms:
            return name
    raise ValueError(f"bar interval of {interval_ms} ms matches no supported timeframe")


def replay(
    file: str | Path,
    speed: float,
    cache: Cache,
    *,
    exchange: str = BINANCE,
    symbol: str = "BTC/USDT:USDT",
    keep: int = CANDLES_KEPT,
    warmup: int = 0,
    limit: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_bar: Callable[[Candle], None] | None = None,
) -> int:
    """Write the file's candles in order at ``speed`` x real time; returns how many were written.

    ``warmup`` leading bars are written at once (history for indicators), the rest paced.
    ``speed`` may be ``math.inf`` (no waiting)."""
    from tradingbot.domain.candles import bar_interval, load_candles

    if not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    frame = load_candles(file)
    if limit is not None:
        frame = frame.iloc[: warmup + limit]
    interval_ms = int(bar_interval(frame).total_seconds() * 1000)
    timeframe = timeframe_of(interval_ms)
    series = CandleSeries(keep)
    opens = (frame.index.asi8 // 1_000_000).tolist()  # ns -> ms
    rows = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=float).tolist()
    pause_s = 0.0 if math.isinf(speed) else interval_ms / 1000 / speed
    for i, (open_ms, (o, h, lo, c, v)) in enumerate(zip(opens, rows, strict=True)):
        now_ms = int(time.time() * 1000)
        bar = Candle(exchange, symbol, timeframe, int(open_ms), o, h, lo, c, v, True, now_ms)
        series.upsert(bar)
        if i + 1 < warmup:
            continue  # history goes out in one write with the last warm-up bar
        _write(cache, bar, series)
        if on_bar is not None:
            on_bar(bar)
        if pause_s > 0 and i + 1 < len(opens):  # the next bar comes one (scaled) interval later
            _wait(cache, bar, series, pause_s, sleep)
    return len(opens)


def _write(cache: Cache, bar: Candle, series: CandleSeries) -> None:
    cache.put_candles(bar.exchange, bar.symbol, bar.timeframe, series.rows)
    cache.put_price(bar.exchange, bar.symbol, Decimal(repr(bar.close)), int(time.time() * 1000))


def _wait(cache: Cache, bar: Candle, series: CandleSeries, pause_s: float, sleep: Callable[[float], None]) -> None:
    left = pause_s
    while left > REFRESH_S:
        sleep(REFRESH_S)
        left -= REFRESH_S
        _write(cache, bar, series)  # keep the keys alive (and the price fresh) between slow bars
    sleep(left)
