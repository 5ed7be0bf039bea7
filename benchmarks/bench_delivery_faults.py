"""The delivery fault table (issue 16, runtime half), on 127.0.0.1 only.

    python benchmarks/bench_delivery_faults.py [--quick]

One row per fault: alerts accepted, alerts decided (must be equal), entry orders and the decisions
that filled (equal: one order per decision to trade, never two), 5xx answers to bad input (must be
0). Rows (tests/integration/_delivery_faults.py): kill -9 of `tradingbot serve` inside each stage of
the trade path, database restart, Redis restart, StartExecution failing N times then recovering,
TradingView's resend schedule after a 5xx, 1,000 deliveries of one alert; plus any row another part
of the issue registers in ``EXTRA_ROWS`` (the ingress half's schemathesis run).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.integration._delivery_faults

from tests.integration import _delivery_faults as faults

from bench_candles import seed_live_market
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import create_db_engine, dispose_engines, session_scope
from tradingbot.entrypoints.lambdas.webhook import handler as webhook_handler
from tradingbot.entrypoints.local.http import make_server, serve_in_thread
from tradingbot.entrypoints.local.runner import LocalStepFunctions
from tradingbot.entrypoints.local.servers import EmbeddedPostgres, EmbeddedRedis, migrate_database
from tradingbot.pipeline.runtime import Runtime, set_runtime

warnings.filterwarnings("ignore")


def in_process_rows(db_url: str, redis_url: str, deliveries: int) -> list[faults.Row]:
    """The rows that need one runtime, not a `serve` process: the webhook over real HTTP and the
    local Step Functions in this process, on a seeded live market."""
    rt = Runtime(database_url=db_url, redis_url=redis_url, db_pool_size=40)
    set_runtime(rt)
    feeder, _ = seed_live_market(rt.cache)
    local = LocalStepFunctions(rt).start()
    server = make_server("127.0.0.1", 0, webhook_handler)
    serve_in_thread(server)
    url = f"http://127.0.0.1:{server.server_address[1]}/webhook/tradingview"
    rows = []
    try:
        for scenario in ("start", "schedule", "many"):
            faults.reset(rt.engine())
            with session_scope(rt.engine()) as s:
                _, token = repo.create_account(s, name=f"faults-{scenario}", exchange="paper", testnet=True)
            sample = {"token": token, "strategy": "bollinger", "symbol": "BTCUSDT", "action": "long",
                      "price": 56588.0}  # fmt: skip
            if scenario == "start":
                rows.append(faults.start_failing_then_recovering(rt, url, faults.alert_bodies(sample, 3), failures=3))
            elif scenario == "schedule":
                rows.append(faults.tradingview_resend_schedule(rt, url, faults.alert_bodies(sample, 1)[0]))
            else:
                rows.append(faults.many_deliveries(rt, url, faults.alert_bodies(sample, 1)[0], deliveries))
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
        for state in stages:
            rows.append(faults.kill9_during(engine, base / "data", env, state))
            print(f"  ... {rows[-1].scenario}: {'ok' if rows[-1].ok else 'NOT OK'}", flush=True)

        def restart_pg() -> None:
            pg.start()

        def restart_redis() -> None:
            redis.start()

        for name, stop, start in (("database", pg.stop, restart_pg), ("Redis", redis.stop, restart_redis)):
            rows.append(faults.restart_dependency(engine, base / "data", env, name, stop, start))
            print(f"  ... {rows[-1].scenario}: {'ok' if rows[-1].ok else 'NOT OK'}", flush=True)
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
        print(json.dumps({"rows": len(rows), "all_ok": all(r.ok for r in rows)}))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
