"""Cold-start adapter for AWS: turn the CDK's secret ARNs into the settings' secret-backed fields.

The CDK app (cdk/tradingbot_infra/lambdas.py) gives each Lambda ``DB_SECRET_ARN``, ``DB_HOST``
(the RDS Proxy), ``REDIS_HOST`` / ``REDIS_AUTH_SECRET_ARN`` and ``<PROVIDER>_SECRET_ARN``
(``Settings.aws``). :func:`with_secrets` reads each secret once per cold start and returns a copy
of the settings with the database URL, the Redis URL, the AI keys and the Telegram token filled in
as ``SecretStr``; a value set explicitly (``DATABASE_URL`` ...) wins and its secret is not read.
Nothing is written to ``os.environ``: a secret there would be inherited by every subprocess and
readable by any library that dumps the environment. Secret values are never logged.

Secrets are read with Powertools' Parameters utility, which caches each value in memory for
``max_age`` seconds (https://docs.powertools.aws.dev/lambda/python/latest/utilities/parameters/).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from pydantic import SecretStr

from tradingbot.settings import Settings

SecretReader = Callable[[str], str]

# Settings are resolved once per cold start, so this only bounds how long a warm container that
# asks again (the KEK provider) may serve a value a rotation replaced; Powertools 3's own default.
SECRET_MAX_AGE_S = 300

# provider secret -> (settings section, {JSON field: (setting, environment variable it replaces)})
PROVIDER_FIELDS: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "openai": ("ai", {"api_key": ("openai_api_key", "OPENAI_API_KEY")}),
    "anthropic": ("ai", {"api_key": ("anthropic_api_key", "ANTHROPIC_API_KEY")}),
    "telegram": ("pipeline", {"bot_token": ("telegram_bot_token", "TELEGRAM_BOT_TOKEN"),
                              "chat_id": ("telegram_chat_id", "TELEGRAM_CHAT_ID"),
                              "webhook_secret": ("telegram_webhook_secret", "TELEGRAM_WEBHOOK_SECRET")}),
}  # fmt: skip
_SECRET_FIELDS = {
    "database_url",
    "redis_url",
    "openai_api_key",
    "anthropic_api_key",
    "telegram_bot_token",
    "telegram_webhook_secret",
}


def secrets_manager_reader(max_age_s: int = SECRET_MAX_AGE_S) -> SecretReader:
    """Read a secret string through Powertools (boto3 and its region come from the Lambda)."""

    def read(arn: str) -> str:
        from aws_lambda_powertools.utilities import parameters  # loads boto3: only when there are ARNs

        return str(parameters.get_secret(arn, max_age=max_age_s))

    return read


def _json(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise RuntimeError(f"{what} secret is not JSON") from None  # the value itself stays out of errors
    if not isinstance(value, dict):
        raise RuntimeError(f"{what} secret must be a JSON object")
    return value


def _is_set(value: object) -> bool:
    return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)


def resolve(settings: Settings, read: SecretReader) -> tuple[Settings, list[str]]:
    """A copy of ``settings`` with what its ARNs name filled in, and the variables that were filled."""
    aws = settings.aws
    updates: dict[str, dict[str, Any]] = {"persistence": {}, "ai": {}, "pipeline": {}}
    filled: list[str] = []

    def put(section: str, name: str, variable: str, value: str) -> None:
        if value and not _is_set(getattr(getattr(settings, section), name)):
            updates[section][name] = SecretStr(value) if name in _SECRET_FIELDS else value
            filled.append(variable)

    if aws.db_secret_arn and settings.persistence.database_url is None:
        creds = _json(read(aws.db_secret_arn), "database")
        host = aws.db_host or str(creds.get("host", ""))
        port = aws.db_port or creds.get("port", 5432)
        name = aws.db_name or str(creds.get("dbname", "tradingbot"))
        user, password = quote(str(creds["username"]), safe=""), quote(str(creds["password"]), safe="")
        url = f"postgresql+pg8000://{user}:{password}@{host}:{port}/{name}"
        if aws.db_sslmode in ("require", "verify-full"):
            url += "?sslmode=verify-full"  # RDS Proxy's certificate is publicly trusted (ACM)
        put("persistence", "database_url", "DATABASE_URL", url)
    if aws.redis_host and settings.persistence.redis_url is None:
        token = read(aws.redis_auth_secret_arn).strip() if aws.redis_auth_secret_arn else ""
        scheme = "rediss" if aws.redis_tls else "redis"
        auth = f":{quote(token, safe='')}@" if token else ""
        put("persistence", "redis_url", "REDIS_URL", f"{scheme}://{auth}{aws.redis_host}:{aws.redis_port}/0")
    for provider, (section, fields) in PROVIDER_FIELDS.items():
        arn = getattr(aws, f"{provider}_secret_arn")
        current = getattr(settings, section)
        if not arn or all(_is_set(getattr(current, name)) for name, _ in fields.values()):
            continue
        values = _json(read(arn), provider)
        for field, (name, variable) in fields.items():
            value = str(values.get(field, ""))
            if value != "REPLACE_ME":  # an unfilled secret stays "not configured"
                put(section, name, variable, value)
    copies = {k: getattr(settings, k).model_copy(update=v) for k, v in updates.items() if v}
    return (settings.model_copy(update=copies) if copies else settings), filled


def with_secrets(settings: Settings, read: SecretReader | None = None) -> Settings:
    """``settings`` with its secrets resolved; the same object when no ARN is configured (locally)."""
    if not settings.aws.has_secrets():
        return settings
    return resolve(settings, read or secrets_manager_reader())[0]
