"""A small interpreter of the Amazon States Language, for the local runtime (docs/adr/0008).

It runs ``statemachines/*.asl.json`` as written, the same file CDK deploys, with the semantics the
ASL specification gives (https://states-language.net/spec.html; the AWS guide
https://docs.aws.amazon.com/step-functions/latest/dg/concepts-amazon-states-language.html):

* paths: ``InputPath`` -> ``Parameters`` (``key.$`` fields are paths; ``$$.`` is the context
  object) -> the task -> ``ResultSelector`` -> ``ResultPath`` (into the state's raw input;
  ``null`` discards the result) -> ``OutputPath``;
* ``Retry``: the first retrier whose ``ErrorEquals`` names the error (``States.ALL`` names any
  error, ``States.TaskFailed`` any but ``States.Timeout``) retries after ``IntervalSeconds`` x
  ``BackoffRate`` ^ (attempt - 1), capped by ``MaxDelaySeconds``, up to ``MaxAttempts`` (default
  3; 0 never retries); each retrier counts its own attempts;
* ``Catch``: once retries are exhausted, the first catcher whose ``ErrorEquals`` names the error
  places ``{"Error", "Cause"}`` at its ``ResultPath`` of the state's input and goes to its ``Next``;
* ``TimeoutSeconds`` on a Task: ``States.Timeout`` when the task has not answered in time;
* ``Parallel``: every branch runs at once on the same input; the output is the list of branch
  outputs; a failing branch fails the state with the branch's error;
* ``Choice``: the first rule that matches (comparison operators, ``And`` / ``Or`` / ``Not``),
  else ``Default``, else ``States.NoChoiceMatched``;
* ``Pass``, ``Wait``, ``Succeed``, ``Fail``.

A state type or field it does not implement is refused when the definition is loaded, never
ignored while running. Task resources are handed to an ``invoke`` callable (the local runner
dispatches each Lambda ARN to the in-process handler).
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import datetime as dt
import fnmatch
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tradingbot.errors import PermanentError, TransientError

_MISSING = object()

_COMMON = {"Type", "Comment", "Next", "End", "InputPath", "OutputPath"}
_FIELDS: dict[str, set[str]] = {
    "Task": _COMMON | {"Resource", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch",
                       "TimeoutSeconds", "HeartbeatSeconds"},
    "Parallel": _COMMON | {"Branches", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch"},
    "Pass": _COMMON | {"Result", "Parameters", "ResultPath"},
    "Choice": {"Type", "Comment", "Choices", "Default", "InputPath", "OutputPath"},
    "Wait": _COMMON | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath"},
    "Succeed": {"Type", "Comment", "InputPath", "OutputPath"},
    "Fail": {"Type", "Comment", "Error", "Cause"},
}  # fmt: skip
_RETRIER_FIELDS = {"ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds", "JitterStrategy"}
_CATCHER_FIELDS = {"ErrorEquals", "ResultPath", "Next"}
_COMPARISONS = {
    "StringEquals", "StringLessThan", "StringGreaterThan", "StringLessThanEquals", "StringGreaterThanEquals",
    "StringMatches", "NumericEquals", "NumericLessThan", "NumericGreaterThan", "NumericLessThanEquals",
    "NumericGreaterThanEquals", "BooleanEquals", "TimestampEquals", "TimestampLessThan", "TimestampGreaterThan",
    "TimestampLessThanEquals", "TimestampGreaterThanEquals", "IsNull", "IsPresent", "IsNumeric", "IsString",
    "IsBoolean", "IsTimestamp",
}  # fmt: skip


class DefinitionError(PermanentError, ValueError):
    """The definition uses something this interpreter does not implement, or is malformed."""


class StatesError(PermanentError):
    """An error a state raises (``error`` is its name, as ``ErrorEquals`` matches it): the outcome
    of one execution, already past its Retry policy, never retried by the caller."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


class ExecutionFailed(StatesError):  # noqa: N818 - the ASL outcome's own name
    """The execution ended in a Fail state or with an error nothing caught."""


class Interrupted(TransientError):  # noqa: N818 - not an error of the execution: its runner stopped it
    """Raised by a ``checkpoint`` callable that could not store the checkpoint (the local runtime's
    database went away): the run stops with no outcome and the execution stays open, to be resumed
    from its last stored checkpoint, instead of failing with ``States.Runtime``. Transient: the same
    execution, run again once the database is back, goes on."""


