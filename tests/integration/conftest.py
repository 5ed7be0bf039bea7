"""Real PostgreSQL and Redis for the integration tests, started once per session by
tradingbot.entrypoints.local.servers (embedded, or TEST_DATABASE_URL / TEST_REDIS_URL when set) and
stopped at the end."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.config import Servers
from tradingbot.adapters.persistence.db import create_db_engine, dispose_engines, normalize_url, session_scope
from tradingbot.adapters.persistence.models import TABLES
from tradingbot.entrypoints.local.runner import LocalStepFunctions
from tradingbot.entrypoints.local.servers import running_servers
from tradingbot.pipeline.runtime import Runtime, set_runtime
from tradingbot.settings import Settings

from ._live_market import LiveMarket, Market, point_runtime_at, series


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    # Not pytest's tmp_path: its parents are mode 0700, and as root PostgreSQL runs as 'nobody'.
    base = Path(tempfile.mkdtemp(prefix="tradingbot-it-"))
    base.chmod(0o755)
    try:
        with running_servers(base, purpose="test") as running:
            yield running
    finally:
        dispose_engines()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def engine(servers: Servers) -> Iterator[Engine]:
    eng = create_db_engine(servers.database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def db(engine: Engine, cache: Cache) -> Engine:
    """The migrated database, emptied before the test, and Redis with it (the ``cache`` fixture
    flushes it): RESTART IDENTITY hands the account ids out again, and Redis keys name them (a kill
    switch one test left engaged for account 1 would halt the next test's first account)."""
    names = ", ".join(t.name for t in TABLES)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    return engine


@pytest.fixture
def fresh_database_url(servers: Servers) -> Iterator[str]:
    """An empty database on the same server, dropped afterwards (the migration tests start from it)."""
    url = normalize_url(servers.database_url)
    name = f"tb_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def cache(servers: Servers) -> Cache:
    c = Cache.from_url(servers.redis_url)
    c.client.flushdb()
    return c


@pytest.fixture
def closed_port() -> int:
    """A TCP port on 127.0.0.1 with nothing listening (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def database_url_with_password(url: str, password: str) -> str:
    return make_url(url).set(password=password).render_as_string(hide_password=False)


# ------------------------------------------------------------------ the pipeline, locally


def _clear_model_cache() -> None:
    try:
        from tradingbot.adapters.model.predictor import load_default_predictor
    except ImportError:
        return
    load_default_predictor.cache_clear()


@pytest.fixture
def runtime(db: Engine, cache: Cache, servers: Servers, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "BEDROCK_REGION", "AI_OPENAI_COMPATIBLE_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    # the committed LSTM is switched off so each rule test controls its inputs; test_pipeline has
    # a test with the model on
    monkeypatch.setenv("MODEL_ARTIFACT_URI", "off")
    # no internet: a cold candle cache's REST backfill reaches nothing unless a test points it at a stand-in
    monkeypatch.setenv("FEED_BINANCE_REST_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("FEED_OKX_REST_URL", "http://127.0.0.1:9")
    _clear_model_cache()
    rt = Runtime(config=Settings(), database_url=servers.database_url, redis_url=servers.redis_url)
    set_runtime(rt)
    yield rt
    set_runtime(None)


@pytest.fixture(scope="module")
def btc_market(servers: Servers) -> Iterator[LiveMarket]:
    """The real feed against the local Binance stand-in, for the whole module: BTCUSDT's packaged real
    candles re-timed to end at the bar forming now (each test's flushed Redis is rewritten within
    one stream tick)."""
    with LiveMarket(servers.redis_url, {"BTCUSDT": Market(series("BTC"))}) as market:
        yield market


@pytest.fixture
def live_btc(runtime: Runtime, btc_market: LiveMarket, cache: Cache) -> LiveMarket:
    """The runtime decides on ``btc_market``; waits until the feed rewrote this test's flushed keys."""
    point_runtime_at(runtime, btc_market)
    deadline = time.monotonic() + 5
    while (
        cache.get_candles("binanceusdm", "BTC/USDT:USDT", "1h") is None
        or cache.get_price("binanceusdm", "BTC/USDT:USDT") is None
    ):
        assert time.monotonic() < deadline, "the feed did not rewrite the flushed keys"
        time.sleep(0.02)
    return btc_market


@pytest.fixture
def local(runtime: Runtime) -> Iterator[LocalStepFunctions]:
    sf = LocalStepFunctions(runtime).start()
    yield sf
    sf.stop()


@pytest.fixture
def account(runtime: Runtime) -> tuple[int, str]:
    with session_scope(runtime.engine()) as s:
        acc, token = repo.create_account(s, name="test", exchange="paper", testnet=True)
        return acc.id, token
