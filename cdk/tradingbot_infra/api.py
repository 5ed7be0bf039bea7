"""The webhook API concern: a regional REST API in front of the webhook function (TradingView
alerts, health, OpenAPI docs), throttled, access-logged and traced."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from .config import InfraConfig
from .naming import Concern
from .util import retention


class WebhookApi(Concern):
    def __init__(self, scope: Construct, cid: str, *, cfg: InfraConfig, webhook: lambda_.Function) -> None:
        super().__init__(scope, cid)
        # API Gateway's own payload limit (10 MB) cannot be lowered: the webhook enforces this one (413)
        webhook.add_environment("WEBHOOK_MAX_BODY_BYTES", str(cfg.webhook_max_body_bytes))
        access_logs = logs.LogGroup(
            self, "ApiAccessLogs", retention=retention(cfg.log_retention_days), removal_policy=RemovalPolicy.DESTROY
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{cfg.prefix}-api",
            description="TradingView webhook, health, OpenAPI docs",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            deploy_options=apigw.StageOptions(
                stage_name="prod",
                throttling_rate_limit=cfg.api_rate_limit,
                throttling_burst_limit=cfg.api_burst_limit,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # request bodies carry the webhook token
                metrics_enabled=True,
                tracing_enabled=True,
            ),
        )
        integration = apigw.LambdaIntegration(webhook, proxy=True)
        tradingview = self.api.root.add_resource("webhook").add_resource("tradingview")
        tradingview.add_method("POST", integration)
        self.api.root.add_resource("health").add_method("GET", integration)
        self.api.root.add_resource("docs").add_method("GET", integration)
