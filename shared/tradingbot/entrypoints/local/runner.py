"""Run the real state machine definition locally: the local ASL runtime (tradingbot.entrypoints.local.asl,
docs/adr/0008) executes ``statemachines/trading_pipeline.asl.json`` as durable executions in
PostgreSQL (tradingbot.entrypoints.local.executions); its Lambda invocations are dispatched
in-process to the same handlers that run on AWS (``tradingbot.entrypoints.lambdas.registry``).

Used by ``tradingbot serve`` (``make run``), ``tradingbot replay`` and the tests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from tradingbot.entrypoints.local.executions import history_to_trace, store_trace
from tradingbot.pipeline.runtime import Runtime

__all__ = ["history_to_trace", "store_trace"]  # kept here for their callers; they live with the executions

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
    does not list is an error (it would otherwise fail only when the state runs)."""
    definition = path or definition_path()
    text = definition.read_text()
    for placeholder, arn in substitutions(definition).items():
        text = text.replace("${" + placeholder + "}", arn)
    if "${" in text:
        raise ValueError(f"unsubstituted placeholder left in the state machine definition {definition.name}")
    return text


Handler = Callable[[dict[str, Any], Any], Any]
STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:trading-pipeline"


class LocalStepFunctions:
    """The pipeline's state machine on the local ASL runtime, executed by threads of this process
    (tests, ``tradingbot replay``); ``tradingbot serve`` runs the same executor in worker processes
    (tradingbot.entrypoints.local.executions.WorkerPool)."""

    def __init__(self, runtime: Runtime, handlers: dict[str, Handler] | None = None, *, threads: int = 4) -> None:
        from tradingbot.entrypoints.lambdas.registry import HANDLERS

        self.runtime = runtime
        self.handlers = dict(handlers or HANDLERS)
        self.threads = threads
        self.state_machine_arn = STATE_MACHINE_ARN
        self._executor: Any = None

    def start(self) -> LocalStepFunctions:
        from tradingbot.entrypoints.local.executions import Executor, LocalSfnClient

        self._executor = Executor(
            self.runtime, state_machine_arn=self.state_machine_arn, definition=render_definition(),
            handlers=self.handlers, function_prefix=FUNCTION_PREFIX, threads=self.threads,
        )  # fmt: skip
        self.runtime.sfn_client = LocalSfnClient(self.runtime, self.state_machine_arn, wake=self._executor.wake.set)
        self.runtime.settings = self.runtime.settings.model_copy(update={"state_machine_arn": self.state_machine_arn})
        self._executor.start()
        return self

    def stop(self, drain_s: float = 30.0) -> None:
        if self._executor is not None:
            try:
                self.drain(drain_s)
            finally:  # a drain that fails (the database away) must not leave the executor's threads running
                self._executor.stop()
                self._executor = None

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
