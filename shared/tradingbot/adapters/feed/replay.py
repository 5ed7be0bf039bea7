"""Replay candles from a file into Redis as if they arrived live (``tradingbot feed --replay``).

Each bar is written as a closed candle (``tb:ohlcv:...``, rolling window of ``keep`` bars) and its
close as the latest price (``tb:px:...``), stamped with the wall clock, not the bar's historical
time: readers judge freshness by that stamp and must see a replayed market as current. Bars are
spaced by their own interval divided by ``speed``; while waiting longer than a few seconds the
keys are rewritten so their 15 s TTL does not lapse between slow bars.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from redis.exceptions import RedisError

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.feed.messages import BINANCE, TIMEFRAME_MS, Candle
from tradingbot.adapters.feed.store import CANDLES_KEPT, TICKS_CHANNEL, CandleSeries

log = logging.getLogger(__name__)

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


# ---------------------------------------------------------------- offline replay on the wall clock

OFFLINE_LABEL = "offline replay"


class OfflineReplay:
    """``make run``'s market when the venue cannot be reached: packaged candles replayed through
    the feed's own Redis keys (``tb:ohlcv``, ``tb:px``; store.py) and its ``tb:ticks`` messages, on
    the wall clock, so every reader (the stages, the paper exchange, the paper matcher) works as
    on the live feed and freshness checks pass.

    One series per symbol. Bars are re-stamped to now: at start the closed window is the sample's
    last ``keep`` bars, stamped with the ``keep`` open times before the current interval, one
    interval apart (a hole in the sample is closed up, so the window has no gap). Each wall-clock
    interval the forming bar closes and the next one starts forming; within it the price walks that
    bar's own path (open -> low -> high -> close when it rose, open -> high -> low -> close when it
    fell), so prices follow the replayed closes and stops and targets can be reached. Past the end
    the sample plays backwards (each bar mirrored: open and close swapped), then forwards again, so
    the price never jumps. There is no funding and no mark price: no ``tb:funding`` key.
    """

    def __init__(
        self,
        cache: Callable[[], Cache],
        series: dict[str, list[list[float]]],  # unified symbol -> [[open ms, o, h, l, c, v], ...] oldest first
        *,
        exchange: str = BINANCE,
        timeframe: str = "1h",
        keep: int = CANDLES_KEPT,
        tick_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if timeframe not in TIMEFRAME_MS:
            raise ValueError(f"timeframe {timeframe!r}: not one of {', '.join(TIMEFRAME_MS)}")
        for symbol, rows in series.items():
            if len(rows) < keep + 2:
                raise ValueError(f"{symbol}: {len(rows)} bars, the replay needs at least {keep + 2}")
        self._cache = cache
        self.series = series
        self.exchange = exchange
        self.timeframe = timeframe
        self.keep = keep
        self.tick_s = tick_s
        self._clock = clock
        self._tf_ms = TIMEFRAME_MS[timeframe]
        self._base_open = int(clock() * 1000) // self._tf_ms * self._tf_ms  # the interval forming at start
        self._decimals = {s: _decimals(rows) for s, rows in series.items()}
        self.writes = 0
        self.last_prices: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def bars_for(self, symbol: str, now_ms: int) -> tuple[list[list[float]], Decimal]:
        """The window (closed bars, then the forming one) and the price at ``now_ms``."""
        rows = self.series[symbol]
        current_open = now_ms // self._tf_ms * self._tf_ms
        j = len(rows) + (current_open - self._base_open) // self._tf_ms  # the forming bar's virtual index
        out: list[list[float]] = []
        for n in range(self.keep, 0, -1):
            o, h, lo, c, v = _virtual(rows, j - n)
            out.append([float(current_open - n * self._tf_ms), o, h, lo, c, v])
        o, h, lo, c, v = _virtual(rows, j)
        frac = min(max((now_ms - current_open) / self._tf_ms, 0.0), 1.0)
        price = round(_path(o, h, lo, c, frac), self._decimals[symbol])
        seen_h, seen_lo = _seen(o, h, lo, c, frac)
        out.append([float(current_open), o, max(seen_h, price), min(seen_lo, price), price, round(v * frac, 8)])
        return out, Decimal(f"{price:.{self._decimals[symbol]}f}")

    def step(self, now_ms: int | None = None) -> None:
        """Write every symbol's window and price once (what the thread does every ``tick_s``)."""
        now = int(self._clock() * 1000) if now_ms is None else now_ms
        cache = self._cache()
        updates: list[list[object]] = []
        for symbol in self.series:
            rows, price = self.bars_for(symbol, now)
            cache.put_candles(self.exchange, symbol, self.timeframe, rows)
            cache.put_price(self.exchange, symbol, price, now)
            self.last_prices[symbol] = str(price)
            updates.append([self.exchange, symbol, str(price), None, None, None])
        # the feed's tick message (store.py), for the paper matcher: prices only, no mark or funding
        message = json.dumps({"t": now, "u": updates}, separators=(",", ":"))
        try:
            cache.client.publish(TICKS_CHANNEL, message)
        except (RedisError, OSError) as exc:  # the keys are the record; the matcher re-reads them
            log.warning("offline replay: publish failed: %s", type(exc).__name__)
        self.writes += 1

    def start(self) -> OfflineReplay:
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.step()
                except Exception as exc:  # Redis restarting: readers fail closed meanwhile
                    log.warning("offline replay: %s: %s", type(exc).__name__, exc)
                self._stop.wait(self.tick_s)

        self._thread = threading.Thread(target=loop, name="offline-replay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def status(self) -> dict[str, object]:
        return {
            "timeframe": self.timeframe,
            "symbols": sorted(self.series),
            "writes": self.writes,
            "last_prices": dict(self.last_prices),
        }


def sample_series(path: str | Path) -> list[list[float]]:
    """A packaged candle file as ``[[open ms, o, h, l, c, v], ...]`` (validated by load_candles)."""
    from tradingbot.domain.candles import load_candles

    frame = load_candles(path)
    opens = (frame.index.asi8 // 1_000_000).tolist()
    values = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=float).tolist()
    return [[float(t), *row] for t, row in zip(opens, values, strict=True)]


def _virtual(rows: list[list[float]], index: int) -> tuple[float, float, float, float, float]:
    """Bar ``index`` of the sample played forwards, then backwards (mirrored), and so on."""
    n = len(rows)
    m = index % (2 * n - 2)
    if m < n:
        o, h, lo, c, v = rows[m][1:6]
        return o, h, lo, c, v
    o, h, lo, c, v = rows[2 * n - 2 - m][1:6]
    return c, h, lo, o, v  # the same bar played backwards


def _path(o: float, h: float, lo: float, c: float, frac: float) -> float:
    """The price ``frac`` of the way through a bar: open, the near extreme, the far one, close."""
    first, second = (lo, h) if c >= o else (h, lo)
    points = (o, first, second, c)
    x = frac * 3
    i = min(int(x), 2)
    return points[i] + (points[i + 1] - points[i]) * (x - i)


def _seen(o: float, h: float, lo: float, c: float, frac: float) -> tuple[float, float]:
    """High and low reached so far along :func:`_path`."""
    first, second = (lo, h) if c >= o else (h, lo)
    reached = [o] + [p for k, p in enumerate((first, second)) if frac * 3 >= k + 1]
    return max(reached), min(reached)


def _decimals(rows: list[list[float]]) -> int:
    """Decimals the sample's closes carry (at most 8): replayed prices keep that precision."""
    best = 0
    for r in rows[-200:]:
        text = repr(r[4])
        if "e" in text:
            return 8
        best = max(best, len(text.partition(".")[2].rstrip("0")))
    return min(best, 8)
