"""The local Step Functions: durable executions in PostgreSQL, run by worker processes.

* :class:`LocalSfnClient` answers the boto3 Step Functions calls the product makes
  (``start_execution``, ``describe_execution``, ``list_executions``, ``get_execution_history``)
  from the ``local_executions`` table, with the service's documented rules for a repeated name:
  "When the original execution is open and the execution input from the new call is identical,
  the Success message is returned. When the original execution is closed, the
  ExecutionAlreadyExists message is returned regardless of input"
  (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html); a name
  is 1-80 characters without whitespace, brackets, wildcards or ``"#%\\^|~`$&,;:/`` (same page).
* :class:`Executor` claims queued executions (``FOR UPDATE SKIP LOCKED``), runs each with the ASL
  interpreter (tradingbot.entrypoints.local.asl) and the in-process Lambda handlers, and stores the
  outcome and the trace with the decision. A running execution is held under a lease that a
  heartbeat renews; an execution whose holder died (``kill -9``) is queued again and resumes at the
  checkpoint stored after its last finished top-level state; the state it was in runs again, which
  every stage allows (the ASL's comment says why: each stage is idempotent, and Execute resumes from
  its stored order rows under client order ids derived from the alert).
* :class:`WorkerPool` runs executors in separate, lower-priority processes, so executions never
  compete with the HTTP server's acknowledgements for the CPU; each worker dies with ``serve``.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import datetime as dt
import gc
import json
import logging
import multiprocessing as mp
import os
import re
import signal
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import lower_backend_priority, run_once_more_if_dropped, session_scope
from tradingbot.adapters.persistence.errors import DatabaseUnavailable
from tradingbot.adapters.persistence.group_commit import GroupCommit
from tradingbot.adapters.persistence.json_rows import json_rows
from tradingbot.entrypoints.local.asl import (
    Context,
    Execution,
    ExecutionFailed,
    History,
    Interrupted,
    StateMachine,
    StatesError,
)
from tradingbot.pipeline.runtime import Runtime

log = logging.getLogger(__name__)

OPEN = ("QUEUED", "RUNNING")
_NAME_FORBIDDEN = re.compile(r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]")
LEASE_S = 30.0
#: worker processes (and their PostgreSQL backends) yield the CPU to the HTTP server. Not 19: there the
#: executions starved whenever anything else ran (test_serve.py beside two CPU hogs: no decision in time)
WORKER_NICENESS = 10


class _Exceptions:
    """``client.exceptions.<Code>`` as boto3 spells them (ClientError subclasses)."""

    # ruff: noqa: N818 - the names are the service's error codes

    class ExecutionAlreadyExists(ClientError):  # type: ignore[misc]
        pass

    class ExecutionDoesNotExist(ClientError):  # type: ignore[misc]
        pass

    class InvalidName(ClientError):  # type: ignore[misc]
        pass

    class InvalidExecutionInput(ClientError):  # type: ignore[misc]
        pass

    class StateMachineDoesNotExist(ClientError):  # type: ignore[misc]
        pass


def _raise(kind: type[ClientError], message: str, operation: str) -> None:
    raise kind({"Error": {"Code": kind.__name__, "Message": message}}, operation)


def execution_arn(state_machine_arn: str, name: str) -> str:
    return f"{state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"


class LocalSfnClient:
    """The Step Functions calls the product makes, answered from ``local_executions``."""

    exceptions = _Exceptions

    def __init__(self, rt: Runtime, state_machine_arn: str, wake: Callable[[], None] | None = None) -> None:
        self.rt, self.state_machine_arn, self._wake = rt, state_machine_arn, wake
        self._starts: GroupCommit[tuple[str, str], dict[str, Any] | ClientError] = GroupCommit(self._insert_starts)

    def _check_machine(self, arn: str, operation: str) -> None:
        if arn != self.state_machine_arn:
            _raise(_Exceptions.StateMachineDoesNotExist, f"State Machine Does Not Exist: '{arn}'", operation)

    def start_execution(self, *, stateMachineArn: str, name: str | None = None, input: str = "{}") -> dict[str, Any]:
        self._check_machine(stateMachineArn, "StartExecution")
        name = name or str(uuid.uuid4())
        if not 1 <= len(name) <= 80 or _NAME_FORBIDDEN.search(name):
            _raise(_Exceptions.InvalidName, f"Invalid Name: '{name}'", "StartExecution")
        try:
            json.loads(input)
        except json.JSONDecodeError:
            _raise(_Exceptions.InvalidExecutionInput, "Invalid State Machine Execution Input", "StartExecution")
        started: dict[str, Any] | ClientError = self._starts.submit((name, input))
        if isinstance(started, ClientError):
            raise started
        started.pop("new", None)  # boto3's answer: executionArn and startDate
        return started

    def _insert_starts(self, requests: Sequence[tuple[str, str]]) -> list[dict[str, Any] | ClientError]:
        """Concurrent StartExecution calls in one transaction of their own (group commit)."""
        with self.rt.engine().begin() as conn:
            out = self.insert_starts(conn, requests)
        self.notify_started(out)
        return out

    def start_in_transaction(
        self, conn: Connection, requests: Sequence[tuple[str, str]]
    ) -> list[dict[str, Any] | ClientError]:
        """StartExecution for ``(name, input)`` pairs inside the caller's open transaction on the same
        database: the local runtime keeps its executions beside the alerts, so the webhook stores an
        alert, its outbox row and its execution in one commit (ADR 0021) instead of calling
        StartExecution after it. The caller calls :meth:`notify_started` once it has committed (the
        workers cannot see the rows before). Names are checked as :meth:`start_execution` checks them."""
        for name, _ in requests:
            if not 1 <= len(name) <= 80 or _NAME_FORBIDDEN.search(name):
                _raise(_Exceptions.InvalidName, f"Invalid Name: '{name}'", "StartExecution")
        return self.insert_starts(conn, requests)

    def notify_started(self, answers: Sequence[dict[str, Any] | ClientError]) -> None:
        """Wake the workers when some of ``answers`` started a new execution (after its commit)."""
        if self._wake is not None and any(isinstance(a, dict) and a.get("new") for a in answers):
            self._wake()

    def insert_starts(
        self, conn: Connection, requests: Sequence[tuple[str, str]]
    ) -> list[dict[str, Any] | ClientError]:
        """One multi-row insert for ``requests``; a name already there follows the service's rules
        quoted above. An answer for a newly created execution carries ``new: True`` (ours, not boto3's)."""
        if not requests:
            return []
        machine = self.state_machine_arn
        rows = conn.execute(  # one statement for any batch size, the rows as JSON (repositories.alerts)
            text("INSERT INTO local_executions (state_machine, name, input) SELECT :m, n, i FROM "
                 "json_to_recordset(CAST(:rows AS json)) AS r(n text, i text) "
                 "ON CONFLICT (state_machine, name) DO NOTHING RETURNING name, input, created_at"),
            {"m": machine, "rows": json_rows([{"n": n, "i": i} for n, i in requests])},
        ).all()  # fmt: skip
        created = {r.name: r for r in rows}
        missing = sorted({n for n, _ in requests} - created.keys())
        existing = {
            r.name: r
            for r in conn.execute(
                text("SELECT name, status, input, created_at FROM local_executions "
                     "WHERE state_machine = :m AND name = ANY(:names)"),
                {"m": machine, "names": missing},
            ).all()
        } if missing else {}  # fmt: skip
        out: list[dict[str, Any] | ClientError] = []
        first = set()
        for name, payload in requests:
            answer = {"executionArn": execution_arn(machine, name)}
            if name in created and name not in first:
                first.add(name)
                out.append(answer | {"startDate": created[name].created_at, "new": True})
                continue
            row = existing.get(name)
            status, stored, at = ("QUEUED", created[name].input, created[name].created_at) if row is None else (
                row.status, row.input, row.created_at)  # fmt: skip
            if status not in OPEN or stored != payload:
                out.append(_Exceptions.ExecutionAlreadyExists(
                    {"Error": {"Code": "ExecutionAlreadyExists", "Message": f"Execution Already Exists: '{name}'"}},
                    "StartExecution"))  # fmt: skip
            else:
                out.append(answer | {"startDate": at})
        return out

    def _row(self, arn: str, operation: str) -> Any:
        machine, _, name = arn.replace(":execution:", ":stateMachine:").rpartition(":")
        with self.rt.engine().connect() as conn:
            row = conn.execute(
                text("SELECT * FROM local_executions WHERE state_machine = :m AND name = :n"), {"m": machine, "n": name}
            ).first()
        if row is None:
            _raise(_Exceptions.ExecutionDoesNotExist, f"Execution Does Not Exist: '{arn}'", operation)
        return row

    def describe_execution(self, *, executionArn: str) -> dict[str, Any]:
        return _describe(self._row(executionArn, "DescribeExecution"))

    def get_execution_history(self, *, executionArn: str, maxResults: int = 1000, **_: Any) -> dict[str, Any]:
        row = self._row(executionArn, "GetExecutionHistory")
        events = [dict(e, timestamp=dt.datetime.fromisoformat(e["timestamp"])) for e in row.history or []]
        return {"events": events[:maxResults]}

    def list_executions(
        self,
        *,
        stateMachineArn: str,
        statusFilter: str | None = None,
        maxResults: int = 1000,
        nextToken: str | None = None,
    ) -> dict[str, Any]:
        self._check_machine(stateMachineArn, "ListExecutions")
        offset = int(nextToken or 0)
        where = "state_machine = :m"
        params: dict[str, Any] = {"m": stateMachineArn, "lim": maxResults + 1, "off": offset}
        if statusFilter == "RUNNING":
            where += " AND status IN ('QUEUED', 'RUNNING')"
        elif statusFilter:
            where += " AND status = :s"
            params["s"] = statusFilter
        with self.rt.engine().connect() as conn:
            rows = conn.execute(
                text(f"SELECT * FROM local_executions WHERE {where} ORDER BY id DESC LIMIT :lim OFFSET :off"), params
            ).all()
        out: dict[str, Any] = {"executions": [_describe(r) for r in rows[:maxResults]]}
        if len(rows) > maxResults:
            out["nextToken"] = str(offset + maxResults)
        return out


def _describe(row: Any) -> dict[str, Any]:
    # QUEUED is ours (claimed by no worker yet); Step Functions calls that RUNNING too
    desc: dict[str, Any] = {
        "executionArn": execution_arn(row.state_machine, row.name), "stateMachineArn": row.state_machine,
        "name": row.name, "status": "RUNNING" if row.status == "QUEUED" else row.status,
        "startDate": row.created_at, "input": row.input,
    }  # fmt: skip
    if row.stopped_at is not None:
        desc["stopDate"] = row.stopped_at
    for key, value in (("output", row.output), ("error", row.error), ("cause", row.cause)):
        if value is not None:
            desc[key] = value
    return desc


# ---------------------------------------------------------------- running executions


Handler = Callable[[dict[str, Any], Any], Any]


def lambda_invoke(handlers: dict[str, Handler], prefix: str) -> Callable[[str, Any], Any]:
    """A Task's Lambda ARN -> the in-process handler, answering as Lambda does: the result through
    JSON; an unhandled exception becomes the error named by its class (Lambda's ``errorType``, which
    ``ErrorEquals`` matches) with the Lambda error document as its cause."""

    def invoke(resource: str, payload: Any) -> Any:
        name = resource.rsplit(":", 1)[-1].removeprefix(prefix)
        handler = handlers.get(name)
        if handler is None:
            raise StatesError("Lambda.ResourceNotFoundException", f"Function not found: {resource}")
        try:
            result = handler(json.loads(json.dumps(payload)), None)
        except Exception as exc:
            cause = {"errorMessage": str(exc), "errorType": type(exc).__name__,
                     "stackTrace": traceback.format_exception(exc)[-3:]}  # fmt: skip
            raise StatesError(type(exc).__name__, json.dumps(cause)) from None
        return json.loads(json.dumps(result, default=str))

    return invoke


@dataclass(frozen=True)
class FaultPause:
    """``LOCAL_FAULT_PAUSE``: pause ``seconds`` on entering ``state`` (``after``: once its task
    answered), after writing the state to the execution's row, so a drill can kill -9 there.

    ``A,B+,C:seconds`` names several states: the execution whose row id is ``k`` pauses in the
    ``(k - 1) % n``-th only, so one ``serve`` holds executions inside every stage at once and one
    kill -9 lands in all of them (tests/integration/_delivery_faults.py)."""

    state: str
    after: bool
    seconds: float
    rotation: tuple[tuple[str, bool], ...] = ()  # (state, after) per row id, when several are named

    @classmethod
    def parse(cls, spec: str) -> FaultPause | None:
        if not spec.strip():
            return None
        names, _, seconds = spec.strip().rpartition(":")
        states = tuple((n.strip().removesuffix("+"), n.strip().endswith("+")) for n in names.split(","))
        if not names or not all(name for name, _ in states):
            raise ValueError(f"LOCAL_FAULT_PAUSE: expected 'State:seconds', 'State+:seconds' or "
                             f"'State,State+,...:seconds', got {spec!r}")  # fmt: skip
        try:
            pause_s = float(seconds)
        except ValueError:
            raise ValueError(f"LOCAL_FAULT_PAUSE: seconds must be a number, got {seconds!r}") from None
        return cls(states[0][0], states[0][1], pause_s, states if len(states) > 1 else ())

    def target(self, row_id: int) -> tuple[str, bool]:
        """The (state, after) the execution of row ``row_id`` pauses in."""
        return self.rotation[(row_id - 1) % len(self.rotation)] if self.rotation else (self.state, self.after)


class Executor:
    """Claims and runs executions of one state machine; ``threads`` at once."""

    def __init__(
        self,
        rt: Runtime,
        *,
        state_machine_arn: str,
        definition: str,
        handlers: dict[str, Handler],
        function_prefix: str,
        threads: int,
        market: Callable[[], dict[str, Any] | None] | None = None,
        fault: FaultPause | None = None,
        after_first: Callable[[], None] | None = None,
    ) -> None:
        """``after_first``: called once, after this executor's first execution has finished (its stages'
        lazy imports and caches are loaded by then): the worker process freezes its heap there."""
        self.rt, self.state_machine_arn = rt, state_machine_arn
        from tradingbot.adapters.persistence.config import database_url
        from tradingbot.adapters.persistence.db import create_db_engine

        # the executor's own bookkeeping (claim, lease, outcome) never waits for the stages' pool; no
        # pre-ping (a SELECT 1 per checkout, 13 % of a worker's samples): a connection found dropped is
        # retried once afresh (_bookkeeping), a failed claim is tried again by the loop
        self._db = create_db_engine(rt.database_url or database_url(rt.persistence), pool_size=threads + 2,
                                    pre_ping=False)  # fmt: skip
        self.machine = StateMachine(definition)
        self.invoke = lambda_invoke(handlers, function_prefix)
        self.threads = threads
        self.market = market
        self.fault = fault
        self._after_first = after_first
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._busy = 0
        self._held: set[int] = set()  # rows this executor is running: the only ones its heartbeat renews
        self._busy_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # Task timeouts run the handler on this pool (a timed-out handler keeps running, as a Lambda does)
        self._pool = cf.ThreadPoolExecutor(max_workers=threads * 4, thread_name_prefix="asl-task")

    # ---------------------------------------------------------- lifecycle

    def start(self) -> Executor:
        for i in range(self.threads):
            t = threading.Thread(target=self._loop, name=f"asl-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        beat = threading.Thread(target=self._heartbeat, name="asl-lease", daemon=True)
        beat.start()
        self._threads.append(beat)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self.wake.set()
        for t in self._threads:
            t.join(timeout=timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._db.dispose()

    @property
    def busy(self) -> int:
        return self._busy

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                claimed = self.claim()
            except Exception as exc:  # the database restarting: try again shortly
                log.warning("local executions: claim failed: %s", type(exc).__name__)
                self._stop.wait(0.5)
                continue
            if claimed is None:
                self.wake.wait(0.2)
                self.wake.clear()
                continue
            with self._busy_lock:
                self._busy += 1
                self._held.add(claimed[0])
            try:
                self.run_claimed(*claimed)
            except Exception as exc:
                # its outcome could not be stored (the database went away): let the lease lapse, so a
                # worker takes it up again from its checkpoint once the database is back
                log.warning("local executions: %s not finished: %s", claimed[1], type(exc).__name__)
            finally:
                with self._busy_lock:
                    self._busy -= 1
                    self._held.discard(claimed[0])
                    after_first, self._after_first = self._after_first, None
                if after_first is not None:
                    after_first()

    def _heartbeat(self) -> None:
        while not self._stop.wait(LEASE_S / 3):
            with self._busy_lock:
                held = list(self._held)
            if not held:
                continue
            with contextlib.suppress(Exception), self._db.begin() as conn:
                conn.execute(
                    text("UPDATE local_executions SET lease_until = now() + make_interval(secs => :s) "
                         "WHERE owner = :o AND status = 'RUNNING' AND id = ANY(:ids)"),
                    {"s": LEASE_S, "o": self.owner, "ids": held},
                )  # fmt: skip

    # ---------------------------------------------------------- one execution

    def claim(self) -> tuple[int, str, str, dt.datetime, dict[str, Any] | None] | None:
        """The oldest queued execution (or one whose holder's lease lapsed), now held by this owner."""
        with self._db.begin() as conn:
            row = conn.execute(
                text("""
                UPDATE local_executions SET status = 'RUNNING', owner = :o, runs = runs + 1,
                       lease_until = now() + make_interval(secs => :s)
                WHERE id = (SELECT id FROM local_executions
                            WHERE state_machine = :m
                              AND (status = 'QUEUED' OR (status = 'RUNNING' AND lease_until < now()))
                            ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
                RETURNING id, name, input, created_at, checkpoint"""),
                {"o": self.owner, "s": LEASE_S, "m": self.state_machine_arn},
            ).first()  # fmt: skip
        return None if row is None else (row.id, row.name, row.input, row.created_at, row.checkpoint)

    def run_claimed(
        self, row_id: int, name: str, input_text: str, created: dt.datetime, checkpoint: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run (or, from its checkpoint, resume) one claimed execution; store its outcome and trace."""
        history = History()
        ctx = Context(execution_arn(self.state_machine_arn, name), name, self.state_machine_arn,
                      json.loads(input_text), start_time=created)  # fmt: skip
        resume = (str(checkpoint["next"]), checkpoint["data"]) if checkpoint else None
        execution = Execution(self.machine, self.invoke, ctx, history=history, pause=self._pause(row_id),
                              pool=self._pool, resume=resume, checkpoint=self._checkpoint(row_id))  # fmt: skip
        status, output, error, cause = "SUCCEEDED", None, None, None
        try:
            output = json.dumps(execution.run())
        except ExecutionFailed as exc:
            status, error, cause = "FAILED", exc.error[:256], exc.cause
        events = [dict(e, timestamp=e["timestamp"].isoformat()) for e in history.events]
        desc = {"executionArn": ctx.execution_arn, "status": status, "startDate": created}
        trace = history_to_trace(history.events)
        market = self._market()

        def finish(s: Session) -> dt.datetime | None:
            # the outcome and the decision's trace in one transaction (it is run once more if its
            # connection dropped: a second run finds the row no longer ours and the trace merged)
            stopped: dt.datetime | None = s.execute(
                text("UPDATE local_executions SET status = :st, output = :out, error = :err, cause = :cause, "
                     "history = CAST(:h AS jsonb), stopped_at = now(), owner = NULL, lease_until = NULL, "
                     "current_state = NULL WHERE id = :id AND owner = :o RETURNING stopped_at"),
                {"st": status, "out": output, "err": error, "cause": cause, "h": json.dumps(events),
                 "id": row_id, "o": self.owner},
            ).scalar()  # fmt: skip
            meta = trace_meta(desc | {"stopDate": stopped or dt.datetime.now(dt.UTC)}, trace, market)
            repo.attach_execution_trace(s, name, meta)  # the decision record itself is the Record stage's
            return stopped

        stopped = self._bookkeeping(finish)
        return desc | {"stopDate": stopped or dt.datetime.now(dt.UTC)}

    def _market(self) -> dict[str, Any] | None:
        try:
            return self.market() if self.market is not None else None
        except Exception as exc:  # Redis away: the trace goes without it
            log.warning("local executions: market mode unknown: %s", type(exc).__name__)
            return None

    def _bookkeeping[T](self, op: Callable[[Session], T]) -> T:
        """``op`` in one transaction on the executor's engine, run once more on a fresh connection when
        the first attempt found the database unavailable (the engine has no pre-ping: a connection
        the server dropped while idle is only found out on use). Only for idempotent ``op``s."""

        def once() -> T:
            with session_scope(self._db) as s:
                return op(s)

        return run_once_more_if_dropped(once)

    def _checkpoint(self, row_id: int) -> Callable[[str, Any], None]:
        """After each top-level state that did work: where a re-claimed execution (its holder killed)
        resumes, so a stage that already acted (Validate passed, Execute placed its order) is not
        decided again on a world it changed; the state being run when the holder died runs again (it
        is idempotent). A checkpoint that cannot be stored stops the run (:class:`Interrupted`): the
        execution stays open and is resumed from its last stored checkpoint once its lease lapses."""

        def checkpoint(next_state: str, data: Any) -> None:
            doc = json.dumps({"next": next_state, "data": data})
            try:
                self._bookkeeping(lambda s: s.execute(
                    text("UPDATE local_executions SET checkpoint = CAST(:c AS jsonb) WHERE id = :id AND owner = :o"),
                    {"c": doc, "id": row_id, "o": self.owner},
                ))  # fmt: skip
            except DatabaseUnavailable as exc:
                raise Interrupted(f"checkpoint before {next_state} not stored: {exc}") from exc

        return checkpoint

    def _pause(self, row_id: int) -> Callable[[str, str], None] | None:
        fault = self.fault
        if fault is None:
            return None

        target, after = fault.target(row_id)

        def pause(state: str, when: str) -> None:
            if state != target or (when == "after") != after:
                return
            with self._db.begin() as conn:
                conn.execute(text("UPDATE local_executions SET current_state = :s WHERE id = :id"),
                             {"s": state + ("+" if after else ""), "id": row_id})  # fmt: skip
            time.sleep(fault.seconds)

        return pause


def history_to_trace(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    entered: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for e in events:
        kind = e["type"]
        if kind.endswith("StateEntered"):
            d = e["stateEnteredEventDetails"]
            entered[d["name"]] = {"state": d["name"], "type": kind.removesuffix("StateEntered"),
                                  "input": _json(d.get("input")), "started": e["timestamp"]}  # fmt: skip
        elif kind.endswith("StateExited"):
            d = e["stateExitedEventDetails"]
            item = entered.pop(d["name"], {"state": d["name"], "started": e["timestamp"]})
            item["output"] = _json(d.get("output"))
            item["duration_ms"] = round((e["timestamp"] - item["started"]).total_seconds() * 1000, 2)
            item["started"] = _iso(item["started"])
            out.append(item)
        elif kind in ("TaskFailed", "LambdaFunctionFailed", "ExecutionFailed"):
            details: dict[str, Any] = next((v for k, v in e.items() if k.endswith("EventDetails")), {})
            out.append({"state": kind, "error": details.get("error"), "cause": details.get("cause"),
                        "started": _iso(e["timestamp"])})  # fmt: skip
    return out


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _iso(ts: Any) -> str:
    return ts.astimezone(dt.UTC).isoformat() if isinstance(ts, dt.datetime) else str(ts)


def trace_meta(
    desc: dict[str, Any], trace: list[dict[str, Any]], market: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``_execution`` document of a decision: the execution's status, times and per-state trace,
    and (``serve``) where its market data came from: the live feed or the offline replay."""
    started, stopped = desc.get("startDate"), desc.get("stopDate")
    meta = {
        "status": desc["status"], "execution_arn": desc["executionArn"], "started": _iso(started),
        "stopped": _iso(stopped) if stopped else None,
        "duration_ms": round((stopped - started).total_seconds() * 1000, 2) if started and stopped else None,
        "states": trace,
    }  # fmt: skip
    if market is not None:
        meta["market"] = market
    return meta


def store_trace(
    rt: Runtime,
    execution_name: str,
    desc: dict[str, Any],
    trace: list[dict[str, Any]],
    market: dict[str, Any] | None = None,
) -> None:
    """Attach the execution's :func:`trace_meta` to its decision record."""
    with session_scope(rt.engine()) as s:
        repo.attach_execution_trace(s, execution_name, trace_meta(desc, trace, market))


def requeue_orphans(rt: Runtime, state_machine_arn: str) -> int:
    """Executions held by a process of this host that is gone (``kill -9``): queued again, to be
    resumed at their checkpoint. Executions held elsewhere keep their lease (it lapses if they died)."""
    host = socket.gethostname()
    with rt.engine().begin() as conn:
        rows = conn.execute(
            text("SELECT id, owner FROM local_executions WHERE state_machine = :m AND status = 'RUNNING'"),
            {"m": state_machine_arn},
        ).all()
        dead = [r.id for r in rows if _owner_dead(r.owner, host)]
        if dead:
            conn.execute(
                text("UPDATE local_executions SET status = 'QUEUED', owner = NULL, lease_until = NULL, "
                     "current_state = NULL WHERE id = ANY(:ids)"), {"ids": dead},
            )  # fmt: skip
    return len(dead)


def _owner_dead(owner: str | None, host: str) -> bool:
    if owner is None:
        return True
    parts = owner.split(":")
    if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# ---------------------------------------------------------------- worker processes


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when its parent dies (prctl PR_SET_PDEATHSIG), so `kill -9` of
    `serve` leaves no worker running on; elsewhere a watcher thread notices the parent is gone."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent:
        os._exit(0)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def worker_main(
    parent: int,
    database_url: str,
    redis_url: str,
    state_machine_arn: str,
    definition: str,
    function_prefix: str,
    threads: int,
    wake: Any,
    ready: Any,
) -> None:
    """One worker process: its own runtime (pool, Redis, model), executors on the shared table."""
    _die_with_parent(parent)
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)  # acknowledgements first: the server process keeps its priority
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group; serve stops us in order
    from tradingbot.entrypoints.lambdas.registry import HANDLERS
    from tradingbot.pipeline.runtime import set_runtime
    from tradingbot.settings import Settings

    settings = Settings()
    rt = Runtime(config=settings, database_url=database_url, redis_url=redis_url, db_pool_size=threads + 2,
                 db_pre_ping=False)  # fmt: skip
    rt.settings = rt.settings.model_copy(update={"state_machine_arn": state_machine_arn})
    rt.sfn_client = LocalSfnClient(rt, state_machine_arn)
    set_runtime(rt)

    def market() -> dict[str, Any] | None:
        doc = rt.cache().market_mode()
        keys = ("mode", "live", "reason", "venue", "source")
        return None if doc is None else {k: v for k, v in doc.items() if k in keys}

    _warm_up()
    executor = Executor(rt, state_machine_arn=state_machine_arn, definition=definition, handlers=HANDLERS,
                        function_prefix=function_prefix, threads=threads, market=market,
                        fault=FaultPause.parse(settings.local.fault_pause),
                        after_first=freeze_startup_heap)  # fmt: skip
    for engine in (rt.engine(), executor._db):  # their queries at the worker's priority too
        lower_backend_priority(engine, WORKER_NICENESS)
    freeze_startup_heap()
    executor.start()
    ready.set()
    fd = wake.fileno()
    while True:
        if wake.poll(0.2):
            if not os.read(fd, 4096):  # serve is gone (EOF): so is this worker
                os._exit(0)
            executor.wake.set()


#: what the stages import or load on first use: paid once per worker before it takes executions, as a
#: warm Lambda container has (the ASL's TimeoutSeconds count from the invocation, cold start included)
_WARM_MODULES = (
    "tradingbot.adapters.ai.factory",
    "tradingbot.adapters.ai.ensemble",
    "tradingbot.adapters.ai.vote_cache",
    "tradingbot.domain.brief",
    "tradingbot.adapters.live_candles",
    "tradingbot.pipeline.strategies",
    "tradingbot.pipeline.order_service",
    "pandas_ta",
)


def freeze_startup_heap() -> None:
    """Collect once, then exempt every object alive now from later collections (``gc.freeze()``).

    A worker that imported the stages (pandas, pandas-ta, numba, the model) tracks about 420,000
    objects that live as long as it does, and CPython's full (generation 2) collection scans them all:
    215 ms for one on an idle machine; during a 100 alerts/s run, 100 to 360 ms per full collection in
    a worker (every thread of the process stopped meanwhile) and 165 ms in `serve`'s acknowledging
    process, which was that run's slowest acknowledgements. Frozen, they are never scanned again;
    what the process allocates afterwards is collected as before. Call it once start-up (imports,
    warm-up, pools) is done; a worker calls it again after its first execution, which loads what the
    stages import lazily.
    https://docs.python.org/3/library/gc.html#gc.freeze"""
    gc.collect()
    gc.freeze()


def _warm_up() -> None:
    import importlib

    for name in _WARM_MODULES:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    with contextlib.suppress(Exception):
        from tradingbot.adapters.model.predictor import load_default_predictor

        load_default_predictor()


class WorkerPool:
    """``workers`` processes, each running an :class:`Executor` with ``threads`` executions at once."""

    def __init__(
        self,
        *,
        database_url: str,
        redis_url: str,
        state_machine_arn: str,
        definition: str,
        function_prefix: str,
        workers: int,
        threads: int,
    ) -> None:
        self._ctx = mp.get_context("spawn")  # a clean interpreter: serve has threads (feed, matcher) a fork would copy
        self._wakes: list[Any] = []  # the write end of each worker's wake pipe
        self._args = (database_url, redis_url, state_machine_arn, definition, function_prefix, threads)
        self.workers = workers
        self.processes: list[Any] = []

    def start(self, wait_s: float = 60.0) -> WorkerPool:
        readies = []
        for i in range(self.workers):
            ready = self._ctx.Event()
            reader, writer = self._ctx.Pipe(duplex=False)
            os.set_blocking(writer.fileno(), False)
            proc = self._ctx.Process(target=worker_main, args=(os.getpid(), *self._args, reader, ready),
                                     name=f"tradingbot-worker-{i}", daemon=True)  # fmt: skip
            proc.start()
            reader.close()
            self._wakes.append(writer)
            self.processes.append(proc)
            readies.append(ready)
        deadline = time.monotonic() + wait_s
        for ready in readies:
            ready.wait(max(0.0, deadline - time.monotonic()))
        return self

    def wake(self) -> None:
        """Wake every worker's claim loop (new executions are committed). Never blocks: one byte
        written without waiting to each worker's pipe (a full pipe already holds a wake-up). A
        multiprocessing Event would take a lock shared with the workers, and a worker preempted
        while holding it (nice 10) would stall the webhook's commit path behind it."""
        for writer in self._wakes:
            with contextlib.suppress(OSError):  # BlockingIOError (full), BrokenPipeError (worker gone)
                os.write(writer.fileno(), b"\0")

    def stop(self, timeout_s: float = 10.0) -> None:
        for writer in self._wakes:
            writer.close()
        self._wakes = []
        for proc in self.processes:
            proc.terminate()
        for proc in self.processes:
            proc.join(timeout_s)
            if proc.is_alive():
                proc.kill()
        self.processes = []
