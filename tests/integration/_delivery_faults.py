"""The delivery fault suite (issue 16), shared by tests/integration/test_delivery_faults.py (asserts)
and benchmarks/bench_delivery_faults.py (prints the table).

Each scenario drives real deliveries into the real runtime and returns one :class:`Row`: alerts
accepted, alerts decided (must be equal), entry orders (one per decision to trade: never two for an
alert) and 5xx answers to bad input (must be 0). The ``serve`` scenarios run ``tradingbot serve`` as
a real subprocess on the offline replay (no network) against a real PostgreSQL and Redis, and
``kill -9`` it while executions are inside given states (``LOCAL_FAULT_PAUSE=A,B,...:s`` holds the
k-th execution in the k-th state and writes the state to its row, so the kill lands in each stage,
not near it). One ``serve`` holds executions in every stage at once and one kill lands in all of
them; each alert has an account of its own, so each stage's row counts only its own alerts and no
drill alert's risk limits see another's position.

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
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text, true

from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import Alert, Decision, LocalExecution, Order, PipelineStart

#: TradingView's resubmission: 5 s after a 5xx (not 504), up to 3 times
RESEND_DELAY_S = 5.0
RESENDS = 3
#: TradingView cancels a request after 3 s
TV_TIMEOUT_S = 3.0
#: the trade path's states, in order: a kill -9 lands in each (``+``: after its task answered;
#: ``Vote_openai+``: inside the Ensemble's Parallel, one voter answered, the others maybe not)
STAGES = ("Predict", "Ensemble", "Vote_openai+", "Strategies", "Validate", "Execute", "Execute+", "Notify",
          "RecordTrade")  # fmt: skip
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
    expected: int | None = None  # alerts the scenario must have accepted, when it knows (its deliveries)

    @property
    def ok(self) -> bool:
        sent = self.expected is None or self.accepted == self.expected
        return sent and self.accepted == self.decided and self.orders == self.trades and self.bad_5xx == 0


EXTRA_ROWS: list[Callable[[], Row]] = []


def print_table(rows: list[Row]) -> None:
    head = f"{'scenario':<44} {'accepted':>8} {'decided':>8} {'orders':>7} {'trades':>7} {'bad->5xx':>8}  ok"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r.scenario:<44} {r.accepted:>8} {r.decided:>8} {r.orders:>7} {r.trades:>7} {r.bad_5xx:>8}  "
              f"{'yes' if r.ok else 'NO'}{'  ' + r.note if r.note else ''}")  # fmt: skip


# ---------------------------------------------------------------- counting


def counts(engine: Engine, accounts: Collection[int] | None = None) -> tuple[int, int, int, int]:
    """(accepted, decided, entry orders, trade decisions) in the database; of ``accounts`` only
    when given (each drill's alerts have accounts of their own, so rows sharing one `serve` count
    only their own alerts)."""

    def mine(column: Any) -> Any:
        return column.in_(list(accounts)) if accounts is not None else true()

    with session_scope(engine) as s:
        accepted = s.scalar(
            select(func.count()).select_from(PipelineStart).join(Alert, Alert.id == PipelineStart.alert_id)
            .where(mine(Alert.account_id))
        ) or 0  # fmt: skip
        decided = s.scalar(
            select(func.count()).select_from(Decision)
            .where(Decision.execution_name.in_(select(PipelineStart.execution_name)),
                   Decision.final_action.is_not(None), mine(Decision.account_id))
        ) or 0  # fmt: skip
        # entry orders that reached the venue: a row refused before anything was placed (``failed``:
        # every send refused, e.g. the paper venue's price source down; ``rejected``; ``pending``:
        # never sent) is not an order, and its decision is stored as rejected with that reason
        orders = s.scalar(
            select(func.count()).select_from(Order)
            .where(Order.type == "market", Order.status.not_in(("pending", "failed", "rejected")),
                   mine(Order.account_id))
        ) or 0  # fmt: skip
        trades = s.scalar(
            select(func.count()).select_from(Decision)
            .where(Decision.stages["execution"]["status"].astext.in_(("filled", "partially_filled")),
                   mine(Decision.account_id))
        ) or 0  # fmt: skip
    return accepted, decided, orders, trades


def row(
    engine: Engine, scenario: str, bad_5xx: int, note: str = "", accounts: Collection[int] | None = None,
    expected: int | None = None,
) -> Row:  # fmt: skip
    """The scenario's row; the note says why decided alerts did not trade (their stored reasons)."""
    out = Row(scenario, *counts(engine, accounts), bad_5xx=bad_5xx, note=note, expected=expected)
    if out.trades < out.decided:
        with session_scope(engine) as s:
            reasons = s.scalars(
                select(Decision.rejection_reason)
                .where(Decision.final_action.is_not(None), Decision.rejection_reason.is_not(None),
                       Decision.account_id.in_(list(accounts)) if accounts is not None else true())
            ).all()  # fmt: skip
        why = "; ".join(f"{n} x {reason}" for reason, n in Counter((r or "")[:110] for r in reasons).most_common(2))
        out.note = "; ".join(x for x in (out.note, f"not traded: {why}" if why else "") if x)
    return out


