"""The re-drive schedule (issue 16): EventBridge runs the ``sweeper`` function every minute; it
re-starts, by the same execution name and input, every accepted alert that has no decision after
the grace period (tradingbot.pipeline.redrive), or stores why it did not."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .naming import Concern

#: EventBridge's finest rate; the grace period (REDRIVE_GRACE_S, 60 s) is what bounds a re-drive's delay
SWEEP_RATE = Duration.minutes(1)


class RedriveSchedule(Concern):
    def __init__(self, scope: Construct, cid: str, *, sweeper: lambda_.IFunction) -> None:
        super().__init__(scope, cid)
        self.rule = events.Rule(
            self,
            "RedriveSchedule",
            schedule=events.Schedule.rate(SWEEP_RATE),
            description="re-drive accepted alerts that have no decision (tradingbot.pipeline.redrive)",
            # a missed minute is covered by the next one: no retries that would overlap sweeps
            targets=[targets.LambdaFunction(sweeper, retry_attempts=0)],
        )
