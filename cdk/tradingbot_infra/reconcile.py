"""The reconcile schedule (issue 15): EventBridge runs the ``reconcile`` function every minute; one
pass over every enabled account compares stored orders, positions and protective orders with the
venue and repairs what it can (tradingbot.pipeline.reconcile). Its drift is the
``ReconcileDrift`` / ``ReconcileDriftUnfixed`` EMF metrics; the alarm is in alarms.py."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from .lambdas import METRICS_NAMESPACE, SERVICE_NAME
from .naming import Concern

#: EventBridge's finest rate: a leg that fired has its sibling cancelled within about a minute
RECONCILE_RATE = Duration.minutes(1)


def drift_metric(name: str = "ReconcileDriftUnfixed") -> cw.Metric:
    """The reconcile Lambda's EMF count (Powertools: namespace TradingBot, dimension service)."""
    return cw.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": SERVICE_NAME},
        statistic="Maximum",
        period=Duration.minutes(1),
    )


class ReconcileSchedule(Concern):
    def __init__(self, scope: Construct, cid: str, *, reconcile: lambda_.IFunction) -> None:
        super().__init__(scope, cid)
        self.rule = events.Rule(
            self,
            "ReconcileSchedule",
            schedule=events.Schedule.rate(RECONCILE_RATE),
            description="reconcile orders, positions and protective orders with the venues (pipeline/reconcile.py)",
            # a missed minute is covered by the next pass: no retries that would pile passes up
            targets=[targets.LambdaFunction(reconcile, retry_attempts=0)],
        )
