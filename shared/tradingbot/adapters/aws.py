"""Cold-start adapter for AWS: turn the CDK's secret ARNs into the settings the domain reads.

The CDK app (cdk/tradingbot_infra/compute.py) gives each Lambda ``DB_SECRET_ARN``, ``DB_HOST``
(the RDS Proxy), ``REDIS_HOST`` / ``REDIS_AUTH_SECRET_ARN`` and ``<PROVIDER>_SECRET_ARN``; the domain
reads ``DATABASE_URL``, ``REDIS_URL``, ``OPENAI_API_KEY`` ... This module fetches each secret once
per cold start and sets the variables that are not already set (an explicit value wins). Locally
none of the ARNs exist and nothing happens. Secret values are never logged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, MutableMapping
from typing import Any
from urllib.parse import quote

SecretReader = Callable[[str], str]

# provider secret -> {JSON field: environment variable}
PROVIDER_FIELDS: dict[str, dict[str, str]] = {
    "OPENAI": {"api_key": "OPENAI_API_KEY"},
    "ANTHROPIC": {"api_key": "ANTHROPIC_API_KEY"},
    "TELEGRAM": {"bot_token": "TELEGRAM_BOT_TOKEN", "chat_id": "TELEGRAM_CHAT_ID"},
}


def secrets_manager_reader(region: str | None = None) -> SecretReader:
    import boto3  # adapter only

    client = boto3.client("secretsmanager", region_name=region or os.environ.get("AWS_REGION", "us-east-1"))

    def read(arn: str) -> str:
        return str(client.get_secret_value(SecretId=arn)["SecretString"])

    return read


def _json(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise RuntimeError(f"{what} secret is not JSON") from None  # the value itself stays out of errors
    if not isinstance(value, dict):
        raise RuntimeError(f"{what} secret must be a JSON object")
    return value


def resolve(env: MutableMapping[str, str], read: SecretReader) -> list[str]:
    """Fill ``env`` from the secrets its ARNs name; returns the variable names it set."""
    set_names: list[str] = []

    def put(name: str, value: str) -> None:
        if value and not env.get(name):
            env[name] = value
            set_names.append(name)

    if env.get("DB_SECRET_ARN") and not env.get("DATABASE_URL"):
        creds = _json(read(env["DB_SECRET_ARN"]), "database")
        host = env.get("DB_HOST") or str(creds.get("host", ""))
        port = env.get("DB_PORT") or str(creds.get("port", 5432))
        name = env.get("DB_NAME") or str(creds.get("dbname", "tradingbot"))
        user, password = quote(str(creds["username"]), safe=""), quote(str(creds["password"]), safe="")
        url = f"postgresql+pg8000://{user}:{password}@{host}:{port}/{name}"
        if env.get("DB_SSLMODE") in ("require", "verify-full"):
            url += "?sslmode=verify-full"  # RDS Proxy's certificate is publicly trusted (ACM)
        put("DATABASE_URL", url)
    if env.get("REDIS_HOST") and not env.get("REDIS_URL"):
        token = read(env["REDIS_AUTH_SECRET_ARN"]).strip() if env.get("REDIS_AUTH_SECRET_ARN") else ""
        scheme = "rediss" if env.get("REDIS_TLS", "").lower() == "true" else "redis"
        auth = f":{quote(token, safe='')}@" if token else ""
        put("REDIS_URL", f"{scheme}://{auth}{env['REDIS_HOST']}:{env.get('REDIS_PORT', '6379')}/0")
    for provider, fields in PROVIDER_FIELDS.items():
        arn = env.get(f"{provider}_SECRET_ARN")
        if not arn or all(env.get(v) for v in fields.values()):
            continue
        values = _json(read(arn), provider.lower())
        for field, variable in fields.items():
            value = str(values.get(field, ""))
            if value and value != "REPLACE_ME":  # an unfilled secret stays "not configured"
                put(variable, value)
    return set_names


_done = False


def load_aws_environment() -> None:
    """Once per process; a no-op unless the Lambda was given secret ARNs."""
    global _done  # noqa: PLW0603 - once per cold start by design
    if _done:
        return
    if any(k.endswith("_SECRET_ARN") for k in os.environ):
        resolve(os.environ, secrets_manager_reader())
    _done = True
