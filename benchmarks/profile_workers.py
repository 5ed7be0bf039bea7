"""Where `tradingbot serve`'s execution workers spend a burst: py-spy on each worker process.

    pip install py-spy && python benchmarks/profile_workers.py [--alerts 200] [--top 25]

Starts `serve` as `bench_burst.py` does (offline replay, embedded PostgreSQL and Redis, 127.0.0.1
only), sends one warm-up alert, then ``--alerts`` distinct alerts from 200 connections at once while
``py-spy record`` samples every worker process (50 Hz, idle threads excluded). Prints the time to
acknowledge and to decide them all, the workers' CPU seconds per execution, and the share of samples
under each of our functions (inclusive) and under the pool's pre-ping. Not part of `make bench` (it
needs py-spy, not a project dependency); the README's profile figures come from it.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_burst import alert_bodies, post, serve_env, start_serve, stop_serve, timed_post, wait_all_decided
from tradingbot.adapters.persistence.db import create_db_engine
from tradingbot.entrypoints.local.servers import running_servers

_FRAME = re.compile(r"^(?P<fn>.+?) \((?P<file>.+?):\d+\)$")


def _shares(raw_files: list[Path]) -> tuple[int, collections.Counter[str]]:
    """Samples in all files and, per function of ours, the samples it is on the stack of (once each)."""
    total, inclusive = 0, collections.Counter[str]()
    for path in raw_files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            n = int(count)
            total += n
            ours = set()
            for frame in stack.split(";"):
                m = _FRAME.match(frame)
                if m and "tradingbot/" in m["file"]:
                    ours.add(f"{m['fn']} ({m['file'].split('tradingbot/', 1)[1]})")
                elif m and m["fn"] == "DefaultDialect.do_ping":  # the pool's SELECT 1 on every checkout
                    ours.add("pool pre-ping (sqlalchemy DefaultDialect.do_ping)")
            for name in ours:
                inclusive[name] += n
    return total, inclusive


def _cpu_s(pid: str) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=200)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        sys.exit("py-spy is not installed: pip install py-spy")
    base = Path(tempfile.mkdtemp(prefix="tradingbot-profile-"))
    base.chmod(0o755)
    try:
        with running_servers(base / "servers", purpose="test") as servers:
            engine = create_db_engine(servers.database_url)
            app = start_serve(base / "data", serve_env(servers.database_url, servers.redis_url))
            try:
                post(app.webhook, alert_bodies(app.alert, 1, offset=-1)[0])  # warm-up: imports, pools
                wait_all_decided(engine, 1, 60)
                found = subprocess.run(["pgrep", "-P", str(app.proc.pid)], check=False, capture_output=True, text=True)
                workers = found.stdout.split()
                cpu0 = {p: _cpu_s(p) for p in workers}
                outs = [base / f"worker-{p}.txt" for p in workers]
                spies = [subprocess.Popen([spy, "record", "--nonblocking", "-r", "50", "-f", "raw", "-o", str(o),
                                           "--pid", p], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                         for p, o in zip(workers, outs, strict=True)]  # fmt: skip
                time.sleep(1)  # py-spy attached
                t0 = time.perf_counter()
                with cf.ThreadPoolExecutor(200) as pool:
                    results = list(pool.map(lambda b: timed_post(app.webhook, b), alert_bodies(app.alert, args.alerts)))
                acked_s = time.perf_counter() - t0
                waited = wait_all_decided(engine, args.alerts + 1, 120)
                cpu = sum(_cpu_s(p) - cpu0[p] for p in workers)
                for s in spies:
                    s.send_signal(2)  # SIGINT: py-spy writes its file
                for s in spies:
                    s.wait(60)
            finally:
                stop_serve(app)
            engine.dispose()
        lat = sorted(ms for _, ms in results)
        decided = "NOT within 120 s" if waited is None else f"all decided {acked_s + waited:.1f} s after the first send"
        print(f"{args.alerts} alerts from 200 connections: acknowledged in {acked_s:.1f} s "
              f"(p99 {lat[int(0.99 * len(lat))]:.0f} ms); {decided}")  # fmt: skip
        print(f"worker CPU: {cpu:.1f} s over {len(workers)} processes, {cpu / args.alerts * 1000:.0f} ms per execution")
        total, inclusive = _shares([o for o in outs if o.exists()])
        print(f"share of the workers' {total} py-spy samples under each of our functions (inclusive):")
        for name, n in inclusive.most_common(args.top):
            print(f"  {n / max(total, 1) * 100:5.1f} %  {name}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
