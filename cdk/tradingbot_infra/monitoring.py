"""Monitoring: SNS alarm topic (-> notify Lambda -> Telegram), log metric filters, alarms, a
composite alarm and the dashboard.

Log metric filters read Powertools' JSON log lines. Conventions the handlers follow (key ``event``
added with ``logger.info(..., extra={"event": ...})``): ``signal_accepted`` (webhook),
``order_placed`` / ``order_rejected`` (execute). Errors are any line with ``level`` ERROR.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs
from constructs import Construct

from .compute import ComputeStack
from .config import InfraConfig
from .data import DataStack

LOG_NAMESPACE = "TradingBot/Logs"
FIVE_MIN = Duration.minutes(5)


class MonitoringStack(Stack):
    def __init__(
        self, scope: Construct, cid: str, *, cfg: InfraConfig, data: DataStack, compute: ComputeStack, **kwargs: object
    ) -> None:
        super().__init__(scope, cid, **kwargs)  # type: ignore[arg-type]
        self.add_stack_dependency(compute)

        topic_key = kms.Key(self, "AlarmTopicKey", enable_key_rotation=True, description="TradingBot AI alarm topic")
        # CloudWatch must be able to publish to an encrypted topic
        topic_key.grant_encrypt_decrypt(iam.ServicePrincipal("cloudwatch.amazonaws.com"))
        self.topic = sns.Topic(
            self, "Alarms", topic_name=f"{cfg.prefix}-alarms", master_key=topic_key, enforce_ssl=True
        )
        # The subscription and its invoke permission live here (L1), so monitoring depends on
        # compute and never the other way round.
        notify = compute.functions["notify"]
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
        action = cw_actions.SnsAction(self.topic)

        # ---- log metric filters ------------------------------------------------------------
        def log_metric(name: str) -> cw.Metric:
            return cw.Metric(namespace=LOG_NAMESPACE, metric_name=name, statistic="Sum", period=FIVE_MIN)

        for fname, group in compute.log_groups.items():
            logs.MetricFilter(
                self,
                f"Errors{fname.title().replace('_', '')}",
                log_group=group,
                filter_pattern=logs.FilterPattern.string_value("$.level", "=", "ERROR"),
                metric_namespace=LOG_NAMESPACE,
                metric_name="Errors",
                default_value=0,
            )
        logs.MetricFilter(
            self,
            "Signals",
            log_group=compute.log_groups["webhook"],
            filter_pattern=logs.FilterPattern.string_value("$.event", "=", "signal_accepted"),
            metric_namespace=LOG_NAMESPACE,
            metric_name="SignalsAccepted",
            default_value=0,
        )
        logs.MetricFilter(
            self,
            "OrdersPlaced",
            log_group=compute.log_groups["execute"],
            filter_pattern=logs.FilterPattern.string_value("$.event", "=", "order_placed"),
            metric_namespace=LOG_NAMESPACE,
            metric_name="OrdersPlaced",
            default_value=0,
        )
        logs.MetricFilter(
            self,
            "OrdersRejected",
            log_group=compute.log_groups["execute"],
            filter_pattern=logs.FilterPattern.string_value("$.event", "=", "order_rejected"),
            metric_namespace=LOG_NAMESPACE,
            metric_name="OrdersRejected",
            default_value=0,
        )

        # ---- metrics ---------------------------------------------------------------------------
        api = compute.api
        api_5xx = api.metric_server_error(period=FIVE_MIN, statistic="Sum")
        api_p99 = api.metric_latency(period=FIVE_MIN, statistic="p99")
        fns = compute.functions
        errors = {f"e{i}": fn.metric_errors(period=FIVE_MIN) for i, fn in enumerate(fns.values())}
        lambda_errors = cw.MathExpression(
            expression=" + ".join(errors), using_metrics=errors, label="Lambda errors (all functions)", period=FIVE_MIN
        )
        sm = compute.state_machine
        sm_failed = cw.MathExpression(
            expression="failed + timedout + aborted",
            period=FIVE_MIN,
            label="failed executions",
            using_metrics={
                "failed": sm.metric_failed(period=FIVE_MIN),
                "timedout": sm.metric_timed_out(period=FIVE_MIN),
                "aborted": sm.metric_aborted(period=FIVE_MIN),
            },
        )
        db = data.db
        redis_dims = {"CacheClusterId": f"{cfg.prefix}-redis-001"}  # the primary of the replication group

        def redis_metric(name: str) -> cw.Metric:
            return cw.Metric(
                namespace="AWS/ElastiCache",
                metric_name=name,
                dimensions_map=redis_dims,
                statistic="Average",
                period=FIVE_MIN,
            )

        feed_running = cw.Metric(
            namespace="ECS/ContainerInsights",
            metric_name="RunningTaskCount",
            dimensions_map={"ClusterName": compute.cluster.cluster_name, "ServiceName": compute.feed.service_name},
            statistic="Minimum",
            period=Duration.minutes(1),
        )

        # ---- alarms ---------------------------------------------------------------------------
        def alarm(
            cid: str,
            metric: cw.IMetric,
            threshold: float,
            desc: str,
            *,
            op: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            periods: int = 1,
            datapoints: int = 1,
            missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
            notify: bool = True,
        ) -> cw.Alarm:
            a = cw.Alarm(
                self,
                cid,
                alarm_name=f"{cfg.prefix}-{cid}",
                metric=metric,
                threshold=threshold,
                comparison_operator=op,
                evaluation_periods=periods,
                datapoints_to_alarm=datapoints,
                treat_missing_data=missing,
                alarm_description=desc,
            )
            if notify:
                a.add_alarm_action(action)
                a.add_ok_action(action)
            return a

        gt = cw.ComparisonOperator.GREATER_THAN_THRESHOLD
        lt = cw.ComparisonOperator.LESS_THAN_THRESHOLD
        # pipeline alarms feed the composite (one message when the decision path breaks)
        pipeline = [
            alarm("Api5xx", api_5xx, 1, "API Gateway answered 5xx", notify=False),
            alarm(
                "WebhookLatencyP99",
                api_p99,
                1000,
                "webhook p99 latency over 1 s (TradingView waits)",
                op=gt,
                periods=3,
                datapoints=2,
                notify=False,
            ),
            alarm("LambdaErrors", lambda_errors, 1, "a Lambda function raised", notify=False),
            alarm(
                "PipelineFailedExecutions", sm_failed, 1, "trading pipeline executions failed/timed out", notify=False
            ),
            alarm("OrderRejections", log_metric("OrdersRejected"), 1, "the exchange rejected an order", notify=False),
            alarm(
                "FeedNoRunningTask",
                feed_running,
                1,
                "market feed has no running task: prices go stale",
                op=lt,
                periods=3,
                datapoints=3,
                missing=cw.TreatMissingData.BREACHING,
                notify=False,
            ),
        ]
        self.alarms = [
            *pipeline,
            alarm(
                "ExecuteThrottled",
                fns["execute"].metric_throttles(period=FIVE_MIN),
                1,
                "execute hit its reserved concurrency: orders are queued by Step Functions retries",
            ),
            alarm(
                "RdsCpuHigh",
                db.metric_cpu_utilization(period=FIVE_MIN),
                80,
                "RDS CPU over 80 %",
                op=gt,
                periods=3,
                datapoints=3,
            ),
            alarm(
                "RdsFreeStorageLow",
                db.metric_free_storage_space(period=FIVE_MIN),
                2 * 1024**3,
                "RDS free storage under 2 GiB",
                op=lt,
            ),
            alarm(
                "RedisMemoryHigh",
                redis_metric("DatabaseMemoryUsagePercentage"),
                80,
                "Redis memory over 80 % (allkeys-lru starts evicting idempotency keys)",
                op=gt,
                periods=3,
                datapoints=3,
            ),
            alarm(
                "RedisCpuHigh",
                redis_metric("EngineCPUUtilization"),
                80,
                "Redis engine CPU over 80 %",
                op=gt,
                periods=3,
                datapoints=3,
            ),
            alarm("OptimiseFailed", self._opt_failed(compute), 1, "scheduled optimisation run failed"),
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

        # ---- dashboard ---------------------------------------------------------------------------
        def graph(title: str, metrics: list[cw.IMetric], right: list[cw.IMetric] | None = None) -> cw.GraphWidget:
            return cw.GraphWidget(title=title, left=metrics, right=right or [], width=8, height=6)

        dash = cw.Dashboard(self, "Dashboard", dashboard_name=f"{cfg.prefix}-overview")
        dash.add_widgets(
            cw.AlarmStatusWidget(title="alarms", alarms=[*self.alarms, self.composite], width=24, height=3)
        )
        dash.add_widgets(
            graph(
                "API requests / 4xx / 5xx",
                [api.metric_count(period=FIVE_MIN), api.metric_client_error(period=FIVE_MIN), api_5xx],
            ),
            graph("API latency p50 / p99 (ms)", [api.metric_latency(period=FIVE_MIN, statistic="p50"), api_p99]),
            graph(
                "signals, orders placed / rejected",
                [log_metric("SignalsAccepted"), log_metric("OrdersPlaced"), log_metric("OrdersRejected")],
            ),
        )
        dash.add_widgets(
            graph("Lambda errors", [fn.metric_errors(period=FIVE_MIN, label=n) for n, fn in fns.items()]),
            graph(
                "Lambda duration p99 (ms)",
                [fn.metric_duration(period=FIVE_MIN, statistic="p99", label=n) for n, fn in fns.items()],
            ),
            graph(
                "state machine outcomes",
                [
                    sm.metric_succeeded(period=FIVE_MIN),
                    sm.metric_failed(period=FIVE_MIN),
                    sm.metric_timed_out(period=FIVE_MIN),
                ],
            ),
        )
        dash.add_widgets(
            graph(
                "RDS CPU % / connections",
                [db.metric_cpu_utilization(period=FIVE_MIN)],
                [db.metric_database_connections(period=FIVE_MIN)],
            ),
            graph(
                "Redis memory % / CPU %",
                [redis_metric("DatabaseMemoryUsagePercentage"), redis_metric("EngineCPUUtilization")],
            ),
            graph("market feed running tasks", [feed_running]),
        )

    @staticmethod
    def _opt_failed(compute: ComputeStack) -> cw.IMetric:
        return compute.optimise_machine.metric_failed(period=Duration.hours(1))
