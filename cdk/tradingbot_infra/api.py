"""The webhook API concern: a regional REST API in front of the webhook function (TradingView
alerts, health, OpenAPI docs), throttled, access-logged and traced, behind a web ACL (waf.py).

From CDK context (config.py): ``tradingview_ip_allowlist`` becomes the webhook's
TRADINGVIEW_IP_ALLOWLIST and the web ACL's TradingView IP set; ``custom_domain_name`` +
``custom_domain_certificate_arn`` add a regional custom domain, and ``mtls_truststore_uri`` turns on
mutual TLS there: API Gateway verifies the client certificate against the truststore
(https://docs.aws.amazon.com/apigateway/latest/developerguide/rest-api-mutual-tls.html), the
default execute-api endpoint is disabled so it cannot be bypassed, and the webhook checks the
certificate's subject is TradingView's (WEBHOOK_CLIENT_CERT_SUBJECT; TradingView documents that its
webhook server presents a certificate with that subject,
https://www.tradingview.com/support/solutions/43000680459/).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .config import InfraConfig
from .naming import Concern
from .util import function_of, retention
from .waf import WebhookFirewall


class WebhookApi(Concern):
    def __init__(self, scope: Construct, cid: str, *, cfg: InfraConfig, webhook: lambda_.IFunction) -> None:
        super().__init__(scope, cid)
        # API Gateway's own payload limit (10 MB) cannot be lowered: the webhook enforces this one (413)
        function_of(webhook).add_environment("WEBHOOK_MAX_BODY_BYTES", str(cfg.webhook_max_body_bytes))
        if cfg.tradingview_ip_allowlist:  # the webhook refuses other sources too (403), behind the WAF's rule
            function_of(webhook).add_environment("TRADINGVIEW_IP_ALLOWLIST", ",".join(cfg.tradingview_ip_allowlist))
        mutual_tls = bool(cfg.mtls_truststore_uri)
        if mutual_tls:
            function_of(webhook).add_environment("WEBHOOK_CLIENT_CERT_SUBJECT", cfg.client_cert_subject)
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
            # with mutual TLS only the custom domain may be used: execute-api would skip the certificate check
            disable_execute_api_endpoint=True if mutual_tls else None,
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
        self.firewall = WebhookFirewall(self, "Firewall", cfg=cfg, stage=self.api.deployment_stage)
        self.domain: apigw.DomainName | None = None
        if cfg.custom_domain_name:
            mtls = None
            if mutual_tls:
                bucket, _, key = cfg.mtls_truststore_uri.removeprefix("s3://").partition("/")
                mtls = apigw.MTLSConfig(
                    bucket=s3.Bucket.from_bucket_name(self, "Truststore", bucket),
                    key=key,
                    version=cfg.mtls_truststore_version or None,
                )
            self.domain = apigw.DomainName(
                self,
                "Domain",
                domain_name=cfg.custom_domain_name,
                certificate=acm.Certificate.from_certificate_arn(
                    self, "DomainCertificate", cfg.custom_domain_certificate_arn
                ),
                endpoint_type=apigw.EndpointType.REGIONAL,  # mutual TLS needs a regional domain
                security_policy=apigw.SecurityPolicy.TLS_1_2,
                mtls=mtls,
            )
            self.domain.add_base_path_mapping(self.api, stage=self.api.deployment_stage)
