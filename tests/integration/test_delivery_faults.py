"""The delivery fault suite (issue 16, runtime half): every accepted alert is decided, no order is
sent twice, bad input never gets a 5xx, under kill -9 of `tradingbot serve` inside each stage, a
database or Redis restart, StartExecution failing then recovering, TradingView's resend schedule and
many deliveries of one alert. benchmarks/bench_delivery_faults.py prints the same rows as a table."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tradingbot.adapters.persistence.config import Servers
from tradingbot.adapters.persistence.db import dispose_engines
from tradingbot.entrypoints.lambdas.webhook import handler as webhook_handler
from tradingbot.entrypoints.local.http import make_server, serve_in_thread
from tradingbot.entrypoints.local.runner import LocalStepFunctions
from tradingbot.entrypoints.local.servers import EmbeddedPostgres, EmbeddedRedis, migrate_database

from . import _delivery_faults as faults
from .test_pipeline import alert_body, priced

__all__ = ["priced"]  # the fixture, used by name below


@pytest.fixture
def webhook_url(local: LocalStepFunctions, servers: Servers) -> Iterator[str]:
    from tradingbot.adapters.persistence.db import create_db_engine

    # many connections at once, as `serve` has them (the Lambda default is a pool of 1)
    local.runtime._engine = create_db_engine(servers.database_url, pool_size=20)
    server = make_server("127.0.0.1", 0, webhook_handler)
    serve_in_thread(server)
    yield f"http://127.0.0.1:{server.server_address[1]}/webhook/tradingview"
    server.shutdown()


def _bodies(token: str, n: int) -> list[bytes]:
    return [alert_body(token, price=56588.0 + i * 0.01) for i in range(n)]


@pytest.mark.usefixtures("live_btc")
def test_start_execution_failing_three_times_then_recovering(
    local: LocalStepFunctions, account: tuple[int, str], webhook_url: str
) -> None:
    r = faults.start_failing_then_recovering(local.runtime, webhook_url, _bodies(account[1], 3), failures=3)
    assert (r.accepted, r.decided, r.bad_5xx) == (3, 3, 0), r
    assert r.orders == r.trades, r
    assert "503" in r.note  # the failures were answered as retryable, not swallowed


@pytest.mark.usefixtures("live_btc")
def test_tradingview_resend_schedule_starts_the_alert_after_the_outage(
    local: LocalStepFunctions, account: tuple[int, str], webhook_url: str
) -> None:
    r = faults.tradingview_resend_schedule(local.runtime, webhook_url, _bodies(account[1], 1)[0], outage_s=7.0)
    # sent at 0 s (503) and 5 s (503); the resend at 10 s lands after the 7 s outage and starts it
    assert "[503, 503, 202]" in r.note, r
    assert (r.accepted, r.decided, r.bad_5xx) == (1, 1, 0) and r.orders == r.trades, r


@pytest.mark.usefixtures("live_btc", "priced")
def test_many_deliveries_of_one_alert_make_one_execution_and_at_most_one_order(
    local: LocalStepFunctions, account: tuple[int, str], webhook_url: str
) -> None:
    r = faults.many_deliveries(local.runtime, webhook_url, alert_body(account[1]), deliveries=300)
    assert (r.accepted, r.decided, r.bad_5xx) == (1, 1, 0), r
    assert "1 execution(s)" in r.note and "{202: 300}" in r.note, r
    assert r.orders == r.trades == 1, r  # the trade path: one order, once


# ---------------------------------------------------------------- `tradingbot serve` as a real process


@pytest.fixture(scope="module")
def own_servers() -> Iterator[tuple[Servers, EmbeddedPostgres, EmbeddedRedis, Path]]:
    """A PostgreSQL and Redis of this module's own: the restart rows stop and start them."""
    base = Path(tempfile.mkdtemp(prefix="tradingbot-faults-"))
    base.chmod(0o755)
    pg = EmbeddedPostgres(base / "pg", durable=False)
    redis = EmbeddedRedis(base / "redis")
    try:
        db_url = pg.start()
        redis_url = redis.start()
        migrate_database(db_url)
        yield Servers(database_url=db_url, redis_url=redis_url), pg, redis, base
    finally:
        dispose_engines()
        redis.stop()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def drill(own_servers: tuple[Servers, EmbeddedPostgres, EmbeddedRedis, Path], tmp_path: Path) -> tuple:
    from tradingbot.adapters.persistence.db import create_db_engine

    servers, pg, redis, _ = own_servers
    engine = create_db_engine(servers.database_url)
    return engine, tmp_path, faults.serve_env(servers.database_url, servers.redis_url), pg, redis


@pytest.mark.timeout(900)  # two `serve` starts and a full pipeline on a shared 2-core machine
@pytest.mark.parametrize("state", ["Predict", "Ensemble", "Execute", "Execute+", "RecordTrade"])
def test_kill_9_of_serve_inside_a_stage_loses_no_alert_and_doubles_no_order(drill: tuple, state: str) -> None:
    engine, data_dir, env, _, _ = drill
    r = faults.kill9_during(engine, data_dir, env, state, alerts=2)
    assert not r.note, r  # reached the state, nothing decided before the kill, all decided after
    assert (r.accepted, r.decided, r.bad_5xx) == (2, 2, 0), r
    assert r.orders == r.trades and r.trades >= 1, r  # the sample alert trades; never twice


@pytest.mark.timeout(900)
def test_database_restart_while_alerts_arrive(drill: tuple) -> None:
    engine, data_dir, env, pg, _ = drill
    r = faults.restart_dependency(engine, data_dir, env, "database", pg.stop, lambda: pg.start() and None)
    assert r.accepted == r.decided == 4, r  # the ones refused with 503 during the outage came back with resends
    assert r.orders == r.trades, r


@pytest.mark.timeout(900)
def test_redis_restart_while_alerts_arrive(drill: tuple) -> None:
    engine, data_dir, env, _, redis = drill
    r = faults.restart_dependency(engine, data_dir, env, "Redis", redis.stop, lambda: redis.start() and None)
    assert r.accepted == r.decided == 4 and r.bad_5xx == 0, r
    assert r.orders == r.trades, r
