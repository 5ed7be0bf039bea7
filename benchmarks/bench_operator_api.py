"""Operator API latency on a large account (issue 17), each beside the same answer done naively, in
the same run, on a real PostgreSQL (embedded, fsync on) and Redis:

* **last 100 decisions** of an account with 100,000 decisions (another account holds 100,000 more):
  ours is ``GET /api/accounts/{a}/decisions?limit=100`` through the whole handler (Powertools
  routing and validation, token lookup, ownership, the keyset query on ``ix_decisions_account_id_id``);
  naive is loading the account's decisions with the ORM, newest first, and keeping 100 in Python;
  and a deep page (page 900) with our cursor beside SQL ``OFFSET``; page 1 and page 900 cost the
  same since the keyset is the row value ``(account_id, id) < (a, cursor)`` (repositories/
  operators.py ``decisions_page``: before it, page 1 walked the primary key through the other
  account's 100,000 newer rows); today's first 100 (the dashboard's list) beside the same SQL without
  the keyset bounds;
* **positions** (3 open, 20,000 closed in the history) with live marks from Redis: ours is
  ``GET /api/accounts/{a}/positions`` through the handler; naive loads every position row of the
  account and filters the open ones in Python;
* **dashboard first paint** in headless Chromium (Debian's ``/usr/bin/chromium``; skipped without
  it): the page's first-contentful-paint and the time until the position table is filled, beside
  a blank page's first paint in the same browser.

Run: ``python benchmarks/bench_operator_api.py`` (about a minute: seeding 200,000 decisions).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import create_db_engine, session_scope
from tradingbot.adapters.persistence.models import Decision, Position
from tradingbot.adapters.persistence.repositories import operators as ops
from tradingbot.entrypoints.local.servers import running_servers
from tradingbot.pipeline.operator_api import encode_cursor

DECISIONS = 100_000
CLOSED_POSITIONS = 20_000
ITERATIONS = 60
NAIVE_ITERATIONS = 2
WARMUP = 5
TIME_BUDGET_S = 240.0
CHROMIUM = Path("/usr/bin/chromium")


def _percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))]


def _time(op: Callable[[], object], iterations: int, deadline: float, warmup: int = WARMUP) -> list[float]:
    for _ in range(warmup):
        op()
    samples: list[float] = []
    for _ in range(iterations):
        if time.monotonic() > deadline and len(samples) >= 2:
            break
        start = time.perf_counter()
        op()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _seed(engine: Any) -> tuple[int, str]:
    """Two accounts with DECISIONS decisions each (realistic stages JSON), one operator owning the
    first, 3 open and CLOSED_POSITIONS closed positions; generated in SQL (the seed is not measured)."""
    with session_scope(engine) as s:
        mine, _ = repo.create_account(s, name="bench-mine", exchange="paper", testnet=True)
        other, _ = repo.create_account(s, name="bench-other", exchange="paper", testnet=True)
        op = ops.create_operator(s, name="bench")
        ops.assign_account(s, operator_id=op.id, account_id=mine.id)
        token = ops.issue_token(s, operator_id=op.id, ttl=dt.timedelta(hours=1))
        ids = (mine.id, other.id)
    rules = json.dumps([{"rule": r, "verdict": "pass", "reason": "within the limit " * 3} for r in
                        ("kill_switch", "symbol_allowlist", "ai_confidence", "lstm_agrees", "backtest_win_rate",
                         "reward_risk", "max_leverage", "max_position_notional", "max_open_positions")])  # fmt: skip
    with engine.begin() as conn:
        for account_id in ids:
            conn.execute(
                text(
                    "INSERT INTO decisions (execution_name, account_id, symbol, inputs, stages, final_action, "
                    "rejection_reason, started_at, finished_at) "
                    "SELECT 'bench-' || :a || '-' || g, :a, 'BTCUSDT', "
                    "jsonb_build_object('alert', jsonb_build_object('strategy', 'bollinger', 'action', 'long', "
                    "'price', 50000 + mod(g, 1000), 'symbol', 'BTCUSDT')), "
                    "jsonb_build_object('validation', jsonb_build_object('rules', CAST(:rules AS jsonb)), "
                    "'_execution', jsonb_build_object('status', 'SUCCEEDED', 'duration_ms', 40)), "
                    "CASE WHEN mod(g, 3) = 0 THEN 'rejected' ELSE 'long' END, NULL, "
                    "now() - make_interval(secs => :n - g), now() - make_interval(secs => :n - g) "
                    "FROM generate_series(1, :n) AS g"
                ),
                {"a": account_id, "n": DECISIONS, "rules": rules},
            )
        conn.execute(
            text(
                "INSERT INTO positions (account_id, symbol, side, quantity, entry_price, leverage, opened_at, "
                "closed_at) SELECT :a, 'BTC/USDT:USDT', 'long', 0.01, 50000, 1, now() - interval '1 day', "
                "now() - make_interval(secs => g) FROM generate_series(1, :n) AS g"
            ),
            {"a": ids[0], "n": CLOSED_POSITIONS},
        )
        for sym in ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"):
            conn.execute(
                text("INSERT INTO positions (account_id, symbol, side, quantity, entry_price, leverage) "
                     "VALUES (:a, :s, 'long', 0.5, 100, 2)"),
                {"a": ids[0], "s": sym},
            )  # fmt: skip
        conn.execute(text("ANALYZE decisions"))
        conn.execute(text("ANALYZE positions"))
    return ids[0], token


def _event(path: str, token: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    from tradingbot.entrypoints.local.http import to_apigw_event

    qs = "&".join(f"{k}={v}" for k, v in (query or {}).items())
    return to_apigw_event("GET", path + (f"?{qs}" if qs else ""), {"Authorization": f"Bearer {token}"}, b"",
                          "127.0.0.1")  # fmt: skip


def _row(name: str, ours: list[float], ref_name: str, ref: list[float]) -> None:
    p50, p99 = _percentile(ours, 50), _percentile(ours, 99)
    r50, r99 = _percentile(ref, 50), _percentile(ref, 99)
    print(f"{name:<44} {len(ours):>4} {p50:>8.2f} {p99:>8.2f} | {ref_name:<34} {len(ref):>4} {r50:>9.2f} "
          f"{r99:>9.2f} | p99 ratio {r99 / p99:>7.1f}x")  # fmt: skip


def _first_paint(base: str, token: str) -> tuple[float, float, float] | None:
    """(blank page FCP, dashboard FCP, dashboard until positions shown), ms; None without chromium."""
    if not CHROMIUM.exists():
        return None
    from playwright.sync_api import sync_playwright

    fcp = "() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || -1"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto("data:text/html,<html><body><p>blank</p></body></html>")
            page.wait_for_function("() => performance.getEntriesByName('first-contentful-paint').length > 0")
            blank = float(page.evaluate(fcp))
            page = browser.new_page()
            started = time.perf_counter()
            page.goto(f"{base}/dashboard#token={token}")
            page.wait_for_function("() => performance.getEntriesByName('first-contentful-paint').length > 0")
            page.locator("#positions tbody tr td").first.wait_for()
            page.wait_for_function("() => document.querySelector('#positions tbody td').textContent !== 'none'")
            filled = (time.perf_counter() - started) * 1000
            return blank, float(page.evaluate(fcp)), filled
        finally:
            browser.close()


def main() -> int:
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="tradingbot-bench-"))
    base.chmod(0o755)
    try:
        with running_servers(base, purpose="run") as servers:
            from tradingbot.entrypoints.lambdas.operator_api import handler
            from tradingbot.pipeline.runtime import Runtime, set_runtime
            from tradingbot.settings import Settings

            rt = Runtime(config=Settings(), database_url=servers.database_url, redis_url=servers.redis_url)
            set_runtime(rt)
            engine = create_db_engine(servers.database_url)
            # the seed and the naive reads take longer than the product's 4 s statement timeout
            slow = create_db_engine(servers.database_url, statement_timeout_ms=600_000)
            account_id, token = _seed(slow)
            seeded = time.monotonic()
            cache = Cache.from_url(servers.redis_url)
            for sym in ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"):
                cache.put_price("binanceusdm", sym, Decimal(101))
            deadline = time.monotonic() + TIME_BUDGET_S

            decisions_event = _event("/api/accounts/bench-mine/decisions", token, {"limit": "100"})

            def ours_decisions() -> None:
                res = handler(decisions_event, None)
                assert res["statusCode"] == 200 and len(json.loads(res["body"])["items"]) == 100, res["body"][:200]

            def naive_decisions() -> None:
                with session_scope(slow) as s:
                    rows = s.scalars(select(Decision).where(Decision.account_id == account_id)
                                     .order_by(Decision.started_at.desc())).all()  # fmt: skip
                    assert len(rows[:100]) == 100

            # page 900 of 100: our cursor (the id where page 899 ended) beside OFFSET 89,900
            with session_scope(engine) as s:
                page_899_end = s.scalars(select(Decision.id).where(Decision.account_id == account_id)
                                         .order_by(Decision.id.desc()).offset(89_899).limit(1)).one()  # fmt: skip
            cursor = encode_cursor(page_899_end)
            deep_event = _event("/api/accounts/bench-mine/decisions", token, {"limit": "100", "cursor": cursor})

            def ours_deep() -> None:
                res = handler(deep_event, None)
                assert res["statusCode"] == 200 and len(json.loads(res["body"])["items"]) == 100

            def offset_deep() -> None:
                with session_scope(slow) as s:
                    rows = s.scalars(select(Decision).where(Decision.account_id == account_id)
                                     .order_by(Decision.id.desc()).offset(89_900).limit(100)).all()  # fmt: skip
                    assert len(rows) == 100

            # today's decisions (the dashboard's list): ours bounds the scan to today's ids; the reference
            # is the query before that bound, the same rows by SQL
            today_event = _event("/api/accounts/bench-mine/decisions", token, {"limit": "100", "today": "true"})
            midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)

            def ours_today() -> None:
                res = handler(today_event, None)
                assert res["statusCode"] == 200 and len(json.loads(res["body"])["items"]) == 100

            def unbounded_today() -> None:
                with session_scope(slow) as s:
                    stmt = select(Decision).where(Decision.account_id == account_id, Decision.started_at >= midnight)
                    rows = s.scalars(stmt.order_by(Decision.account_id.desc(), Decision.id.desc()).limit(100)).all()
                    assert len(rows) == 100

            positions_event = _event("/api/accounts/bench-mine/positions", token)

            def ours_positions() -> None:
                res = handler(positions_event, None)
                assert res["statusCode"] == 200 and len(json.loads(res["body"])["items"]) == 3

            def naive_positions() -> None:
                with session_scope(slow) as s:
                    rows = s.scalars(select(Position).where(Position.account_id == account_id)).all()
                    open_rows = [p for p in rows if p.closed_at is None]
                    for p in open_rows:
                        cache.get_price("binanceusdm", p.symbol)
                    assert len(open_rows) == 3

            results = {
                "ours_decisions": _time(ours_decisions, ITERATIONS, deadline),
                "naive_decisions": _time(naive_decisions, NAIVE_ITERATIONS, deadline, warmup=0),
                "ours_deep": _time(ours_deep, ITERATIONS, deadline),
                "offset_deep": _time(offset_deep, ITERATIONS, deadline),
                "ours_today": _time(ours_today, ITERATIONS, deadline),
                "unbounded_today": _time(unbounded_today, ITERATIONS, deadline),
                "ours_positions": _time(ours_positions, ITERATIONS, deadline),
                "naive_positions": _time(naive_positions, NAIVE_ITERATIONS, deadline, warmup=0),
            }
            paint = None
            if CHROMIUM.exists():
                from tradingbot.entrypoints.lambdas.webhook import handler as webhook_handler
                from tradingbot.entrypoints.local.http import make_server, serve_in_thread
                from tradingbot.entrypoints.local.routes import local_routes

                server = make_server("127.0.0.1", 0, local_routes(webhook_handler))
                serve_in_thread(server)
                try:
                    paint = _first_paint(f"http://127.0.0.1:{server.server_address[1]}", token)
                finally:
                    server.shutdown()
            engine.dispose()
            slow.dispose()
            set_runtime(None)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"operator API benchmark (embedded PostgreSQL, fsync on; {DECISIONS:,} decisions on the account and "
          f"{DECISIONS:,} on another; seeded in {seeded - started:.0f} s)")  # fmt: skip
    print(f"{'ours (whole handler, in process)':<44} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} | "
          f"{'reference (same run)':<34} {'n':>4} {'p50 ms':>9} {'p99 ms':>9} |")  # fmt: skip
    _row("last 100 decisions (keyset)", results["ours_decisions"], "ORM: all of them, keep 100",
         results["naive_decisions"])  # fmt: skip
    _row("page 900 of 100 decisions (cursor)", results["ours_deep"], "SQL OFFSET 89,900 LIMIT 100",
         results["offset_deep"])  # fmt: skip
    _row("today's first 100 decisions (dashboard)", results["ours_today"], "SQL without the keyset bounds",
         results["unbounded_today"])  # fmt: skip
    _row("positions + live marks (3 open, 20k closed)", results["ours_positions"], "ORM: every position, filter",
         results["naive_positions"])  # fmt: skip
    if paint is None:
        print("dashboard first paint: skipped (no /usr/bin/chromium; apt-get install -y chromium)")
    else:
        blank, dash, filled = paint
        print(f"dashboard first contentful paint {dash:.0f} ms (blank page {blank:.0f} ms, ratio {dash / blank:.2f}); "
              f"positions on screen after {filled:.0f} ms")  # fmt: skip
    print(f"total {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
