"""The monitoring stack's concerns: the alarm topic (-> notify Lambda -> Telegram), the log metric
filters, the alarms with their composite, and the dashboard."""

from __future__ import annotations

from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from .config import InfraConfig
from .metrics import FIVE_MIN, LOG_NAMESPACE, PlatformMetrics, log_metric
from .naming import Concern, pascal
from .reconcile import drift_metric

GTE = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
GT = cw.ComparisonOperator.GREATER_THAN_THRESHOLD
LT = cw.ComparisonOperator.LESS_THAN_THRESHOLD


class AlarmTopic(Concern):
    """An encrypted SNS topic CloudWatch publishes to, delivered to the notify function.

    The subscription and its invoke permission live here (L1 permission), so monitoring depends on
    compute and never the other way round.
    """

    def __init__(self, scope: Construct, cid: str, *, cfg: InfraConfig, notify: lambda_.IFunction) -> None:
        super().__init__(scope, cid)
        key = kms.Key(self, "AlarmTopicKey", enable_key_rotation=True, description="TradingBot AI alarm topic")
        key.grant_encrypt_decrypt(iam.ServicePrincipal("cloudwatch.amazonaws.com"))  # publishes encrypted
        self.topic = sns.Topic(self, "Alarms", topic_name=f"{cfg.prefix}-alarms", master_key=key, enforce_ssl=True)
        sns.Subscription(
            self,
            "NotifySubscription",
            topic=self.topic,
            endpoint=notify.function_arn,
            protocol=sns.SubscriptionProtocol.LAMBDA,
        )
        lambda_.CfnPermission(
            self,
            "NotifyFromAlarms",
            action="lambda:InvokeFunction",
            function_name=notify.function_arn,
            principal="sns.amazonaws.com",
            source_arn=self.topic.topic_arn,
        )
        if cfg.alarm_email:
            self.topic.add_subscription(subs.EmailSubscription(cfg.alarm_email))
        self.action = cw_actions.SnsAction(self.topic)


class LogMetrics(Concern):
    """Errors per function, accepted signals, orders placed/rejected, from the JSON log lines."""

    def __init__(self, scope: Construct, cid: str, *, log_groups: dict[str, logs.ILogGroup]) -> None:
        super().__init__(scope, cid)
        for fname, group in log_groups.items():
            self._filter(f"Errors{pascal(fname)}", group, "level", "ERROR", "Errors")
        self._filter("Signals", log_groups["webhook"], "event", "signal_accepted", "SignalsAccepted")
        self._filter("OrdersPlaced", log_groups["execute"], "event", "order_placed", "OrdersPlaced")
        self._filter("OrdersRejected", log_groups["execute"], "event", "order_rejected", "OrdersRejected")

    def _filter(self, cid: str, group: logs.ILogGroup, key: str, value: str, metric: str) -> None:
        logs.MetricFilter(
            self,
            cid,
            log_group=group,
            filter_pattern=logs.FilterPattern.string_value(f"$.{key}", "=", value),
            metric_namespace=LOG_NAMESPACE,
            metric_name=metric,
            default_value=0,
        )


