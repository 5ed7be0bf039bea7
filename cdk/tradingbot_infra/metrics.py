"""The CloudWatch metrics the alarms and the dashboard share (metrics are not resources: building
them twice is harmless, but one definition keeps an alarm and its graph on the same numbers).

Log metrics read Powertools' JSON log lines. Conventions the handlers follow (key ``event`` added
with ``logger.info(..., extra={"event": ...})``): ``signal_accepted`` (webhook), ``order_placed`` /
``order_rejected`` (execute). Errors are any line with ``level`` ERROR.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw

from .compute import ComputeStack
from .config import InfraConfig
from .data import DataStack

LOG_NAMESPACE = "TradingBot/Logs"
FIVE_MIN = Duration.minutes(5)


def log_metric(name: str) -> cw.Metric:
    return cw.Metric(namespace=LOG_NAMESPACE, metric_name=name, statistic="Sum", period=FIVE_MIN)


class PlatformMetrics:
    def __init__(self, cfg: InfraConfig, data: DataStack, compute: ComputeStack) -> None:
        self.api = compute.webhook_api.api
        self.api_5xx = self.api.metric_server_error(period=FIVE_MIN, statistic="Sum")
        self.api_p99 = self.api.metric_latency(period=FIVE_MIN, statistic="p99")
        self.functions = compute.lambdas.functions
        # CloudWatch refuses an alarm on a math expression over more than 10 metrics: one sum per ten
        # functions (the first is the original "LambdaErrors" alarm; alarms.py adds one per further group)
        fns = list(self.functions.values())
        self.lambda_errors_groups: list[cw.MathExpression] = []
        for start in range(0, len(fns), 10):
            errors = {f"e{i}": fn.metric_errors(period=FIVE_MIN) for i, fn in enumerate(fns[start : start + 10], start)}
            self.lambda_errors_groups.append(cw.MathExpression(
                expression=" + ".join(errors), using_metrics=errors, period=FIVE_MIN,
                label=f"Lambda errors (functions {start + 1}-{start + len(errors)})",
            ))  # fmt: skip
        self.lambda_errors = self.lambda_errors_groups[0]
        self.pipeline = compute.trading.machine
        self.pipeline_failed = cw.MathExpression(
            expression="failed + timedout + aborted",
            period=FIVE_MIN,
            label="failed executions",
            using_metrics={
                "failed": self.pipeline.metric_failed(period=FIVE_MIN),
                "timedout": self.pipeline.metric_timed_out(period=FIVE_MIN),
                "aborted": self.pipeline.metric_aborted(period=FIVE_MIN),
            },
        )
        self.optimise_failed = compute.optimisation.machine.metric_failed(period=Duration.hours(1))
        self.db = data.database.instance
        self._redis_dims = {"CacheClusterId": f"{cfg.prefix}-redis-001"}  # the primary of the replication group
        feed = compute.market_feed
        self.feed_running = cw.Metric(
            namespace="ECS/ContainerInsights",
            metric_name="RunningTaskCount",
            dimensions_map={"ClusterName": feed.cluster.cluster_name, "ServiceName": feed.service.service_name},
            statistic="Minimum",
            period=Duration.minutes(1),
        )

    def redis(self, name: str) -> cw.Metric:
        return cw.Metric(
            namespace="AWS/ElastiCache",
            metric_name=name,
            dimensions_map=self._redis_dims,
            statistic="Average",
            period=FIVE_MIN,
        )
