"""Per-process dependencies of the pipeline, built once per cold start.

Handlers ask :func:`get_runtime` for what they need; tests and the local server install their own
with :func:`set_runtime`. Nothing here is created before it is first used, so a stage that never
touches Redis never connects to it.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.market import CandleSource
from tradingbot.adapters.persistence.config import PersistenceSettings, database_url, redis_url
from tradingbot.adapters.persistence.db import get_engine
from tradingbot.pipeline.settings import PipelineSettings, get_settings


@dataclass
class Runtime:
    settings: PipelineSettings = field(default_factory=get_settings)
    persistence: PersistenceSettings = field(default_factory=PersistenceSettings)
    database_url: str | None = None
    redis_url: str | None = None
    candle_source: CandleSource | None = None
    sfn_client: Any = None
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    # 1 per Lambda container; the threaded local server raises it (DB_POOL_SIZE)
    db_pool_size: int = field(default_factory=lambda: int(os.environ.get("DB_POOL_SIZE", "1")))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _engine: Engine | None = field(default=None, repr=False)
    _cache: Cache | None = field(default=None, repr=False)

    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                url = self.database_url or database_url(self.persistence)
                self._engine = get_engine(
                    url,
                    connect_timeout_s=self.persistence.db_connect_timeout_s,
                    statement_timeout_ms=self.persistence.db_statement_timeout_ms,
                    pool_size=self.db_pool_size,
                )
            return self._engine

    def cache(self) -> Cache:
        with self._lock:
            if self._cache is None:
                url = self.redis_url or redis_url(self.persistence)
                self._cache = Cache.from_url(url, timeout_s=self.persistence.redis_timeout_s)
            return self._cache

    def candles(self) -> CandleSource:
        with self._lock:
            if self.candle_source is None:
                from tradingbot.adapters.market import BundledCandles  # pandas: only stages that need candles

                self.candle_source = BundledCandles()
            return self.candle_source

    def sfn(self) -> Any:
        with self._lock:
            if self.sfn_client is None:
                import boto3  # adapters only: the domain never imports boto3

                self.sfn_client = boto3.client("stepfunctions", region_name=self.settings.aws_region)
            return self.sfn_client


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    global _runtime  # noqa: PLW0603 - one runtime per process (Lambda cold start) by design
    with _runtime_lock:
        if _runtime is None:
            from tradingbot.adapters.aws import load_aws_environment

            load_aws_environment()  # on AWS: DATABASE_URL etc. from Secrets Manager, before settings read env
            _runtime = Runtime(settings=PipelineSettings(), persistence=PersistenceSettings())
        return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    global _runtime  # noqa: PLW0603
    with _runtime_lock:
        _runtime = runtime