Invoke = Callable[[str, Any], Any]
#: called on entering a state (``"before"``) and after its task answered (``"after"``): fault drills
Pause = Callable[[str, str], None]


@dataclass
class Context:
    """The context object (``$$``): what a ``Parameters`` field such as ``$$.Execution.Name`` reads."""

    execution_arn: str
    execution_name: str
    state_machine_arn: str
    input: Any
    start_time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def document(self, state: str, entered: dt.datetime, retry_count: int) -> dict[str, Any]:
        return {
            "Execution": {"Id": self.execution_arn, "Name": self.execution_name, "Input": self.input,
                          "StartTime": _iso(self.start_time)},
            "StateMachine": {"Id": self.state_machine_arn, "Name": self.state_machine_arn.rsplit(":", 1)[-1]},
            "State": {"Name": state, "EnteredTime": _iso(entered), "RetryCount": retry_count},
        }  # fmt: skip


class History:
    """Execution history events shaped like ``GetExecutionHistory``'s (type, timestamp, details)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, kind: str, details_key: str | None = None, **details: Any) -> None:
        with self._lock:
            event: dict[str, Any] = {"id": len(self.events) + 1, "type": kind, "timestamp": dt.datetime.now(dt.UTC)}
            if details_key is not None:
                event[details_key] = details
            self.events.append(event)


# ---------------------------------------------------------------- paths


def read_path(path: str, data: Any, context: dict[str, Any] | None = None) -> Any:
    """A reference path (``$``, ``$.a.b``, ``$.a[0]``, ``$$.Execution.Name``); a missing field is
    ``States.Runtime`` (the spec: a path that selects nothing is an error)."""
    value = _lookup(path, data, context)
    if value is _MISSING:
        raise StatesError("States.Runtime", f"the path {path!r} selects nothing in the state's input")
    return value


def _lookup(path: str, data: Any, context: dict[str, Any] | None) -> Any:
    if path.startswith("$$"):
        data, path = context or {}, path[1:]
    if not path.startswith("$"):
        raise StatesError("States.Runtime", f"{path!r} is not a path")
    node = data
    for part in _split(path[1:]):
        if isinstance(part, int):
            if not isinstance(node, list) or not -len(node) <= part < len(node):
                return _MISSING
            node = node[part]
        else:
            if not isinstance(node, dict) or part not in node:
                return _MISSING
            node = node[part]
    return node


def _split(rest: str) -> list[str | int]:
    parts: list[str | int] = []
    i = 0
    while i < len(rest):
        if rest[i] == ".":
            j = i + 1
            while j < len(rest) and rest[j] not in ".[":
                j += 1
            parts.append(rest[i + 1 : j])
            i = j
        elif rest[i] == "[":
            j = rest.index("]", i)
            token = rest[i + 1 : j].strip()
            parts.append(int(token) if token.lstrip("-").isdigit() else token.strip("'\""))
            i = j + 1
        else:
            raise StatesError("States.Runtime", f"cannot read the path ${rest}")
    return parts


def write_path(path: str | None, data: Any, value: Any) -> Any:
    """``ResultPath``: ``value`` placed at ``path`` of a copy of ``data`` (``$`` replaces it)."""
    if path is None:
        return data
    if path == "$":
        return value
    parts = _split(path[1:])
    out = copy.deepcopy(data) if isinstance(data, dict) else {}
    node = out
    for part in parts[:-1]:
        nxt = node.get(part) if isinstance(node, dict) else None
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value
    return out


def fill_template(template: Any, data: Any, context: dict[str, Any]) -> Any:
    """``Parameters`` / ``ResultSelector``: a field named ``key.$`` takes the value its path selects."""
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = read_path(value, data, context)
            else:
                out[key] = fill_template(value, data, context)
        return out
    if isinstance(template, list):
        return [fill_template(v, data, context) for v in template]
    return template


# ---------------------------------------------------------------- errors


def _matches(names: list[str], error: str) -> bool:
    for name in names:
        if name in (error, "States.ALL"):
            return True
        if name == "States.TaskFailed" and error != "States.Timeout":
            return True
    return False


# ---------------------------------------------------------------- the machine


class StateMachine:
    """One parsed definition (parsed and checked once; executions share it)."""

    def __init__(self, definition: dict[str, Any] | str, *, where: str = "definition") -> None:
        doc = json.loads(definition) if isinstance(definition, str) else definition
        self.start_at: str = doc["StartAt"]
        self.states: dict[str, dict[str, Any]] = doc["States"]
        self.branches: dict[int, StateMachine] = {}
        self._check(where)

    def _check(self, where: str) -> None:
        if self.start_at not in self.states:
            raise DefinitionError(f"{where}: StartAt {self.start_at!r} is not a state")
        for name, st in self.states.items():
            kind = st.get("Type")
            if kind not in _FIELDS:
                raise DefinitionError(f"{where}: state {name!r} has Type {kind!r}, which the local runtime does "
                                      f"not implement ({', '.join(sorted(_FIELDS))})")  # fmt: skip
            unknown = set(st) - _FIELDS[kind]
            if unknown:
                raise DefinitionError(f"{where}: state {name!r} ({kind}) uses {sorted(unknown)}, "
                                      "which the local runtime does not implement")  # fmt: skip
            targets = [st.get("Next"), st.get("Default")]
            targets += [c.get("Next") for c in st.get("Catch", [])] + [c.get("Next") for c in st.get("Choices", [])]
            for target in targets:
                if target is not None and target not in self.states:
                    raise DefinitionError(f"{where}: state {name!r} goes to {target!r}, which is not a state")
            if kind not in ("Choice", "Succeed", "Fail") and "Next" not in st and not st.get("End"):
                raise DefinitionError(f"{where}: state {name!r} has neither Next nor End")
            for retrier in st.get("Retry", []):
                if set(retrier) - _RETRIER_FIELDS or "ErrorEquals" not in retrier:
                    raise DefinitionError(f"{where}: state {name!r} has a Retry entry this runtime cannot run")
            for catcher in st.get("Catch", []):
                if set(catcher) - _CATCHER_FIELDS or "ErrorEquals" not in catcher or "Next" not in catcher:
                    raise DefinitionError(f"{where}: state {name!r} has a Catch entry this runtime cannot run")
            for rule in st.get("Choices", []):
                _check_rule(rule, f"{where}: state {name!r}", top=True)
            if kind == "Parallel":
                for i, branch in enumerate(st["Branches"]):
                    self.branches[id(branch)] = StateMachine(branch, where=f"{where}: {name} branch {i}")


def _check_rule(rule: dict[str, Any], where: str, *, top: bool) -> None:
    keys = set(rule) - {"Next", "Comment"}
    if top and "Next" not in rule:
        raise DefinitionError(f"{where}: a Choice rule has no Next")
    if keys & {"And", "Or"}:
        for sub in rule.get("And", rule.get("Or", [])):
            _check_rule(sub, where, top=False)
    elif "Not" in keys:
        _check_rule(rule["Not"], where, top=False)
    else:
        ops = keys - {"Variable"}
        base = {op.removesuffix("Path") for op in ops}
        if "Variable" not in keys or len(ops) != 1 or not base <= _COMPARISONS:
            raise DefinitionError(f"{where}: Choice rule {rule} is not one Variable with one known comparison")


#: states that compute their output from their input alone: resuming before one of them and running
#: it again reaches the same point, so the checkpoint already stored before it serves
_PURE_STATES = frozenset({"Choice", "Pass"})
_TERMINAL_STATES = frozenset({"Succeed", "Fail"})


def _worth_a_checkpoint(finished: str, following: str) -> bool:
    """A checkpoint after a state of type ``finished`` followed by one of type ``following``: not after
    a pure one (the previous checkpoint reaches the same point), nor before a terminal one (Succeed,
    Fail: the execution's outcome is stored right after; a kill in between runs the state just
    finished again, which every pipeline stage allows, being idempotent)."""
    return finished not in _PURE_STATES and following not in _TERMINAL_STATES


class Execution:
    """One run of a :class:`StateMachine` on one input."""

    def __init__(
        self,
        machine: StateMachine,
        invoke: Invoke,
        context: Context,
        *,
        history: History | None = None,
        pause: Pause | None = None,
        sleep: Callable[[float], None] = time.sleep,
        pool: cf.ThreadPoolExecutor | None = None,
        resume: tuple[str, Any] | None = None,
        checkpoint: Callable[[str, Any], None] | None = None,
    ) -> None:
        """``checkpoint(next_state, data)`` is called after each top-level state that did work (a Task,
        Parallel or Wait) and is not followed by a Succeed or Fail state; ``resume`` (a checkpoint's
        next state and data) starts the run there instead of at ``StartAt``."""
        self.machine, self.invoke, self.context = machine, invoke, context
        self.resume, self.checkpoint = resume, checkpoint
        self.history = history or History()
        self.pause = pause
        self.sleep = sleep
        self._pool = pool

    def run(self) -> Any:
        """The execution's output; raises :class:`ExecutionFailed`."""
        self.history.add("ExecutionStarted", "executionStartedEventDetails", input=json.dumps(self.context.input))
        try:
            try:
                output = self._run_states(self.machine, self.context.input, self.resume)
            except (StatesError, Interrupted):
                raise
            except Exception as exc:  # a fault of the interpreter itself: the execution fails, named
                raise StatesError("States.Runtime", f"{type(exc).__name__}: {exc}") from exc
        except StatesError as exc:
            self.history.add("ExecutionFailed", "executionFailedEventDetails", error=exc.error, cause=exc.cause)
            raise ExecutionFailed(exc.error, exc.cause) from None
        self.history.add("ExecutionSucceeded", "executionSucceededEventDetails", output=json.dumps(output))
        return output

    # ---------------------------------------------------------- states

    def _run_states(self, machine: StateMachine, data: Any, resume: tuple[str, Any] | None = None) -> Any:
        name: str | None = machine.start_at
        if resume is not None:
            name, data = resume
        while name is not None:
            st = machine.states[name]
            kind = st["Type"]
            self.history.add(f"{kind}StateEntered", "stateEnteredEventDetails", name=name, input=json.dumps(data))
            if self.pause is not None:
                self.pause(name, "before")
            if kind == "Fail":
                raise StatesError(st.get("Error", "States.Fail"), st.get("Cause", ""))
            data, following = self._run_state(machine, name, st, data)
            self.history.add(f"{kind}StateExited", "stateExitedEventDetails", name=name, output=json.dumps(data))
            name = following
            checkpoint = self.checkpoint if machine is self.machine else None  # top-level states only
            if checkpoint is not None and name is not None and _worth_a_checkpoint(kind, machine.states[name]["Type"]):
                checkpoint(name, data)
        return data

    def _run_state(self, machine: StateMachine, name: str, st: dict[str, Any], raw: Any) -> tuple[Any, str | None]:
        kind = st["Type"]
        entered = dt.datetime.now(dt.UTC)
        input_path = st.get("InputPath", "$")
        effective = read_path(input_path, raw, None) if input_path is not None else {}
        if kind == "Choice":
            return raw, self._choose(name, st, effective)
        if kind == "Succeed":
            return _output(st, effective), None
        if kind == "Wait":
            self.sleep(float(st["Seconds"]) if "Seconds" in st else float(read_path(st["SecondsPath"], effective)))
            return _output(st, effective), _next(st)
        if kind == "Pass":
            ctx = self.context.document(name, entered, 0)
            result = (
                fill_template(st["Parameters"], effective, ctx) if "Parameters" in st else st.get("Result", effective)
            )
            return _output(st, write_path(st.get("ResultPath", "$"), raw, result)), _next(st)
        return self._run_with_retry(machine, name, st, raw, effective, entered)

    def _run_with_retry(
        self, machine: StateMachine, name: str, st: dict[str, Any], raw: Any, effective: Any, entered: dt.datetime
    ) -> tuple[Any, str | None]:
        attempts = [0] * len(st.get("Retry", []))
        retry_count = 0
        while True:
            try:
                ctx = self.context.document(name, entered, retry_count)
                payload = fill_template(st["Parameters"], effective, ctx) if "Parameters" in st else effective
                task = st["Type"] == "Task"
                result = self._task(name, st, payload) if task else self._parallel(machine, st, payload)
                if "ResultSelector" in st:
                    result = fill_template(st["ResultSelector"], result, ctx)
                return _output(st, write_path(st.get("ResultPath", "$"), raw, result)), _next(st)
            except StatesError as exc:
                delay = _retry_delay(st.get("Retry", []), attempts, exc.error)
                if delay is not None:
                    retry_count += 1
                    self.sleep(delay)
                    continue
                for catcher in st.get("Catch", []):
                    if _matches(catcher["ErrorEquals"], exc.error):
                        error_output = {"Error": exc.error, "Cause": exc.cause}
                        return write_path(catcher.get("ResultPath", "$"), raw, error_output), catcher["Next"]
                raise

    def _task(self, name: str, st: dict[str, Any], payload: Any) -> Any:
        resource = st["Resource"]
        self.history.add("TaskScheduled", "taskScheduledEventDetails", resource=resource,
                         parameters=json.dumps(payload))  # fmt: skip
        timeout = st.get("TimeoutSeconds")
        try:
            if timeout is None or self._pool is None:
                result = self.invoke(resource, payload)
            else:
                future = self._pool.submit(self.invoke, resource, payload)
                try:
                    result = future.result(timeout=float(timeout))
                except cf.TimeoutError:
                    raise StatesError("States.Timeout", f"{name} did not answer within {timeout} s") from None
        except StatesError as exc:
            self.history.add("TaskFailed", "taskFailedEventDetails", error=exc.error, cause=exc.cause)
            raise
        self.history.add("TaskSucceeded", "taskSucceededEventDetails", output=json.dumps(result))
        if self.pause is not None:
            self.pause(name, "after")
        return result

    def _parallel(self, machine: StateMachine, st: dict[str, Any], payload: Any) -> list[Any]:
        branches = [machine.branches[id(b)] for b in st["Branches"]]
        with cf.ThreadPoolExecutor(max_workers=len(branches), thread_name_prefix="asl-branch") as pool:
            futures = [pool.submit(self._run_states, b, copy.deepcopy(payload)) for b in branches]
            results: list[Any] = []
            failure: StatesError | None = None
            for f in futures:
                try:
                    results.append(f.result())
                except StatesError as exc:
                    failure = failure or exc
        if failure is not None:
            raise failure
        return results

    def _choose(self, name: str, st: dict[str, Any], data: Any) -> str:
        for rule in st["Choices"]:
            if _rule(rule, data):
                return str(rule["Next"])
        if "Default" in st:
            return str(st["Default"])
        raise StatesError("States.NoChoiceMatched", f"no Choice rule of {name} matched and it has no Default")


