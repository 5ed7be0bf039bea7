"""The operator's cockpit in the synthesised compute stack (issue 17): the API's routes and their
authorization, the operator user pool, the notification schedules."""

from __future__ import annotations

import json
from typing import Any

from .conftest import Synth


def _methods(synth: Synth) -> dict[tuple[str, str], dict[str, Any]]:
    """(resource path, HTTP method) -> the method's properties, paths rebuilt from PathPart/ParentId."""
    resources = synth.resources("compute", "AWS::ApiGateway::Resource")
    paths: dict[str, str] = {}

    def path(rid: str) -> str:
        if rid not in paths:
            props = resources[rid]["Properties"]
            parent = props["ParentId"]
            prefix = path(parent["Ref"]) if isinstance(parent, dict) and "Ref" in parent else ""
            paths[rid] = f"{prefix}/{props['PathPart']}"
        return paths[rid]

    out = {}
    for method in synth.resources("compute", "AWS::ApiGateway::Method").values():
        props = method["Properties"]
        ref = props["ResourceId"]
        where = path(ref["Ref"]) if isinstance(ref, dict) and "Ref" in ref else "/"
        out[(where, props["HttpMethod"])] = props
    return out


def test_operator_routes_and_their_authorization(synth: Synth) -> None:
    methods = _methods(synth)
    api = methods[("/api/{proxy+}", "ANY")]
    assert api["AuthorizationType"] == "COGNITO_USER_POOLS" and "AuthorizerId" in api
    for route in (("/dashboard", "GET"), ("/dashboard/{proxy+}", "GET"), ("/telegram/webhook", "POST")):
        assert methods[route]["AuthorizationType"] == "NONE", route  # static page; secret-header webhook
    # the webhook's routes are untouched
    assert methods[("/webhook/tradingview", "POST")]["AuthorizationType"] == "NONE"
    [authorizer] = synth.resources("compute", "AWS::ApiGateway::Authorizer").values()
    assert authorizer["Properties"]["Type"] == "COGNITO_USER_POOLS"
    assert authorizer["Properties"]["IdentitySource"] == "method.request.header.Authorization"

    def target(props: dict[str, Any]) -> str:
        return json.dumps(props["Integration"]["Uri"])

    # the integrations invoke our functions (their logical ids, or their aliases', start with the name)
    assert '"OperatorApi' in target(api) and '"OperatorApi' in target(methods[("/dashboard", "GET")])
    assert '"TelegramWebhook' in target(methods[("/telegram/webhook", "POST")])


