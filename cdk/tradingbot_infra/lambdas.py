"""The Lambda functions concern: layers, one log group and one function per FUNCTIONS entry, and
their grants on the data stack (secrets, bucket prefixes) and Bedrock.

Every function runs with Powertools' Logger, Tracer and Metrics: X-Ray tracing is active and
POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE name the service and the metrics namespace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Annotations, Duration, IgnoreMode, RemovalPolicy, Stack
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from .config import ConfigError, InfraConfig
from .data import DB_NAME, DataStack
from .functions import FUNCTIONS, FunctionSpec, build_zip_bundle
from .naming import Concern, pascal
from .network import POSTGRES_PORT, REDIS_PORT, NetworkStack
from .paths import DOCKER_CONTEXT_EXCLUDE, LAYERS_DIR, REPO_ROOT
from .util import retention

METRICS_NAMESPACE = "TradingBot"
SERVICE_NAME = "tradingbot"  # matches the Powertools Logger/Tracer/Metrics service in tradingbot.entrypoints.lambdas
RUNTIME = lambda_.Runtime.PYTHON_3_12  # the project's Python; pandas-ta/numba wheels are built for it


def common_environment(data: DataStack) -> dict[str, str]:
    """What every function (and, for POWERTOOLS_* and REDIS_*, the market feed) is configured with."""
    return {
        "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": "INFO",
        # decisions and prompts stay out of X-Ray; logs carry what is needed
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
        "DB_SECRET_ARN": data.secrets["database"].secret_arn,
        "DB_HOST": data.database.proxy.endpoint,
        "DB_PORT": str(POSTGRES_PORT),
        "DB_NAME": DB_NAME,
        "DB_SSLMODE": "require",
        "REDIS_HOST": data.cache.endpoint,
        "REDIS_PORT": str(REDIS_PORT),
        "REDIS_TLS": "true",
        "REDIS_AUTH_SECRET_ARN": data.secrets["redis"].secret_arn,
        "ARTIFACTS_BUCKET": data.artifacts.bucket.bucket_name,
    }


def image_platform(cfg: InfraConfig) -> ecr_assets.Platform:
    return ecr_assets.Platform.LINUX_ARM64 if cfg.lambda_arm64 else ecr_assets.Platform.LINUX_AMD64


class Functions(Concern):
    """``functions``/``log_groups`` by FUNCTIONS name; ``layers`` by folder under layers/."""

    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        cfg: InfraConfig,
        network: NetworkStack,
        data: DataStack,
        bundle_dir: Path,
    ) -> None:
        super().__init__(scope, cid)
        self.cfg = cfg
        self.arch = lambda_.Architecture.ARM_64 if cfg.lambda_arm64 else lambda_.Architecture.X86_64
        self.layers = {name: self._layer(name) for name in sorted({layer for f in FUNCTIONS for layer in f.layers})}
        self.functions: dict[str, lambda_.Function] = {}
        # issue 20: what the state machines, the API and the schedules invoke; CodeDeploy shifts them
        self.aliases: dict[str, lambda_.Alias] = {}
        self.log_groups: dict[str, logs.LogGroup] = {}
        functions_dir = (REPO_ROOT / cfg.functions_dir).resolve()
        env = common_environment(data)
        for spec in FUNCTIONS:
            self.log_groups[spec.name] = logs.LogGroup(
                self,
                f"{pascal(spec.name)}Logs",
                retention=retention(cfg.log_retention_days),
                removal_policy=RemovalPolicy.DESTROY,
            )
            self.functions[spec.name] = self._function(spec, network, data, env, functions_dir, bundle_dir)
            if spec.alias:  # the version hash is computed at synthesis, after every add_environment below
                fn = self.functions[spec.name]
                self.aliases[spec.name] = lambda_.Alias(
                    self, f"{pascal(spec.name)}Live", alias_name="live", version=fn.current_version
                )
            for secret in spec.secrets:
                data.secrets[secret].grant_read(self.functions[spec.name])

        bucket = data.artifacts.bucket
        bucket.grant_read(self.functions["predict"], "models/*")  # the ONNX model
        bucket.grant_read(self.functions["backtest"], "data/*")  # candles for long backtests
        bucket.grant_put(self.functions["backtest"], "reports/*")  # HTML reports
        bucket.grant_read_write(self.functions["backtest"], "optimise/*")  # issue 18: the fan-out's plan and folds
        vote = self.functions["vote"]
        vote.add_environment("BEDROCK_REGION", cfg.region)  # the Llama seat
        vote.add_to_role_policy(
            iam.PolicyStatement(
                actions=["bedrock:InvokeModel"],
                resources=[f"arn:{Stack.of(self).partition}:bedrock:{cfg.region}::foundation-model/meta.llama*"],
            )
        )

    def _function(
        self,
        spec: FunctionSpec,
        network: NetworkStack,
        data: DataStack,
        common_env: dict[str, str],
        functions_dir: Path,
        bundle_dir: Path,
    ) -> lambda_.Function:
        env = dict(common_env)
        for secret in spec.secrets:
            env[f"{secret.upper()}_SECRET_ARN"] = data.secrets[secret].secret_arn
        if "kek" in spec.secrets:
            env["TRADINGBOT_KEK_SECRET_ID"] = data.secrets["kek"].secret_arn  # Settings.persistence.kek_secret_id
        env.update(spec.environment)
        common: dict[str, Any] = {
            "description": spec.description,
            "memory_size": spec.memory_mb,
            "timeout": Duration.seconds(spec.timeout_s),
            "architecture": self.arch,
            "environment": env,
            "tracing": lambda_.Tracing.ACTIVE,  # Powertools Tracer
            "log_group": self.log_groups[spec.name],
            "logging_format": lambda_.LoggingFormat.JSON,
            "vpc": network.vpc,
            "vpc_subnets": network.app_subnets,
            "security_groups": [network.lambda_sg],
            "reserved_concurrent_executions": (
                self.cfg.execute_reserved_concurrency if spec.reserved_concurrency else None
            ),
        }
        if spec.image:
            return lambda_.DockerImageFunction(
                self,
                pascal(spec.name),
                code=lambda_.DockerImageCode.from_image_asset(
                    str(REPO_ROOT),
                    file=f"cdk/docker/{spec.name}/Dockerfile",
                    platform=image_platform(self.cfg),
                    exclude=DOCKER_CONTEXT_EXCLUDE,
                    ignore_mode=IgnoreMode.DOCKER,
                ),
                **common,
            )
        bundle = build_zip_bundle(functions_dir, spec.name, bundle_dir / spec.name)
        return lambda_.Function(
            self,
            pascal(spec.name),
            runtime=RUNTIME,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(bundle)),
            layers=[self.layers[name] for name in spec.layers],
            **common,
        )

    def _layer(self, name: str) -> lambda_.LayerVersion:
        built = LAYERS_DIR / name / "build"
        if (built / "python").is_dir():
            code = lambda_.Code.from_asset(str(built))
        elif self.cfg.require_built_layers:
            raise ConfigError(
                f"layer '{name}' is not built ({built}/python missing): run `python layers/build.py` first, "
                "or synthesise with -c require_built_layers=false for a check that will not deploy"
            )
        else:
            # synth-only checks (CI): the requirements file stands in for the layer content
            code = lambda_.Code.from_asset(str(LAYERS_DIR / name), exclude=["build", "*.zip"])
            Annotations.of(self).add_info(f"layer '{name}' not built: placeholder content, do not deploy")
        return lambda_.LayerVersion(
            self,
            f"{pascal(name)}Layer",
            code=code,
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[self.arch],
            description=f"TradingBot AI {name} dependencies (layers/{name})",
            removal_policy=RemovalPolicy.RETAIN,  # old function versions may still reference it
        )
