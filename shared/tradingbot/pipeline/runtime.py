"""Per-process dependencies of the pipeline, built once per cold start.

Handlers ask :func:`get_runtime` for what they need; tests and the local server install their own
with :func:`set_runtime`. Nothing here is created before it is first used, so a stage that never
touches Redis never connects to it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.market import CandleSource
from tradingbot.adapters.persistence.config import database_url, redis_url
from tradingbot.adapters.persistence.db import get_engine
from tradingbot.adapters.persistence.group_commit import GroupCommit
from tradingbot.settings import PersistenceSection, PipelineSection, Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from tradingbot.adapters.live_candles import LiveCandles


@dataclass
class Runtime:
    config: Settings = field(default_factory=get_settings)
    database_url: str | None = None
    redis_url: str | None = None
    candle_source: CandleSource | None = None  # the packaged file; the stages read live_candles instead
    live_candles: LiveCandles | None = None
    sfn_client: Any = None
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    # None: the settings' DB_POOL_SIZE (1 per Lambda container); the threaded local server asks for more
    db_pool_size: int | None = None
    # a Lambda wakes with sockets the server closed (ping on checkout); `serve`'s busy workers skip the
    # ping and take a dropped connection as DatabaseUnavailable, which the ASL's Retry runs again
    db_pre_ping: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _engine: Engine | None = field(default=None, repr=False)
    _cache: Cache | None = field(default=None, repr=False)
    # account id -> (exchange, monotonic expiry): the stages ask once a minute, not once per stage
    account_exchanges: dict[int, tuple[str, float]] = field(default_factory=dict, repr=False)
    _groups: dict[str, GroupCommit[Any, Any]] = field(default_factory=dict, repr=False)

    @property
    def settings(self) -> PipelineSection:
        """The pipeline section: what the stages read (``rt.settings.min_win_rate`` ...)."""
        return self.config.pipeline

    @settings.setter
    def settings(self, value: PipelineSection) -> None:  # tests and the local runner adjust one field
        self.config = self.config.model_copy(update={"pipeline": value})

    @property
    def persistence(self) -> PersistenceSection:
        return self.config.persistence

    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                url = self.database_url or database_url(self.persistence)
                self._engine = get_engine(
                    url,
                    connect_timeout_s=self.persistence.db_connect_timeout_s,
                    statement_timeout_ms=self.persistence.db_statement_timeout_ms,
                    pool_size=self.db_pool_size or self.persistence.db_pool_size,
                    pre_ping=self.db_pre_ping,
                )
            return self._engine

    def group_commit(self, name: str, process: Callable[[Sequence[Any]], Sequence[Any]]) -> GroupCommit[Any, Any]:
        """This process's :class:`GroupCommit` called ``name`` (created with ``process`` on first use):
        the webhook's writes, shared by the threads of one server."""
        with self._lock:
            group = self._groups.get(name)
            if group is None:
                group = self._groups[name] = GroupCommit(process)
            return group

    def cache(self) -> Cache:
        with self._lock:
            if self._cache is None:
                url = self.redis_url or redis_url(self.persistence)
                self._cache = Cache.from_url(url, timeout_s=self.persistence.redis_timeout_s)
            return self._cache

    def market(self) -> LiveCandles:
        """The live market's candles: the feed's Redis keys, a cold key backfilled over ccxt REST
        (the feed section's REST URLs, so a test points it at its local stand-in)."""
        with self._lock:
            if self.live_candles is None:
                from tradingbot.adapters.live_candles import CcxtOhlcv, LiveCandles

                feed = self.config.feed
                fetcher = CcxtOhlcv(
                    timeout_s=self.settings.backfill_timeout_s,
                    rest_urls={"binanceusdm": feed.binance_rest_url, "okx": feed.okx_rest_url},
                )
                self.live_candles = LiveCandles(
                    self.cache, grace_s=self.settings.candles_grace_s, fetcher=fetcher,
                    now_ms=lambda: int(self.clock().timestamp() * 1000),
                )  # fmt: skip
            return self.live_candles

    def candles(self) -> CandleSource:
        """The packaged BTCUSDT 1h file (backtests, benchmarks); the stages decide on :meth:`market`."""
        with self._lock:
            if self.candle_source is None:
                from tradingbot.adapters.market import BundledCandles  # pandas: only stages that need candles

                self.candle_source = BundledCandles()
            return self.candle_source

    def sfn(self) -> Any:
        with self._lock:
            if self.sfn_client is None:
                import boto3  # adapters only: the domain never imports boto3

                self.sfn_client = boto3.client("stepfunctions", region_name=self.config.aws.region)
            return self.sfn_client


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    global _runtime  # noqa: PLW0603 - one runtime per process (Lambda cold start) by design
    with _runtime_lock:
        if _runtime is None:
            from tradingbot.adapters.aws import with_secrets

            _runtime = Runtime(config=with_secrets(get_settings()))  # on AWS: the secrets the ARNs name
        return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    global _runtime  # noqa: PLW0603
    with _runtime_lock:
        _runtime = runtime
