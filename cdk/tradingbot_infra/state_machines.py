"""The two state machine concerns, each loaded from its statemachines/*.asl.json with the
substitutions of statemachines/substitutions.json (the local runner renders the same files).

A definition read from a file is opaque to CDK: it cannot see which functions the states call or
that a Distributed Map starts child executions, so the grants a chained definition would get are
written here. A file definition also carries its own TimeoutSeconds (CDK's ``timeout`` only
applies to chained definitions).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from . import asl
from .config import InfraConfig
from .naming import Concern
from .paths import OPTIMISE_ASL, STATE_MACHINE_ASL
from .util import retention

# tradingbot.domain.strategies.REGISTRY (tests/infra/test_stacks.py keeps the two in step; the app does
# not import the domain package, which would load pandas into every synthesis)
OPTIMISE_STRATEGIES = ("ema_crossover", "supertrend", "rsi_ema", "macd_stochastic", "ichimoku", "bollinger")
OPTIMISE_PREFIX = "optimise"  # tradingbot.settings.OptimiseSection.results_root() on AWS


def schedule_input(cfg: InfraConfig) -> dict[str, object]:
    """The EventBridge schedule's input: which strategies, symbols and timeframes to optimise
    (tradingbot.pipeline.contracts.OptimiseRequest, action ``plan``)."""
    return {
        "source": "schedule",
        "strategies": list(OPTIMISE_STRATEGIES),
        "symbols": list(cfg.optimise_symbols),
        "timeframes": list(cfg.optimise_timeframes),
        "exchange": "binanceusdm",
        "folds": cfg.optimise_folds,
        "window": "rolling",
        "method": "grid",
        "promote": True,
    }


def asl_state_machine(
    scope: Construct,
    cid: str,
    *,
    cfg: InfraConfig,
    name: str,
    definition: Path,
    functions: Mapping[str, lambda_.IFunction],
    include_execution_data: bool,
    machine_type: sfn.StateMachineType | None = None,
) -> sfn.StateMachine:
    """``<prefix>-<name>`` from ``definition``: traced, every event logged to its own vended log group
    (``<cid>Logs``), allowed to invoke the functions its placeholders name (each ARN and its
    versions/aliases, as a LambdaInvoke task grants)."""
    log_group = logs.LogGroup(
        scope,
        f"{cid}Logs",
        retention=retention(cfg.log_retention_days),
        log_group_name=f"/aws/vendedlogs/states/{cfg.prefix}-{name}",
        removal_policy=RemovalPolicy.DESTROY,
    )
    arns = {fname: fn.function_arn for fname, fn in functions.items()}
    machine = sfn.StateMachine(
        scope,
        cid,
        state_machine_name=f"{cfg.prefix}-{name}",
        state_machine_type=machine_type,
        definition_body=sfn.DefinitionBody.from_file(str(definition)),
        definition_substitutions=asl.definition_substitutions(definition, arns),
        tracing_enabled=True,
        logs=sfn.LogOptions(
            destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=include_execution_data
        ),
    )
    for fname in dict.fromkeys(asl.substitutions(definition).values()):
        functions[fname].grant_invoke(machine)
    return machine


class TradingStateMachine(Concern):
    """One STANDARD execution per TradingView alert (statemachines/trading_pipeline.asl.json)."""

    def __init__(
        self, scope: Construct, cid: str, *, cfg: InfraConfig, functions: Mapping[str, lambda_.IFunction]
    ) -> None:
        super().__init__(scope, cid)
        self.machine = asl_state_machine(
            self,
            "Pipeline",
            cfg=cfg,
            name="pipeline",
            definition=STATE_MACHINE_ASL,
            functions=functions,
            # execution data holds the alert (with the account's webhook token): not logged
            include_execution_data=False,
            machine_type=sfn.StateMachineType.STANDARD,  # exactly-once, auditable history per alert
        )

    def allow_start(self, starter: lambda_.Function) -> None:
        """``starter`` may start executions and describe them (a duplicate alert returns the same id)."""
        starter.add_environment("STATE_MACHINE_ARN", self.machine.state_machine_arn)
        self.machine.grant_start_execution(starter)
        self.machine.grant_read(starter)


class OptimisationStateMachine(Concern):
    """Schedule -> Plan -> Distributed Map of folds -> Aggregate (statemachines/optimise.asl.json).

    The schedule passes the fan-out's axes: every registered strategy x ``optimise_symbols`` x
    ``optimise_timeframes`` (cdk.json), ``optimise_folds`` rolling folds each (plus the latest
    window), promoted per account on out-of-sample evidence (tradingbot.pipeline.optimise). The Plan
    step writes the items under s3://<artifacts>/optimise/<execution>/; the Map's ItemReader reads
    them (s3:GetObject, granted here: a file definition is opaque to CDK)."""

    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        cfg: InfraConfig,
        functions: Mapping[str, lambda_.IFunction],
        artifacts: s3.IBucket | None = None,
    ) -> None:
        super().__init__(scope, cid)
        self.machine = asl_state_machine(
            self,
            "Optimise",
            cfg=cfg,
            name="optimise",
            definition=OPTIMISE_ASL,
            functions=functions,
            include_execution_data=True,
        )
        self._allow_distributed_map(self.machine)
        if artifacts is not None:
            artifacts.grant_read(self.machine, f"{OPTIMISE_PREFIX}/*")  # the ItemReader's items.json
        events.Rule(
            self,
            "OptimiseSchedule",
            schedule=events.Schedule.expression(cfg.optimise_schedule),
            description="periodic strategy parameter optimisation",
            targets=[
                targets.SfnStateMachine(
                    self.machine,
                    input=events.RuleTargetInput.from_object(schedule_input(cfg)),
                    retry_attempts=2,
                )
            ],
        )

    @staticmethod
    def _allow_distributed_map(machine: sfn.StateMachine) -> None:
        """What CDK grants a chained definition with a Distributed Map (aws-stepfunctions
        state-graph.ts), and the IAM policy AWS documents for one: start child executions of this
        state machine, describe/stop them, redrive its map runs
        (https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html)."""
        policy = iam.Policy(machine, "DistributedMapPolicy")
        machine.role.attach_inline_policy(policy)
        machine.grant_start_execution(policy)
        machine.grant_execution(policy, "states:DescribeExecution", "states:StopExecution")
        name = Stack.of(machine).split_arn(machine.state_machine_arn, ArnFormat.COLON_RESOURCE_NAME).resource_name
        redrive = Stack.of(machine).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{name}/*:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        iam.Grant.add_to_principal(grantee=policy, actions=["states:RedriveExecution"], resource_arns=[redrive])
