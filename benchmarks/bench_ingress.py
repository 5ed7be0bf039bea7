"""The ingress under abuse (issue 16, part 4), on loopback against the real HTTP server and handler.

    python benchmarks/bench_ingress.py [--quick]

1. Refusals handled per second, by kind, each beside the reference measured in the same run: valid
   alerts acknowledged per second (202: authenticate, store, StartExecution recorded by moto). A
   refusal must cost less than an acceptance: the ratio refused/s : accepted/s should be > 1.
   Kinds: a locked-out source's wrong tokens (429 from Redis alone), fresh wrong tokens from
   TradingView's address (never locked: 401 after the token lookup), malformed JSON (400, a tally),
   a body announced over the limit (413 before it is read).
2. The flood: valid alerts from one source while another floods wrong tokens over 4 connections;
   their p99 acknowledgement beside the same alerts' p99 without the flood (and TradingView's 3 s).
3. What the flood wrote: alert rows (must be 0), tally rows, kept samples.
4. The schemathesis run against docs/openapi/webhook.json as a row of the delivery fault table
   (columns of tests/integration/_delivery_faults.py; bad->5xx must be 0).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import logging
import shutil
import socket
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' load helpers

from sqlalchemy import func, select
from tests.integration._delivery_faults import Row, print_table
from tests.integration._ingress_load import flood, post_from, run_schemathesis

from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import Alert, IngressRefusal, IngressRefusalSample
from tradingbot.entrypoints.lambdas.webhook import handler as webhook_handler
from tradingbot.entrypoints.local.http import make_server, serve_in_thread
from tradingbot.entrypoints.local.servers import running_servers
from tradingbot.pipeline.ingress import flush_refusals
from tradingbot.pipeline.runtime import Runtime, set_runtime

warnings.filterwarnings("ignore")
TRADINGVIEW_IP = "127.0.0.1"  # stands for TradingView's address: exempt from the lockout below


def alert(token: str, i: int) -> bytes:
    now = dt.datetime.now(dt.UTC).isoformat()
    return json.dumps({"token": token, "strategy": "bollinger", "symbol": "BTCUSDT", "action": "long",
                       "price": 56000.0 + i * 0.01, "time": now}).encode()  # fmt: skip


def wrong(i: int) -> bytes:
    return alert(f"tbwh_wrong-{i:06d}-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", i)


def rate(port: int, source: str, bodies: list[bytes], threads: int = 8) -> tuple[float, dict[int, int]]:
    started = time.perf_counter()
    with cf.ThreadPoolExecutor(max_workers=threads) as pool:
        statuses = list(pool.map(lambda b: post_from(port, source, b)[0], bodies))
    seconds = time.perf_counter() - started
    return len(bodies) / seconds, {s: statuses.count(s) for s in sorted(set(statuses))}


def oversized_rate(port: int, n: int) -> tuple[float, dict[int, int]]:
    head = (b"POST /webhook/tradingview HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n")  # fmt: skip

    def one(_: int) -> int:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head)
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
            return int(answer.split(b" ", 2)[1])

    started = time.perf_counter()
    with cf.ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(one, range(n)))
    return n / (time.perf_counter() - started), {s: statuses.count(s) for s in sorted(set(statuses))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    logging.getLogger("tradingbot").setLevel(logging.WARNING)  # one INFO line per refusal would drown the table
    n = 200 if args.quick else 1000
    base = Path(tempfile.mkdtemp(prefix="tradingbot-bench-"))
    base.chmod(0o755)
    import boto3
    from moto import mock_aws

    try:
        with running_servers(base, purpose="test") as servers, mock_aws():
            rt = Runtime(database_url=servers.database_url, redis_url=servers.redis_url, db_pool_size=40)
            sfn = boto3.client("stepfunctions", region_name="us-east-1")
            trivial = json.dumps({"StartAt": "S", "States": {"S": {"Type": "Succeed"}}})
            arn = sfn.create_state_machine(name="p", definition=trivial,
                                           roleArn="arn:aws:iam::123456789012:role/x")["stateMachineArn"]  # fmt: skip
            rt.sfn_client = sfn  # executions recorded, not run: the acknowledgement alone is measured
            rt.settings = rt.settings.model_copy(
                update={"state_machine_arn": arn, "lockout_exempt_ips": frozenset({TRADINGVIEW_IP})}
            )
            set_runtime(rt)
            with session_scope(rt.engine()) as s:
                _, token = repo.create_account(s, name="bench", exchange="paper", testnet=True)
            server = make_server("127.0.0.1", 0, webhook_handler)
            serve_in_thread(server)
            port = server.server_address[1]

            print(f"1. refusals handled per second ({n:,} each, 8 connections), beside acceptances")
            accepted, a_codes = rate(port, TRADINGVIEW_IP, [alert(token, i) for i in range(n)])
            print(f"   reference: valid alerts acknowledged      {accepted:8.0f}/s  {a_codes}")
            for _ in range(6):  # lock 127.0.0.9 out first
                post_from(port, "127.0.0.9", wrong(0))
            kinds = [
                ("locked-out source, wrong tokens (429)",
                 lambda: rate(port, "127.0.0.9", [wrong(i) for i in range(n)])),
                ("TradingView's address, wrong tokens (401)",
                 lambda: rate(port, TRADINGVIEW_IP, [wrong(i) for i in range(n)])),
                ("malformed JSON (400)", lambda: rate(port, "127.0.0.8", [b"{not json %d" % i for i in range(n)])),
                ("body announced over the limit (413)", lambda: oversized_rate(port, n)),
            ]  # fmt: skip
            for name, run in kinds:
                per_s, codes = run()
                print(f"   {name:<42} {per_s:8.0f}/s  {codes}  ratio {per_s / accepted:4.1f}x")

            valid = [alert(token, 10_000 + i) for i in range(40)]
            quiet = flood(port, wrong=[], valid=valid)
            with session_scope(rt.engine()) as s:
                alerts_before = s.scalar(select(func.count()).select_from(Alert)) or 0
            loud = flood(port, wrong=[wrong(100_000 + i) for i in range(4 * n)],
                         valid=[alert(token, 20_000 + i) for i in range(40)])  # fmt: skip
            ok = sum(1 for status, _ in loud.valid if status == 202)
            print(f"\n2. flood: {sum(loud.flood.values()):,} wrong tokens from one source over 4 connections "
                  f"({dict(loud.flood)}) in {loud.seconds:.1f} s; meanwhile {ok}/{len(loud.valid)} valid alerts "
                  f"acknowledged, p99 {loud.valid_p99_s * 1000:.0f} ms (without the flood: "
                  f"p99 {quiet.valid_p99_s * 1000:.0f} ms; TradingView gives up at 3,000 ms)")  # fmt: skip
            flush_refusals(rt)
            with session_scope(rt.engine()) as s:
                alerts_after = s.scalar(select(func.count()).select_from(Alert)) or 0
                tallies = s.scalar(select(func.count()).select_from(IngressRefusal)) or 0
                counted = s.scalar(select(func.sum(IngressRefusal.count))) or 0
                samples = s.scalar(select(func.count()).select_from(IngressRefusalSample)) or 0
            print(
                f"\n3. stored: {alerts_after - alerts_before - ok} alert rows from the flood (target 0); "
                f"{tallies} tally rows counting {counted:,} refusals in all; {samples} kept samples"
            )

            started = time.perf_counter()
            statuses = run_schemathesis(f"http://127.0.0.1:{port}", examples=100 if args.quick else 400)
            bad = sum(c for s, c in statuses.items() if s >= 500)
            print(f"\n4. schemathesis against docs/openapi/webhook.json: {sum(statuses.values())} generated requests "
                  f"in {time.perf_counter() - started:.1f} s, statuses {dict(sorted(statuses.items()))}")  # fmt: skip
            print_table([Row("schemathesis (generated bad input)", 0, 0, 0, 0, bad_5xx=bad,
                             note=f"{sum(statuses.values())} requests")])  # fmt: skip
            server.shutdown()
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
