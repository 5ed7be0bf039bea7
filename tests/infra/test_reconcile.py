"""The reconcile schedule on AWS (issue 15): EventBridge invokes the reconcile Lambda every minute,
the Lambda can reach the venues (exchange layer, keys), and two alarms watch it: drift it could
not repair, and passes not happening at all."""

from __future__ import annotations

from .conftest import Synth


def _reconcile(synth: Synth) -> tuple[str, dict]:
    return next(
        (k, f) for k, f in synth.resources("compute", "AWS::Lambda::Function").items()
        if f["Properties"]["Description"].startswith("every minute: reconciles")
    )  # fmt: skip


def _targets_reconcile(synth: Synth, fn_id: str, arn: dict) -> bool:
    """The function itself, or its ``live`` alias (safe deploys point schedules at the alias)."""
    if arn == {"Fn::GetAtt": [fn_id, "Arn"]}:
        return True
    alias = synth.templates["compute"]["Resources"].get(arn.get("Ref", ""), {})
    return alias.get("Type") == "AWS::Lambda::Alias" and alias["Properties"]["FunctionName"] == {"Ref": fn_id}


def test_eventbridge_invokes_reconcile_every_minute_without_retries(synth: Synth) -> None:
    fn_id, _ = _reconcile(synth)
    rule = next(
        r["Properties"] for r in synth.resources("compute", "AWS::Events::Rule").values()
        if r["Properties"].get("Description", "").startswith("reconcile orders, positions and protective orders")
    )  # fmt: skip
    assert rule["ScheduleExpression"] == "rate(1 minute)" and rule["State"] == "ENABLED"
    [target] = rule["Targets"]
    assert _targets_reconcile(synth, fn_id, target["Arn"])
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 0}
    permissions = [
        p["Properties"] for p in synth.resources("compute", "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "events.amazonaws.com"
    ]  # fmt: skip
    assert any(
        p["Action"] == "lambda:InvokeFunction" and _targets_reconcile(synth, fn_id, p["FunctionName"])
        for p in permissions
    )


def test_reconcile_reaches_the_venues_and_its_pass_lease_outlives_its_timeout(synth: Synth) -> None:
    from tradingbot.pipeline.reconcile import PASS_LEASE_TTL_S

    _, fn = _reconcile(synth)
    props = fn["Properties"]
    assert props["Handler"] == "handler.handler" and props["Timeout"] == 120
    assert props["Timeout"] < PASS_LEASE_TTL_S  # a slow pass and the next minute's never overlap
    env = props["Environment"]["Variables"]
    assert {"DB_SECRET_ARN", "REDIS_AUTH_SECRET_ARN", "TRADINGBOT_KEK_SECRET_ID"} <= set(env)
    layers = " ".join(str(x) for x in props["Layers"])
    assert "Exchange" in layers  # ccxt


def test_drift_alarms(synth: Synth) -> None:
    alarms = synth.resources("monitoring", "AWS::CloudWatch::Alarm")
    drift = next(a["Properties"] for a in alarms.values() if a["Properties"]["AlarmName"].endswith("-ReconcileDrift"))
    assert drift["MetricName"] == "ReconcileDriftUnfixed" and drift["Namespace"] == "TradingBot"
    assert drift["Dimensions"] == [{"Name": "service", "Value": "tradingbot"}]
    assert drift["Threshold"] == 1 and drift["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert drift["EvaluationPeriods"] == 3 and drift["DatapointsToAlarm"] == 3 and drift["Period"] == 60
    assert drift["AlarmActions"]  # notifies (not only a member of the composite)
    silent = next(a["Properties"] for a in alarms.values()
                  if a["Properties"]["AlarmName"].endswith("-ReconcileNotRunning"))  # fmt: skip
    assert silent["MetricName"] == "Invocations" and silent["ComparisonOperator"] == "LessThanThreshold"
    assert silent["TreatMissingData"] == "breaching"
