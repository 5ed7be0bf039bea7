"""Run the real state machine definition locally: moto's Step Functions interpreter executes
``statemachines/trading_pipeline.asl.json``; its Lambda invocations are dispatched in-process to the
same handlers that run on AWS (``tradingbot.entrypoints.lambdas.registry``).

Used by ``tradingbot serve`` (``make run``), ``tradingbot replay`` and the tests.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.pipeline.runtime import Runtime

ACCOUNT = "123456789012"
REGION = "us-east-1"
FUNCTION_PREFIX = "tradingbot-"
TRADING_PIPELINE = "trading_pipeline.asl.json"
# placeholder -> what it names, per definition; CDK builds DefinitionSubstitutions from the same file
MANIFEST = "substitutions.json"


def definition_path(name: str = TRADING_PIPELINE) -> Path:
    """A statemachines/ file: from the repository when running from a checkout, else from the package."""
    repo_file = Path(__file__).resolve().parents[4] / "statemachines" / name
    if repo_file.exists():
        return repo_file
    return Path(str(resources.files("tradingbot") / "statemachines" / name))


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION_PREFIX}{name}"


def substitutions(definition: Path) -> dict[str, str]:
    """placeholder -> local ARN for each placeholder the manifest lists for ``definition`` (by file name)."""
    entries = json.loads(definition_path(MANIFEST).read_text())["definitions"].get(definition.name)
    if entries is None:
        raise ValueError(f"{MANIFEST} has no entry for {definition.name}")
    arns = {}
    for placeholder, target in entries.items():
        if set(target) != {"function"}:
            raise ValueError(f"{MANIFEST}: {definition.name} ${{{placeholder}}} names {target}, not a function")
        arns[placeholder] = function_arn(target["function"])
    return arns


def render_definition(path: Path | None = None) -> str:
    """The definition with every placeholder replaced by its local ARN; a placeholder the manifest
    does not list is an error (moto would accept it and fail only when the state runs)."""
    definition = path or definition_path()
    text = definition.read_text()
    for placeholder, arn in substitutions(definition).items():
        text = text.replace("${" + placeholder + "}", arn)
    if "${" in text:
        raise ValueError(f"unsubstituted placeholder left in the state machine definition {definition.name}")
    return text


Handler = Callable[[dict[str, Any], Any], Any]


def _dispatcher(handlers: dict[str, Handler], calls: list[tuple[str, float]]) -> Callable[..., bytes]:
    """Replacement for moto's LambdaBackend.invoke: call our handler in this process, and answer
    the way Lambda does (a raised exception becomes an Unhandled function error with errorType)."""

    def invoke(_backend: Any, function_name: str, _qualifier: Any, body: Any, _headers: Any,
               response_headers: dict[str, str]) -> bytes:  # fmt: skip
        name = function_name.rsplit(":", 1)[-1].removeprefix(FUNCTION_PREFIX)
        handler = handlers.get(name)
        if handler is None:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorType": "ResourceNotFoundException", "errorMessage": name}).encode()
        event = json.loads(body) if body else {}
        started = time.perf_counter()
        try:
            result = handler(event, None)
        except Exception as exc:
            response_headers["x-amz-function-error"] = "Unhandled"
            payload = {"errorType": type(exc).__name__, "errorMessage": str(exc),
                       "stackTrace": traceback.format_exception(exc)[-3:]}  # fmt: skip
            return json.dumps(payload).encode()
        finally:
            calls.append((name, time.perf_counter() - started))
        return json.dumps(result, default=str).encode()

    return invoke


class LocalStepFunctions:
    """moto Step Functions with the pipeline's state machine and in-process Lambdas."""

    def __init__(self, runtime: Runtime, handlers: dict[str, Handler] | None = None) -> None:
        from tradingbot.entrypoints.lambdas.registry import HANDLERS

        self.runtime = runtime
        self.handlers = dict(handlers or HANDLERS)
        self.calls: list[tuple[str, float]] = []
        self.state_machine_arn = ""
        self._mock: Any = None
        self._saved_invoke: Any = None

    def start(self) -> LocalStepFunctions:
        import boto3
        from moto import mock_aws
        from moto.awslambda.models import LambdaBackend

        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        self._saved_invoke = LambdaBackend.invoke
        LambdaBackend.invoke = _dispatcher(self.handlers, self.calls)  # type: ignore[method-assign]
        sfn = boto3.client("stepfunctions", region_name=REGION)
        self.state_machine_arn = sfn.create_state_machine(
            name="trading-pipeline", definition=render_definition(),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/trading-pipeline",
        )["stateMachineArn"]  # fmt: skip
        self.runtime.sfn_client = sfn
        self.runtime.settings = self.runtime.settings.model_copy(update={"state_machine_arn": self.state_machine_arn})
        return self

    def stop(self, drain_s: float = 30.0) -> None:
        from moto.awslambda.models import LambdaBackend

        if self._mock is not None:
            self.drain(drain_s)  # executions still running would lose their Lambda dispatcher
            LambdaBackend.invoke = self._saved_invoke  # type: ignore[method-assign]
            self._mock.stop()
            self._mock = None

    def drain(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            running = self.sfn.list_executions(stateMachineArn=self.state_machine_arn, statusFilter="RUNNING")
            if not running["executions"]:
                return
            time.sleep(0.02)

    @property
    def sfn(self) -> Any:
        return self.runtime.sfn()

    def execution_arn(self, name: str) -> str:
        return f"{self.state_machine_arn.replace(':stateMachine:', ':execution:')}:{name}"

    def wait(self, execution_arn: str, timeout_s: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            desc: dict[str, Any] = self.sfn.describe_execution(executionArn=execution_arn)
            if desc["status"] != "RUNNING":
                return desc
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_arn} still running after {timeout_s} s")
            time.sleep(0.01)

    def trace(self, execution_arn: str) -> list[dict[str, Any]]:
        """Each state with its input, output and duration, from the execution history."""
        events = self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        return history_to_trace(events)

    def run(self, name: str, state: dict[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
        """Start an execution, wait for it, store its trace; returns describe_execution."""
        arn = self.sfn.start_execution(stateMachineArn=self.state_machine_arn, name=name,
                                       input=json.dumps(state))["executionArn"]  # fmt: skip
        desc = self.wait(arn, timeout_s)
        store_trace(self.runtime, name, desc, self.trace(arn))
        return desc


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


def store_trace(
    rt: Runtime,
    execution_name: str,
    desc: dict[str, Any],
    trace: list[dict[str, Any]],
    market: dict[str, Any] | None = None,
) -> None:
    """Attach the execution's per-state trace and status to its decision record, and (``serve``)
    where its market data came from: the live feed or the offline replay."""
    started, stopped = desc.get("startDate"), desc.get("stopDate")
    meta = {
        "status": desc["status"], "execution_arn": desc["executionArn"], "started": _iso(started),
        "stopped": _iso(stopped) if stopped else None,
        "duration_ms": round((stopped - started).total_seconds() * 1000, 2) if started and stopped else None,
        "states": trace,
    }  # fmt: skip
    if market is not None:
        meta["market"] = market
    with session_scope(rt.engine()) as s:
        repo.attach_execution_trace(s, execution_name, meta)


@contextmanager
def local_pipeline(runtime: Runtime) -> Iterator[LocalStepFunctions]:
    sf = LocalStepFunctions(runtime).start()
    try:
        yield sf
    finally:
        sf.stop()


class TraceRecorder:
    """Background watcher for executions started by the webhook (``tradingbot serve``): when one
    finishes, its trace is stored with its decision."""

    def __init__(self, local: LocalStepFunctions, market: Callable[[], dict[str, Any]] | None = None) -> None:
        self.local = local
        self.market = market
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trace-recorder", daemon=True)

    def start(self) -> TraceRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def watch(self, execution_name: str) -> None:
        with self._lock:
            self._pending.append(execution_name)

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            with self._lock:
                names = list(self._pending)
            for name in names:
                arn = self.local.execution_arn(name)
                try:
                    desc = self.local.sfn.describe_execution(executionArn=arn)
                    if desc["status"] == "RUNNING":
                        continue
                    market = self.market() if self.market is not None else None
                    store_trace(self.local.runtime, name, desc, self.local.trace(arn), market)
                except Exception:  # keep watching the others; the decision record itself is stored
                    pass
                with self._lock:
                    self._pending.remove(name)
