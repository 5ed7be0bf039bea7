"""Every cdk-nag suppression, in one place, each with the reason it is acceptable.

Rule of the house: suppress a finding only where the fix would be wrong for this system or is
impossible in AWS; scope it to the resource and, for IAM5, to the exact wildcard (``applies_to``).
tests/infra/test_checks.py fails on any unsuppressed AwsSolutions error and on a suppression with
no reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo

if TYPE_CHECKING:
    from .app import TradingBotApp

LAMBDA_MANAGED_POLICIES = [
    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
]

# (rule, reason, applies_to or None): applied to every Lambda's role and policies
LAMBDA_ROLE = [
    (
        "AwsSolutions-IAM4",
        "AWSLambdaBasicExecutionRole / AWSLambdaVPCAccessExecutionRole are AWS's scoped baseline for writing "
        "the function's logs and managing its VPC ENIs; ec2:CreateNetworkInterface has no resource-level form",
        LAMBDA_MANAGED_POLICIES,
    ),
    (
        "AwsSolutions-IAM5",
        "xray:PutTraceSegments and xray:PutTelemetryRecords (Powertools Tracer) support no resource-level "
        "permissions: AWS requires Resource '*'",
        ["Resource::*"],
    ),
    (
        "AwsSolutions-IAM5",
        "bucket grants are scoped to a key prefix (models/, data/, reports/, optimise/); CDK's grant adds object-level "
        "action families (s3:GetObject*, s3:List*, s3:GetBucket*, s3:Abort*, s3:DeleteObject*) and KMS data-key "
        "actions (kms:GenerateDataKey*, kms:ReEncrypt*) for the bucket's key only",
        [
            RegexAppliesTo(regex=r"/^Resource::<Artifacts[0-9A-F]{8}\.Arn>\/(models|data|reports|optimise)\/\*$/"),
            RegexAppliesTo(regex=r"/^Resource::TradingbotData:ExportsOutputFnGetAttArtifacts.*$/"),
            RegexAppliesTo(regex=r"/^Resource::.*Artifacts.*\/(models|data|reports|optimise)\/\*$/"),
            "Action::s3:GetObject*",
            "Action::s3:List*",
            "Action::s3:GetBucket*",
            "Action::s3:Abort*",
            "Action::s3:DeleteObject*",
            "Action::kms:GenerateDataKey*",
            "Action::kms:ReEncrypt*",
        ],
    ),
    (
        "AwsSolutions-IAM5",
        "the Llama voter may use any Meta Llama foundation model on Bedrock (the model id is a setting); "
        "foundation-model ARNs have no account, so the family prefix is the narrowest stable scope",
        [
            RegexAppliesTo(
                regex=r"/^Resource::arn:<AWS::Partition>:bedrock:[a-z0-9-]+::foundation-model\/meta\.llama\*$/"
            )
        ],
    ),
    (
        "AwsSolutions-IAM5",
        "DescribeExecution on this state machine's own executions (execution ARNs are only known at run "
        "time): a re-delivered alert looks up the execution it already started",
        [RegexAppliesTo(regex=r"/^Resource::arn:<AWS::Partition>:states:.*:execution:.*Pipeline.*:\*$/")],
    ),
    (
        "AwsSolutions-L1",
        "the project targets CPython 3.12 (pandas-ta 0.4.71b0 and numba wheels are built and tested for it); "
        "moving to a newer runtime is a project-wide change, not an infrastructure one",
        None,
    ),
]

STATE_MACHINE_ROLE = [
    (
        "AwsSolutions-IAM5",
        "Step Functions' own log delivery (logs:CreateLogDelivery, logs:DescribeResourcePolicies, ...) and "
        "X-Ray actions support no resource-level permissions",
        ["Resource::*"],
    ),
    (
        "AwsSolutions-IAM5",
        "lambda:InvokeFunction on the function ARN with ':*' covers its versions/aliases; only the "
        "pipeline's own functions are listed",
        [RegexAppliesTo(regex=r"/^Resource::<[A-Za-z]+[0-9A-F]{8}\.Arn>:\*$/")],
    ),
    (
        "AwsSolutions-IAM5",
        "a Distributed Map starts child executions of its own state machine; their ARNs are run-time values",
        [RegexAppliesTo(regex=r"/^Resource::arn:<AWS::Partition>:states:.*:execution:.*Optimise.*$/")],
    ),
]


def _suppress(construct: object, rules: list[tuple[str, str, list | None]]) -> None:
    NagSuppressions.add_resource_suppressions(
        construct,
        [
            NagPackSuppression(id=rule, reason=reason, applies_to=applies)
            if applies
            else NagPackSuppression(id=rule, reason=reason)
            for rule, reason, applies in rules
        ],
        apply_to_children=True,
    )


def apply_suppressions(built: TradingBotApp) -> None:
    cfg, data, compute = built.cfg, built.data, built.compute

    # ---- data ----------------------------------------------------------------------------
    if not cfg.multi_az:
        _suppress(
            data.database.instance,
            [
                (
                    "AwsSolutions-RDS3",
                    "Multi-AZ is the context flag multi_az (off by default to halve the database "
                    "cost for paper trading and evaluation; docs/deploy.md says to turn it on for live "
                    "trading)",
                    None,
                )
            ],
        )
        _suppress(
            data.cache.replication_group,
            [
                (
                    "AwsSolutions-AEC4",
                    "Multi-AZ follows the context flag multi_az (see RDS3); Redis holds a cache, "
                    "idempotency keys and the feed's latest prices, all rebuilt after a failover",
                    None,
                )
            ],
        )
    # the generated credentials secret is a child of the instance: suppress through the instance
    _suppress(
        data.database.instance,
        [
            (
                "AwsSolutions-SMG4",
                "automatic rotation is off until the Lambdas re-read the secret on an authentication "
                "failure (warm containers cache the password); manual rotation procedure in "
                "docs/deploy.md",
                None,
            ),
            (
                "AwsSolutions-RDS11",
                "a non-default port adds no protection here: the database SG admits only RDS Proxy, "
                "TLS is forced and credentials are in Secrets Manager; the Lambdas reach the proxy, "
                "which always listens on 5432",
                None,
            ),
        ],
    )
    _suppress(
        data.cache.replication_group,
        [
            (
                "AwsSolutions-AEC5",
                "a non-default port adds no protection: the Redis SG admits only the Lambdas and "
                "the feed, with TLS and an AUTH token",
                None,
            )
        ],
    )
    _suppress(
        data.artifacts.history_writer,
        [
            (
                "AwsSolutions-IAM5",
                "the history writer's grants are scoped to the data/history/ prefix of the artifacts bucket; "
                "CDK's read and put grants add object-level action families (s3:GetObject*, s3:List*, "
                "s3:GetBucket*, s3:Abort*) and KMS data-key actions for the bucket's key only",
                [
                    RegexAppliesTo(regex=r"/^Resource::<.*Artifacts[0-9A-F]{8}\.Arn>\/data\/history\/\*$/"),
                    "Action::s3:GetObject*",
                    "Action::s3:List*",
                    "Action::s3:GetBucket*",
                    "Action::s3:Abort*",
                    "Action::kms:GenerateDataKey*",
                    "Action::kms:ReEncrypt*",
                ],
            )
        ],
    )
    for key in ("binance", "okx", "openai", "anthropic", "telegram"):
        _suppress(
            data.secrets[key],
            [
                (
                    "AwsSolutions-SMG4",
                    "a third-party credential: it can only be rotated at the provider "
                    "(exchange, LLM vendor, Telegram BotFather), then pasted in",
                    None,
                )
            ],
        )
    _suppress(
        data.secrets["kek"],
        [
            (
                "AwsSolutions-SMG4",
                "the key-encryption key is rotated by `tradingbot keys rotate`, "
                "which re-wraps every stored exchange key (a plain value swap would make "
                "them unreadable)",
                None,
            )
        ],
    )
    _suppress(
        data.secrets["redis"],
        [
            (
                "AwsSolutions-SMG4",
                "no managed rotation exists for ElastiCache AUTH tokens (it needs "
                "ModifyReplicationGroup with AuthTokenUpdateStrategy ROTATE); "
                "docs/deploy.md gives the procedure",
                None,
            )
        ],
    )

    # ---- compute ---------------------------------------------------------------------------
    for fn in compute.lambdas.functions.values():
        _suppress(fn, LAMBDA_ROLE)
    for machine in (compute.trading.machine, compute.optimisation.machine):
        _suppress(machine, STATE_MACHINE_ROLE)
    api = compute.webhook_api.api
    _suppress(
        api,
        [
            (
                "AwsSolutions-APIG2",
                "the webhook validates the body itself (pydantic model, size limit, named 4xx and a stored record "
                "for every refused attempt, which an API Gateway 400 would bypass); TradingView posts text/plain, "
                "to which API Gateway request models do not apply",
                None,
            ),
            (
                "AwsSolutions-APIG4",
                "TradingView cannot send headers or sign requests: the webhook authenticates the per-account token "
                "in the body (constant-time compare, lock-out after repeated bad tokens); /health and /docs are "
                "public by design and return no account data; /dashboard is a static page with no data (it calls "
                "/api, which has the Cognito authorizer); Telegram cannot send a JWT: /telegram/webhook checks "
                "the X-Telegram-Bot-Api-Secret-Token header in constant time",
                None,
            ),
            ("AwsSolutions-COG4", "no end users: the only caller is TradingView (see APIG4)", None),
            (
                "AwsSolutions-IAM4",
                "AmazonAPIGatewayPushToCloudWatchLogs is the AWS-defined policy for API Gateway's account-level "
                "logging role (execution logs)",
                ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"],
            ),
        ],
    )
    _suppress(
        compute.market_feed.service.task_definition,
        [
            (
                "AwsSolutions-ECS2",
                "environment variables carry only non-secret settings (Redis host/port, Powertools); the Redis AUTH "
                "token is injected from Secrets Manager",
                None,
            ),
            (
                "AwsSolutions-IAM5",
                "ecr:GetAuthorizationToken (pulling the image) supports no resource-level permissions",
                ["Resource::*"],
            ),
        ],
    )
    # ---- issue 20: deploy safety (deploy.py) ------------------------------------------------
    _suppress(
        compute.deploys,
        [
            (
                "AwsSolutions-IAM4",
                "AWSCodeDeployRoleForLambdaLimited is AWS's scoped policy for CodeDeploy's Lambda traffic shifting "
                "(update the alias, read the alarms, invoke hooks); the provider framework's function needs only "
                "AWSLambdaBasicExecutionRole for its logs",
                [
                    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited",
                    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
                ],
            ),
            (
                "AwsSolutions-IAM5",
                "the custom-resource provider framework invokes the migrate function by its ARN and any of its "
                "versions (<arn>:*), as CDK's Provider grants it",
                [RegexAppliesTo(regex=r"/^Resource::<.*Migrate.*\.Arn>:\*$/")],
            ),
            (
                "AwsSolutions-L1",
                "the provider framework's runtime is chosen by aws-cdk-lib (its own Node.js handler), not by us",
                None,
            ),
        ],
    )
    # ---- issue 18: the optimisation fan-out reads its items and writes its results under optimise/ ----
    _suppress(
        compute.optimisation,
        [
            (
                "AwsSolutions-IAM5",
                "the Distributed Map's ItemReader reads the plan the Plan step wrote under optimise/<execution>/ "
                "(s3:GetObject on the optimise/ prefix of the artifacts bucket only; CDK's read grant adds the "
                "object-level action families s3:GetObject*, s3:List*, s3:GetBucket*)",
                [
                    RegexAppliesTo(regex=r"/^Resource::<Artifacts[0-9A-F]{8}\.Arn>\/optimise\/\*$/"),
                    RegexAppliesTo(regex=r"/^Resource::.*Artifacts.*\/optimise\/\*$/"),
                    "Action::s3:GetObject*",
                    "Action::s3:List*",
                    "Action::s3:GetBucket*",
                ],
            ),
        ],
    )
