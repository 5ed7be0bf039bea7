"""Re-drive (issue 16): an accepted alert whose execution never started, or failed to start, is
started by TradingView's resend or by the sweeper, by the same name and stored input; the sweeper
stores why when it does not. Real PostgreSQL, the local Step Functions on the pipeline's ASL."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import Alert, Decision, IngressRefusal, LocalExecution, PipelineStart
from tradingbot.entrypoints.local.executions import LocalSfnClient
from tradingbot.entrypoints.local.runner import LocalStepFunctions
from tradingbot.pipeline.redrive import SweepLoop, sweep
from tradingbot.pipeline.runtime import Runtime
from tradingbot.pipeline.webhook import receive_alert

from ._delivery_faults import FlakyStart
from .test_pipeline import alert_body

pytestmark = pytest.mark.usefixtures("live_btc")
ROOT = Path(__file__).resolve().parents[2]


def _start_row(rt: Runtime, name: str) -> PipelineStart:
    with session_scope(rt.engine()) as s:
        row = s.scalars(select(PipelineStart).where(PipelineStart.execution_name == name)).one()
        s.expunge_all()
    return row


def _alert(rt: Runtime, name: str) -> Alert:
    with session_scope(rt.engine()) as s:
        row = s.scalars(select(Alert).where(Alert.idempotency_key == name)).one()
        s.expunge_all()
    return row


def _decisions(rt: Runtime, name: str) -> int:
    with session_scope(rt.engine()) as s:
        return s.scalar(select(func.count()).select_from(Decision).where(Decision.execution_name == name)) or 0


def test_start_execution_follows_the_documented_rules_for_a_repeated_name(runtime: Runtime) -> None:
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:trading-pipeline"
    sfn = LocalSfnClient(runtime, arn)  # no executor: the execution stays open
    first = sfn.start_execution(stateMachineArn=arn, name="tv-x", input='{"a": 1}')
    # open + identical input: success, the same execution
    assert sfn.start_execution(stateMachineArn=arn, name="tv-x", input='{"a": 1}') == first
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):  # open + different input
        sfn.start_execution(stateMachineArn=arn, name="tv-x", input='{"a": 2}')
    with session_scope(runtime.engine()) as s:
        s.execute(update(LocalExecution).values(status="SUCCEEDED"))
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):  # closed: refused whatever the input
        sfn.start_execution(stateMachineArn=arn, name="tv-x", input='{"a": 1}')
    for bad in ("x" * 81, "has space", "a:b", "a/b", "{x}"):
        with pytest.raises(sfn.exceptions.InvalidName):
            sfn.start_execution(stateMachineArn=arn, name=bad, input="{}")
    with pytest.raises(sfn.exceptions.InvalidExecutionInput):
        sfn.start_execution(stateMachineArn=arn, name="tv-y", input="{not json")
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.describe_execution(executionArn=first["executionArn"] + "-other")
    assert sfn.describe_execution(executionArn=first["executionArn"])["status"] == "SUCCEEDED"


def test_start_failing_twice_then_the_resend_starts_it_once(
    local: LocalStepFunctions, account: tuple[int, str]
) -> None:
    rt = local.runtime
    flaky = FlakyStart(rt.sfn(), failures=2)
    rt.sfn_client = flaky
    body = alert_body(account[1], strategy="macd_stochastic")
    answers = [receive_alert(rt, body, "52.89.214.238") for _ in range(4)]  # the first + TradingView's 3 resends
    assert [a.status for a in answers] == [503, 503, 202, 202]
    assert answers[0].body["error"] == "pipeline_unavailable"
    assert answers[2].body.get("redriven") is True  # the resend started it
    name = answers[2].body["execution_id"]
    assert local.wait(local.execution_arn(name))["status"] == "SUCCEEDED"
    assert _decisions(rt, name) == 1 and _alert(rt, name).status == "rejected"  # decided (the win-rate rule)
    row = _start_row(rt, name)
    assert row.started_at is not None and row.attempts == 3 and row.last_error is None
    assert flaky.calls == 3  # the 4th delivery found it started: nothing more sent
    listed = rt.sfn().list_executions(stateMachineArn=local.state_machine_arn)["executions"]
    assert [e["name"] for e in listed] == [name]


def test_the_sweeper_redrives_an_alert_nobody_resent(local: LocalStepFunctions, account: tuple[int, str]) -> None:
    rt = local.runtime
    real = rt.sfn()
    rt.sfn_client = FlakyStart(real, failures=1)
    refused = receive_alert(rt, alert_body(account[1], strategy="macd_stochastic"), "52.89.214.238")
    assert refused.status == 503
    with session_scope(rt.engine()) as s:
        name = s.scalar(select(PipelineStart.execution_name))
    assert name is not None and "ThrottlingException" in (_start_row(rt, name).last_error or "")
    assert sweep(rt, grace_s=60).outcomes == {}  # within the grace period: left alone
    report = sweep(rt, grace_s=0)
    assert report.outcomes == {name: "redriven"}
    assert local.wait(local.execution_arn(name))["status"] == "SUCCEEDED"
    assert _decisions(rt, name) == 1
    assert sweep(rt, grace_s=0).outcomes == {}  # decided: nothing left to sweep


def test_a_started_execution_that_does_not_exist_is_started_again(local: LocalStepFunctions,
                                                                   account: tuple[int, str]) -> None:  # fmt: skip
    rt = local.runtime
    body = alert_body(account[1], strategy="macd_stochastic")
    name = receive_alert(rt, body, "52.89.214.238").body["execution_id"]
    local.wait(local.execution_arn(name))
    # as after a crash that lost the execution (and its decision): only the alert and its outbox remain
    with session_scope(rt.engine()) as s:
        s.execute(delete(Decision))
        s.execute(delete(LocalExecution))
        s.execute(update(Alert).values(status="accepted"))
    assert sweep(rt, grace_s=0).outcomes == {name: "redriven"}
    assert local.wait(local.execution_arn(name))["status"] == "SUCCEEDED"
    assert _decisions(rt, name) == 1


def test_the_sweeper_records_why_it_does_not_redrive(local: LocalStepFunctions, account: tuple[int, str]) -> None:
    rt = local.runtime
    rt.sfn_client = FlakyStart(rt.sfn(), failures=2)
    old = receive_alert(rt, alert_body(account[1], strategy="macd_stochastic"), "52.89.214.238").body
    closed = receive_alert(rt, alert_body(account[1], strategy="macd_stochastic", price=56588.5), "52.89.214.238").body
    assert old["error"] == closed["error"] == "pipeline_unavailable"
    with session_scope(rt.engine()) as s:
        names = list(s.scalars(select(PipelineStart.execution_name).order_by(PipelineStart.id)))
        # the first was accepted an hour ago; the second "started" and ended without a decision
        s.execute(update(PipelineStart).where(PipelineStart.execution_name == names[0])
                  .values(created_at=func.now() - func.make_interval(0, 0, 0, 0, 1)))  # fmt: skip
        s.execute(update(PipelineStart).where(PipelineStart.execution_name == names[1]).values(started_at=func.now()))
    row = _start_row(rt, names[1])
    arn = local.state_machine_arn
    with session_scope(rt.engine()) as s:
        s.add(LocalExecution(state_machine=arn, name=names[1], input=row.input, status="FAILED", error="X"))
    report = sweep(rt, grace_s=0)
    assert report.outcomes == {names[0]: "too_old", names[1]: "closed_without_decision"}
    too_old, ended = _alert(rt, names[0]), _alert(rt, names[1])
    assert too_old.status == "failed" and "REDRIVE_MAX_AGE_S" in (too_old.reason or "")
    assert ended.status == "failed" and "ended FAILED without a decision record" in (ended.reason or "")
    assert "ended FAILED" in (_start_row(rt, names[1]).note or "")
    assert json.loads(row.input)["idempotency_key"] == names[1]  # the stored input is the execution's input
    assert sweep(rt, grace_s=0).outcomes == {}  # recorded once, not swept again


def test_serves_sweep_loop_redrives_after_the_grace_period_and_copies_refusal_tallies(
    local: LocalStepFunctions, account: tuple[int, str], cache: Cache
) -> None:
    """The loop `tradingbot serve` runs (SweepLoop; every LOCAL_SWEEP_INTERVAL_S), here every 0.2 s:
    nothing is re-driven within REDRIVE_GRACE_S, the alert is once past it, and refusal tallies
    counted in Redis only reach ingress_refusals with no manual flush."""
    rt = local.runtime
    rt.sfn_client = FlakyStart(rt.sfn(), failures=1)
    assert receive_alert(rt, alert_body(account[1], strategy="macd_stochastic"), "52.89.214.238").status == 503
    name, _ = _only_start(rt)
    wrong = alert_body("tbwh_" + "y" * 43)
    for _ in range(6):
        receive_alert(rt, wrong, "203.0.113.10")
    assert _refused_from(rt, "203.0.113.10") < 6
    loop = SweepLoop(rt, every_s=0.2).start()
    try:
        deadline = time.monotonic() + 10
        while (loop.passes < 3 or _refused_from(rt, "203.0.113.10") < 6) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _refused_from(rt, "203.0.113.10") == 6 and loop.last is not None, loop.last
        assert loop.last.outcomes == {} and _decisions(rt, name) == 0  # within the grace period: left alone
        with session_scope(rt.engine()) as s:  # past REDRIVE_GRACE_S (60 s)
            s.execute(update(PipelineStart).values(created_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 2)))
        deadline = time.monotonic() + 10
        while _start_row(rt, name).started_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert local.wait(local.execution_arn(name), timeout_s=30)["status"] == "SUCCEEDED"
    finally:
        loop.stop()
    assert _decisions(rt, name) == 1 and _start_row(rt, name).attempts == 2


# ---------------------------------------------------------------- the sweeper Lambda, on moto's Step Functions


def _refused_from(rt: Runtime, source: str) -> int:
    """The refusals of ``source`` counted in ``ingress_refusals``."""
    with session_scope(rt.engine()) as s:
        return int(s.scalar(select(func.coalesce(func.sum(IngressRefusal.count), 0))
                            .where(IngressRefusal.source == source)) or 0)  # fmt: skip


def test_the_sweeper_lambda_redrives_on_step_functions_and_copies_the_refusal_tallies(
    runtime: Runtime, account: tuple[int, str], cache: Cache
) -> None:
    """The ``sweeper`` handler as EventBridge invokes it (events/schedule_sweeper.json, the
    documented scheduled-event shape: https://docs.aws.amazon.com/eventbridge/latest/ref/events-ref-events.html),
    with boto3 against moto's Step Functions, which follows StartExecution's documented rules for a
    repeated name (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html:
    open + same input succeeds, closed is ExecutionAlreadyExists)."""
    import boto3
    from moto import mock_aws

    from tradingbot.entrypoints.lambdas.sweeper import handler
    from tradingbot.entrypoints.local.runner import render_definition

    event = json.loads((ROOT / "events" / "schedule_sweeper.json").read_text())
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(name="trading-pipeline", definition=render_definition(),
                                       roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]  # fmt: skip
        runtime.settings = runtime.settings.model_copy(update={"state_machine_arn": arn})
        runtime.sfn_client = FlakyStart(sfn, failures=1)
        assert receive_alert(runtime, alert_body(account[1], strategy="macd_stochastic"), "52.89.214.238").status == 503
        name, stored = _only_start(runtime)
        # a flood of wrong tokens from one sender: the first refusal flushes the tallies (its count,
        # 1); the rest are counted in Redis only (one flush per FLUSH_EVERY_S), and nothing follows
        wrong = alert_body("tbwh_" + "x" * 43)
        assert {receive_alert(runtime, wrong, "203.0.113.9").status for _ in range(8)} == {401, 429}
        in_redis = sum(n for fields in cache.refusal_tallies(_minutes()).values()
                       for (_, source), n in fields.items() if source == "203.0.113.9")  # fmt: skip
        assert in_redis == 8 and _refused_from(runtime, "203.0.113.9") < 8

        within_grace = handler(event, None)
        assert within_grace["swept"] == 0  # accepted just now: left to TradingView's resends
        assert within_grace["refusals_flushed"] >= 1 and within_grace["flush_error"] is None
        assert _refused_from(runtime, "203.0.113.9") == 8  # the schedule copied what Redis counted

        with session_scope(runtime.engine()) as s:  # past REDRIVE_GRACE_S (60 s)
            s.execute(update(PipelineStart).values(created_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 2)))
        assert handler(event, None)["redriven"] == 1
        listed = sfn.list_executions(stateMachineArn=arn)["executions"]
        assert [e["name"] for e in listed] == [name]
        assert sfn.describe_execution(executionArn=listed[0]["executionArn"])["input"] == stored  # byte-exact
        assert _start_row(runtime, name).started_at is not None and _alert(runtime, name).status == "accepted"

        assert handler(event, None)["running"] == 1  # RUNNING on Step Functions: left alone
        assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1

        sfn.stop_execution(executionArn=listed[0]["executionArn"])  # closed with no decision record
        assert handler(event, None)["closed_without_decision"] == 1
        ended = _alert(runtime, name)
        assert ended.status == "failed" and "ended ABORTED without a decision record" in (ended.reason or "")
        assert handler(event, None)["swept"] == 0  # the reason is stored once; nothing left to sweep
        assert len(sfn.list_executions(stateMachineArn=arn)["executions"]) == 1  # never started twice


def _only_start(rt: Runtime) -> tuple[str, str]:
    with session_scope(rt.engine()) as s:
        start = s.scalars(select(PipelineStart)).one()
        return start.execution_name, start.input


def _minutes() -> list[int]:
    now = int(time.time()) // 60
    return list(range(now - 5, now + 1))
