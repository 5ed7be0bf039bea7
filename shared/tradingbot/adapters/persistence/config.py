"""Settings for persistence, secrets and cache, read once per cold start.

Every setting has a default that works locally: with no DATABASE_URL / REDIS_URL the CLI uses the
servers that ``tradingbot servers up`` started (their URLs are in ``.data/servers.json``), and with no
TRADINGBOT_KEK a random key-encryption key is created once in ``.data/kek`` (mode 0600).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from tradingbot.adapters.crypto import EnvelopeCipher


class PersistenceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    redis_url: SecretStr | None = Field(default=None, validation_alias="REDIS_URL")
    # Lambda: a cold start must not hang on an unreachable database; RDS answers in milliseconds.
    db_connect_timeout_s: float = Field(default=5.0, validation_alias="DB_CONNECT_TIMEOUT_S")
    # Sent as a startup parameter (no SET, so RDS Proxy does not pin the session); 0 disables.
    db_statement_timeout_ms: int = Field(default=10_000, validation_alias="DB_STATEMENT_TIMEOUT_MS")
    redis_timeout_s: float = Field(default=0.25, validation_alias="REDIS_TIMEOUT_S")
    # base64 of 32 random bytes; previous keys (comma separated) stay readable during a rotation.
    kek: SecretStr | None = Field(default=None, validation_alias="TRADINGBOT_KEK")
    kek_previous: SecretStr | None = Field(default=None, validation_alias="TRADINGBOT_KEK_PREVIOUS")
    # On AWS: the Secrets Manager secret holding the KEK (AWSCURRENT, and AWSPREVIOUS for rotation).
    kek_secret_id: str | None = Field(default=None, validation_alias="TRADINGBOT_KEK_SECRET_ID")
    data_dir: Path = Field(default=Path(".data"), validation_alias="TRADINGBOT_DATA_DIR")


@lru_cache(maxsize=1)
def get_settings() -> PersistenceSettings:
    return PersistenceSettings()


STATE_FILE = "servers.json"


@dataclass(frozen=True)
class Servers:
    """The URLs of the local servers ``tradingbot servers up`` started (kept in ``.data/servers.json``)."""

    database_url: str
    redis_url: str


def read_state(data_dir: Path) -> Servers | None:
    """The servers ``start_detached`` left running, or None if there are none (or they died)."""
    path = data_dir / STATE_FILE
    if not path.exists():
        return None
    servers = Servers(**json.loads(path.read_text()))
    if not (data_dir / "pg" / "postmaster.pid").exists() and "127.0.0.1" in servers.database_url:
        path.unlink()
        return None
    return servers


class ServersNotConfiguredError(RuntimeError):
    """Neither the environment nor ``.data/servers.json`` names a server to use."""


def _local_servers(settings: PersistenceSettings, what: str) -> tuple[str, str]:
    state = read_state(settings.data_dir)
    if state is None:
        raise ServersNotConfiguredError(f"no {what}: set {what.upper()}_URL, or start local servers with "
                                        "`tradingbot servers up`")  # fmt: skip
    return state.database_url, state.redis_url


def database_url(settings: PersistenceSettings) -> str:
    """DATABASE_URL, else the local servers' database."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return _local_servers(settings, "database")[0]


def redis_url(settings: PersistenceSettings) -> str:
    """REDIS_URL, else the local servers' Redis."""
    if settings.redis_url is not None:
        return settings.redis_url.get_secret_value()
    return _local_servers(settings, "redis")[1]


def envelope_cipher(settings: PersistenceSettings) -> EnvelopeCipher:
    """The cipher for stored exchange keys under the configured key-encryption key(s)."""
    from tradingbot.adapters.crypto import EnvelopeCipher, key_provider

    provider = key_provider(
        kek=settings.kek.get_secret_value() if settings.kek else None,
        previous=settings.kek_previous.get_secret_value() if settings.kek_previous else None,
        secret_id=settings.kek_secret_id,
        data_dir=settings.data_dir,
    )
    return EnvelopeCipher(provider)
