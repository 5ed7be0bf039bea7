"""The cold-start adapter against moto's Secrets Manager, shaped like the CDK app's secrets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from sqlalchemy.engine import make_url

from tradingbot.adapters.aws import resolve, secrets_manager_reader


@pytest.fixture
def secrets() -> Iterator[dict[str, str]]:
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


def test_urls_and_keys_come_from_the_secrets(secrets: dict[str, str]) -> None:
    env = {
        "DB_SECRET_ARN": secrets["db"], "DB_HOST": "proxy.rds.amazonaws.com", "DB_PORT": "5432",
        "DB_NAME": "tradingbot", "DB_SSLMODE": "require", "REDIS_HOST": "master.cache.amazonaws.com",
        "REDIS_PORT": "6379", "REDIS_TLS": "true", "REDIS_AUTH_SECRET_ARN": secrets["redis"],
        "OPENAI_SECRET_ARN": secrets["openai"], "ANTHROPIC_SECRET_ARN": secrets["anthropic"],
        "TELEGRAM_SECRET_ARN": secrets["telegram"],
    }  # fmt: skip
    names = resolve(env, secrets_manager_reader("us-east-1"))
    url = make_url(env["DATABASE_URL"])
    assert (url.drivername, url.host, url.username, url.password, url.database) == (
        "postgresql+pg8000",
        "proxy.rds.amazonaws.com",
        "tradingbot",
        "p@ss/w:rd?",
        "tradingbot",
    )  # the password survives URL quoting, and the proxy (not the instance) is the host
    assert url.query["sslmode"] == "verify-full"
    assert env["REDIS_URL"] == "rediss://:AUTHtoken0123456789@master.cache.amazonaws.com:6379/0"
    assert env["OPENAI_API_KEY"] == "sk-test-1234"
    assert "ANTHROPIC_API_KEY" not in env  # an unfilled secret means "not configured", not a key
    assert (env["TELEGRAM_BOT_TOKEN"], env["TELEGRAM_CHAT_ID"]) == ("123:abc", "42")
    assert set(names) == {"DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID"}


def test_explicit_values_win_and_nothing_happens_without_arns(secrets: dict[str, str]) -> None:
    env = {"DB_SECRET_ARN": secrets["db"], "DATABASE_URL": "postgresql+pg8000://me@here/db"}
    assert resolve(env, secrets_manager_reader("us-east-1")) == []
    assert env["DATABASE_URL"] == "postgresql+pg8000://me@here/db"
    assert resolve({}, lambda arn: pytest.fail("no secret may be read")) == []


def test_a_malformed_secret_names_itself_not_its_value(secrets: dict[str, str]) -> None:
    with pytest.raises(RuntimeError, match="database secret is not JSON") as info:
        resolve({"DB_SECRET_ARN": "x"}, lambda arn: "hunter2-not-json")
    assert "hunter2" not in str(info.value)
