"""The local ASL interpreter against the States Language's rules (https://states-language.net/spec.html):
paths, Retry (per-retrier counts, backoff, MaxAttempts), Catch (ResultPath into the raw input),
Timeout, Parallel, Choice, and refusal of what it does not implement. The pipeline's own definition
runs on it in tests/integration/test_pipeline*.py."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tradingbot.entrypoints.local.asl import (
    Context,
    DefinitionError,
    Execution,
    ExecutionFailed,
    History,
    Interrupted,
    StateMachine,
    StatesError,
)
from tradingbot.entrypoints.local.runner import render_definition


class Lambdas:
    """Task resources -> functions; each call recorded with its payload."""

    def __init__(self, **fns: Any) -> None:
        self.fns, self.calls = fns, []  # type: ignore[var-annotated]
        self._lock = threading.Lock()

    def __call__(self, resource: str, payload: Any) -> Any:
        with self._lock:
            self.calls.append((resource, payload))
        return self.fns[resource](payload)


def run(definition: dict[str, Any], lambdas: Lambdas, data: Any, sleeps: list[float] | None = None) -> Any:
    ctx = Context("arn:aws:states:us-east-1:1:execution:m:e1", "e1", "arn:aws:states:us-east-1:1:stateMachine:m", data)
    sleep = sleeps.append if sleeps is not None else (lambda _s: None)
    import concurrent.futures as cf

    with cf.ThreadPoolExecutor(4) as pool:
        return Execution(StateMachine(definition), lambdas, ctx, sleep=sleep, pool=pool).run()


def failing(times: int, error: str, then: Any) -> Any:
    left = [times]

    def fn(_payload: Any) -> Any:
        if left[0] > 0:
            left[0] -= 1
            raise StatesError(error, f"attempt failed ({left[0]} left)")
        return then

    return fn


def task(**extra: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": "f", **extra}


def test_paths_parameters_context_and_result_path() -> None:
    lambdas = Lambdas(f=lambda p: {"echo": p})
    definition = {"StartAt": "A", "States": {"A": task(
        InputPath="$.inner", Parameters={"x.$": "$.x", "name.$": "$$.Execution.Name", "fixed": 1},
        ResultSelector={"got.$": "$.echo"}, ResultPath="$.inner.result", OutputPath="$.inner", End=True)}}  # fmt: skip
    out = run(definition, lambdas, {"inner": {"x": [1, 2]}, "other": True})
    assert lambdas.calls == [("f", {"x": [1, 2], "name": "e1", "fixed": 1})]
    assert out == {"x": [1, 2], "result": {"got": {"x": [1, 2], "name": "e1", "fixed": 1}}}


def test_a_missing_path_fails_the_execution_with_states_runtime() -> None:
    definition = {"StartAt": "A", "States": {"A": task(Parameters={"x.$": "$.nope"}, End=True)}}
    with pytest.raises(ExecutionFailed) as err:
        run(definition, Lambdas(f=lambda p: p), {"x": 1})
    assert err.value.error == "States.Runtime" and "$.nope" in err.value.cause


def test_retry_backoff_and_each_retrier_counts_its_own_attempts() -> None:
    lambdas = Lambdas(f=failing(3, "TransientError", then={"ok": True}))
    retry = [{"ErrorEquals": ["Other"], "MaxAttempts": 5},
             {"ErrorEquals": ["TransientError"], "IntervalSeconds": 1, "MaxAttempts": 3,
              "BackoffRate": 2.0}]  # fmt: skip
    sleeps: list[float] = []
    out = run({"StartAt": "A", "States": {"A": task(Retry=retry, ResultPath="$.r", End=True)}}, lambdas, {}, sleeps)
    assert out == {"r": {"ok": True}} and len(lambdas.calls) == 4
    assert sleeps == [1.0, 2.0, 4.0]


def test_retries_exhausted_then_catch_puts_the_error_at_its_result_path_of_the_raw_input() -> None:
    lambdas = Lambdas(f=failing(10, "TransientError", then=None), g=lambda p: p)
    definition = {"StartAt": "A", "States": {
        "A": task(Retry=[{"ErrorEquals": ["TransientError"], "MaxAttempts": 2, "IntervalSeconds": 1,
                          "MaxDelaySeconds": 1}],
                  Catch=[{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "B"}], Next="Never"),
        "Never": {"Type": "Fail", "Error": "X"},
        "B": {"Type": "Task", "Resource": "g", "End": True}}}  # fmt: skip
    sleeps: list[float] = []
    out = run(definition, lambdas, {"keep": 1}, sleeps)
    assert len([c for c in lambdas.calls if c[0] == "f"]) == 3  # 1 + MaxAttempts 2
    assert sleeps == [1.0, 1.0]  # the second 2 s backoff capped by MaxDelaySeconds
    assert out["keep"] == 1 and out["error"]["Error"] == "TransientError"
    assert "attempt failed" in out["error"]["Cause"]


def test_max_attempts_zero_never_retries_and_an_uncaught_error_fails_the_execution() -> None:
    lambdas = Lambdas(f=failing(1, "Boom", then=None))
    definition = {
        "StartAt": "A",
        "States": {
            "A": task(
                Retry=[{"ErrorEquals": ["Boom"], "MaxAttempts": 0}],
                Catch=[{"ErrorEquals": ["Other"], "Next": "A"}],
                End=True,
            )
        },
    }
    with pytest.raises(ExecutionFailed) as err:
        run(definition, lambdas, {})
    assert err.value.error == "Boom" and len(lambdas.calls) == 1


def test_task_timeout_is_states_timeout_and_task_failed_does_not_match_it() -> None:
    release = threading.Event()
    lambdas = Lambdas(f=lambda p: release.wait(5) and p, g=lambda p: p)
    definition = {"StartAt": "A", "States": {
        "A": task(TimeoutSeconds=0.2, Catch=[{"ErrorEquals": ["States.TaskFailed"], "Next": "B"},
                                            {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.t", "Next": "C"}],
                  End=True),
        "B": {"Type": "Fail", "Error": "WrongCatcher"},
        "C": {"Type": "Pass", "End": True}}}  # fmt: skip
    import concurrent.futures as cf

    ctx = Context("arn:x:execution:m:e", "e", "arn:x:stateMachine:m", {})
    with cf.ThreadPoolExecutor(2) as pool:
        t0 = time.monotonic()
        out = Execution(StateMachine(definition), lambdas, ctx, pool=pool).run()
        waited = time.monotonic() - t0
        release.set()
    assert waited < 2.0  # the state gave up after 0.2 s; the task itself was still running
    assert out["t"]["Error"] == "States.Timeout"


def test_parallel_runs_branches_at_once_and_a_failing_branch_is_caught_inside_or_fails_the_state() -> None:
    barrier = threading.Barrier(2, timeout=5)  # both task branches must be running at the same time

    def together(p: Any) -> Any:
        barrier.wait()
        return p["v"] * 10

    lambdas = Lambdas(f=together, bad=failing(5, "Broken", then=None))
    branch = {"StartAt": "T", "States": {"T": task(Parameters={"v.$": "$.v"}, End=True)}}
    caught = {"StartAt": "Bad", "States": {
        "Bad": {"Type": "Task", "Resource": "bad", "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.e",
                                                              "Next": "Abstain"}], "End": True},
        "Abstain": {"Type": "Pass", "Parameters": {"abstained": True, "why.$": "$.e.Error"}, "End": True}}}  # fmt: skip
    definition = {
        "StartAt": "P",
        "States": {
            "P": {"Type": "Parallel", "Branches": [branch, branch, caught], "ResultPath": "$.ballots", "End": True}
        },
    }
    out = run(definition, lambdas, {"v": 4})
    assert out["ballots"] == [40, 40, {"abstained": True, "why": "Broken"}]

    uncaught = {"StartAt": "Bad", "States": {"Bad": {"Type": "Task", "Resource": "bad", "End": True}}}
    failing_parallel = {"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "Branches": [uncaught], "Catch": [{"ErrorEquals": ["Broken"], "ResultPath": "$.err",
                                                                      "Next": "Done"}], "End": True},
        "Done": {"Type": "Succeed"}}}  # fmt: skip
    assert run(failing_parallel, lambdas, {"v": 1})["err"]["Error"] == "Broken"


@pytest.mark.parametrize(
    ("data", "expected"),
    [({"validation": {"action": "trade", "n": 3}}, "Trade"), ({"validation": {"action": "reject", "n": 3}}, "Big"),
     ({"validation": {"action": "reject", "n": 1, "flag": True}}, "Flag"),
     ({"validation": {"action": "reject", "n": 1}}, "Default")],
)  # fmt: skip
def test_choice_first_matching_rule_then_default(data: dict[str, Any], expected: str) -> None:
    states: dict[str, Any] = {name: {"Type": "Pass", "Result": name, "ResultPath": "$.went", "End": True}
                              for name in ("Trade", "Big", "Flag", "Default")}  # fmt: skip
    states["C"] = {"Type": "Choice", "Default": "Default", "Choices": [
        {"Variable": "$.validation.action", "StringEquals": "trade", "Next": "Trade"},
        {"And": [{"Variable": "$.validation.n", "NumericGreaterThan": 2},
                 {"Not": {"Variable": "$.validation.action", "StringEquals": "trade"}}], "Next": "Big"},
        {"Or": [{"Variable": "$.validation.flag", "IsPresent": True},
                {"Variable": "$.validation.n", "NumericLessThan": 0}], "Next": "Flag"},
    ]}  # fmt: skip
    out = run({"StartAt": "C", "States": states}, Lambdas(), data)
    assert out["went"] == expected


def test_choice_without_a_match_or_default_is_states_no_choice_matched() -> None:
    definition = {"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [
        {"Variable": "$.a", "StringEquals": "x", "Next": "S"}]}, "S": {"Type": "Succeed"}}}  # fmt: skip
    with pytest.raises(ExecutionFailed) as err:
        run(definition, Lambdas(), {"a": "y"})
    assert err.value.error == "States.NoChoiceMatched"


def test_fail_state_names_its_error_and_cause() -> None:
    with pytest.raises(ExecutionFailed) as err:
        run(
            {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "PipelineFailed", "Cause": "why"}}},
            Lambdas(),
            {},
        )
    assert (err.value.error, err.value.cause) == ("PipelineFailed", "why")


@pytest.mark.parametrize(
    ("state", "message"),
    [({"Type": "Map", "ItemProcessor": {}, "End": True}, "Type 'Map'"),
     ({"Type": "Task", "Resource": "f", "Credentials": {}, "End": True}, "['Credentials']"),
     ({"Type": "Task", "Resource": "f", "Next": "Nowhere"}, "'Nowhere'"),
     ({"Type": "Task", "Resource": "f"}, "neither Next nor End"),
     ({"Type": "Choice", "Choices": [{"Variable": "$.a", "StringFoo": "x", "Next": "A"}]}, "known comparison")],
)  # fmt: skip
def test_what_it_does_not_implement_is_refused_at_load(state: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        StateMachine({"StartAt": "A", "States": {"A": state}})


def test_the_pipeline_definition_loads_and_every_task_is_a_local_lambda() -> None:
    machine = StateMachine(render_definition())
    doc = json.loads(render_definition())
    assert set(machine.states) == set(doc["States"]) and len(machine.branches) == 3
    resources = {st["Resource"] for st in doc["States"].values() if st["Type"] == "Task"}
    assert all(r.startswith("arn:aws:lambda:us-east-1:123456789012:function:tradingbot-") for r in resources)


def test_checkpoints_after_each_top_level_state_and_resumes_from_one() -> None:
    lambdas = Lambdas(a=lambda p: "A", b=lambda p: "B")
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Task", "Resource": "a", "ResultPath": "$.a", "Next": "B"},
            "B": {"Type": "Task", "Resource": "b", "ResultPath": "$.b", "End": True},
        },
    }
    saved: list[tuple[str, Any]] = []
    ctx = Context("arn:x:execution:m:e", "e", "arn:x:stateMachine:m", {"in": 1})
    Execution(StateMachine(definition), lambdas, ctx, checkpoint=lambda n, d: saved.append((n, d))).run()
    assert saved == [("B", {"in": 1, "a": "A"})]  # after A; none after the last state
    resumed = Lambdas(a=lambda p: pytest.fail("A ran again"), b=lambda p: "B2")
    out = Execution(StateMachine(definition), resumed, ctx, resume=saved[0]).run()
    assert out == {"in": 1, "a": "A", "b": "B2"} and [c[0] for c in resumed.calls] == ["b"]


def test_no_checkpoint_after_a_choice_or_pass_nor_before_the_end_state() -> None:
    """The pipeline's shape: Task -> Choice -> Pass -> Task -> Succeed. Only the checkpoint after the
    first Task is written; resumed from it, the Choice and Pass run again and the first Task does not."""
    lambdas = Lambdas(a=lambda p: "A", b=lambda p: "B")
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Task", "Resource": "a", "ResultPath": "$.a", "Next": "C"},
            "C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "StringEquals": "A", "Next": "P"}],
                  "Default": "Failed"},
            "P": {"Type": "Pass", "Result": "p", "ResultPath": "$.p", "Next": "B"},
            "B": {"Type": "Task", "Resource": "b", "ResultPath": "$.b", "Next": "Done"},
            "Done": {"Type": "Succeed"},
            "Failed": {"Type": "Fail", "Error": "X"},
        },
    }  # fmt: skip
    saved: list[tuple[str, Any]] = []
    ctx = Context("arn:x:execution:m:e", "e", "arn:x:stateMachine:m", {"in": 1})
    out = Execution(StateMachine(definition), lambdas, ctx, checkpoint=lambda n, d: saved.append((n, d))).run()
    assert out == {"in": 1, "a": "A", "p": "p", "b": "B"}
    assert saved == [("C", {"in": 1, "a": "A"})]
    resumed = Lambdas(a=lambda p: pytest.fail("A ran again"), b=lambda p: "B2")
    history = History()
    again = Execution(StateMachine(definition), resumed, ctx, resume=saved[0], history=history).run()
    assert again == {"in": 1, "a": "A", "p": "p", "b": "B2"}
    entered = [e["stateEnteredEventDetails"]["name"] for e in history.events if e["type"].endswith("StateEntered")]
    assert entered == ["C", "P", "B", "Done"]


def test_a_checkpoint_that_cannot_be_stored_stops_the_run_without_an_outcome() -> None:
    """The local runtime's database went away: the execution must stay open (resumed later from its
    last stored checkpoint), not fail as States.Runtime, and the next state must not run."""
    lambdas = Lambdas(a=lambda p: "A", b=lambda p: pytest.fail("B ran without its checkpoint"))
    definition = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Task", "Resource": "a", "ResultPath": "$.a", "Next": "B"},
            "B": {"Type": "Task", "Resource": "b", "ResultPath": "$.b", "End": True},
        },
    }

    def lost(next_state: str, data: Any) -> None:
        raise Interrupted(f"checkpoint before {next_state} not stored")

    history = History()
    ctx = Context("arn:x:execution:m:e", "e", "arn:x:stateMachine:m", {"in": 1})
    with pytest.raises(Interrupted, match="before B"):
        Execution(StateMachine(definition), lambdas, ctx, checkpoint=lost, history=history).run()
    assert not any(e["type"] == "ExecutionFailed" for e in history.events)
