"""The market feed concern: one Fargate service (ECS cluster, task, health check) that holds the
exchange WebSockets and writes the latest prices to Redis, with the paper matcher beside it (a second
container of the same task: it fills paper orders on the ticks the feed publishes, in PostgreSQL;
docs/adr/0007-paper-matching.md)."""

from __future__ import annotations

from aws_cdk import Duration, IgnoreMode, RemovalPolicy
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from constructs import Construct

from .config import InfraConfig
from .data import DataStack
from .lambdas import common_environment, image_platform
from .naming import Concern, flat_unique_id
from .network import NetworkStack
from .paths import DOCKER_CONTEXT_EXCLUDE, REPO_ROOT
from .util import retention

MATCHER_ENV = ("POWERTOOLS_", "REDIS_", "DB_")

# ECS ignores the image's HEALTHCHECK: the same probe of the feed's /health (200 only when every
# stream is connected and fresh and Redis took a write recently)
HEALTH_PROBE = (
    "import sys, urllib.request as u; "
    "sys.exit(0 if u.urlopen('http://127.0.0.1:8080/health', timeout=2).status == 200 else 1)"
)


class MarketFeed(Concern):
    def __init__(self, scope: Construct, cid: str, *, cfg: InfraConfig, network: NetworkStack, data: DataStack) -> None:
        super().__init__(scope, cid)
        self.cluster = ecs.Cluster(
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
            family=flat_unique_id(self, "FeedTask"),  # CDK's default family, kept as it was before this concern
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
                platform=image_platform(cfg),
                exclude=DOCKER_CONTEXT_EXCLUDE,
                ignore_mode=IgnoreMode.DOCKER,
            ),
            logging=ecs.LogDrivers.aws_logs(stream_prefix="feed", log_group=feed_logs),
            # issue 17: not on Lambda, so EMF is off unless asked for; the feed flushes its lag and
            # reconnects to stdout every minute and awslogs carries them (tradingbot.adapters.metrics)
            environment={k: v for k, v in common_environment(data).items() if k.startswith(("POWERTOOLS_", "REDIS_"))}
            | {"POWERTOOLS_METRICS_DISABLED": "false"},
            secrets={"REDIS_AUTH_TOKEN": ecs.Secret.from_secrets_manager(data.secrets["redis"])},
            readonly_root_filesystem=True,
            stop_timeout=Duration.seconds(30),
            health_check=ecs.HealthCheck(
                command=["CMD", "python", "-c", HEALTH_PROBE],
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(60),
            ),
        )
        # same image, its own process: a slow database never stalls the feed's event loop
        task.add_container(
            "paper-matcher",
            image=ecs.ContainerImage.from_asset(
                str(REPO_ROOT),
                file="functions/market_feed/Dockerfile",
                platform=image_platform(cfg),
                exclude=DOCKER_CONTEXT_EXCLUDE,
                ignore_mode=IgnoreMode.DOCKER,
            ),
            command=["python", "-m", "tradingbot.entrypoints.paper_matcher"],
            logging=ecs.LogDrivers.aws_logs(stream_prefix="paper-matcher", log_group=feed_logs),
            # DB_SECRET_ARN / DB_* and REDIS_* / REDIS_AUTH_SECRET_ARN: resolved once at start (adapters/aws.py)
            environment={k: v for k, v in common_environment(data).items() if k.startswith(MATCHER_ENV)},
            readonly_root_filesystem=True,
            stop_timeout=Duration.seconds(10),
            essential=True,  # a task whose paper stops cannot fire is restarted, not left running
        )
        for secret in ("database", "redis"):
            data.secrets[secret].grant_read(task.task_role)
        self.service = ecs.FargateService(
            self,
            "Feed",
            cluster=self.cluster,
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
