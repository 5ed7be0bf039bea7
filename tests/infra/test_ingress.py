"""The webhook's ingress on AWS (issue 16, part 4): a web ACL on the API stage (TradingView-only,
rate per IP, the AWS common rule set with the rules that would drop legitimate alerts counted), the
TradingView allowlist set on the webhook by the app, and optional mutual TLS on a custom domain."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match

from .conftest import Synth, infra_context

TRADINGVIEW = ["52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"]  # TradingView's documented four
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


def _rules(acl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["Name"]: r for r in acl["Properties"]["Rules"]}


def _webhook_env(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    fn = next(f for f in resources.values() if f["Type"] == "AWS::Lambda::Function"
              and f["Properties"].get("Description", "").startswith("TradingView webhook"))  # fmt: skip
    return fn["Properties"]["Environment"]["Variables"]  # type: ignore[no-any-return]


def test_the_stage_has_a_web_acl_tradingview_only_rate_per_ip_and_the_common_rule_set(synth: Synth) -> None:
    (acl,) = synth.resources("compute", "AWS::WAFv2::WebACL").values()
    assert acl["Properties"]["Scope"] == "REGIONAL" and acl["Properties"]["DefaultAction"] == {"Allow": {}}
    rules = _rules(acl)
    assert [rules[n]["Priority"] for n in ("TradingViewOnly", "RatePerIp", "AWSManagedRulesCommonRuleSet")] == [0, 1, 2]
    (ip_set_id, ip_set), = synth.resources("compute", "AWS::WAFv2::IPSet").items()  # fmt: skip
    assert sorted(ip_set["Properties"]["Addresses"]) == sorted(f"{ip}/32" for ip in TRADINGVIEW)
    ip_ref = {"IPSetReferenceStatement": {"Arn": {"Fn::GetAtt": [ip_set_id, "Arn"]}}}

    only = rules["TradingViewOnly"]
    assert only["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 403
    statements = only["Statement"]["AndStatement"]["Statements"]
    assert {"NotStatement": {"Statement": ip_ref}} in statements
    assert statements[0]["ByteMatchStatement"]["SearchString"] == "/webhook/"

    rate = rules["RatePerIp"]["Statement"]["RateBasedStatement"]
    assert (rate["AggregateKeyType"], rate["EvaluationWindowSec"], rate["Limit"]) == ("IP", 60, 100)
    assert rate["ScopeDownStatement"] == {"NotStatement": {"Statement": ip_ref}}  # TradingView never rate-limited
    assert rules["RatePerIp"]["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429

    crs = rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    counted = {o["Name"] for o in crs["RuleActionOverrides"] if o["ActionToUse"] == {"Count": {}}}
    # 8 KB bodies pass SizeRestrictions_BODY ("over 8,192 bytes"): it keeps blocking at the default limit
    assert counted == {"NoUserAgent_HEADER"}
    # the association names the API's stage
    (assoc,) = synth.resources("compute", "AWS::WAFv2::WebACLAssociation").values()
    (stage,) = synth.resources("compute", "AWS::ApiGateway::Stage")
    arn = json.dumps(assoc["Properties"]["ResourceArn"])
    assert "/restapis/" in arn and "/stages/" in arn and stage in arn
    bodies = acl["Properties"]["CustomResponseBodies"]
    assert json.loads(bodies["ip_not_allowed"]["Content"])["error"] == "ip_not_allowed"


def test_the_app_sets_the_tradingview_allowlist_on_the_webhook(synth: Synth) -> None:
    env = _webhook_env(synth.templates["compute"]["Resources"])
    assert sorted(env["TRADINGVIEW_IP_ALLOWLIST"].split(",")) == sorted(TRADINGVIEW)
    assert "WEBHOOK_CLIENT_CERT_SUBJECT" not in env  # no mutual TLS without a truststore
    assert synth.resources("compute", "AWS::ApiGateway::DomainName") == {}


def _api_template(**context: Any) -> Any:
    """Only the webhook API concern, in a stack of its own (seconds, not a whole app's synthesis)."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk.assertions import Template

    from tradingbot_infra.api import WebhookApi
    from tradingbot_infra.app import default_context
    from tradingbot_infra.config import InfraConfig

    ctx = default_context()
    ctx.update(infra_context(**context))
    cfg = InfraConfig.from_context(ctx)
    stack = Stack(App(), "Api")
    fn = lambda_.Function(stack, "Webhook", runtime=lambda_.Runtime.PYTHON_3_12, handler="x.handler",
                          code=lambda_.Code.from_inline("def handler(e, c): pass"),
                          description="TradingView webhook (test)")  # fmt: skip
    WebhookApi(stack, "WebhookApi", cfg=cfg, webhook=fn)
    return Template.from_stack(stack)


def test_mutual_tls_on_a_custom_domain_verifies_tradingviews_certificate() -> None:
    truststore = "s3://tb-truststore/tradingview/ca.pem"
    t = _api_template(custom_domain_name="hooks.example.com", custom_domain_certificate_arn=CERT,
                      mtls_truststore_uri=truststore, mtls_truststore_version="v3")  # fmt: skip
    t.has_resource_properties("AWS::ApiGateway::DomainName", {
        "DomainName": "hooks.example.com",
        "RegionalCertificateArn": CERT,
        "EndpointConfiguration": {"Types": ["REGIONAL"]},
        "SecurityPolicy": "TLS_1_2",
        "MutualTlsAuthentication": {"TruststoreUri": truststore, "TruststoreVersion": "v3"},
    })  # fmt: skip
    t.resource_count_is("AWS::ApiGateway::BasePathMapping", 1)
    # the execute-api endpoint would skip the certificate check: it is disabled
    t.has_resource_properties("AWS::ApiGateway::RestApi", {"DisableExecuteApiEndpoint": True})
    env = _webhook_env(t.to_json()["Resources"])
    assert env["WEBHOOK_CLIENT_CERT_SUBJECT"] == "CN=TradingView Webhooks,O=TradingView\\, Inc.,C=US"


def test_without_an_allowlist_no_ip_set_and_larger_bodies_count_instead_of_blocking() -> None:
    t = _api_template(tradingview_ip_allowlist="", webhook_max_body_bytes=16384)
    t.resource_count_is("AWS::WAFv2::IPSet", 0)
    (acl,) = t.find_resources("AWS::WAFv2::WebACL").values()
    rules = _rules(acl)
    assert set(rules) == {"RatePerIp", "AWSManagedRulesCommonRuleSet"}
    assert "ScopeDownStatement" not in rules["RatePerIp"]["Statement"]["RateBasedStatement"]
    crs = rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    # a 16 KB limit: SizeRestrictions_BODY would block legitimate bodies over 8 KB; the webhook's 413 answers instead
    assert {o["Name"] for o in crs["RuleActionOverrides"]} == {"NoUserAgent_HEADER", "SizeRestrictions_BODY"}
    env = _webhook_env(t.to_json()["Resources"])
    assert "TRADINGVIEW_IP_ALLOWLIST" not in env
    t.has_resource_properties("AWS::ApiGateway::RestApi", {"DisableExecuteApiEndpoint": Match.absent()})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tradingview_ip_allowlist": "52.89.214.238,not-an-ip"}, "'tradingview_ip_allowlist': 'not-an-ip'"),
        ({"tradingview_ip_allowlist": ["2001:db8::1"]}, "not an IPv4 address"),
        ({"waf_rate_limit_per_minute": 5}, "'waf_rate_limit_per_minute' must be an integer in [10, 100000]"),
        ({"custom_domain_name": "hooks.example.com"}, "'custom_domain_name' and 'custom_domain_certificate_arn'"),
        ({"mtls_truststore_uri": "s3://bucket/ca.pem"}, "'mtls_truststore_uri' needs 'custom_domain_name'"),
        ({"custom_domain_name": "hooks.example.com", "custom_domain_certificate_arn": CERT,
          "mtls_truststore_uri": "https://bucket/ca.pem"}, "'mtls_truststore_uri' is invalid"),
        ({"custom_domain_name": "hooks.example.com", "custom_domain_certificate_arn": "arn:aws:iam::1:x"},
         "'custom_domain_certificate_arn' is invalid"),
    ],
)  # fmt: skip
def test_bad_ingress_context_names_the_setting(overrides: dict[str, Any], message: str) -> None:
    from tradingbot_infra.app import default_context
    from tradingbot_infra.config import ConfigError, InfraConfig

    ctx = default_context()
    ctx.update(infra_context(**overrides))
    with pytest.raises(ConfigError) as err:
        InfraConfig.from_context(ctx)
    assert message in str(err.value)
