"""The deploy-safety concern (issue 20): the schema migrated before traffic moves, then every
function's ``live`` alias shifted by CodeDeploy with alarms that roll it back.

* Migration: a custom resource backed by the ``migrate`` function (alembic to head). Its
  ``MigrationsHash`` property is the hash of the migration files, so CloudFormation runs it on every
  deploy that adds or changes one; every ``live`` alias depends on it, so no alias (hence no
  CodeDeploy traffic shift) starts before the schema is at head, and a failed migration fails the
  deploy before any version takes traffic. Migrations are expand-then-contract (docs/migrations.md):
  the old code keeps working on the new schema while traffic shifts or rolls back.
* Traffic: one ``LambdaDeploymentGroup`` per alias with the environment's deployment config
  (``deploy_config``: a canary such as 10 % for 5 minutes in production, all at once in dev),
  rolled back automatically on a failed or stopped deployment and when any of its alarms fires:
  the alias's errors, and its p99 duration above 80 % of the function's timeout (the version is
  about to time out). The state machines, the API and the schedules invoke the aliases
  (compute.py), so what CodeDeploy shifts is what the system runs.
"""

from __future__ import annotations

import hashlib

from aws_cdk import CustomResource, Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import custom_resources as cr
from constructs import Construct

from .config import InfraConfig
from .functions import FUNCTIONS
from .naming import Concern, pascal
from .paths import REPO_ROOT

MIGRATIONS_DIR = REPO_ROOT / "shared" / "tradingbot" / "adapters" / "persistence" / "migrations"

DEPLOY_CONFIGS: dict[str, codedeploy.ILambdaDeploymentConfig] = {
    "canary_10_percent_5_minutes": codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES,
    "canary_10_percent_10_minutes": codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_10_MINUTES,
    "linear_10_percent_every_1_minute": codedeploy.LambdaDeploymentConfig.LINEAR_10_PERCENT_EVERY_1_MINUTE,
    "all_at_once": codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE,
}
"""``deploy_config`` context values -> CodeDeploy's predefined Lambda deployment configurations."""

LATENCY_ALARM_FRACTION = 0.8  # p99 duration above this share of the timeout rolls the version back


def migrations_hash() -> str:
    """SHA-256 over the migration scripts (names and contents): changes exactly when a migration does."""
    digest = hashlib.sha256()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class SafeDeploys(Concern):
    """``migration`` (the custom resource), ``groups`` and ``alarms`` by function name."""

    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        cfg: InfraConfig,
        migrate: lambda_.IFunction,
        aliases: dict[str, lambda_.Alias],
    ) -> None:
        super().__init__(scope, cid)
        provider = cr.Provider(self, "MigrationProvider", on_event_handler=migrate)
        self.migration = CustomResource(
            self,
            "Migration",
            service_token=provider.service_token,
            resource_type="Custom::TradingBotMigration",
            properties={"MigrationsHash": migrations_hash()},
        )
        config = DEPLOY_CONFIGS[cfg.deploy_config]
        timeouts = {spec.name: spec.timeout_s for spec in FUNCTIONS}
        self.groups: dict[str, codedeploy.LambdaDeploymentGroup] = {}
        self.alarms: dict[str, list[cw.Alarm]] = {}
        for name, alias in aliases.items():
            alias.node.add_dependency(self.migration)  # the schema is at head before any traffic moves
            stem = pascal(name)
            errors = cw.Alarm(
                self,
                f"{stem}CanaryErrors",
                alarm_description=f"{name}: the live alias's invocations fail (rolls a deployment back)",
                metric=alias.metric_errors(period=Duration.minutes(1), statistic="Sum"),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
            latency = cw.Alarm(
                self,
                f"{stem}CanaryLatency",
                alarm_description=f"{name}: p99 duration above {LATENCY_ALARM_FRACTION:.0%} of the timeout",
                metric=alias.metric_duration(period=Duration.minutes(1), statistic="p99"),
                threshold=timeouts[name] * 1000 * LATENCY_ALARM_FRACTION,
                evaluation_periods=2,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
            self.alarms[name] = [errors, latency]
            self.groups[name] = codedeploy.LambdaDeploymentGroup(
                self,
                f"{stem}Deployment",
                alias=alias,
                deployment_config=config,
                alarms=[errors, latency],
                auto_rollback=codedeploy.AutoRollbackConfig(
                    failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
                ),
            )