def wait_decided(engine: Engine, timeout_s: float, accounts: Collection[int] | None = None) -> bool:
    """Every accepted alert (of ``accounts``, when given) decided and no execution open, within
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        accepted, decided, _, _ = counts(engine, accounts)
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


def bad_input_answers(url: str) -> list[int]:
    """The answers to each of :data:`BAD_BODIES`, in order."""
    return [post(url, b, timeout_s=10) for b in BAD_BODIES]


def bad_input_5xx(url: str) -> int:
    return sum(1 for status in bad_input_answers(url) if status >= 500)


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
    #: its output's error lines since the start (the webhook's "webhook_error" and tracebacks' last line)
    errors: list[str] = field(default_factory=list)

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

    app = Serve(proc, url.group(1), json.loads(body.group(1)), printed)

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            if '"webhook_error"' in line or re.match(r"^\w+(Error|Exception): ", line):
                app.errors.append(line.strip()[-400:])  # Powertools puts the exception at the end

    threading.Thread(target=read, daemon=True).start()
    return app


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


def new_accounts(engine: Engine, prefix: str, n: int) -> list[tuple[int, str]]:
    """``n`` paper accounts (id, webhook token), as ``serve``'s demo account is made: each alert of
    a drill has its own, so its risk limits and its row's counts are its own."""
    with session_scope(engine) as s:
        made = [repo.create_account(s, name=f"{prefix}-{i}", exchange="paper", testnet=True) for i in range(n)]
        return [(a.id, token) for a, token in made]


