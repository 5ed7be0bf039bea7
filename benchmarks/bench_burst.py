"""A burst of alerts against `tradingbot serve` as a user runs it, on 127.0.0.1 only (issue 16).

    python benchmarks/bench_burst.py [--quick]

`tradingbot serve` runs as a subprocess (the offline replay market, embedded PostgreSQL and Redis):
its HTTP server acknowledges, its worker processes (nice 10) run the executions on the local ASL
runtime. This script is the client, on the same 2-core machine (its 200 sending threads take CPU
from the server too; so do the other sessions sharing this machine).

1. burst: 500 distinct alerts from 200 connections at once. Targets: every alert acknowledged
   (202) with p99 < 1 s (TradingView cancels at 3 s), all decided within 30 s, none lost.
2. sustained: 100 alerts/s for 10 s, open loop (request i sent at t0 + i/100 whatever the answers).
   Target: p99 < 50 ms.
The reference for 1 and 2: the same client against a no-op HTTP server of the same kind (reads the
body, answers 202) in the same run: the floor this client on this machine sets; our figure is
printed beside it as a ratio.

3. interpreter CPU per execution: the local ASL runtime beside moto's Step Functions interpreter
   (the previous local runtime), the same definition and no-op Lambdas, in this process (ratio).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.integration._delivery_faults

from sqlalchemy import select
from tests.integration._delivery_faults import (
    alert_bodies,
    counts,
    post,
    serve_env,
    start_serve,
    stop_serve,
)

from tradingbot.adapters.persistence.db import create_db_engine, session_scope
from tradingbot.adapters.persistence.models import PipelineStart
from tradingbot.entrypoints.local.servers import running_servers

warnings.filterwarnings("ignore")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


ANSWERED: list[str] = []  # execution ids the 202s named
REFUSED: dict[str, int] = {}  # the error bodies of answers other than 202, counted


def timed_post(url: str, body: bytes) -> tuple[int, float]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            ANSWERED.append(json.loads(resp.read())["execution_id"])
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
        what = f"{status} {exc.read()[:200].decode(errors='replace')}"
        REFUSED[what] = REFUSED.get(what, 0) + 1
    except OSError as exc:
        status = 0
        REFUSED[f"0 {type(exc).__name__}"] = REFUSED.get(f"0 {type(exc).__name__}", 0) + 1
    return status, (time.perf_counter() - t0) * 1000


def print_refused() -> None:
    for what, n in sorted(REFUSED.items()):
        print(f"    {n} x {what}")
    REFUSED.clear()


def wait_all_decided(engine: Any, total: int, timeout_s: float) -> float | None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        accepted, decided, _, _ = counts(engine)
        if accepted >= total and decided >= accepted:
            return time.perf_counter() - t0
        time.sleep(0.1)
    return None


class _NoOp(BaseHTTPRequestHandler):
    """The reference: an HTTP server of the same kind that reads the body and answers 202 at once."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"execution_id": f"noop-{time.perf_counter_ns()}"}).encode()
        self.send_response(202)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def reference(bodies: list[bytes], connections: int, rate: float) -> tuple[float, float]:
    """p99 (ms) of the same burst and the same open loop against a no-op server in this process:
    what this client on this machine (shared, 2 cores) measures when the server does nothing."""

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 512

    server = Server(("127.0.0.1", 0), _NoOp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with cf.ThreadPoolExecutor(max_workers=connections) as pool:
            burst_ms = [ms for _, ms in pool.map(lambda b: timed_post(url, b), bodies)]
        t0 = time.perf_counter() + 0.2

        def send(i: int) -> float:
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            return timed_post(url, bodies[i % len(bodies)])[1]

        with cf.ThreadPoolExecutor(max_workers=connections) as pool:
            open_ms = list(pool.map(send, range(int(rate * 10))))
    finally:
        server.shutdown()
        ANSWERED.clear()
    return pct(burst_ms, 0.99), pct(open_ms, 0.99)


def burst(url: str, engine: Any, bodies: list[bytes], connections: int, ref_p99: float) -> None:
    ANSWERED.clear()
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(max_workers=connections) as pool:
        results = list(pool.map(lambda b: timed_post(url, b), bodies))
    answered = list(ANSWERED)
    acked_s = time.perf_counter() - t0
    waited = wait_all_decided(engine, len(bodies), 120)
    decided_s = None if waited is None else acked_s + waited
    lat = [ms for _, ms in results]
    codes = {c: sum(1 for s, _ in results if s == c) for c in sorted({s for s, _ in results})}
    accepted, decided, orders, trades = counts(engine)
    with session_scope(engine) as s:
        accepted_keys = set(s.scalars(select(PipelineStart.execution_name)))
    # lost: a 202 whose alert has no stored execution input (nothing could ever re-drive it)
    lost = sum(1 for k in answered if k not in accepted_keys)
    print(f"burst: {len(bodies)} distinct alerts from {connections} connections at once")
    print(f"  acknowledged: {codes}; p50 {pct(lat, 0.5):.0f} ms  p99 {pct(lat, 0.99):.0f} ms  max {max(lat):.0f} ms "
          f"(target p99 < 1,000 ms: {pct(lat, 0.99) / 1000:.2f} of it; TradingView cancels at 3,000 ms; "
          f"{pct(lat, 0.99) / ref_p99:.1f}x the no-op server's)")  # fmt: skip
    print_refused()
    print(f"  decided: {decided} of {accepted} accepted "
          + (f"within {decided_s:.1f} s of the first send" if decided_s is not None else "NOT within 120 s")
          + f" (target 30 s: {(decided_s or float('nan')) / 30:.2f} of it); {orders} entry orders for "
          f"{trades} filled decisions; {len(set(answered))} distinct execution ids answered; lost {lost}")  # fmt: skip


def sustained(url: str, engine: Any, bodies: list[bytes], rate: float, connections: int, ref_p99: float) -> None:
    t0 = time.perf_counter() + 0.2

    def send(i: int) -> tuple[int, float]:
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        return timed_post(url, bodies[i])

    with cf.ThreadPoolExecutor(max_workers=connections) as pool:
        results = list(pool.map(send, range(len(bodies))))
    lat = [ms for _, ms in results]
    codes = {c: sum(1 for s, _ in results if s == c) for c in sorted({s for s, _ in results})}
    print(f"sustained: {rate:.0f} alerts/s for {len(bodies) / rate:.0f} s, open loop, {connections} connections")
    print(f"  acknowledged: {codes}; p50 {pct(lat, 0.5):.1f} ms  p99 {pct(lat, 0.99):.1f} ms  max {max(lat):.0f} ms "
          f"(target p99 < 50 ms: {pct(lat, 0.99) / 50:.2f} of it; "
          f"{pct(lat, 0.99) / ref_p99:.1f}x the no-op server's)")  # fmt: skip
    print_refused()
    waited = wait_all_decided(engine, counts(engine)[0], 120)
    print(f"  all decided {waited:.1f} s after the last send" if waited is not None else "  NOT all decided in 120 s")


def interpreter_cpu(n: int) -> None:
    """CPU per execution of the pipeline definition with no-op Lambdas: ours vs moto's interpreter."""
    from concurrent import futures

    from tradingbot.entrypoints.local.asl import Context, Execution, StateMachine
    from tradingbot.entrypoints.local.runner import render_definition

    definition = render_definition()
    answers = {"validate": {"action": "reject", "reason": "bench"}}

    def noop(resource: str, payload: Any) -> Any:
        return answers.get(resource.rsplit("tradingbot-", 1)[-1], {"ok": True})

    machine = StateMachine(definition)
    state = {"alert": {"symbol": "BTCUSDT"}, "account_id": 1, "idempotency_key": "k"}
    with futures.ThreadPoolExecutor(8) as pool:
        c0 = time.process_time()
        for i in range(n):
            ctx = Context(f"arn:x:execution:m:e{i}", f"e{i}", "arn:x:stateMachine:m", state)
            Execution(machine, noop, ctx, pool=pool).run()
        ours = (time.process_time() - c0) / n * 1000

    import boto3
    from moto import mock_aws
    from moto.awslambda.models import LambdaBackend

    saved = LambdaBackend.invoke

    def moto_invoke(_b: Any, name: str, _q: Any, _body: Any, _h: Any, _rh: Any) -> bytes:
        return json.dumps(noop(name, None)).encode()

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        LambdaBackend.invoke = moto_invoke  # type: ignore[method-assign,assignment]
        try:
            sfn = boto3.client("stepfunctions", region_name="us-east-1")
            arn = sfn.create_state_machine(name="p", definition=definition,
                                           roleArn="arn:aws:iam::123456789012:role/x")["stateMachineArn"]  # fmt: skip
            m = max(3, n // 10)
            c0 = time.process_time()
            for i in range(m):
                ex = sfn.start_execution(stateMachineArn=arn, name=f"e{i}", input=json.dumps(state))["executionArn"]
                while sfn.describe_execution(executionArn=ex)["status"] == "RUNNING":
                    time.sleep(0.005)
            reference = (time.process_time() - c0) / m * 1000
        finally:
            LambdaBackend.invoke = saved  # type: ignore[method-assign]
    print(f"interpreter CPU per execution of trading_pipeline.asl.json (no-op Lambdas): local ASL runtime "
          f"{ours:.2f} ms, moto's Step Functions {reference:.0f} ms (ratio {reference / ours:.0f}x)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n_burst, rate = (200, 50.0) if args.quick else (500, 100.0)
    base = Path(tempfile.mkdtemp(prefix="tradingbot-burst-"))
    base.chmod(0o755)
    try:
        interpreter_cpu(20 if args.quick else 100)
        with running_servers(base / "servers", purpose="test") as servers:
            engine = create_db_engine(servers.database_url)
            # one demo account sends everything: 1,500 alerts, within its default 6,000 a minute
            app = start_serve(base / "data", serve_env(servers.database_url, servers.redis_url))
            try:
                print(app.printed.splitlines()[0].strip())
                workers = next((ln.strip() for ln in app.printed.splitlines() if "executions:" in ln), "")
                print(f"  {workers}")
                url = app.webhook
                post(url, alert_bodies(app.alert, 1, offset=-1)[0])  # warm-up: imports, pools
                wait_all_decided(engine, 1, 60)
                ref_burst, ref_open = reference(alert_bodies(app.alert, n_burst), 200, rate)
                print(f"reference, a no-op HTTP server in the same run (same client, same machine): burst p99 "
                      f"{ref_burst:.0f} ms, {rate:.0f}/s open loop p99 {ref_open:.1f} ms")  # fmt: skip
                burst(url, engine, alert_bodies(app.alert, n_burst), 200, ref_burst)
                sustained(url, engine, alert_bodies(app.alert, int(rate * 10), offset=n_burst), rate, 200, ref_open)
            finally:
                stop_serve(app)
            engine.dispose()
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