def test_operator_pool_is_admin_only_with_mfa(synth: Synth) -> None:
    [pool] = synth.resources("compute", "AWS::Cognito::UserPool").values()
    props = pool["Properties"]
    assert props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert props["MfaConfiguration"] == "ON" and props["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    assert props["Policies"]["PasswordPolicy"]["MinimumLength"] == 14
    [client] = synth.resources("compute", "AWS::Cognito::UserPoolClient").values()
    assert client["Properties"]["GenerateSecret"] is False


def test_notification_schedules_invoke_the_telegram_function(synth: Synth) -> None:
    rules = {r["Properties"]["ScheduleExpression"]: r["Properties"] for r in
             synth.resources("compute", "AWS::Events::Rule").values()}  # fmt: skip
    daily = rules["cron(0 7 * * ? *)"]
    assert json.loads(daily["Targets"][0]["Input"]) == {"task": "daily_summary"}
    watch = [r for r in rules.values() if "Input" in r["Targets"][0]
             and json.loads(r["Targets"][0]["Input"]) == {"task": "watch_fills"}]  # fmt: skip
    assert len(watch) == 1 and watch[0]["ScheduleExpression"] == "rate(1 minute)"


def test_telegram_secret_generates_the_webhook_secret(synth: Synth) -> None:
    secrets = synth.resources("data", "AWS::SecretsManager::Secret").values()
    telegram = next(s for s in secrets if s["Properties"].get("Name", "").endswith("/telegram"))
    gen = telegram["Properties"]["GenerateSecretString"]
    assert gen["GenerateStringKey"] == "webhook_secret" and gen["ExcludePunctuation"] is True
    assert json.loads(gen["SecretStringTemplate"]) == {"bot_token": "REPLACE_ME", "chat_id": "REPLACE_ME"}


def test_dashboard_signs_in_with_the_code_grant_and_pkce(synth: Synth) -> None:
    """The hosted dashboard's login (issue 17): the pool's managed-login domain, a public client
    allowed only the authorization code grant (PKCE) back to the page itself, and the page's
    function told where to sign in."""
    [domain] = synth.resources("compute", "AWS::Cognito::UserPoolDomain").values()
    assert "-operators-" in json.dumps(domain["Properties"]["Domain"])
    [client] = synth.resources("compute", "AWS::Cognito::UserPoolClient").values()
    props = client["Properties"]
    assert props["GenerateSecret"] is False
    assert props["AllowedOAuthFlows"] == ["code"] and props["AllowedOAuthFlowsUserPoolClient"] is True
    assert set(props["AllowedOAuthScopes"]) == {"openid", "email"}
    assert props["SupportedIdentityProviders"] == ["COGNITO"]
    [callback] = props["CallbackURLs"]
    rendered = json.dumps(callback)
    assert rendered.endswith('/prod/dashboard"]]}') and ".execute-api." in rendered
    functions = synth.resources("compute", "AWS::Lambda::Function")
    operator = next(f for lid, f in functions.items() if lid.startswith("OperatorApi") or
                    "operator_api" in json.dumps(f["Properties"].get("Handler", "")) or
                    "OPERATOR_LOGIN_URL" in json.dumps(f["Properties"].get("Environment", {})))  # fmt: skip
    env = operator["Properties"]["Environment"]["Variables"]
    assert "amazoncognito.com" in json.dumps(env["OPERATOR_LOGIN_URL"])
    assert "Ref" in env["OPERATOR_LOGIN_CLIENT_ID"]
    # no other function is told to sign anyone in
    assert sum("OPERATOR_LOGIN_URL" in json.dumps(f["Properties"].get("Environment", {}))
               for f in functions.values()) == 1  # fmt: skip


def test_business_dashboard_graphs_every_business_metric_and_alarms_exist(synth: Synth) -> None:
    dashboards = synth.resources("monitoring", "AWS::CloudWatch::Dashboard")
    business = next(d for d in dashboards.values() if "-business" in json.dumps(d["Properties"]["DashboardName"]))
    body = json.dumps(business["Properties"]["DashboardBody"])
    for name in ("DecisionsTraded", "DecisionsRejected", "DecisionsFailed", "RejectedByMaxLeverage", "OrdersPlaced",
                 "OrdersFilled", "OrdersRejected", "SlippageBps", "RealizedPnlUsd", "VoterLatencyMs", "VoterCostUsd",
                 "VoterAbstentions", "AlertsAccepted", "AlertsRefused", "AlertsRefusedBadToken",
                 "AlertsRefusedStaleAlert", "FeedLagP99Ms", "FeedReconnects"):  # fmt: skip
        assert f'\\"{name}\\"' in body, name
    alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in
              synth.resources("monitoring", "AWS::CloudWatch::Alarm").values()}  # fmt: skip
    spike = next(p for n, p in alarms.items() if json.dumps(n).endswith('-RejectionSpike"'))
    assert spike["MetricName"] == "DecisionsRejected" and spike["Threshold"] == 10 and spike["Period"] == 300
    drift = next(p for n, p in alarms.items() if json.dumps(n).endswith('-ReconcileDrift"'))
    assert drift["MetricName"] == "ReconcileDriftUnfixed"
    assert spike["AlarmActions"] and drift["AlarmActions"]


def test_the_feed_flushes_emf_to_its_log(synth: Synth) -> None:
    containers = [c for t in synth.resources("compute", "AWS::ECS::TaskDefinition").values()
                  for c in t["Properties"]["ContainerDefinitions"]]  # fmt: skip
    [container] = [c for c in containers if c["Name"] == "feed"]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["POWERTOOLS_METRICS_DISABLED"] == "false" and env["POWERTOOLS_METRICS_NAMESPACE"] == "TradingBot"
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
