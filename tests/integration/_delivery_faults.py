"""The delivery fault suite (issue 16), shared by tests/integration/test_delivery_faults.py (asserts)
and benchmarks/bench_delivery_faults.py (prints the table).

Each scenario drives real deliveries into the real runtime and returns one :class:`Row`: alerts
accepted, alerts decided (must be equal), entry orders (one per decision to trade: never two for an
alert) and 5xx answers to bad input (must be 0). The ``serve`` scenarios run ``tradingbot serve`` as
a real subprocess on the offline replay (no network) against a real PostgreSQL and Redis, and
``kill -9`` it while an execution is inside a given state (``LOCAL_FAULT_PAUSE`` holds the execution
there and writes the state to its row, so the kill lands in that stage, not near it).

TradingView's delivery rules the scenarios follow (https://www.tradingview.com/support/solutions/43000529348-how-to-configure-webhook-alerts/,
"Webhook resubmission"): a request is cancelled after 3 s; an answer from 500 to 599 except 504 is
resent after 5 s, up to 3 times (4 sends at most); a timeout is not resent.

:data:`EXTRA_ROWS` is the hook for rows other halves of the issue add (the ingress engineer's
schemathesis run): each is a callable returning a :class:`Row`.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text

from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import Decision, LocalExecution, Order, PipelineStart

#: TradingView's resubmission: 5 s after a 5xx (not 504), up to 3 times
RESEND_DELAY_S = 5.0
RESENDS = 3
#: TradingView cancels a request after 3 s
TV_TIMEOUT_S = 3.0
#: the trade path's states, in order: a kill -9 lands in each (``+``: after its task answered)
STAGES = ("Predict", "Ensemble", "Strategies", "Validate", "Execute", "Execute+", "Notify", "RecordTrade")
#: bad input sent in every scenario: none may get a 5xx
BAD_BODIES: tuple[bytes, ...] = (b"{not json", b"", b'{"token": "tb_wrong", "symbol": "BTCUSDT"}', b"\xff\xfe\x00",
                                 json.dumps({"x": "y" * 9000}).encode())  # fmt: skip


@dataclass
class Row:
    scenario: str
    accepted: int
    decided: int
    orders: int
    trades: int  # decisions whose execution filled (each is owed exactly one entry order)
    bad_5xx: int
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.accepted == self.decided and self.orders == self.trades and self.bad_5xx == 0


EXTRA_ROWS: list[Callable[[], Row]] = []


def print_table(rows: list[Row]) -> None:
    head = f"{'scenario':<44} {'accepted':>8} {'decided':>8} {'orders':>7} {'trades':>7} {'bad->5xx':>8}  ok"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r.scenario:<44} {r.accepted:>8} {r.decided:>8} {r.orders:>7} {r.trades:>7} {r.bad_5xx:>8}  "
              f"{'yes' if r.ok else 'NO'}{'  ' + r.note if r.note else ''}")  # fmt: skip


# ---------------------------------------------------------------- counting


def counts(engine: Engine) -> tuple[int, int, int, int]:
    """(accepted, decided, entry orders, trade decisions) in the database."""
    with session_scope(engine) as s:
        accepted = s.scalar(select(func.count()).select_from(PipelineStart)) or 0
        decided = s.scalar(
            select(func.count()).select_from(Decision)
            .where(Decision.execution_name.in_(select(PipelineStart.execution_name)),
                   Decision.final_action.is_not(None))
        ) or 0  # fmt: skip
        orders = s.scalar(select(func.count()).select_from(Order).where(Order.type == "market")) or 0
        trades = s.scalar(
            select(func.count()).select_from(Decision)
            .where(Decision.stages["execution"]["status"].astext.in_(("filled", "partially_filled")))
        ) or 0  # fmt: skip
    return accepted, decided, orders, trades


def row(engine: Engine, scenario: str, bad_5xx: int, note: str = "") -> Row:
    return Row(scenario, *counts(engine), bad_5xx=bad_5xx, note=note)


def wait_decided(engine: Engine, timeout_s: float) -> bool:
    """Every accepted alert decided and no execution open, within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        accepted, decided, _, _ = counts(engine)
        with session_scope(engine) as s:
            open_ = s.scalar(select(func.count()).select_from(LocalExecution)
                             .where(LocalExecution.status.in_(("QUEUED", "RUNNING")))) or 0  # fmt: skip
        if accepted and accepted == decided and open_ == 0:
            return True
        time.sleep(0.25)
    return False


def reset(engine: Engine) -> None:
    """Empty every table (the tests' fixture does the same), keeping accounts out too."""
    from tradingbot.adapters.persistence.models import TABLES

    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in TABLES)} RESTART IDENTITY CASCADE"))


