"""The cold-start adapter against moto's Secrets Manager, shaped like the CDK app's secrets."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws
from sqlalchemy.engine import make_url

from tradingbot.adapters.aws import resolve, secrets_manager_reader, with_secrets
from tradingbot.settings import Settings

_CDK_VARIABLES = ("DB_SECRET_ARN", "DB_HOST", "DB_PORT", "DB_NAME", "DB_SSLMODE", "REDIS_HOST", "REDIS_PORT",
                  "REDIS_TLS", "REDIS_AUTH_SECRET_ARN", "OPENAI_SECRET_ARN", "ANTHROPIC_SECRET_ARN",
                  "TELEGRAM_SECRET_ARN", "DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY",
                  "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID")  # fmt: skip


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> pytest.MonkeyPatch:
    """A clean environment (no stray .env, none of the variables the CDK sets) in moto's region."""
    monkeypatch.chdir(tmp_path)
    for name in _CDK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return monkeypatch


@pytest.fixture
def secrets(aws_env: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    parameters.clear_caches()  # Powertools' provider (and its boto3 client) must be made inside the mock
    with mock_aws():
        sm = boto3.client("secretsmanager", region_name="us-east-1")

        def make(name: str, value: Any) -> str:
            text = value if isinstance(value, str) else json.dumps(value)
            return str(sm.create_secret(Name=name, SecretString=text)["ARN"])

        yield {
            "db": make("tb/db", {"username": "tradingbot", "password": "p@ss/w:rd?", "engine": "postgres",
                                 "host": "db.internal", "port": 5432, "dbname": "tradingbot"}),
            "redis": make("tb/redis", "AUTHtoken0123456789"),
            "openai": make("tb/openai", {"api_key": "sk-test-1234"}),
            "anthropic": make("tb/anthropic", {"api_key": "REPLACE_ME"}),
            "telegram": make("tb/telegram", {"bot_token": "123:abc", "chat_id": "42"}),
        }  # fmt: skip
    parameters.clear_caches()


def test_urls_and_keys_come_from_the_secrets(secrets: dict[str, str], aws_env: pytest.MonkeyPatch) -> None:
    env = {
        "DB_SECRET_ARN": secrets["db"], "DB_HOST": "proxy.rds.amazonaws.com", "DB_PORT": "5432",
        "DB_NAME": "tradingbot", "DB_SSLMODE": "require", "REDIS_HOST": "master.cache.amazonaws.com",
        "REDIS_PORT": "6379", "REDIS_TLS": "true", "REDIS_AUTH_SECRET_ARN": secrets["redis"],
        "OPENAI_SECRET_ARN": secrets["openai"], "ANTHROPIC_SECRET_ARN": secrets["anthropic"],
        "TELEGRAM_SECRET_ARN": secrets["telegram"],
    }  # fmt: skip
    for name, value in env.items():
        aws_env.setenv(name, value)
    before = dict(os.environ)
    settings, names = resolve(Settings(), secrets_manager_reader())
    assert dict(os.environ) == before  # nothing is written to the environment
    assert os.environ.get("DATABASE_URL") is None and os.environ.get("OPENAI_API_KEY") is None
    p = settings.persistence
    assert p.database_url is not None and p.redis_url is not None
    url = make_url(p.database_url.get_secret_value())
    assert (url.drivername, url.host, url.username, url.password, url.database) == (
        "postgresql+pg8000",
        "proxy.rds.amazonaws.com",
        "tradingbot",
        "p@ss/w:rd?",
        "tradingbot",
    )  # the password survives URL quoting, and the proxy (not the instance) is the host
    assert url.query["sslmode"] == "verify-full"
    assert p.redis_url.get_secret_value() == "rediss://:AUTHtoken0123456789@master.cache.amazonaws.com:6379/0"
    assert settings.ai.openai_api_key is not None and settings.ai.openai_api_key.get_secret_value() == "sk-test-1234"
    assert settings.ai.anthropic_api_key is None  # an unfilled secret means "not configured", not a key
    assert (settings.pipeline.telegram_token(), settings.pipeline.telegram_chat_id) == ("123:abc", "42")
    assert set(names) == {"DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID"}
    assert "p@ss" not in repr(settings) and "sk-test" not in repr(settings)  # secrets stay SecretStr
    assert with_secrets(Settings()).persistence.database_url == p.database_url  # the cold-start entry point


def test_explicit_values_win_and_nothing_happens_without_arns(
    secrets: dict[str, str], aws_env: pytest.MonkeyPatch
) -> None:
    aws_env.setenv("DB_SECRET_ARN", secrets["db"])
    aws_env.setenv("DATABASE_URL", "postgresql+pg8000://me@here/db")
    settings, names = resolve(Settings(), secrets_manager_reader())
    assert names == []
    assert settings.persistence.database_url is not None
    assert settings.persistence.database_url.get_secret_value() == "postgresql+pg8000://me@here/db"
    aws_env.delenv("DB_SECRET_ARN")
    aws_env.delenv("DATABASE_URL")
    local = Settings()
    assert resolve(local, lambda arn: pytest.fail("no secret may be read")) == (local, [])
    assert with_secrets(local, lambda arn: pytest.fail("no secret may be read")) is local


def test_a_malformed_secret_names_itself_not_its_value(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.setenv("DB_SECRET_ARN", "x")
    with pytest.raises(RuntimeError, match="database secret is not JSON") as info:
        resolve(Settings(), lambda arn: "hunter2-not-json")
    assert "hunter2" not in str(info.value)
