"""``tradingbot serve``'s market: the live feed in-process, or the labelled offline replay.

At start the venues of ``FEED_EXCHANGES`` are asked for one bar over REST (adapters/feed/probe.py).
All answer: the market feed (the same ``FeedService`` the Fargate task runs, configured by
``FEED_*``) runs in a background thread of this process, writing prices, candles and funding into
the local Redis. One does not: the packaged candles are replayed through the same keys, on the
wall clock (``adapters/feed/replay.OfflineReplay``), and everything says "offline replay": the
console at start, ``GET /health`` (``market``), and every decision recorded while it runs
(``stages._execution.market``, shown by ``tradingbot executions list|show``). ``LOCAL_MARKET=live``
or ``replay`` skips the choice. Stopping ``serve`` stops the feed or the replay.

The mode document is also written to Redis (``Cache.put_market_mode``, refreshed every few
seconds, expiring with the prices), which is where ``/health`` reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable
from typing import Any

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.feed.replay import OFFLINE_LABEL, OfflineReplay, sample_series
from tradingbot.settings import FeedSection, Settings

log = logging.getLogger(__name__)
LIVE_LABEL = "live"
HEARTBEAT_S = 5.0
SAMPLE_TIMEFRAME = "1h"


def _unified(ticker: str) -> str:
    return f"{ticker.upper().removesuffix('.P').removesuffix('USDT')}/USDT:USDT"


class LocalMarket:
    def __init__(self, settings: Settings, redis_url: str, cache: Callable[[], Cache]) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self._cache = cache
        self.mode = ""
        self.reason = ""
        self.started = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.venue = settings.pipeline.paper_reference_venue
        self.feed_settings = self._feed_settings()
        self.replay: OfflineReplay | None = None
        self._service: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._feed_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def _feed_settings(self) -> FeedSection:
        """``FEED_*`` as set; symbols default to the allow-listed ones (not just BTC), so every symbol
        an alert may name has a market; Redis is the one ``serve`` uses."""
        feed = self.settings.feed
        update: dict[str, Any] = {"redis_url": self.redis_url}
        if "symbols" not in feed.model_fields_set:
            update["symbols"] = tuple(sorted(_unified(s) for s in self.settings.pipeline.symbol_allowlist))
        return feed.model_copy(update=update)

    # ------------------------------------------------------------ start / stop

    def start(self) -> LocalMarket:
        choice = self.settings.local.market
        if choice == "replay":
            self._start_replay("LOCAL_MARKET=replay")
        elif choice == "live":
            self._start_feed("LOCAL_MARKET=live")
        else:
            unreachable = self._probe()
            if unreachable:
                self._start_replay("venue unreachable: " + "; ".join(unreachable))
            else:
                self._start_feed("the venue answered")
        self._publish()
        self._heartbeat = threading.Thread(target=self._beat, name="market-mode", daemon=True)
        self._heartbeat.start()
        return self

    def _probe(self) -> list[str]:
        from tradingbot.adapters.feed.probe import probe

        feed = self.feed_settings
        failures = []
        for exchange in feed.exchanges:
            url = feed.okx_rest_url if exchange == "okx" else feed.binance_rest_url
            result = probe(exchange, url, feed.symbols[0], timeout_s=self.settings.local.probe_timeout_s)
            if not result.ok:
                failures.append(f"{exchange} at {url}: {result.reason}")
        return failures

    def _start_feed(self, reason: str) -> None:
        from tradingbot.adapters.feed.service import service_from_settings

        self.mode, self.reason = LIVE_LABEL, reason
        ready = threading.Event()

        async def main() -> None:
            self._service = service_from_settings(self.feed_settings)
            self._loop = asyncio.get_running_loop()
            ready.set()
            try:
                await self._service.run()
            finally:
                await self._service.writer.client.aclose()

        def run() -> None:
            try:
                asyncio.run(main())
            except Exception:
                log.exception("market feed stopped")
            finally:
                ready.set()

        self._feed_thread = threading.Thread(target=run, name="market-feed", daemon=True)
        self._feed_thread.start()
        ready.wait(10)

    def _start_replay(self, reason: str) -> None:
        from tradingbot.adapters.history import SAMPLE_SYMBOLS
        from tradingbot.domain.candles import bundled_path

        self.mode, self.reason = OFFLINE_LABEL, reason
        allowed = {s.upper().removesuffix(".P") for s in self.settings.pipeline.symbol_allowlist}
        series = {
            _unified(t): sample_series(bundled_path(f"{t}-{SAMPLE_TIMEFRAME}.csv.gz"))
            for t in SAMPLE_SYMBOLS
            if t in allowed
        }
        replay = OfflineReplay(
            self._cache, series, exchange=self.venue, timeframe=SAMPLE_TIMEFRAME, keep=self.feed_settings.candles_kept
        )
        replay.step()  # the keys exist before the first alert can arrive
        self.replay = replay.start()

    def stop(self) -> None:
        self._stop.set()
        if self.replay is not None:
            self.replay.stop()
        if self._service is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._service.stop)
        if self._feed_thread is not None:
            self._feed_thread.join(10)
        if self._heartbeat is not None:
            self._heartbeat.join(HEARTBEAT_S + 1)

    # ------------------------------------------------------------ what it is doing

    def document(self) -> dict[str, Any]:
        """The mode document: ``/health``'s ``market``, and the decision record's ``_execution.market``."""
        doc: dict[str, Any] = {
            "mode": self.mode,
            "live": self.mode == LIVE_LABEL,
            "reason": self.reason,
            "venue": self.venue,
            "since": self.started.isoformat(),
        }
        if self.replay is not None:
            doc |= {"source": "packaged Binance spot 1h samples (shared/tradingbot/datasets), re-timed to now"}
            doc |= self.replay.status()
        elif self._service is not None:
            feed = self.feed_settings
            healthy, why = self._service.healthy(feed.fresh_s)
            doc |= {
                "symbols": list(feed.symbols),
                "timeframes": list(feed.timeframes),
                "exchanges": list(feed.exchanges),
                "feed": "ok" if healthy else why,
                "connected": dict(self._service.metrics.connected),
                "messages": self._service.metrics.messages,
            }
        return doc

    def summary(self) -> dict[str, Any]:
        """What a decision record keeps: the mode and why, without the changing counters."""
        return {k: v for k, v in self.document().items() if k in ("mode", "live", "reason", "venue", "source")}

    def _publish(self) -> None:
        try:
            self._cache().put_market_mode(self.document())
        except Exception as exc:  # Redis restarting; the next beat writes it again
            log.warning("market mode: %s", type(exc).__name__)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self._publish()
