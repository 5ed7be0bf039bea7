"""Compute: Lambdas (zip + layers, or container images), API Gateway, Step Functions, the
Fargate market feed and the optimisation schedule."""

from __future__ import annotations

import re
from pathlib import Path

from aws_cdk import Annotations, Duration, IgnoreMode, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from .config import ConfigError, InfraConfig
from .data import DB_NAME, DataStack
from .functions import ASL_SUBSTITUTIONS, FUNCTIONS, build_zip_bundle
from .network import POSTGRES_PORT, REDIS_PORT, NetworkStack
from .paths import DOCKER_CONTEXT_EXCLUDE, LAYERS_DIR, REPO_ROOT, STATE_MACHINE_ASL
from .util import retention

METRICS_NAMESPACE = "TradingBot"
SERVICE_NAME = "tradingbot"  # matches Logger(service="tradingbot") in tradingbot.entrypoints.lambdas.handlers
# tradingbot.domain.strategies.REGISTRY (tests/infra/test_stacks.py keeps the two in step; the app does
# not import the domain package, which would load pandas into every synthesis)
OPTIMISE_STRATEGIES = ("ema_crossover", "supertrend", "rsi_ema", "macd_stochastic", "ichimoku", "bollinger")
RUNTIME = lambda_.Runtime.PYTHON_3_12  # the project's Python; pandas-ta/numba wheels are built for it


def check_asl_placeholders(path: Path) -> None:
    """The definition's ${...} placeholders and the substitutions must match exactly: a missing
    one deploys a state machine whose Task resource is the literal text '${...}'."""
    if not path.is_file():
        raise ConfigError(f"state machine definition not found: {path}")
    found = set(re.findall(r"\$\{(\w+)\}", path.read_text()))
    unknown, unused = found - ASL_SUBSTITUTIONS.keys(), ASL_SUBSTITUTIONS.keys() - found
    if unknown:
        raise ConfigError(f"{path.name}: placeholders with no function: {sorted(unknown)}")
    if unused:
        raise ConfigError(f"{path.name}: substitutions the definition never uses: {sorted(unused)}")


