"""The delivery fault table (issue 16, runtime half), on 127.0.0.1 only.

    python benchmarks/bench_delivery_faults.py [--quick]

One row per fault: alerts accepted, alerts decided (must be equal), entry orders and the decisions
that filled (equal: one order per decision to trade, never two), 5xx answers to bad input (must be
0). Rows (tests/integration/_delivery_faults.py): kill -9 of `tradingbot serve` inside each stage of
the trade path (one `serve` holds two executions inside every stage at once; one kill -9 lands in
all of them; each row counts the alerts that were inside its stage), database restart and Redis
restart (one `serve`, one after the other), StartExecution failing N times then recovering,
TradingView's resend schedule after a 5xx (5 s apart, up to 3 times), 1,000 deliveries of one alert,
and a schemathesis run against the webhook's OpenAPI document; plus any row registered in
``EXTRA_ROWS``. About 2-6 minutes on a shared 2-core machine (``--quick``: fewer stages and deliveries).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.integration._delivery_faults

from tests.integration import _delivery_faults as faults

from bench_candles import seed_live_market
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import create_db_engine, dispose_engines, session_scope
from tradingbot.entrypoints.cli.pipeline import _model_direction
from tradingbot.entrypoints.lambdas.webhook import handler as webhook_handler
from tradingbot.entrypoints.local.http import make_server, serve_in_thread
from tradingbot.entrypoints.local.runner import LocalStepFunctions
from tradingbot.entrypoints.local.servers import EmbeddedPostgres, EmbeddedRedis, migrate_database
from tradingbot.pipeline.runtime import Runtime, set_runtime

warnings.filterwarnings("ignore")
logging.getLogger("tradingbot").setLevel(logging.WARNING)  # one INFO line per alert would drown the table
logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)  # connections cut by the database restart


def in_process_rows(db_url: str, redis_url: str, deliveries: int) -> list[faults.Row]:
    """The rows that need one runtime, not a `serve` process: the webhook over real HTTP and the
    local Step Functions in this process, on a seeded live market."""
    rt = Runtime(database_url=db_url, redis_url=redis_url, db_pool_size=40)
    set_runtime(rt)
    feeder, _ = seed_live_market(rt.cache)
    # as `serve`'s sample alert: in the direction the LSTM predicts, so it passes the LSTM rule and trades
    action = _model_direction(rt) or "long"
    local = LocalStepFunctions(rt).start()
    server = make_server("127.0.0.1", 0, webhook_handler)
    serve_in_thread(server)
    url = f"http://127.0.0.1:{server.server_address[1]}/webhook/tradingview"
    rows = []
    try:
        for scenario in ("start", "schedule", "many", "schemathesis"):
            faults.reset(rt.engine())
            with session_scope(rt.engine()) as s:
                _, token = repo.create_account(s, name=f"faults-{scenario}", exchange="paper", testnet=True)
            sample = {"token": token, "strategy": "bollinger", "symbol": "BTCUSDT", "action": action,
                      "price": 56588.0}  # fmt: skip
            if scenario == "start":
                rows.append(faults.start_failing_then_recovering(rt, url, faults.alert_bodies(sample, 3), failures=3))
            elif scenario == "schedule":
                rows.append(faults.tradingview_resend_schedule(rt, url, faults.alert_bodies(sample, 1)[0]))
            elif scenario == "many":
                rows.append(faults.many_deliveries(rt, url, faults.alert_bodies(sample, 1)[0], deliveries))
            else:
                base = url.removesuffix("/webhook/tradingview")
                rows.append(faults.schemathesis_row(rt.engine(), base, examples=100 if deliveries < 1000 else 300))
            print(f"  ... {rows[-1].scenario}: {'ok' if rows[-1].ok else 'NOT OK'}", flush=True)
    finally:
        server.shutdown()
        local.stop()
        feeder.set()
        set_runtime(None)
    return rows


def serve_rows(base: Path, stages: tuple[str, ...]) -> list[faults.Row]:
    pg = EmbeddedPostgres(base / "pg", durable=False)
    redis = EmbeddedRedis(base / "redis")
    rows = []
    try:
        db_url, redis_url = pg.start(), redis.start()
        migrate_database(db_url)
        engine = create_db_engine(db_url)
        env = faults.serve_env(db_url, redis_url)
        rows += faults.kill9_inside_every_stage(engine, base / "data", env, stages)
        for r in rows:
            print(f"  ... {r.scenario}: {'ok' if r.ok else 'NOT OK'}", flush=True)

        def restart_pg() -> None:
            pg.start()

        def restart_redis() -> None:
            redis.start()

        outages = [("database", pg.stop, restart_pg), ("Redis", redis.stop, restart_redis)]
        for r in faults.restart_dependencies(engine, base / "data", env, outages):
            rows.append(r)
            print(f"  ... {r.scenario}: {'ok' if r.ok else 'NOT OK'}", flush=True)
        engine.dispose()
        return rows
    finally:
        dispose_engines()
        redis.stop()
        pg.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="tradingbot-faults-"))
    base.chmod(0o755)
    started = time.monotonic()
    try:
        stages = ("Predict", "Execute", "Execute+") if args.quick else faults.STAGES
        rows = serve_rows(base / "serve", stages)
        pg = EmbeddedPostgres(base / "pg", durable=False)
        redis = EmbeddedRedis(base / "redis")
        try:
            db_url, redis_url = pg.start(), redis.start()
            migrate_database(db_url)
            rows += in_process_rows(db_url, redis_url, 200 if args.quick else 1000)
        finally:
            dispose_engines()
            redis.stop()
            pg.stop()
        rows += [extra() for extra in faults.EXTRA_ROWS]
        print("\ndelivery faults (accepted must equal decided; orders must equal filled decisions; bad->5xx 0):")
        faults.print_table(rows)
        took = time.monotonic() - started
        print(json.dumps({"rows": len(rows), "all_ok": all(r.ok for r in rows), "seconds": round(took)}))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
