"""Builds the CDK app: four stacks, cdk-nag's AwsSolutions checks, the suppressions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import App, Aspects, Environment, Tags
from cdk_nag import AwsSolutionsChecks

from . import nag
from .compute import ComputeStack
from .config import ConfigError, InfraConfig
from .data import DataStack
from .monitoring import MonitoringStack
from .network import NetworkStack
from .paths import CDK_JSON


@dataclass
class TradingBotApp:
    app: App
    cfg: InfraConfig
    network: NetworkStack
    data: DataStack
    compute: ComputeStack
    monitoring: MonitoringStack

    @property
    def stacks(self) -> list[Any]:
        return [self.network, self.data, self.compute, self.monitoring]


def default_context() -> dict[str, Any]:
    """cdk.json's context: the defaults when the app runs without the cdk CLI (python3 cdk/app.py)."""
    return dict(json.loads(CDK_JSON.read_text()).get("context", {}))


def with_environment(ctx: dict[str, Any], *, base: Mapping[str, Any], explicit: Mapping[str, Any]) -> dict[str, Any]:
    """``ctx`` with the chosen environment's settings (cdk.json ``environments``, ``-c environment=prod``)
    laid over the base context; a value given explicitly (``-c key=value`` or ``context``) still wins."""
    name = ctx.get("environment") or ""
    if not name:
        return ctx
    environments = ctx.get("environments") or {}
    if name not in environments:
        raise ConfigError(f"context 'environment' {name!r} is not in cdk.json's environments: {sorted(environments)}")
    out = dict(ctx)
    for key, value in environments[name].items():
        if key not in explicit and ctx.get(key) == base.get(key):
            out[key] = value
    return out


def build_app(context: Mapping[str, Any] | None = None, outdir: str | None = None) -> TradingBotApp:
    """``context`` overrides cdk.json (tests); the CLI's -c values arrive through the App itself."""
    base = default_context()
    merged = {**base, **(context or {})}
    app = App(context=merged, outdir=outdir, analytics_reporting=False)
    ctx = {key: app.node.try_get_context(key) for key in {*merged, "region", "environment"}}
    ctx = with_environment(ctx, base=base, explicit=context or {})
    cfg = InfraConfig.from_context(ctx)

    # Account left unresolved on purpose: the templates are account-agnostic, so synthesis never
    # needs credentials or a context lookup (AZs resolve at deploy time via Fn::GetAZs).
    env = Environment(region=cfg.region)
    name = cfg.prefix.title().replace("-", "")
    network = NetworkStack(app, f"{name}Network", cfg=cfg, env=env, description="TradingBot AI: VPC, endpoints, SGs")
    data = DataStack(
        app,
        f"{name}Data",
        cfg=cfg,
        network=network,
        env=env,
        description="TradingBot AI: RDS PostgreSQL, Redis, secrets, KMS, S3",
    )
    compute = ComputeStack(
        app,
        f"{name}Compute",
        cfg=cfg,
        network=network,
        data=data,
        env=env,
        bundle_dir=Path(app.outdir) / ".bundles",
        description="TradingBot AI: Lambdas, API Gateway, Step Functions, Fargate feed",
    )
    monitoring = MonitoringStack(
        app,
        f"{name}Monitoring",
        cfg=cfg,
        data=data,
        compute=compute,
        env=env,
        description="TradingBot AI: alarms, dashboard, alarm topic",
    )
    built = TradingBotApp(app, cfg, network, data, compute, monitoring)

    # CDK tags the RDS Proxy target group, whose CloudFormation schema has no Tags property
    Tags.of(app).add("project", "tradingbot-ai", exclude_resource_types=["AWS::RDS::DBProxyTargetGroup"])
    Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    nag.apply_suppressions(built)
    return built
