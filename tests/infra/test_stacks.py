"""Assertions on the synthesised templates (one synthesis per session, see conftest.py)."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from .conftest import Synth, live_alias

# ---------------------------------------------------------------- network


def test_vpc_two_azs_three_tiers(synth: Synth) -> None:
    t = synth.template("network")
    t.resource_count_is("AWS::EC2::VPC", 1)
    subnets = synth.resources("network", "AWS::EC2::Subnet")
    tiers = sorted(
        next(tag["Value"] for tag in s["Properties"]["Tags"] if tag["Key"] == "aws-cdk:subnet-name")
        for s in subnets.values()
    )
    assert tiers == ["app", "app", "data", "data", "public", "public"]
    t.resource_count_is("AWS::EC2::NatGateway", 1)  # context nat_gateways=1
    t.resource_count_is("AWS::EC2::FlowLog", 1)


def test_vpc_endpoints_for_aws_apis(synth: Synth) -> None:
    endpoints = synth.resources("network", "AWS::EC2::VPCEndpoint").values()
    services = set()
    for e in endpoints:
        name = json.dumps(e["Properties"]["ServiceName"])
        known = ("s3", "secretsmanager", "logs", "ecr.api", "ecr.dkr", "states")
        services.add(next(s for s in known if f".{s}" in name))
    assert services == {"s3", "secretsmanager", "logs", "ecr.api", "ecr.dkr", "states"}
    gateway = [e for e in endpoints if e["Properties"].get("VpcEndpointType", "Gateway") == "Gateway"]
    assert len(gateway) == 1  # S3 is free as a gateway endpoint


def _ingress(synth: Synth, stack: str) -> list[dict[str, Any]]:
    rules = [r["Properties"] for r in synth.resources(stack, "AWS::EC2::SecurityGroupIngress").values()]
    for sg in synth.resources(stack, "AWS::EC2::SecurityGroup").values():
        rules += sg["Properties"].get("SecurityGroupIngress", [])
    return rules


def test_security_groups_least_privilege(synth: Synth) -> None:
    for stack in ("network", "data"):
        for rule in _ingress(synth, stack):
            assert "CidrIp" not in rule, f"no CIDR ingress anywhere (only SG-to-SG): {rule}"
            assert rule["FromPort"] == rule["ToPort"], rule
            assert "SourceSecurityGroupId" in rule, rule

    def port(rule: dict[str, Any]) -> object:  # RDS Proxy opens the instance's port by reference
        value = rule["FromPort"]
        return "db-endpoint-port" if isinstance(value, dict) and "Endpoint.Port" in json.dumps(value) else value

    ports = sorted(str(port(r)) for r in _ingress(synth, "data"))
    # proxy <- Lambdas, proxy <- feed task (the paper matcher), db <- proxy, redis <- Lambdas, redis <- feed
    assert ports == ["5432", "5432", "6379", "6379", "db-endpoint-port"], ports
    for sg in [
        *synth.resources("network", "AWS::EC2::SecurityGroup").values(),
        *synth.resources("data", "AWS::EC2::SecurityGroup").values(),
    ]:
        for egress in sg["Properties"].get("SecurityGroupEgress", []):
            # allow_all_outbound=False: 443 to the internet (exchanges, LLMs) or CDK's "no egress" marker
            assert egress.get("FromPort") == 443 or egress.get("CidrIp") == "255.255.255.255/32", egress


# ---------------------------------------------------------------- data


def test_postgres(synth: Synth) -> None:
    t = synth.template("data")
    t.has_resource_properties(
        "AWS::RDS::DBInstance",
        {
            "Engine": "postgres",
            "MultiAZ": False,
            "StorageEncrypted": True,
            "KmsKeyId": Match.any_value(),
            "BackupRetentionPeriod": 7,
            "EnablePerformanceInsights": True,
            "PubliclyAccessible": False,
            "DeletionProtection": True,
        },
    )
    t.has_resource_properties("AWS::RDS::DBParameterGroup", {"Parameters": Match.object_like({"rds.force_ssl": "1"})})
    t.has_resource_properties("AWS::RDS::DBProxy", {"RequireTLS": True, "EngineFamily": "POSTGRESQL"})
    t.has_resource_properties("AWS::SecretsManager::SecretTargetAttachment", {"TargetType": "AWS::RDS::DBInstance"})


def test_redis(synth: Synth) -> None:
    t = synth.template("data")
    t.has_resource_properties(
        "AWS::ElastiCache::ReplicationGroup",
        {
            "Engine": "redis",
            "TransitEncryptionEnabled": True,
            "AtRestEncryptionEnabled": True,
            "NumCacheClusters": 1,
        },
    )
    group = next(iter(synth.resources("data", "AWS::ElastiCache::ReplicationGroup").values()))
    assert "{{resolve:secretsmanager:" in json.dumps(group["Properties"]["AuthToken"]), "AUTH token by reference"
    t.has_resource_properties("AWS::ElastiCache::ParameterGroup", {"Properties": {"maxmemory-policy": "allkeys-lru"}})
    group = next(iter(synth.resources("data", "AWS::ElastiCache::SubnetGroup").values()))
    ids = json.dumps(group["Properties"]["SubnetIds"])
    assert "dataSubnet" in ids and "appSubnet" not in ids, "Redis lives in the isolated subnets"


def test_eight_secrets(synth: Synth) -> None:
    names = sorted(s["Properties"]["Name"] for s in synth.resources("data", "AWS::SecretsManager::Secret").values())
    assert names == sorted(
        f"tradingbot/{n}" for n in ("binance", "okx", "openai", "anthropic", "telegram", "database", "redis", "kek")
    )
    for s in synth.resources("data", "AWS::SecretsManager::Secret").values():
        assert "SecretString" not in s["Properties"], "no secret value in a template"


def test_artifacts_bucket(synth: Synth) -> None:
    t = synth.template("data")
    t.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "VersioningConfiguration": {"Status": "Enabled"},
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like({"ServerSideEncryptionByDefault": Match.object_like({"SSEAlgorithm": "aws:kms"})})
                ]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
        },
    )
    policies = json.dumps(synth.resources("data", "AWS::S3::BucketPolicy"))
    assert '"aws:SecureTransport": "false"' in policies
    t.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


# ---------------------------------------------------------------- compute


def _functions(synth: Synth) -> dict[str, dict[str, Any]]:
    out = {}
    for fn in synth.resources("compute", "AWS::Lambda::Function").values():
        out[fn["Properties"]["Description"].split(":")[0]] = fn["Properties"]
    return out


def test_every_function_is_deployed(synth: Synth) -> None:
    from tradingbot_infra.functions import FUNCTIONS

    every = synth.resources("compute", "AWS::Lambda::Function")
    # CDK's custom-resource provider framework (the migration, issue 20) brings a function of its own
    fns = {k: v for k, v in every.items() if "provider framework" not in v["Properties"].get("Description", "")}
    assert len(every) - len(fns) == 1
    # + reconcile (15), sweeper (16), operator_api, telegram_webhook (17), migrate (20)
    assert len(fns) == len(FUNCTIONS) == 14
    for props in (f["Properties"] for f in fns.values()):
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == "tradingbot"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "TradingBot"
        assert "VpcConfig" in props
        if "PackageType" in props:
            assert props["PackageType"] == "Image"
        else:
            assert props["Runtime"] == "python3.12" and props["Handler"] == "handler.handler"
            assert props["Layers"], "zip functions get their dependencies from layers"
    images = [f for f in fns.values() if f["Properties"].get("PackageType") == "Image"]
    assert len(images) == 2  # strategies and backtest: pandas + pandas-ta + numba exceed 250 MB


def test_execute_reserved_concurrency(synth: Synth) -> None:
    reserved = [
        f["Properties"]
        for f in synth.resources("compute", "AWS::Lambda::Function").values()
        if "ReservedConcurrentExecutions" in f["Properties"]
    ]
    assert len(reserved) == 1
    assert reserved[0]["ReservedConcurrentExecutions"] == 5
    assert reserved[0]["Description"].startswith("places the order")


def test_layers(synth: Synth) -> None:
    layers = synth.resources("compute", "AWS::Lambda::LayerVersion")
    assert len(layers) == 5  # common, ml, ai, exchange, migrate (issue 20)
    for layer in layers.values():
        assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
        assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


def test_api_gateway(synth: Synth) -> None:
    t = synth.template("compute")
    t.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "prod",
            "AccessLogSetting": {"DestinationArn": Match.any_value(), "Format": Match.string_like_regexp("requestId")},
            "MethodSettings": [
                Match.object_like({"ThrottlingRateLimit": 20, "ThrottlingBurstLimit": 40, "DataTraceEnabled": False})
            ],
            "TracingEnabled": True,
        },
    )
    methods = synth.resources("compute", "AWS::ApiGateway::Method")
    api_resources = synth.resources("compute", "AWS::ApiGateway::Resource")
    path_of = {k: r["Properties"]["PathPart"] for k, r in api_resources.items()}
    routes = sorted(
        (path_of.get(m["Properties"]["ResourceId"].get("Ref", ""), "/"), m["Properties"]["HttpMethod"])
        for m in methods.values()
    )
    # the webhook's own routes; the operator API's (/api, /dashboard, /telegram) are in test_cockpit.py
    assert [r for r in routes if r[0] in ("docs", "health", "tradingview")] == [
        ("docs", "GET"), ("health", "GET"), ("tradingview", "POST"),
    ]  # fmt: skip
    assert {"docs", "health", "tradingview", "webhook"} <= set(path_of.values())
    webhook_env = _webhook_env(synth)
    # API Gateway's 10 MB payload limit cannot be lowered: the webhook enforces this one (413)
    assert webhook_env["WEBHOOK_MAX_BODY_BYTES"] == "8192"


def _webhook_env(synth: Synth) -> dict[str, Any]:
    fn = next(
        f
        for f in synth.resources("compute", "AWS::Lambda::Function").values()
        if f["Properties"]["Description"].startswith("TradingView webhook")
    )
    return fn["Properties"]["Environment"]["Variables"]


def _machine(synth: Synth, name: str) -> dict[str, Any]:
    machines = synth.resources("compute", "AWS::StepFunctions::StateMachine")
    return next(m["Properties"] for m in machines.values() if m["Properties"]["StateMachineName"] == name)


def _staged_definition(synth: Synth, machine: dict[str, Any]) -> str:
    # DefinitionBody.from_file uploads the .asl.json as an S3 asset: the staged copy is the file itself
    key = machine["DefinitionS3Location"]["Key"]
    return (synth.outdir / f"asset.{key.split('.')[0]}.json").read_text()


def _function_logical_id(synth: Synth, description_prefix: str) -> str:
    return next(
        k
        for k, f in synth.resources("compute", "AWS::Lambda::Function").items()
        if f["Properties"]["Description"].startswith(description_prefix)
    )


def test_state_machine_from_asl_with_substitutions(synth: Synth) -> None:
    from tradingbot_infra.asl import substitutions
    from tradingbot_infra.paths import STATE_MACHINE_ASL

    pipeline = _machine(synth, "tradingbot-pipeline")
    assert pipeline["StateMachineType"] == "STANDARD"
    assert pipeline["LoggingConfiguration"]["Level"] == "ALL"
    assert pipeline["LoggingConfiguration"]["IncludeExecutionData"] is False
    assert pipeline["TracingConfiguration"] == {"Enabled": True}
    subs = pipeline["DefinitionSubstitutions"]
    assert set(subs) == set(substitutions(STATE_MACHINE_ASL))
    aliases = synth.resources("compute", "AWS::Lambda::Alias")
    for ref in subs.values():  # each task invokes a function's `live` alias (issue 20)
        assert set(ref) == {"Ref"} and aliases[ref["Ref"]]["Properties"]["Name"] == "live"
    assert _staged_definition(synth, pipeline) == STATE_MACHINE_ASL.read_text()
    assert "STATE_MACHINE_ARN" in _webhook_env(synth)


def test_optimisation_schedule(synth: Synth) -> None:
    from tradingbot_infra.paths import OPTIMISE_ASL

    t = synth.template("compute")
    t.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "cron(0 3 ? * SUN *)",
            "Targets": [Match.object_like({"Arn": {"Ref": Match.string_like_regexp("Optimise")}})],
        },
    )
    opt = _machine(synth, "tradingbot-optimise")
    # statemachines/optimise.asl.json, staged as is, its one placeholder the backtest function
    definition = _staged_definition(synth, opt)
    assert definition == OPTIMISE_ASL.read_text()
    assert "DISTRIBUTED" in definition
    backtest = _function_logical_id(synth, "optimisation worker")
    # the machine invokes the worker's `live` alias (issue 20: CodeDeploy shifts it)
    assert opt["DefinitionSubstitutions"] == {"BacktestFunctionArn": {"Ref": live_alias(synth, backtest)}}
    assert opt["LoggingConfiguration"]["Level"] == "ALL"
    assert opt["TracingConfiguration"] == {"Enabled": True}
    # a file definition is opaque to CDK: the invoke and Distributed Map grants are written out
    role = opt["RoleArn"]["Fn::GetAtt"][0]
    statements = [
        s
        for p in synth.resources("compute", "AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {"lambda:InvokeFunction", "states:StartExecution", "states:DescribeExecution"} <= actions
    assert {"states:StopExecution", "states:RedriveExecution"} <= actions
    from tradingbot.domain.strategies import REGISTRY

    rule = next(iter(synth.resources("compute", "AWS::Events::Rule").values()))
    schedule = json.loads(rule["Properties"]["Targets"][0]["Input"])
    # the schedule names the fan-out's axes: every registered strategy x cdk.json's symbols and timeframes
    assert schedule["strategies"] == list(REGISTRY)
    assert schedule["symbols"] == ["BTCUSDT", "ETHUSDT"] and schedule["timeframes"] == ["1h"]
    assert schedule["folds"] == 4 and schedule["promote"] is True
    from tradingbot.pipeline.contracts import OptimiseRequest

    plan = OptimiseRequest.model_validate(schedule | {"action": "plan", "run_key": "x"})
    assert plan.strategies == list(REGISTRY) and plan.method == "grid"
    # the Distributed Map reads the Plan's items from S3 (ItemReader): the machine may read optimise/*
    doc = json.loads(definition)
    reader = doc["States"]["Folds"]["ItemReader"]
    assert reader["Resource"] == "arn:aws:states:::s3:getObject" and doc["States"]["Folds"]["ResultPath"] is None
    reads = [s for s in statements if "s3:GetObject*" in s["Action"]]
    assert any("/optimise/*" in json.dumps(s["Resource"]) for s in reads), reads
    # and the worker may write the plan and the folds there
    worker_role = synth.resources("compute", "AWS::Lambda::Function")[backtest]["Properties"]["Role"]["Fn::GetAtt"][0]
    worker_policies = [
        st for p in synth.resources("compute", "AWS::IAM::Policy").values()
        if {"Ref": worker_role} in p["Properties"]["Roles"]
        for st in p["Properties"]["PolicyDocument"]["Statement"]
    ]  # fmt: skip
    assert any("s3:PutObject" in st["Action"] and "/optimise/*" in json.dumps(st["Resource"]) for st in worker_policies)


def test_market_feed_service(synth: Synth) -> None:
    t = synth.template("compute")
    t.has_resource_properties(
        "AWS::ECS::Service",
        {
            "LaunchType": "FARGATE",
            "DesiredCount": 1,
            "DeploymentConfiguration": Match.object_like(
                {"DeploymentCircuitBreaker": {"Enable": True, "Rollback": True}}
            ),
            "NetworkConfiguration": {"AwsvpcConfiguration": Match.object_like({"AssignPublicIp": "DISABLED"})},
        },
    )
    t.has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {
            "RuntimePlatform": {"CpuArchitecture": "ARM64", "OperatingSystemFamily": "LINUX"},
            "ContainerDefinitions": [
                Match.object_like(
                    {
                        "Name": "feed",
                        "ReadonlyRootFilesystem": True,
                        "Secrets": [Match.object_like({"Name": "REDIS_AUTH_TOKEN"})],
                    }
                ),
                # the paper matcher: the same image, its own process, the database through RDS Proxy
                Match.object_like(
                    {
                        "Name": "paper-matcher",
                        "Command": ["python", "-m", "tradingbot.entrypoints.paper_matcher"],
                        "Essential": True,
                        "ReadonlyRootFilesystem": True,
                        "Environment": Match.array_with(
                            [Match.object_like({"Name": "DB_SECRET_ARN"}), Match.object_like({"Name": "DB_HOST"})]
                        ),
                    }
                ),
            ],
        },
    )
    t.has_resource_properties(
        "AWS::ECS::Cluster", {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]}
    )


def test_docker_context_excludes_local_state(synth: Synth) -> None:
    """Image assets stage only what the Dockerfiles copy, never .venv/.git/.data/cdk.out."""
    staged = [d for d in synth.outdir.glob("asset.*") if (d / "pyproject.toml").exists()]
    assert len(staged) == 3  # strategies, backtest, market feed
    for d in staged:
        top = {p.name for p in d.iterdir()}
        assert top == {"pyproject.toml", "README.md", "shared", "functions", "cdk"}, top
        assert not list(d.rglob("__pycache__"))


# ---------------------------------------------------------------- monitoring


def test_alarms_and_composite(synth: Synth) -> None:
    alarms = synth.resources("monitoring", "AWS::CloudWatch::Alarm")
    names = {a["Properties"]["AlarmName"].removeprefix("tradingbot-") for a in alarms.values()}
    assert {
        "Api5xx",
        "WebhookLatencyP99",
        "LambdaErrors",
        "PipelineFailedExecutions",
        "OrderRejections",
        "FeedNoRunningTask",
        "RdsCpuHigh",
        "RdsFreeStorageLow",
        "RedisMemoryHigh",
        "RedisCpuHigh",
    } <= names
    p99 = next(a["Properties"] for a in alarms.values() if a["Properties"]["AlarmName"].endswith("LatencyP99"))
    assert p99["ExtendedStatistic"] == "p99" and p99["Threshold"] == 1000
    composite = synth.resources("monitoring", "AWS::CloudWatch::CompositeAlarm")
    assert len(composite) == 1
    rule = json.dumps(next(iter(composite.values()))["Properties"]["AlarmRule"])
    for member in ("Api5xx", "LambdaErrors", "PipelineFailedExecutions", "OrderRejections", "FeedNoRunningTask"):
        assert member in rule


def test_alarm_topic_reaches_notify(synth: Synth) -> None:
    t = synth.template("monitoring")
    t.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    t.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "lambda"})
    t.has_resource_properties("AWS::Lambda::Permission", {"Principal": "sns.amazonaws.com"})
    actions = [
        a["Properties"].get("AlarmActions", [])
        for a in synth.resources("monitoring", "AWS::CloudWatch::CompositeAlarm").values()
    ]
    assert all(actions)


def test_log_metric_filters(synth: Synth) -> None:
    filters = synth.resources("monitoring", "AWS::Logs::MetricFilter").values()
    metrics = {f["Properties"]["MetricTransformations"][0]["MetricName"] for f in filters}
    assert metrics == {"Errors", "SignalsAccepted", "OrdersPlaced", "OrdersRejected"}


def test_dashboard(synth: Synth) -> None:
    body = json.dumps(next(iter(synth.resources("monitoring", "AWS::CloudWatch::Dashboard").values())))
    for needle in ("AWS/ApiGateway", "AWS/Lambda", "AWS/States", "AWS/RDS", "AWS/ElastiCache", "ECS/ContainerInsights"):
        assert needle in body, needle


def test_history_writer_may_put_under_data_history_only(synth: Synth) -> None:
    """`tradingbot data download` on AWS writes s3://$ARTIFACTS_BUCKET/data/history/... (issue 14): the
    role it runs as may read and put there, and nowhere else in the bucket."""
    from tradingbot.settings import HistorySection
    from tradingbot_infra.data_stores import HISTORY_PREFIX

    # the prefix granted is the one the application writes to when HISTORY_URI is unset
    assert HistorySection(artifacts_bucket="b").root() == f"s3://b/{HISTORY_PREFIX}"
    roles = {
        k: r
        for k, r in synth.resources("data", "AWS::IAM::Role").items()
        if r["Properties"].get("Description", "").startswith("tradingbot data download")
    }
    assert len(roles) == 1, roles
    (role_id,) = roles
    trust = roles[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Action"] for s in trust] == ["sts:AssumeRole"]
    statements = [
        st
        for p in synth.resources("data", "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for st in p["Properties"]["PolicyDocument"]["Statement"]
    ]

    def actions(st: dict[str, Any]) -> list[str]:
        return [st["Action"]] if isinstance(st["Action"], str) else st["Action"]

    s3_statements = [st for st in statements if any(a.startswith("s3:") for a in actions(st))]
    puts = [st for st in s3_statements if "s3:PutObject" in actions(st)]
    reads = [st for st in s3_statements if "s3:GetObject*" in actions(st)]
    assert puts and reads
    for st in s3_statements:
        resources = json.dumps(st["Resource"])
        object_arns = [r for r in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])
                       if "/" in json.dumps(r)]  # fmt: skip
        assert object_arns and all(f"/{HISTORY_PREFIX}/*" in json.dumps(r) for r in object_arns), resources
    assert not any("s3:DeleteObject*" in actions(st) for st in statements)  # a download never deletes
    outputs = synth.templates["data"].get("Outputs", {})
    assert any(o.get("Value") == {"Fn::GetAtt": [role_id, "Arn"]} for o in outputs.values()), outputs