class Alarms(Concern):
    """``pipeline`` alarms feed one composite (one message when the decision path breaks); the
    others notify on their own. ``alarms`` is all of them but the composite."""

    def __init__(
        self, scope: Construct, cid: str, *, cfg: InfraConfig, metrics: PlatformMetrics, action: cw.IAlarmAction
    ) -> None:
        super().__init__(scope, cid)
        self.cfg, self.action = cfg, action
        m = metrics
        pipeline = [
            self._alarm("Api5xx", m.api_5xx, 1, "API Gateway answered 5xx", notify=False),
            self._alarm(
                "WebhookLatencyP99",
                m.api_p99,
                1000,
                "webhook p99 latency over 1 s (TradingView waits)",
                op=GT,
                periods=3,
                datapoints=2,
                notify=False,
            ),
            self._alarm("LambdaErrors", m.lambda_errors, 1, "a Lambda function raised", notify=False),
            *(
                self._alarm(f"LambdaErrors{n}", group, 1, "a Lambda function raised", notify=False)
                for n, group in enumerate(m.lambda_errors_groups[1:], 2)
            ),
            self._alarm(
                "PipelineFailedExecutions",
                m.pipeline_failed,
                1,
                "trading pipeline executions failed/timed out",
                notify=False,
            ),
            self._alarm(
                "OrderRejections", log_metric("OrdersRejected"), 1, "the exchange rejected an order", notify=False
            ),
            self._alarm(
                "FeedNoRunningTask",
                m.feed_running,
                1,
                "market feed has no running task: prices go stale",
                op=LT,
                periods=3,
                datapoints=3,
                missing=cw.TreatMissingData.BREACHING,
                notify=False,
            ),
        ]
        self.alarms = [
            *pipeline,
            self._alarm(
                "ExecuteThrottled",
                m.functions["execute"].metric_throttles(period=FIVE_MIN),
                1,
                "execute hit its reserved concurrency: orders are queued by Step Functions retries",
            ),
            self._alarm(
                "RdsCpuHigh",
                m.db.metric_cpu_utilization(period=FIVE_MIN),
                80,
                "RDS CPU over 80 %",
                op=GT,
                periods=3,
                datapoints=3,
            ),
            self._alarm(
                "RdsFreeStorageLow",
                m.db.metric_free_storage_space(period=FIVE_MIN),
                2 * 1024**3,
                "RDS free storage under 2 GiB",
                op=LT,
            ),
            self._alarm(
                "RedisMemoryHigh",
                m.redis("DatabaseMemoryUsagePercentage"),
                80,
                "Redis memory over 80 % (allkeys-lru starts evicting idempotency keys)",
                op=GT,
                periods=3,
                datapoints=3,
            ),
            self._alarm(
                "RedisCpuHigh",
                m.redis("EngineCPUUtilization"),
                80,
                "Redis engine CPU over 80 %",
                op=GT,
                periods=3,
                datapoints=3,
            ),
            self._alarm("OptimiseFailed", m.optimise_failed, 1, "scheduled optimisation run failed"),
            # issue 15: what reconcile could not repair (an order whose outcome stays unknown, a position
            # without its stop/target, a venue call failing) for three passes in a row
            self._alarm(
                "ReconcileDrift",
                drift_metric(),
                1,
                "reconcile left drift unrepaired for 3 minutes: see the reconcile log's reconcile_drift lines",
                periods=3,
                datapoints=3,
            ),
            self._alarm(
                "ReconcileNotRunning",
                m.functions["reconcile"].metric_invocations(period=FIVE_MIN, statistic="Sum"),
                1,
                "the every-minute reconcile did not run for 10 minutes: protective orders are not being checked",
                op=LT,
                periods=2,
                datapoints=2,
                missing=cw.TreatMissingData.BREACHING,
            ),
        ]
        self.composite = cw.CompositeAlarm(
            self,
            "PipelineUnhealthy",
            composite_alarm_name=f"{cfg.prefix}-pipeline-unhealthy",
            alarm_rule=cw.AlarmRule.any_of(*(cw.AlarmRule.from_alarm(a, cw.AlarmState.ALARM) for a in pipeline)),
            alarm_description="the trading decision path is broken: see the member alarms",
        )
        self.composite.add_alarm_action(action)
        self.composite.add_ok_action(action)

    def _alarm(
        self,
        cid: str,
        metric: cw.IMetric,
        threshold: float,
        desc: str,
        *,
        op: cw.ComparisonOperator = GTE,
        periods: int = 1,
        datapoints: int = 1,
        missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
        notify: bool = True,
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            cid,
            alarm_name=f"{self.cfg.prefix}-{cid}",
            metric=metric,
            threshold=threshold,
            comparison_operator=op,
            evaluation_periods=periods,
            datapoints_to_alarm=datapoints,
            treat_missing_data=missing,
            alarm_description=desc,
        )
        if notify:
            alarm.add_alarm_action(self.action)
            alarm.add_ok_action(self.action)
        return alarm


class Dashboard(Concern):
    """One overview: alarm states, API, signals/orders, Lambdas, state machine, RDS, Redis, feed."""

    def __init__(
        self, scope: Construct, cid: str, *, cfg: InfraConfig, metrics: PlatformMetrics, alarms: Alarms
    ) -> None:
        super().__init__(scope, cid)
        m, api, fns, sm = metrics, metrics.api, metrics.functions, metrics.pipeline
        dash = cw.Dashboard(self, "Dashboard", dashboard_name=f"{cfg.prefix}-overview")
        dash.add_widgets(
            cw.AlarmStatusWidget(title="alarms", alarms=[*alarms.alarms, alarms.composite], width=24, height=3)
        )
        dash.add_widgets(
            _graph(
                "API requests / 4xx / 5xx",
                [api.metric_count(period=FIVE_MIN), api.metric_client_error(period=FIVE_MIN), m.api_5xx],
            ),
            _graph("API latency p50 / p99 (ms)", [api.metric_latency(period=FIVE_MIN, statistic="p50"), m.api_p99]),
            _graph(
                "signals, orders placed / rejected",
                [log_metric("SignalsAccepted"), log_metric("OrdersPlaced"), log_metric("OrdersRejected")],
            ),
        )
        dash.add_widgets(
            _graph("Lambda errors", [fn.metric_errors(period=FIVE_MIN, label=n) for n, fn in fns.items()]),
            _graph(
                "Lambda duration p99 (ms)",
                [fn.metric_duration(period=FIVE_MIN, statistic="p99", label=n) for n, fn in fns.items()],
            ),
            _graph(
                "state machine outcomes",
                [
                    sm.metric_succeeded(period=FIVE_MIN),
                    sm.metric_failed(period=FIVE_MIN),
                    sm.metric_timed_out(period=FIVE_MIN),
                ],
            ),
        )
        dash.add_widgets(
            _graph(
                "RDS CPU % / connections",
                [m.db.metric_cpu_utilization(period=FIVE_MIN)],
                [m.db.metric_database_connections(period=FIVE_MIN)],
            ),
            _graph(
                "Redis memory % / CPU %",
                [m.redis("DatabaseMemoryUsagePercentage"), m.redis("EngineCPUUtilization")],
            ),
            _graph("market feed running tasks", [m.feed_running]),
        )


def _graph(title: str, metrics: list[cw.IMetric], right: list[cw.IMetric] | None = None) -> cw.GraphWidget:
    return cw.GraphWidget(title=title, left=metrics, right=right or [], width=8, height=6)
