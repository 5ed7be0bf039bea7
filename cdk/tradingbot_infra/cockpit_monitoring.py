"""Business metrics on CloudWatch (issue 17): a ``{prefix}-business`` dashboard over the EMF metrics
the handlers emit (tradingbot.entrypoints.lambdas.business_metrics: decisions by outcome and by
rejecting rule, orders placed, filled and rejected, slippage, voter latency, cost and abstentions;
the operator API's refusals) and those counted where they are decided (tradingbot.adapters.metrics:
alerts accepted and refused by reason, realized PnL, the feed's lag and reconnects), and an alarm
on a spike of rejected decisions (reconcile drift has its own, alarms.py)."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from constructs import Construct

from .config import InfraConfig
from .lambdas import METRICS_NAMESPACE, SERVICE_NAME
from .naming import Concern

FIVE_MIN = Duration.minutes(5)
#: rejected decisions in 5 minutes that page the operator: a validator rule gone wrong, or a flood
REJECTION_SPIKE = 10
#: the validation rules whose rejections are graphed (tradingbot.domain.validation)
RULES = ("kill_switch", "symbol_allowlist", "ai_confidence", "lstm_agrees", "backtest_win_rate", "reward_risk",
         "price_deviation", "max_leverage", "max_position_notional", "max_open_positions", "max_daily_loss",
         "max_drawdown")  # fmt: skip


#: the webhook's refusal reasons (tradingbot.domain.alert, tradingbot.pipeline.ingress), graphed as
#: ``AlertsRefused<Reason>`` (tradingbot.adapters.metrics.alert_refused)
ALERT_REFUSALS = ("bad_token", "too_many_bad_tokens", "ip_not_allowed", "client_certificate", "malformed_json",
                  "empty_body", "body_too_large", "invalid_field", "stale_alert", "future_alert", "unknown_symbol",
                  "unsupported_interval", "account_rate_limited")  # fmt: skip


def business_metric(name: str, statistic: str = "Sum", label: str | None = None) -> cw.Metric:
    return cw.Metric(namespace=METRICS_NAMESPACE, metric_name=name, statistic=statistic, period=FIVE_MIN,
                     dimensions_map={"service": SERVICE_NAME}, label=label)  # fmt: skip


def camel(text: str) -> str:
    """The metric-name form of a rule or reason (tradingbot.adapters.metrics.camel)."""
    return "".join(part.capitalize() for part in text.split("_"))


def rule_metric(rule: str) -> cw.Metric:
    name = "RejectedBy" + camel(rule)
    return cw.Metric(namespace=METRICS_NAMESPACE, metric_name=name, statistic="Sum", period=FIVE_MIN,
                     dimensions_map={"service": SERVICE_NAME}, label=rule)  # fmt: skip


class CockpitMonitoring(Concern):
    def __init__(self, scope: Construct, cid: str, *, cfg: InfraConfig, action: cw.IAlarmAction) -> None:
        super().__init__(scope, cid)
        self.rejection_spike = cw.Alarm(
            self,
            "RejectionSpike",
            alarm_name=f"{cfg.prefix}-RejectionSpike",
            metric=business_metric("DecisionsRejected"),
            threshold=REJECTION_SPIKE,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{REJECTION_SPIKE}+ decisions rejected in 5 minutes (see RejectedBy* by rule)",
        )
        self.rejection_spike.add_alarm_action(action)
        self.rejection_spike.add_ok_action(action)
        dash = cw.Dashboard(self, "Business", dashboard_name=f"{cfg.prefix}-business")
        dash.add_widgets(
            cw.GraphWidget(title="decisions by outcome", width=8, height=6, left=[
                business_metric("DecisionsTraded"), business_metric("DecisionsRejected"),
                business_metric("DecisionsFailed")]),
            cw.GraphWidget(title="rejections by rule", width=8, height=6, stacked=True,
                           left=[rule_metric(r) for r in RULES]),
            cw.GraphWidget(title="orders filled / rejected", width=8, height=6,
                           left=[business_metric("OrdersFilled"), business_metric("OrdersRejected")]),
        )  # fmt: skip
        dash.add_widgets(
            cw.GraphWidget(title="slippage vs alert price (bps, avg / p99)", width=8, height=6,
                           left=[business_metric("SlippageBps", "Average"), business_metric("SlippageBps", "p99")]),
            cw.GraphWidget(title="voter latency (ms, p50 / p99) and abstentions", width=8, height=6,
                           left=[business_metric("VoterLatencyMs", "p50"), business_metric("VoterLatencyMs", "p99")],
                           right=[business_metric("VoterAbstentions")]),
            cw.GraphWidget(title="voter cost (USD) / operator API refusals", width=8, height=6,
                           left=[business_metric("VoterCostUsd")],
                           right=[business_metric("OperatorApiRefused"), business_metric("TelegramWebhookRefused")]),
        )  # fmt: skip
        dash.add_widgets(
            cw.GraphWidget(title="alerts accepted / refused", width=8, height=6,
                           left=[business_metric("AlertsAccepted"), business_metric("AlertsRefused")]),
            cw.GraphWidget(title="alert refusals by reason", width=8, height=6, stacked=True,
                           left=[business_metric("AlertsRefused" + camel(r), label=r) for r in ALERT_REFUSALS]),
            cw.GraphWidget(title="orders placed / realized PnL (USD)", width=8, height=6,
                           left=[business_metric("OrdersPlaced")], right=[business_metric("RealizedPnlUsd")]),
        )  # fmt: skip
        dash.add_widgets(
            cw.GraphWidget(title="market feed lag (ms: p50 / p99 / max of each minute)", width=12, height=6,
                           left=[business_metric("FeedLagP50Ms", "Average"), business_metric("FeedLagP99Ms", "Maximum"),
                                 business_metric("FeedLagMaxMs", "Maximum")]),
            cw.GraphWidget(title="market feed reconnects / messages", width=12, height=6,
                           left=[business_metric("FeedReconnects")], right=[business_metric("FeedMessages")]),
        )  # fmt: skip
        dash.add_widgets(cw.AlarmWidget(title="rejection spike", alarm=self.rejection_spike, width=24, height=4))
