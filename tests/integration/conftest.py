"""Real PostgreSQL and Redis for the integration tests, started once per session by
tradingbot.entrypoints.local.servers (embedded, or TEST_DATABASE_URL / TEST_REDIS_URL when set) and
stopped at the end."""

from __future__ import annotations

import shutil
import tempfile
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
def db(engine: Engine) -> Engine:
    """The migrated database, emptied before the test."""
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
    _clear_model_cache()
    rt = Runtime(config=Settings(), database_url=servers.database_url, redis_url=servers.redis_url)
    set_runtime(rt)
    yield rt
    set_runtime(None)


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
