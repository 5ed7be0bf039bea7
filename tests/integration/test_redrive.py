"""Re-drive (issue 16): an accepted alert whose execution never started, or failed to start, is
started by TradingView's resend or by the sweeper, by the same name and stored input; the sweeper
stores why when it does not. Real PostgreSQL, the local Step Functions on the pipeline's ASL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import delete, func, select, update

from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import Alert, Decision, LocalExecution, PipelineStart
from tradingbot.entrypoints.local.executions import LocalSfnClient
from tradingbot.entrypoints.local.runner import LocalStepFunctions
from tradingbot.pipeline.redrive import sweep
from tradingbot.pipeline.runtime import Runtime
from tradingbot.pipeline.webhook import receive_alert

from .test_pipeline import alert_body

pytestmark = pytest.mark.usefixtures("live_btc")


class FlakyStart:
    """The Step Functions client with StartExecution failing ``failures`` times (a throttle, as
    boto3 raises it after its own retries), then answering as the real one."""

    def __init__(self, real: Any, failures: int) -> None:
        self.real, self.failures, self.calls = real, failures, 0
        self.exceptions = real.exceptions

    def start_execution(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "StartExecution")
        return self.real.start_execution(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


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
