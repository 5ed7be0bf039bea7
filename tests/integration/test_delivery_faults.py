"""The delivery fault suite (issue 16, runtime half): every accepted alert is decided, no order is
sent twice, bad input never gets a 5xx, under kill -9 of `tradingbot serve` inside each stage, a
database or Redis restart, StartExecution failing then recovering, TradingView's resend schedule,
many deliveries of one alert and a schemathesis run; and `serve`'s schedule copying refusal tallies
into ingress_refusals. benchmarks/bench_delivery_faults.py prints the same rows as a table."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def test_the_schemathesis_row_accepts_nothing_and_answers_no_5xx(local: LocalStepFunctions, webhook_url: str) -> None:
    # the table's last row (generated bad input; tests/integration/test_ingress.py holds the longer run)
    r = faults.schemathesis_row(local.runtime.engine(), webhook_url.removesuffix("/webhook/tradingview"), examples=60)
    assert (r.accepted, r.decided, r.orders, r.bad_5xx) == (0, 0, 0, 0), r
    assert int(r.note.split(" requests")[0]) >= 60 and "422" in r.note, r  # it ran, and reached the webhook's checks


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


@pytest.fixture(scope="module")
def killed_in_every_stage(own_servers: tuple[Servers, EmbeddedPostgres, EmbeddedRedis, Path]) -> dict[str, faults.Row]:
    """One `serve` holding two executions inside each stage of the trade path at once, killed with
    kill -9 and started again (faults.kill9_inside_every_stage): the rows by stage."""
    from tradingbot.adapters.persistence.db import create_db_engine

    servers, _, _, base = own_servers
    engine = create_db_engine(servers.database_url)
    rows = faults.kill9_inside_every_stage(engine, base / "kill9", faults.serve_env(servers.database_url,
                                                                                      servers.redis_url))  # fmt: skip
    faults.print_table(rows)  # shown with -s, and in the failure's captured output
    return {r.scenario.rsplit(" ", 1)[-1]: r for r in rows}


@pytest.mark.timeout(600)  # the first parameter pays for the drill: two `serve` starts on a shared 2-core machine
@pytest.mark.parametrize("state", faults.STAGES)
def test_kill_9_of_serve_inside_a_stage_loses_no_alert_and_doubles_no_order(
    killed_in_every_stage: dict[str, faults.Row], state: str
) -> None:
    r = killed_in_every_stage[state]
    # both reached the state, nothing decided before the kill, all decided after, 202s (a decision not
    # to trade, with its stored reason, is a decision: the LSTM's call can change across the restart)
    assert not r.note.split("not traded:")[0].strip("; "), r
    assert (r.accepted, r.decided, r.bad_5xx) == (2, 2, 0), r
    assert r.orders == r.trades, r  # one entry order per decision to trade, never two
    if state in ("Execute", "Execute+", "Notify", "RecordTrade"):
        assert r.trades == 2, r  # they had passed Validate before the kill: both trade, once each


@pytest.fixture(scope="module")
def outages(own_servers: tuple[Servers, EmbeddedPostgres, EmbeddedRedis, Path]) -> dict[str, Any]:
    """One `serve` (sweeping every 2 s) through a database restart, then a Redis restart, while
    alerts arrive; then a burst of wrong tokens from a fresh source, to see the schedule copy its
    Redis tallies into ingress_refusals with no refusal arriving after it."""
    from tradingbot.adapters.persistence.db import create_db_engine

    servers, pg, redis, base = own_servers
    engine = create_db_engine(servers.database_url)
    env = faults.serve_env(servers.database_url, servers.redis_url, LOCAL_SWEEP_INTERVAL_S="2")
    flushed: dict[str, Any] = {}

    def restart_pg() -> None:
        pg.start()

    def restart_redis() -> None:
        redis.start()

    rows = faults.restart_dependencies(
        engine, base / "outages", env, [("database", pg.stop, restart_pg), ("Redis", redis.stop, restart_redis)],
        after=lambda app: flushed.update(faults.refusals_flushed_by_serve(engine, servers.redis_url, app)),
    )  # fmt: skip
    faults.print_table(rows)
    return {r.scenario.split(" ")[0]: r for r in rows} | {"flushed": flushed}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("dependency", ["database", "Redis"])
def test_a_dependency_restart_while_alerts_arrive_loses_none(outages: dict[str, Any], dependency: str) -> None:
    r = outages[dependency]
    # the ones refused with 503 during the outage came back with TradingView's resends
    assert (r.accepted, r.decided, r.bad_5xx) == (4, 4, 0), r
    assert r.orders == r.trades, r
    assert "not all decided" not in r.note, r


def test_serve_copies_refusal_tallies_into_the_database_on_its_schedule(outages: dict[str, Any]) -> None:
    f = outages["flushed"]
    assert f["sent"] == 20 and f["redis"] == 20, f  # every refused attempt counted once in Redis
    assert f["db_after_burst"] < 20, f  # the refusals themselves flushed only the first (one flush per 10 s)
    assert f["db"] == 20, f  # with no refusal after the burst, the sweep loop copied the rest