def alert_for(sample: dict[str, Any], token: str, i: int) -> bytes:
    """The sample alert of ``serve`` for another account, a cent apart (within the price rule)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return json.dumps(sample | {"token": token, "price": round(float(sample["price"]) + i * 0.01, 2),
                                "time": now}).encode()  # fmt: skip


def paused(engine: Engine) -> dict[str, str]:
    """execution name -> the state it is held in (``LOCAL_FAULT_PAUSE``), for the executions held."""
    with session_scope(engine) as s:
        rows = s.execute(select(LocalExecution.name, LocalExecution.current_state)
                         .where(LocalExecution.current_state.is_not(None))).all()  # fmt: skip
    return dict(rows)  # type: ignore[arg-type]


def kill9_inside_every_stage(
    engine: Engine, data_dir: Path, env: dict[str, str], stages: tuple[str, ...] = STAGES, per_stage: int = 2,
    timeout_s: float = 180,
) -> list[Row]:  # fmt: skip
    """One ``serve`` holds ``per_stage`` executions inside each of ``stages`` at once
    (``LOCAL_FAULT_PAUSE=A,B,...:s`` pauses the k-th execution in the k-th state, round robin), is
    killed with kill -9 and started again; one row per stage, counting only the alerts that were
    inside that stage at the kill. Each alert has an account of its own (its risk limits see no
    other drill alert). Every accepted alert must be decided once, with at most one entry order."""
    reset(engine)
    n = len(stages) * per_stage
    workers = 2
    drill = env | {"LOCAL_FAULT_PAUSE": f"{','.join(stages)}:600", "LOCAL_WORKERS": str(workers),
                   "LOCAL_WORKER_THREADS": str(-(-n // workers))}  # every execution held at once  # fmt: skip
    app = start_serve(data_dir, drill)
    accounts = new_accounts(engine, "drill", n)
    try:
        bodies = [alert_for(app.alert, token, i) for i, (_, token) in enumerate(accounts)]
        statuses = [post(app.webhook, b) for b in bodies]
        bad_answers = bad_input_answers(app.webhook)
        deadline = time.monotonic() + timeout_s
        while len(held := paused(engine)) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        _, decided_before, _, _ = counts(engine)
    finally:
        kill9(app)
    with session_scope(engine) as s:  # execution name -> account, through its alert
        owner = {name: account for name, account in s.execute(
            select(PipelineStart.execution_name, Alert.account_id).join(Alert, Alert.id == PipelineStart.alert_id)
        ) if account is not None}  # fmt: skip
    with serving(data_dir, env) as again:
        decided = wait_decided(engine, timeout_s)
        bad_answers += bad_input_answers(again.webhook)
        # TradingView's resend after the restart (its first send may have been cut): a duplicate
        resent = [post(again.webhook, b) for b in bodies]
    bad = sum(1 for status in bad_answers if status >= 500)
    rows = []
    for stage in stages:
        inside = [owner[name] for name, state in held.items() if state == stage and name in owner]
        note = "" if len(inside) == per_stage else f"{len(inside)} of {per_stage} reached {stage}"
        if decided_before:
            note += f" {decided_before} decided before the kill"
        if not decided:
            note += f" not all decided in {timeout_s:.0f} s"
        answers = [(statuses[i], resent[i]) for i, (a, _) in enumerate(accounts) if a in inside]
        if any(answer != (202, 202) for answer in answers):
            note += f" answers {answers}"
        if bad:
            errors = app.errors + again.errors
            note += f" bad input answered {bad_answers} (before the kill, after the restart); {errors}"
        rows.append(row(engine, f"kill -9 of serve inside {stage}", bad, note.strip(), accounts=inside,
                        expected=per_stage))  # fmt: skip
    return rows


def restart_dependencies(
    engine: Engine, data_dir: Path, env: dict[str, str],
    outages: list[tuple[str, Callable[[], None], Callable[[], None]]], alerts: int = 4, outage_s: float = 8.0,
    after: Callable[[Serve], None] | None = None,
) -> list[Row]:  # fmt: skip
    """One ``serve``; for each (name, stop, start) in turn: half of ``alerts`` delivered, ``name``
    (the database or Redis) stopped while the other half arrive (each delivered like TradingView:
    resent after a 5xx, over 15 s while the outage lasts ``outage_s``), started again; every accepted
    alert is decided. Each outage's alerts have accounts of their own, so its row counts its own.
    ``after`` runs on the same ``serve`` once the outages are over."""
    reset(engine)
    rows = []
    with serving(data_dir, env) as app:
        for name, stop, start in outages:
            accounts = new_accounts(engine, f"outage-{name}", alerts)
            ids = [a for a, _ in accounts]
            bodies = [alert_for(app.alert, token, i) for i, (_, token) in enumerate(accounts)]
            before = [post(app.webhook, b) for b in bodies[: alerts // 2]]
            stop()
            t_down = time.monotonic()
            bad = 0
            with cf.ThreadPoolExecutor(alerts) as pool:
                during = pool.map(deliver_like_tradingview, [app.webhook] * (alerts - alerts // 2),
                                  bodies[alerts // 2 :])  # fmt: skip
                time.sleep(max(0.0, outage_s - (time.monotonic() - t_down)))
                bad += bad_input_5xx(app.webhook)
                start()
                answers = list(during)
            bad += bad_input_5xx(app.webhook)
            decided = wait_decided(engine, 180, ids)
            note = f"during the outage: {answers}; before: {before}" + ("" if decided else "; not all decided in 180 s")
            rows.append(row(engine, f"{name} restart", bad, note, accounts=ids, expected=alerts))
        if after is not None:
            after(app)
    return rows


def refusals_flushed_by_serve(
    engine: Engine, redis_url: str, app: Serve, *, source: str = "127.0.0.5", burst: int = 20, timeout_s: float = 15
) -> dict[str, int]:  # fmt: skip
    """``burst`` wrong tokens from ``source`` (a fresh sender: not TradingView's, so it is locked out
    on the way, and each attempt is refused and tallied once), then nothing: how many Redis counted,
    how many ``ingress_refusals`` holds right after the burst (a refusal flushes the tallies at most
    once per ``FLUSH_EVERY_S``) and ``timeout_s`` later at most (only ``serve``'s own schedule can
    have copied the rest)."""
    from tests.integration._ingress_load import post_from
    from tradingbot.adapters.cache import Cache
    from tradingbot.adapters.persistence.models import IngressRefusal

    port = int(app.url.rsplit(":", 1)[1])
    wrong = json.dumps(app.alert | {"token": "tbwh_" + "x" * 43}).encode()
    statuses = [post_from(port, source, wrong)[0] for _ in range(burst)]

    def in_db() -> int:
        with session_scope(engine) as s:
            return int(s.scalar(select(func.coalesce(func.sum(IngressRefusal.count), 0))
                                .where(IngressRefusal.source == source)) or 0)  # fmt: skip

    after_burst = in_db()
    now_minute = int(time.time()) // 60
    tallies = Cache.from_url(redis_url).refusal_tallies(list(range(now_minute - 5, now_minute + 1)))
    in_redis = sum(n for fields in tallies.values() for (_, src), n in fields.items() if src == source)
    deadline = time.monotonic() + timeout_s
    while (db := in_db()) < in_redis and time.monotonic() < deadline:
        time.sleep(0.2)
    return {"sent": len([s for s in statuses if s in (401, 429)]), "redis": in_redis, "db_after_burst": after_burst,
            "db": db}  # fmt: skip


# ---------------------------------------------------------------- in-process scenarios (one runtime)


class FlakyStart:
    """The Step Functions client with StartExecution failing: the first ``failures`` calls, or every
    call until ``until`` (monotonic); a throttle as boto3 raises it after its own retries.

    It offers no ``start_in_transaction``: the webhook stores the alert, commits, then calls
    StartExecution, as on AWS (the path whose failure TradingView's resend and the sweeper repair);
    the local runtime's start inside the alert's transaction cannot fail apart from it."""

    start_in_transaction = None

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
    return row(engine, f"StartExecution failing {failures}x, then recovering", bad, note, expected=len(bodies))


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
    return row(engine, f"TradingView resend schedule, {outage_s:.0f} s outage", bad, note, expected=1)


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
    return row(engine, f"{deliveries:,} deliveries of one alert", bad, note, expected=1)


def schemathesis_row(engine: Engine, base_url: str, examples: int = 200) -> Row:
    """A schemathesis run against the webhook's committed OpenAPI document (docs/openapi/webhook.json;
    positive and negative generated requests, tests/integration/_ingress_load.py): no generated
    request carries a valid token, so none may be accepted, and none may get a 5xx."""
    from tests.integration._ingress_load import run_schemathesis

    statuses = run_schemathesis(base_url, examples=examples)
    bad = sum(n for status, n in statuses.items() if status >= 500)
    codes = dict(sorted(statuses.items()))
    return row(engine, "schemathesis (generated bad input)", bad, f"{sum(statuses.values())} requests: {codes}",
               expected=0)  # fmt: skip
