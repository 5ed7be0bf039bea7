"""Data stack: the KMS key and the data concerns (secrets, PostgreSQL + RDS Proxy, Redis, S3)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as sm
from constructs import Construct

from .config import InfraConfig
from .data_stores import DB_NAME, DB_USER, PROVIDER_SECRETS, ArtifactStore, Cache, Database, Secrets
from .naming import HIDDEN_ID, ConcernStack
from .network import NetworkStack

__all__ = ["DB_NAME", "DB_USER", "PROVIDER_SECRETS", "DataStack"]


class DataStack(ConcernStack):
    def __init__(
        self, scope: Construct, cid: str, *, cfg: InfraConfig, network: NetworkStack, **kwargs: object
    ) -> None:
        super().__init__(scope, cid, **kwargs)  # type: ignore[arg-type]
        self.add_stack_dependency(network)
        # one key for RDS, Redis and the bucket (the secrets use aws/secretsmanager: see Secrets)
        self.key = kms.Key(
            self,
            "DataKey",
            alias=f"alias/{cfg.prefix}-data",
            enable_key_rotation=True,
            description="TradingBot AI: RDS, Redis, secrets and the artifacts bucket",
            removal_policy=RemovalPolicy.RETAIN,
        )
        vault = Secrets(self, "Secrets", cfg=cfg)
        # the credentials secret, the proxy name and the proxy <-> database rules are named by CDK
        # from the full path: this concern takes the hidden id (naming.py)
        self.database = Database(self, HIDDEN_ID, cfg=cfg, network=network, key=self.key)
        self.cache = Cache(self, "RedisCache", cfg=cfg, network=network, key=self.key, auth=vault.redis_auth)
        self.artifacts = ArtifactStore(self, "ArtifactStore", key=self.key)
        # all eight by key: the provider ones, kek, redis, and the database's generated one
        self.secrets: dict[str, sm.ISecret] = {**vault.secrets, "database": self.database.secret}
