"""The re-drive sweeper on AWS (issue 16): EventBridge invokes it every minute; it may start and
describe executions of the trading state machine and reads the database secret."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match

from .conftest import Synth, live_alias


def _sweeper(synth: Synth) -> tuple[str, dict]:
    return next(
        (k, f) for k, f in synth.resources("compute", "AWS::Lambda::Function").items()
        if f["Properties"]["Description"].startswith("every minute: re-drives")
    )  # fmt: skip


def test_eventbridge_invokes_the_sweeper_every_minute(synth: Synth) -> None:
    sweeper, _ = _sweeper(synth)
    synth.template("compute").has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "rate(1 minute)",
            "State": "ENABLED",
            "Targets": [Match.object_like({"Arn": {"Ref": live_alias(synth, sweeper)},
                                           "RetryPolicy": {"MaximumRetryAttempts": 0}})],
        },
    )  # fmt: skip
    synth.template("compute").has_resource_properties(
        "AWS::Lambda::Permission",
        {"Action": "lambda:InvokeFunction", "Principal": "events.amazonaws.com",
         "FunctionName": {"Ref": live_alias(synth, sweeper)}},
    )  # fmt: skip


def test_the_sweeper_may_start_and_describe_trading_executions_only(synth: Synth) -> None:
    _, fn = _sweeper(synth)
    env = fn["Properties"]["Environment"]["Variables"]
    assert "STATE_MACHINE_ARN" in env  # the same machine the webhook starts
    assert fn["Properties"]["Handler"] == "handler.handler" and fn["Properties"]["Timeout"] == 60
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        s
        for p in synth.resources("compute", "AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {"states:StartExecution", "states:DescribeExecution"} <= actions
    start = next(s for s in statements if "states:StartExecution" in json.dumps(s["Action"]))
    assert "tradingbot-optimise" not in json.dumps(start["Resource"])  # not the optimisation machine
    assert not any(a.startswith("lambda:") for a in actions)  # it starts executions, it invokes nothing


def test_the_sweeper_may_read_the_redis_secret_to_copy_refusal_tallies(synth: Synth) -> None:
    # each pass also copies the ingress refusal tallies from Redis into PostgreSQL (flush_refusals):
    # it needs Redis's AUTH secret beside the database's, and nothing else
    _, fn = _sweeper(synth)
    role = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    read = [
        json.dumps(r)
        for p in synth.resources("compute", "AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "secretsmanager:GetSecretValue" in json.dumps(s["Action"])
        for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    ]
    assert len(read) == 2, read
    assert any("RedisAuthSecret" in r for r in read) and any("DatabaseSecret" in r for r in read), read
    env = fn["Properties"]["Environment"]["Variables"]
    assert {"REDIS_HOST", "REDIS_AUTH_SECRET_ARN", "DB_SECRET_ARN"} <= set(env)  # what Settings reads