# ---------------------------------------------------------------- HTTP


def post(url: str, body: bytes, timeout_s: float = TV_TIMEOUT_S) -> int:
    """One delivery; the status (0: no answer in time, as TradingView cancels after 3 s)."""
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def deliver_like_tradingview(url: str, body: bytes, sleep: Callable[[float], None] = time.sleep) -> list[int]:
    """The first send and TradingView's resends: after a 5xx other than 504, 5 s later, up to 3 times."""
    statuses = [post(url, body)]
    while len(statuses) <= RESENDS and 500 <= statuses[-1] <= 599 and statuses[-1] != 504:
        sleep(RESEND_DELAY_S)
        statuses.append(post(url, body))
    return statuses


def bad_input_5xx(url: str) -> int:
    return sum(1 for b in BAD_BODIES if post(url, b, timeout_s=10) >= 500)


def alert_bodies(sample: dict[str, Any], n: int, offset: int = 0) -> list[bytes]:
    """``n`` distinct alerts like ``sample`` (a cent apart in price: within the price rule)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return [json.dumps(sample | {"price": round(float(sample["price"]) + (offset + i) * 0.01, 2), "time": now}).encode()
            for i in range(n)]  # fmt: skip


# ---------------------------------------------------------------- `tradingbot serve` as a process


@dataclass
class Serve:
    proc: subprocess.Popen[str]
    url: str
    alert: dict[str, Any]
    printed: str

    @property
    def webhook(self) -> str:
        return self.url + "/webhook/tradingview"


def serve_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, COLUMNS="400", LOCAL_MARKET="replay",
               MODEL_ARTIFACT_URI=os.environ.get("MODEL_ARTIFACT_URI", ""))  # fmt: skip
    for var in ("FEED_SYMBOLS", "FEED_EXCHANGES", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "LOCAL_FAULT_PAUSE"):
        env.pop(var, None)
    if not env["MODEL_ARTIFACT_URI"]:
        env.pop("MODEL_ARTIFACT_URI")
    return env | extra


def start_serve(data_dir: Path, env: dict[str, str], timeout_s: float = 180) -> Serve:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradingbot.entrypoints.cli", "serve", "--port", "0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "curl -s -X POST" in line or not line:
            break
    printed = "".join(lines)
    url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", printed)
    body = re.search(r"-d '(\{.*\})'", printed)
    if not (url and body):
        proc.kill()
        raise AssertionError(f"serve did not start:\n{printed}")
    # keep reading its output so a full pipe never blocks it
    import threading

    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    return Serve(proc, url.group(1), json.loads(body.group(1)), printed)


def stop_serve(app: Serve) -> None:
    if app.proc.poll() is None:
        app.proc.send_signal(signal.SIGINT)
        try:
            app.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            app.proc.kill()
            app.proc.wait()


def kill9(app: Serve) -> None:
    os.kill(app.proc.pid, signal.SIGKILL)
    app.proc.wait()


@contextlib.contextmanager
def serving(data_dir: Path, env: dict[str, str]) -> Iterator[Serve]:
    app = start_serve(data_dir, env)
    try:
        yield app
    finally:
        stop_serve(app)


def wait_in_state(engine: Engine, state: str, timeout_s: float = 120) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with session_scope(engine) as s:
            if s.scalar(select(func.count()).select_from(LocalExecution).where(LocalExecution.current_state == state)):
                return True
        time.sleep(0.05)
    return False


def kill9_during(engine: Engine, data_dir: Path, env: dict[str, str], state: str, alerts: int = 2) -> Row:
    """``serve`` killed with kill -9 while its executions are inside ``state``; restarted; every
    accepted alert must be decided once, with at most one entry order each."""
    reset(engine)
    app = start_serve(data_dir, env | {"LOCAL_FAULT_PAUSE": f"{state}:60"})
    try:
        bodies = alert_bodies(app.alert, alerts)
        statuses = [post(app.webhook, b) for b in bodies]
        bad = bad_input_5xx(app.webhook)
        reached = wait_in_state(engine, state)
        accepted_before, decided_before, _, _ = counts(engine)
    finally:
        kill9(app)
    note = "" if reached else f"never reached {state}"
    if decided_before:
        note += f" {decided_before} decided before the kill"
    with serving(data_dir, env) as again:
        decided = wait_decided(engine, 180)
        bad += bad_input_5xx(again.webhook)
        # TradingView's resend after the restart (its first send may have been cut): a duplicate
        resent = [post(again.webhook, b) for b in bodies]
    if not decided:
        note += " not all decided in 180 s"
    if statuses.count(202) != alerts or resent.count(202) != alerts:
        note += f" answers {statuses} / {resent}"
    out = row(engine, f"kill -9 of serve inside {state}", bad, note.strip())
    assert accepted_before == alerts or note, accepted_before
    return out


def restart_dependency(
    engine: Engine, data_dir: Path, env: dict[str, str], name: str, stop: Callable[[], None], start: Callable[[], None],
    alerts: int = 4,
) -> Row:  # fmt: skip
    """``name`` (database or Redis) stopped while alerts arrive (each delivered like TradingView:
    resent after a 5xx) and started again; every accepted alert is decided."""
    reset(engine)
    with serving(data_dir, env) as app:
        bodies = alert_bodies(app.alert, alerts)
        before = [post(app.webhook, b) for b in bodies[: alerts // 2]]
        stop()
        t_down = time.monotonic()
        bad = 0
        with cf.ThreadPoolExecutor(alerts) as pool:
            # the rest arrive during the outage; TradingView resends over 15 s while it lasts 8 s
            during = pool.map(deliver_like_tradingview, [app.webhook] * (alerts - alerts // 2), bodies[alerts // 2 :])
            time.sleep(max(0.0, 8.0 - (time.monotonic() - t_down)))
            bad += bad_input_5xx(app.webhook)
            start()
            answers = list(during)
        bad += bad_input_5xx(app.webhook)
        decided = wait_decided(engine, 180)
    note = f"during the outage: {answers}; before: {before}" + ("" if decided else "; not all decided in 180 s")
    return row(engine, f"{name} restart", bad, note)


# ---------------------------------------------------------------- in-process scenarios (one runtime)


class FlakyStart:
    """The Step Functions client with StartExecution failing: the first ``failures`` calls, or every
    call until ``until`` (monotonic); a throttle as boto3 raises it after its own retries."""

    def __init__(self, real: Any, failures: int = 0, until: float = 0.0) -> None:
        self.real, self.failures, self.until, self.calls = real, failures, until, 0
        self.exceptions = real.exceptions

    def start_execution(self, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        self.calls += 1
        if self.calls <= self.failures or time.monotonic() < self.until:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "StartExecution")
        return self.real.start_execution(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def start_failing_then_recovering(rt: Any, url: str, bodies: list[bytes], failures: int) -> Row:
    """StartExecution fails ``failures`` times; TradingView's resends (no waiting here: the resend
    schedule has its own row) and then the sweeper bring every alert to a decision."""
    from tradingbot.pipeline.redrive import sweep

    engine = rt.engine()
    real = rt.sfn()
    rt.sfn_client = FlakyStart(real, failures=failures)
    try:
        answers = [deliver_like_tradingview(url, b, sleep=lambda _s: None) for b in bodies]
        sweep(rt, grace_s=0)  # what the resends did not start, the sweeper does
        bad = bad_input_5xx(url)
        decided = wait_decided(engine, 120)
    finally:
        rt.sfn_client = real
    note = f"answers {answers}" + ("" if decided else "; not all decided in 120 s")
    return row(engine, f"StartExecution failing {failures}x, then recovering", bad, note)


def tradingview_resend_schedule(rt: Any, url: str, body: bytes, outage_s: float = 7.0) -> Row:
    """StartExecution unavailable for ``outage_s``: the 503 is resent by TradingView's own schedule
    (5 s apart, real waits) and the resend that lands after the outage starts the execution."""
    engine = rt.engine()
    real = rt.sfn()
    rt.sfn_client = FlakyStart(real, until=time.monotonic() + outage_s)
    try:
        statuses = deliver_like_tradingview(url, body)
        bad = bad_input_5xx(url)
        decided = wait_decided(engine, 120)
    finally:
        rt.sfn_client = real
    note = f"sends {statuses} at 0, 5, 10 ... s" + ("" if decided else "; not decided in 120 s")
    return row(engine, f"TradingView resend schedule, {outage_s:.0f} s outage", bad, note)


def many_deliveries(rt: Any, url: str, body: bytes, deliveries: int, threads: int = 50) -> Row:
    """One alert delivered ``deliveries`` times from ``threads`` connections at once."""
    engine = rt.engine()
    with cf.ThreadPoolExecutor(threads) as pool:
        statuses = list(pool.map(lambda _: post(url, body, timeout_s=30), range(deliveries)))
    bad = bad_input_5xx(url)
    decided = wait_decided(engine, 120)
    with session_scope(engine) as s:
        executions = s.scalar(select(func.count()).select_from(LocalExecution)) or 0
    codes = {c: statuses.count(c) for c in sorted(set(statuses))}
    note = f"answers {codes}; {executions} execution(s)" + ("" if decided else "; not decided in 120 s")
    return row(engine, f"{deliveries:,} deliveries of one alert", bad, note)
