"""Business metrics from below the Lambda edge (issue 17): CloudWatch EMF through Powertools Metrics.

The record_outcome handler sees a whole decision (``tradingbot.entrypoints.lambdas.business_metrics``);
what is decided elsewhere is counted here, where it is decided:

* ``AlertsAccepted`` (the webhook stored a new alert and starts its execution) and
  ``AlertsRefused`` plus ``AlertsRefused<Reason>`` (e.g. ``AlertsRefusedWrongToken``): every
  refusal the ingress guard tallies (``tradingbot.pipeline.ingress.refuse``);
* ``RealizedPnlUsd``: each change the accounting sync writes to a position's realised PnL (the
  change, so the sum over a period is the PnL realised in it; negative for a loss);
* ``FeedLagMs`` (p50 / p99 / max of the window), ``FeedReconnects`` and ``FeedMessages`` (since the
  previous flush): the market feed, every ``FEED_FLUSH_S`` (:func:`flush_feed`).

Namespace ``TradingBot`` and dimension ``service=tradingbot``, as the handlers' (the CDK dashboard
reads them: cdk/tradingbot_infra/cockpit_monitoring.py). Powertools keeps ONE metric set per process
(class attributes shared by every ``Metrics`` instance), so what is added here is flushed by the
Lambda edge's ``log_metrics`` at the end of the invocation. Outside Lambda Powertools' docs say to
flush by hand ("Manually flushes the metrics. This is normally not necessary, unless you're running
on other runtimes besides Lambda", ``Metrics.flush_metrics``;
https://docs.powertools.aws.dev/lambda/python/latest/core/metrics/#flushing-metrics-manually): the
feed (a Fargate container) calls :func:`flush_feed`, which prints one EMF line to stdout; the
``awslogs`` driver sends it to CloudWatch Logs with ``PutLogEvents``, and CloudWatch extracts the
metrics from any log event in the embedded metric format (the ``x-amzn-logs-format: json/emf``
header is optional: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Generation_PutLogEvents.html).

Off unless EMF is wanted, by the edge's rule: on Lambda, or where ``POWERTOOLS_METRICS_DISABLED``
says ``false`` (the feed's task definition); elsewhere (tests, ``tradingbot serve``) nothing is
added, so nothing accumulates unflushed.
"""

from __future__ import annotations

import os
from decimal import Decimal

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "TradingBot"
SERVICE = "tradingbot"
#: how often the feed flushes its metrics (s): one EMF line a minute, CloudWatch's standard resolution
FEED_FLUSH_S = 60.0

_metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def enabled() -> bool:
    """The edge's rule (``tradingbot.entrypoints.lambdas.edge``): on Lambda unless disabled, elsewhere
    only when ``POWERTOOLS_METRICS_DISABLED`` is set to a false value."""
    if os.environ.get("POWERTOOLS_METRICS_DISABLED") is None:
        return "AWS_LAMBDA_FUNCTION_NAME" in os.environ
    return not is_metrics_disabled()


def _add(name: str, value: float, unit: MetricUnit = MetricUnit.Count) -> None:
    if enabled():
        _metrics.add_metric(name=name, unit=unit, value=value)


def camel(text: str) -> str:
    """``wrong_token`` -> ``WrongToken`` (metric names from reasons and rules)."""
    return "".join(part.capitalize() for part in text.replace("-", "_").split("_") if part)


def alert_accepted() -> None:
    """A new alert stored and its execution started (a redelivery is not counted again)."""
    _add("AlertsAccepted", 1)


def alert_refused(reason: str) -> None:
    """One refused alert, in total and by its reason (``ip_not_allowed``, ``wrong_token`` ...)."""
    _add("AlertsRefused", 1)
    _add("AlertsRefused" + camel(reason), 1)


def realized_pnl(change: Decimal) -> None:
    """A change to a position's realised PnL (USD, net of fees and funding), as the sync wrote it."""
    _add("RealizedPnlUsd", float(change), MetricUnit.NoUnit)


def flush_feed(*, lags_ms: list[float], reconnects: int, messages: int) -> dict[str, float]:
    """The feed's window since the previous flush, as one EMF document on stdout (module docstring);
    returns what was emitted (nothing, and no output, when metrics are off)."""
    if not enabled():
        return {}
    out: dict[str, float] = {"FeedReconnects": float(reconnects), "FeedMessages": float(messages)}
    if lags_ms:
        ordered = sorted(lags_ms)
        out["FeedLagP50Ms"] = ordered[len(ordered) // 2]
        out["FeedLagP99Ms"] = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        out["FeedLagMaxMs"] = ordered[-1]
    for name, value in out.items():
        unit = MetricUnit.Milliseconds if name.endswith("Ms") else MetricUnit.Count
        _metrics.add_metric(name=name, unit=unit, value=value)
    _metrics.flush_metrics()
    return out
