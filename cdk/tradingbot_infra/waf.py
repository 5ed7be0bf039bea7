"""The webhook API's web ACL (AWS WAF), associated with its stage: the first line of defence, evaluated
before API Gateway's throttling and the Lambda ("AWS WAF rules are evaluated before other access
control features", https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-control-access-aws-waf.html),
so a flood blocked here never takes a share of the stage's throttle from TradingView.

Rules, in order:

0. ``TradingViewOnly`` (when ``tradingview_ip_allowlist`` is set, as it is by default): a request to
   ``/webhook/...`` from outside TradingView's addresses is blocked (403, the webhook's own error
   shape). TradingView's documented sources are 52.89.214.238, 34.212.75.30, 54.218.53.128 and
   52.32.178.7 (https://www.tradingview.com/support/solutions/43000529348/).
1. ``RatePerIp``: more than ``waf_rate_limit_per_minute`` requests from one IP in the trailing
   60 s are blocked (429). TradingView's addresses are scoped out: every TradingView user's alerts
   come from them. (Rate-based rules: evaluation windows 60/120/300/600 s, limit >= 10,
   https://docs.aws.amazon.com/waf/latest/developerguide/waf-rule-statement-type-rate-based-high-level-settings.html.)
2. ``AWSManagedRulesCommonRuleSet`` (CRS), with two rules counted instead of blocking:
   ``SizeRestrictions_BODY`` blocks bodies over 8 KB (8,192 bytes) — a legitimate alert is at most
   ``webhook_max_body_bytes``, so the rule is left blocking only while that limit is <= 8,192 and
   the webhook's own 413 (counted in its refusal tallies) answers larger bodies otherwise;
   ``NoUserAgent_HEADER`` blocks requests without a User-Agent, and TradingView does not document
   sending one, so blocking on it could drop every alert
   (https://docs.aws.amazon.com/waf/latest/developerguide/aws-managed-rule-groups-baseline.html).
"""

from __future__ import annotations

import json

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from .config import InfraConfig

CRS_BODY_LIMIT = 8192  # SizeRestrictions_BODY: "request bodies that are over 8 KB (8,192 bytes)"


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
    )


def _block(status: int, body_key: str) -> wafv2.CfnWebACL.RuleActionProperty:
    return wafv2.CfnWebACL.RuleActionProperty(
        block=wafv2.CfnWebACL.BlockActionProperty(
            custom_response=wafv2.CfnWebACL.CustomResponseProperty(
                response_code=status, custom_response_body_key=body_key
            )
        )
    )


def _body(error: str, message: str) -> wafv2.CfnWebACL.CustomResponseBodyProperty:
    return wafv2.CfnWebACL.CustomResponseBodyProperty(
        content_type="APPLICATION_JSON", content=json.dumps({"error": error, "message": message})
    )


class WebhookFirewall(Construct):
    """A REGIONAL web ACL with the rules above, associated with ``stage``."""

    def __init__(self, scope: Construct, cid: str, *, cfg: InfraConfig, stage: apigw.Stage) -> None:
        super().__init__(scope, cid)
        rules: list[wafv2.CfnWebACL.RuleProperty] = []
        tradingview: wafv2.CfnIPSet | None = None
        not_tradingview: wafv2.CfnWebACL.StatementProperty | None = None
        if cfg.tradingview_ip_allowlist:
            tradingview = wafv2.CfnIPSet(
                self,
                "TradingViewIps",
                name=f"{cfg.prefix}-tradingview",
                description="TradingView webhook source addresses from the CDK context",
                scope="REGIONAL",
                ip_address_version="IPV4",
                addresses=[f"{ip}/32" for ip in cfg.tradingview_ip_allowlist],
            )
            from_tradingview = wafv2.CfnWebACL.StatementProperty(
                ip_set_reference_statement=wafv2.CfnWebACL.IPSetReferenceStatementProperty(arn=tradingview.attr_arn)
            )
            not_tradingview = wafv2.CfnWebACL.StatementProperty(
                not_statement=wafv2.CfnWebACL.NotStatementProperty(statement=from_tradingview)
            )
            to_webhook = wafv2.CfnWebACL.StatementProperty(
                byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                    field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}),
                    positional_constraint="CONTAINS",  # "/prod/webhook/..." on execute-api, "/webhook/..." on a domain
                    search_string="/webhook/",
                    text_transformations=[wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="LOWERCASE")],
                )
            )
            rules.append(
                wafv2.CfnWebACL.RuleProperty(
                    name="TradingViewOnly",
                    priority=0,
                    action=_block(403, "ip_not_allowed"),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        and_statement=wafv2.CfnWebACL.AndStatementProperty(statements=[to_webhook, not_tradingview])
                    ),
                    visibility_config=_visibility("TradingViewOnly"),
                )
            )
        rules.append(
            wafv2.CfnWebACL.RuleProperty(
                name="RatePerIp",
                priority=1,
                action=_block(429, "rate_limited"),
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        aggregate_key_type="IP",
                        evaluation_window_sec=60,
                        limit=cfg.waf_rate_limit_per_minute,
                        scope_down_statement=not_tradingview,
                    )
                ),
                visibility_config=_visibility("RatePerIp"),
            )
        )
        counted = ["NoUserAgent_HEADER"]
        if cfg.webhook_max_body_bytes > CRS_BODY_LIMIT:
            counted.append("SizeRestrictions_BODY")
        rules.append(
            wafv2.CfnWebACL.RuleProperty(
                name="AWSManagedRulesCommonRuleSet",
                priority=2,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name="AWSManagedRulesCommonRuleSet",
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                            )
                            for rule in counted
                        ],
                    )
                ),
                visibility_config=_visibility("CommonRuleSet"),
            )
        )
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=f"{cfg.prefix}-webhook",
            description="TradingView webhook - TradingView only, rate per IP, AWS common rule set",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            custom_response_bodies={
                "ip_not_allowed": _body("ip_not_allowed", "source IP is not one of TradingView's webhook addresses"),
                "rate_limited": _body("rate_limited", "too many requests from this address; try again later"),
            },
            rules=rules,
            visibility_config=_visibility(f"{cfg.prefix}-webhook"),
        )
        self.association = wafv2.CfnWebACLAssociation(
            self, "StageAssociation", resource_arn=stage.stage_arn, web_acl_arn=self.web_acl.attr_arn
        )
        self.association.node.add_dependency(stage)
