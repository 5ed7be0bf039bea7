"""Persistence latency against the source document's figure "database query 85 ms".

Two operations, each timed over a bounded number of iterations on a real PostgreSQL (embedded,
durable settings: fsync on, synchronous commit; or DATABASE_URL when set):

* record: alert + decision + order (with its first status event) in one transaction, committed;
* read:   an account's last 1,000 orders (the dashboard's and the risk check's query).

Run: ``python benchmarks/bench_persistence.py`` (about 10-20 s including server start).
The reference is a single query against RDS from a Lambda, so network latency is part of it and
absent here: the ratio says how much of the 85 ms budget our own work uses, not RDS's speed.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, insert, text

from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import create_db_engine, session_scope
from tradingbot.adapters.persistence.models import Order
from tradingbot.entrypoints.local.servers import running_servers

REFERENCE_MS = 85.0  # source document: "database query 85 ms"
RECORD_ITERATIONS = 300
READ_ITERATIONS = 100
SEED_ORDERS = 5_000
WARMUP = 10
TIME_BUDGET_S = 40.0  # stop early rather than exceed the 60 s limit on a loaded machine


def _percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def _time(op: Callable[[int], object], iterations: int, deadline: float) -> list[float]:
    for i in range(WARMUP):
        op(-1 - i)
    samples = []
    for i in range(iterations):
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        op(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _seed(engine: Engine) -> int:
    """An account with SEED_ORDERS older orders (bulk insert: the seed is not what is measured)."""
    with session_scope(engine) as s:
        account, _ = repo.create_account(s, name=f"bench-{uuid.uuid4().hex[:8]}", exchange="paper", testnet=True)
        rows = [
            {
                "account_id": account.id,
                "client_order_id": f"seed-{account.id}-{i}",
                "symbol": "BTC/USDT:USDT",
                "side": "buy" if i % 2 else "sell",
                "type": "market",
                "quantity": Decimal("0.01"),
                "status": "filled",
            }
            for i in range(SEED_ORDERS)
        ]
        s.execute(insert(Order), rows)
        s.execute(text("ANALYZE orders"))  # what autovacuum would do on a real database
        return account.id


def _record(engine: Engine, account_id: int, run: str) -> Callable[[int], object]:
    def op(i: int) -> None:
        key = f"{run}-{i}"
        with session_scope(engine) as s:
            alert = repo.record_alert(
                s,
                idempotency_key=key,
                raw_body='{"ticker":"BTCUSDT","action":"buy"}',
                source_ip="52.89.214.238",
                account_id=account_id,
                status="accepted",
            )
            decision = repo.record_decision(
                s,
                execution_name=key,
                account_id=account_id,
                symbol="BTC/USDT:USDT",
                alert_id=alert.id,
                inputs={"close": 64250.5},
                stages={"predict": {"p_up": 0.62}, "ensemble": {"votes": [1, 1, 0]}},
                final_action="long",
            )
            repo.create_order(
                s,
                account_id=account_id,
                decision_id=decision.id,
                client_order_id=f"o-{key}",
                symbol="BTC/USDT:USDT",
                side="buy",
                quantity=Decimal("0.01"),
            )

    return op


def _read(engine: Engine, account_id: int) -> Callable[[int], object]:
    def op(_: int) -> None:
        with session_scope(engine) as s:
            orders = repo.recent_orders(s, account_id, limit=1000)
            assert len(orders) == 1000

    return op


def _report(name: str, samples: list[float]) -> None:
    p50, p99 = _percentile(samples, 50), _percentile(samples, 99)
    print(
        f"{name:<42} {len(samples):>5} {p50:>9.2f} {p99:>9.2f} {REFERENCE_MS:>9.0f} "
        f"{p50 / REFERENCE_MS:>9.3f} {p99 / REFERENCE_MS:>9.3f}"
    )


def main() -> int:
    started = time.monotonic()
    deadline = started + TIME_BUDGET_S
    base = Path(tempfile.mkdtemp(prefix="tradingbot-bench-"))
    base.chmod(0o755)  # as root PostgreSQL runs as 'nobody', which must traverse into it
    try:
        with running_servers(base, purpose="run") as servers:
            engine = create_db_engine(servers.database_url)
            account_id = _seed(engine)
            record = _time(_record(engine, account_id, uuid.uuid4().hex[:8]), RECORD_ITERATIONS, deadline)
            read = _time(_read(engine, account_id), READ_ITERATIONS, deadline)
            engine.dispose()
            where = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded PostgreSQL 18, fsync on"
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"persistence benchmark ({where}; pg8000 over TCP loopback; reference: 'database query 85 ms')")
    print(f"{'operation':<42} {'n':>5} {'p50 ms':>9} {'p99 ms':>9} {'ref ms':>9} {'p50/ref':>9} {'p99/ref':>9}")
    _report("record alert + decision + order (1 txn)", record)
    _report("read account's last 1,000 orders", read)
    print(f"total {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