def _output(st: dict[str, Any], data: Any) -> Any:
    path = st.get("OutputPath", "$")
    return {} if path is None else read_path(path, data)


def _next(st: dict[str, Any]) -> str | None:
    return None if st.get("End") else str(st["Next"])


def _retry_delay(retriers: list[dict[str, Any]], attempts: list[int], error: str) -> float | None:
    for i, retrier in enumerate(retriers):
        if _matches(retrier["ErrorEquals"], error):
            if attempts[i] >= int(retrier.get("MaxAttempts", 3)):
                return None
            attempts[i] += 1
            delay = float(retrier.get("IntervalSeconds", 1)) * float(retrier.get("BackoffRate", 2.0)) ** (
                attempts[i] - 1
            )
            cap = retrier.get("MaxDelaySeconds")
            return min(delay, float(cap)) if cap is not None else delay
    return None


def _rule(rule: dict[str, Any], data: Any) -> bool:
    if "And" in rule:
        return all(_rule(r, data) for r in rule["And"])
    if "Or" in rule:
        return any(_rule(r, data) for r in rule["Or"])
    if "Not" in rule:
        return not _rule(rule["Not"], data)
    op = next(k for k in rule if k not in ("Variable", "Next", "Comment"))
    value = _lookup(rule["Variable"], data, None)
    if op == "IsPresent":
        return (value is not _MISSING) == bool(rule[op])
    if value is _MISSING:
        raise StatesError("States.Runtime", f"Choice: the path {rule['Variable']!r} selects nothing")
    expected = read_path(rule[op], data) if op.endswith("Path") else rule[op]
    return _compare(op.removesuffix("Path"), value, expected)


def _compare(op: str, value: Any, expected: Any) -> bool:
    kinds = {"IsNull": value is None, "IsString": isinstance(value, str), "IsBoolean": isinstance(value, bool),
             "IsNumeric": isinstance(value, int | float) and not isinstance(value, bool),
             "IsTimestamp": isinstance(value, str) and _timestamp(value) is not None}  # fmt: skip
    if op in kinds:
        return kinds[op] == bool(expected)
    family = "String" if op.startswith("String") else "Numeric" if op.startswith("Numeric") else \
        "Boolean" if op.startswith("Boolean") else "Timestamp"  # fmt: skip
    test = op.removeprefix(family)
    if family == "String":
        if not isinstance(value, str):
            return False
        if test == "Matches":
            return fnmatch.fnmatchcase(value, str(expected))
    elif family == "Numeric":
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
    elif family == "Boolean":
        return isinstance(value, bool) and value == expected
    else:
        value, expected = _timestamp(value), _timestamp(expected)
        if value is None or expected is None:
            return False
    return bool({"Equals": value == expected, "LessThan": value < expected, "GreaterThan": value > expected,
            "LessThanEquals": value <= expected, "GreaterThanEquals": value >= expected}[test])  # fmt: skip


def _timestamp(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def _iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
