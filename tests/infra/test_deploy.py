"""Deploy safety (issue 20): aliases shifted by CodeDeploy with rollback alarms, the migration
custom resource ordered before them, callers on the aliases, environments from context."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import Synth


def _aliased() -> list[str]:
    from tradingbot_infra.functions import FUNCTIONS

    return [f.name for f in FUNCTIONS if f.alias]


def test_every_function_but_the_migration_has_a_live_alias(synth: Synth) -> None:
    aliases = synth.resources("compute", "AWS::Lambda::Alias")
    assert len(aliases) == len(_aliased()) and "migrate" not in _aliased()
    for alias in aliases.values():
        props = alias["Properties"]
        assert props["Name"] == "live"
        assert "Fn::GetAtt" in props["FunctionVersion"]  # a published version, never $LATEST
        # CloudFormation hands the alias's traffic shift to CodeDeploy
        assert "CodeDeployLambdaAliasUpdate" in alias["UpdatePolicy"]


def test_each_alias_shifts_by_canary_and_rolls_back_on_its_alarms(synth: Synth) -> None:
    groups = synth.resources("compute", "AWS::CodeDeploy::DeploymentGroup")
    alarms = synth.resources("compute", "AWS::CloudWatch::Alarm")
    assert len(groups) == len(_aliased())
    for group in groups.values():
        props = group["Properties"]
        assert props["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
        assert set(props["AutoRollbackConfiguration"]["Events"]) == {
            "DEPLOYMENT_FAILURE",
            "DEPLOYMENT_STOP_ON_REQUEST",
            "DEPLOYMENT_STOP_ON_ALARM",
        }
        assert props["AlarmConfiguration"]["Enabled"] is True
        names = props["AlarmConfiguration"]["Alarms"]
        assert len(names) == 2
        for ref in names:
            alarm = alarms[ref["Name"]["Ref"]]["Properties"]
            dims = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
            assert "Resource" in dims and alarm["Namespace"] == "AWS/Lambda"  # the alias, not all versions
            assert alarm["MetricName"] in ("Errors", "Duration")


def test_latency_alarm_sits_below_the_functions_timeout(synth: Synth) -> None:
    from tradingbot_infra.deploy import LATENCY_ALARM_FRACTION
    from tradingbot_infra.functions import FUNCTIONS_BY_NAME

    alarms = synth.resources("compute", "AWS::CloudWatch::Alarm")
    execute = next(p for k, p in alarms.items() if "ExecuteCanaryLatency" in k)["Properties"]
    assert execute["ExtendedStatistic"] == "p99"
    assert execute["Threshold"] == FUNCTIONS_BY_NAME["execute"].timeout_s * 1000 * LATENCY_ALARM_FRACTION


def test_migration_runs_before_any_alias_moves(synth: Synth) -> None:
    from tradingbot_infra.deploy import migrations_hash

    (mig_id, migration), *rest = synth.resources("compute", "Custom::TradingBotMigration").items()
    assert rest == []
    assert migration["Properties"]["MigrationsHash"] == migrations_hash()
    for alias in synth.resources("compute", "AWS::Lambda::Alias").values():
        assert mig_id in alias.get("DependsOn", [])
    # the provider invokes the migrate function, which has the database secret and the migrate layer
    fns = synth.resources("compute", "AWS::Lambda::Function")
    migrate = next(
        p["Properties"] for p in fns.values() if "migrates the schema" in p["Properties"].get("Description", "")
    )
    assert len(migrate["Layers"]) == 2 and migrate["Timeout"] == 300


def test_callers_invoke_the_aliases(synth: Synth) -> None:
    aliases = set(synth.resources("compute", "AWS::Lambda::Alias"))
    (machine,) = [
        r for r in synth.resources("compute", "AWS::StepFunctions::StateMachine").values()
        if "Predict" in json.dumps(r["Properties"].get("DefinitionSubstitutions", {}))
    ]  # fmt: skip
    subs = machine["Properties"]["DefinitionSubstitutions"]
    refs = [v.get("Ref") for v in subs.values() if isinstance(v, dict)]
    assert refs and all(r in aliases for r in refs if r is not None)
    methods = synth.resources("compute", "AWS::ApiGateway::Method")
    uris = json.dumps([m["Properties"].get("Integration", {}).get("Uri") for m in methods.values()])
    assert any(a in uris for a in aliases)
    rules = synth.resources("compute", "AWS::Events::Rule")
    target_arns = json.dumps([t.get("Arn") for r in rules.values() for t in r["Properties"].get("Targets", [])])
    assert any(a in target_arns for a in aliases)


def test_feed_service_rolls_back_on_the_circuit_breaker(synth: Synth) -> None:
    (service,) = synth.resources("compute", "AWS::ECS::Service").values()
    breaker = service["Properties"]["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
    assert breaker == {"Enable": True, "Rollback": True}


def _ctx(**explicit: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    from tradingbot_infra.app import default_context

    base = default_context()
    return {**base, **explicit}, base


@pytest.mark.parametrize(
    ("env", "prefix", "multi_az", "deploy"),
    [
        ("dev", "tradingbot-dev", False, "all_at_once"),
        ("staging", "tradingbot-stg", False, "linear_10_percent_every_1_minute"),
        ("prod", "tradingbot", True, "canary_10_percent_5_minutes"),
    ],
)
def test_environments_from_context(env: str, prefix: str, multi_az: bool, deploy: str) -> None:
    from tradingbot_infra.app import with_environment
    from tradingbot_infra.config import InfraConfig

    ctx, base = _ctx(environment=env)
    cfg = InfraConfig.from_context(with_environment(ctx, base=base, explicit={"environment": env}))
    assert (cfg.environment, cfg.prefix, cfg.multi_az, cfg.deploy_config) == (env, prefix, multi_az, deploy)


def test_an_explicit_value_beats_the_environment_and_unknown_ones_fail() -> None:
    from tradingbot_infra.app import with_environment
    from tradingbot_infra.config import ConfigError, InfraConfig

    ctx, base = _ctx(environment="prod", multi_az=False)
    cfg = InfraConfig.from_context(
        with_environment(ctx, base=base, explicit={"environment": "prod", "multi_az": False})
    )
    assert cfg.multi_az is False and cfg.nat_gateways == 2
    ctx, base = _ctx(environment="qa")
    with pytest.raises(ConfigError, match=r"'qa' is not in cdk\.json's environments"):
        with_environment(ctx, base=base, explicit={"environment": "qa"})
    with pytest.raises(ConfigError, match="deploy_config"):
        InfraConfig.from_context({**base, "deploy_config": "yolo"})