class ComputeStack(Stack):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        cfg: InfraConfig,
        network: NetworkStack,
        data: DataStack,
        bundle_dir: Path,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, cid, **kwargs)  # type: ignore[arg-type]
        self.cfg = cfg
        # explicit, before any grant: KMS/secret grants then go to the Lambda roles' policies
        # instead of the key policy in the data stack (which would make data depend on compute)
        self.add_stack_dependency(data)
        check_asl_placeholders(STATE_MACHINE_ASL)
        arch = lambda_.Architecture.ARM_64 if cfg.lambda_arm64 else lambda_.Architecture.X86_64
        platform = ecr_assets.Platform.LINUX_ARM64 if cfg.lambda_arm64 else ecr_assets.Platform.LINUX_AMD64

        common_env = {
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
            # decisions and prompts stay out of X-Ray; logs carry what is needed
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
            "DB_SECRET_ARN": data.secrets["database"].secret_arn,
            "DB_HOST": data.proxy.endpoint,
            "DB_PORT": str(POSTGRES_PORT),
            "DB_NAME": DB_NAME,
            "DB_SSLMODE": "require",
            "REDIS_HOST": data.redis_endpoint,
            "REDIS_PORT": str(REDIS_PORT),
            "REDIS_TLS": "true",
            "REDIS_AUTH_SECRET_ARN": data.secrets["redis"].secret_arn,
            "ARTIFACTS_BUCKET": data.artifacts.bucket_name,
        }

        # ---- layers -------------------------------------------------------------------------
        self.layers: dict[str, lambda_.LayerVersion] = {}
        for name in sorted({layer for f in FUNCTIONS for layer in f.layers}):
            self.layers[name] = self._layer(name, arch)

        # ---- functions ----------------------------------------------------------------------
        self.functions: dict[str, lambda_.Function] = {}
        self.log_groups: dict[str, logs.LogGroup] = {}
        functions_dir = (REPO_ROOT / cfg.functions_dir).resolve()
        for spec in FUNCTIONS:
            log_group = logs.LogGroup(
                self,
                f"{_pascal(spec.name)}Logs",
                retention=retention(cfg.log_retention_days),
                removal_policy=RemovalPolicy.DESTROY,
            )
            env = dict(common_env)
            for secret in spec.secrets:
                env[f"{secret.upper()}_SECRET_ARN"] = data.secrets[secret].secret_arn
            if "kek" in spec.secrets:
                env["TRADINGBOT_KEK_SECRET_ID"] = data.secrets["kek"].secret_arn  # PersistenceSettings
            env.update(spec.environment)
            common = {
                "description": spec.description,
                "memory_size": spec.memory_mb,
                "timeout": Duration.seconds(spec.timeout_s),
                "architecture": arch,
                "environment": env,
                "tracing": lambda_.Tracing.ACTIVE,
                "log_group": log_group,
                "logging_format": lambda_.LoggingFormat.JSON,
                "vpc": network.vpc,
                "vpc_subnets": network.app_subnets,
                "security_groups": [network.lambda_sg],
                "reserved_concurrent_executions": (
                    cfg.execute_reserved_concurrency if spec.reserved_concurrency else None
                ),
            }
            fn: lambda_.Function
            if spec.image:
                fn = lambda_.DockerImageFunction(
                    self,
                    _pascal(spec.name),
                    code=lambda_.DockerImageCode.from_image_asset(
                        str(REPO_ROOT),
                        file=f"cdk/docker/{spec.name}/Dockerfile",
                        platform=platform,
                        exclude=DOCKER_CONTEXT_EXCLUDE,
                        ignore_mode=IgnoreMode.DOCKER,
                    ),
                    **common,
                )
            else:
                bundle = build_zip_bundle(functions_dir, spec.name, bundle_dir / spec.name)
                fn = lambda_.Function(
                    self,
                    _pascal(spec.name),
                    runtime=RUNTIME,
                    handler="handler.handler",
                    code=lambda_.Code.from_asset(str(bundle)),
                    layers=[self.layers[name] for name in spec.layers],
                    **common,
                )
            for secret in spec.secrets:
                data.secrets[secret].grant_read(fn)
            self.functions[spec.name] = fn
            self.log_groups[spec.name] = log_group

        data.artifacts.grant_read(self.functions["predict"], "models/*")  # the ONNX model
        data.artifacts.grant_read(self.functions["backtest"], "data/*")  # candles for long backtests
        data.artifacts.grant_put(self.functions["backtest"], "reports/*")  # HTML reports
        self.functions["vote"].add_environment("BEDROCK_REGION", cfg.region)  # the Llama seat
        self.functions["vote"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["bedrock:InvokeModel"],
                resources=[f"arn:{self.partition}:bedrock:{cfg.region}::foundation-model/meta.llama*"],
            )
        )

        # ---- trading pipeline state machine ---------------------------------------------------
        sm_logs = logs.LogGroup(
            self,
            "PipelineLogs",
            retention=retention(cfg.log_retention_days),
            log_group_name=f"/aws/vendedlogs/states/{cfg.prefix}-pipeline",
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "Pipeline",
            state_machine_name=f"{cfg.prefix}-pipeline",
            state_machine_type=sfn.StateMachineType.STANDARD,  # exactly-once, auditable history per alert
            definition_body=sfn.DefinitionBody.from_file(str(STATE_MACHINE_ASL)),
            definition_substitutions={k: self.functions[v].function_arn for k, v in ASL_SUBSTITUTIONS.items()},
            timeout=Duration.minutes(5),
            tracing_enabled=True,
            # execution data holds the alert (with the account's webhook token): not logged
            logs=sfn.LogOptions(destination=sm_logs, level=sfn.LogLevel.ALL, include_execution_data=False),
        )
        for name in set(ASL_SUBSTITUTIONS.values()):
            self.functions[name].grant_invoke(self.state_machine)
        webhook = self.functions["webhook"]
        webhook.add_environment("STATE_MACHINE_ARN", self.state_machine.state_machine_arn)
        webhook.add_environment("WEBHOOK_MAX_BODY_BYTES", str(cfg.webhook_max_body_bytes))
        self.state_machine.grant_start_execution(webhook)
        self.state_machine.grant_read(webhook)  # DescribeExecution: a duplicate alert returns the same id

        # ---- optimisation: schedule -> state machine -> Distributed Map of backtest workers -------
        # One item per strategy ({"strategy": name}: tradingbot.pipeline.stages.optimise), run in
        # parallel; a failed strategy does not fail the others.
        backtest = self.functions["backtest"]
        run_job = tasks.LambdaInvoke(
            self,
            "OptimiseStrategy",
            lambda_function=backtest,
            payload=sfn.TaskInput.from_json_path_at("$"),
            payload_response_only=True,
            retry_on_service_exceptions=True,
            task_timeout=sfn.Timeout.duration(Duration.minutes(15)),
        )
        fan_out = sfn.DistributedMap(
            self, "Backtests", items_path="$.jobs", max_concurrency=10, tolerated_failure_percentage=50
        )
        fan_out.item_processor(run_job)
        opt_logs = logs.LogGroup(
            self,
            "OptimiseLogs",
            retention=retention(cfg.log_retention_days),
            log_group_name=f"/aws/vendedlogs/states/{cfg.prefix}-optimise",
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.optimise_machine = sfn.StateMachine(
            self,
            "Optimise",
            state_machine_name=f"{cfg.prefix}-optimise",
            definition_body=sfn.DefinitionBody.from_chainable(fan_out),
            timeout=Duration.hours(2),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=opt_logs, level=sfn.LogLevel.ALL, include_execution_data=True),
        )
        events.Rule(
            self,
            "OptimiseSchedule",
            schedule=events.Schedule.expression(cfg.optimise_schedule),
            description="periodic strategy parameter optimisation",
            targets=[
                targets.SfnStateMachine(
                    self.optimise_machine,
                    input=events.RuleTargetInput.from_object(
                        {"source": "schedule", "jobs": [{"strategy": s} for s in OPTIMISE_STRATEGIES]}
                    ),
                    retry_attempts=2,
                )
            ],
        )

        # ---- API Gateway -------------------------------------------------------------------
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

        # ---- market feed on Fargate ----------------------------------------------------------
        cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=network.vpc,
            cluster_name=f"{cfg.prefix}-cluster",
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )
        feed_logs = logs.LogGroup(
            self, "FeedLogs", retention=retention(cfg.log_retention_days), removal_policy=RemovalPolicy.DESTROY
        )
        task = ecs.FargateTaskDefinition(
            self,
            "FeedTask",
            cpu=256,
            memory_limit_mib=512,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.ARM64 if cfg.lambda_arm64 else ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        task.add_container(
            "feed",
            image=ecs.ContainerImage.from_asset(
                str(REPO_ROOT),
                file="functions/market_feed/Dockerfile",
                platform=platform,
                exclude=DOCKER_CONTEXT_EXCLUDE,
                ignore_mode=IgnoreMode.DOCKER,
            ),
            logging=ecs.LogDrivers.aws_logs(stream_prefix="feed", log_group=feed_logs),
            environment={k: v for k, v in common_env.items() if k.startswith(("POWERTOOLS_", "REDIS_"))},
            secrets={"REDIS_AUTH_TOKEN": ecs.Secret.from_secrets_manager(data.secrets["redis"])},
            readonly_root_filesystem=True,
            stop_timeout=Duration.seconds(30),
            # ECS ignores the image's HEALTHCHECK: the same probe of the feed's /health (200 only when
            # every stream is connected and fresh and Redis took a write recently)
            health_check=ecs.HealthCheck(
                command=[
                    "CMD",
                    "python",
                    "-c",
                    "import sys, urllib.request as u; "
                    "sys.exit(0 if u.urlopen('http://127.0.0.1:8080/health', timeout=2).status == 200 else 1)",
                ],
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(60),
            ),
        )
        self.cluster = cluster
        self.feed = ecs.FargateService(
            self,
            "Feed",
            cluster=cluster,
            task_definition=task,
            service_name=f"{cfg.prefix}-feed",
            desired_count=cfg.feed_desired_count,
            vpc_subnets=network.app_subnets,
            security_groups=[network.feed_sg],
            assign_public_ip=False,
            # a second feed during a deploy is harmless (it writes the same keys); a gap is not
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )

    def _layer(self, name: str, arch: lambda_.Architecture) -> lambda_.LayerVersion:
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
            f"{_pascal(name)}Layer",
            code=code,
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[arch],
            description=f"TradingBot AI {name} dependencies (layers/{name})",
            removal_policy=RemovalPolicy.RETAIN,  # old function versions may still reference it
        )


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
