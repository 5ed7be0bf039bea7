"""Where the database, Redis and the key-encryption key come from (``Settings.persistence``).

With no DATABASE_URL / REDIS_URL the URLs of the servers ``tradingbot servers up`` started are used
(``.data/servers.json``), and with no TRADINGBOT_KEK a random key-encryption key is created once in
``.data/kek`` (mode 0600). The settings themselves live in :mod:`tradingbot.settings`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tradingbot.errors import PermanentError

if TYPE_CHECKING:
    from tradingbot.adapters.crypto import EnvelopeCipher
    from tradingbot.settings import PersistenceSection


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


class ServersNotConfiguredError(PermanentError, RuntimeError):
    """Neither the environment nor ``.data/servers.json`` names a server to use."""


def _local_servers(settings: PersistenceSection, what: str) -> tuple[str, str]:
    state = read_state(settings.data_dir)
    if state is None:
        raise ServersNotConfiguredError(f"no {what}: set {what.upper()}_URL, or start local servers with "
                                        "`tradingbot servers up`")  # fmt: skip
    return state.database_url, state.redis_url


def database_url(settings: PersistenceSection) -> str:
    """DATABASE_URL, else the local servers' database."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return _local_servers(settings, "database")[0]


def redis_url(settings: PersistenceSection) -> str:
    """REDIS_URL, else the local servers' Redis."""
    if settings.redis_url is not None:
        return settings.redis_url.get_secret_value()
    return _local_servers(settings, "redis")[1]


def envelope_cipher(settings: PersistenceSection) -> EnvelopeCipher:
    """The cipher for stored exchange keys under the configured key-encryption key(s)."""
    from tradingbot.adapters.crypto import EnvelopeCipher, key_provider

    provider = key_provider(
        kek=settings.kek.get_secret_value() if settings.kek else None,
        previous=settings.kek_previous.get_secret_value() if settings.kek_previous else None,
        secret_id=settings.kek_secret_id,
        data_dir=settings.data_dir,
    )
    return EnvelopeCipher(provider)
