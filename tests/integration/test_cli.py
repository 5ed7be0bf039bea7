"""`accounts` and `keys` commands through typer's CliRunner against the real database."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner, Result

from tradingbot.adapters.crypto import EnvelopeCipher, Kek, KeyRing, local_key_file_provider
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.config import Servers
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import Account, ApiCredential
from tradingbot.entrypoints.cli.accounts import accounts_app, keys_app

from .conftest import database_url_with_password

TOKEN_RE = re.compile(r"tbwh_[A-Za-z0-9_-]{43}")
API_KEY = "k" * 20 + "WXYZ"
API_SECRET = "s" * 40 + "9876"


@pytest.fixture
def env(servers: Servers, db: Engine, tmp_path: Path) -> dict[str, str | None]:
    kek = Kek.generate().to_base64()
    return {
        "DATABASE_URL": servers.database_url,
        "TRADINGBOT_KEK": kek,
        "TRADINGBOT_KEK_PREVIOUS": None,
        "TRADINGBOT_DATA_DIR": str(tmp_path),
        "TRADINGBOT_API_KEY": None,
        "TRADINGBOT_API_SECRET": None,
        "TRADINGBOT_API_PASSPHRASE": None,
        "TRADINGBOT_NEW_KEK": None,
        "TRADINGBOT_KEK_SECRET_ID": None,
    }


def run(app: object, args: list[str], env: Mapping[str, str | None], input: str | None = None) -> Result:
    return CliRunner().invoke(app, args, env=env, input=input)  # type: ignore[arg-type]


def _add(env: Mapping[str, str | None], name: str, exchange: str = "binanceusdm", *extra: str) -> str:
    result = run(accounts_app, ["add", "--name", name, "--exchange", exchange, *extra], env)
    assert result.exit_code == 0, result.output
    tokens = TOKEN_RE.findall(result.output)
    assert len(tokens) == 1
    return str(tokens[0])


def test_add_prints_the_token_once_and_stores_only_its_hash(env: dict[str, str | None], db: Engine) -> None:
    token = _add(env, "main", "binanceusdm", "--testnet")
    with session_scope(db) as s:
        account = s.scalars(select(Account)).one()
        assert (account.name, account.exchange, account.testnet) == ("main", "binanceusdm", True)
        assert account.webhook_token_hash == repo.hash_token(token)
        assert token.encode() not in account.webhook_token_hash
        assert repo.find_account_by_token(s, token) is not None
    listing = run(accounts_app, ["list"], env)
    assert listing.exit_code == 0
    assert "main" in listing.output and "testnet" in listing.output
    assert token not in listing.output


def test_unknown_exchange_and_duplicate_name(env: dict[str, str | None], db: Engine) -> None:
    bad = run(accounts_app, ["add", "--name", "x", "--exchange", "kraken"], env)
    assert bad.exit_code == 2
    assert "unknown exchange 'kraken'" in bad.output and "binanceusdm" in bad.output
    assert "Traceback" not in bad.output

    _add(env, "dup", "paper")
    again = run(accounts_app, ["add", "--name", "dup", "--exchange", "okx"], env)
    assert again.exit_code == 2
    assert "account named 'dup' already exists" in again.output
    assert not TOKEN_RE.search(again.output)
    with session_scope(db) as s:
        assert [a.exchange for a in s.scalars(select(Account))] == ["paper"]


def test_rotate_token_invalidates_the_old_one(env: dict[str, str | None], db: Engine) -> None:
    old = _add(env, "rot", "paper")
    result = run(accounts_app, ["rotate-token", "--name", "rot"], env)
    assert result.exit_code == 0
    (new,) = TOKEN_RE.findall(result.output)
    assert new != old
    with session_scope(db) as s:
        assert repo.find_account_by_token(s, old) is None
        found = repo.find_account_by_token(s, new)
        assert found is not None and found.name == "rot"
    missing = run(accounts_app, ["rotate-token", "--name", "nobody"], env)
    assert missing.exit_code == 2 and "no account named 'nobody'" in missing.output


def test_set_limits(env: dict[str, str | None], db: Engine) -> None:
    _add(env, "lim", "okx")
    ok = run(accounts_app, ["set-limits", "--name", "lim", "--max-leverage", "5", "--max-position-usd", "2500"], env)
    assert ok.exit_code == 0, ok.output
    assert "leverage 5x" in ok.output and "max position 2500 USD" in ok.output
    bad = run(accounts_app, ["set-limits", "--name", "lim", "--max-leverage", "200"], env)
    assert bad.exit_code == 2 and "max leverage must be between 1 and 125" in bad.output
    with session_scope(db) as s:
        assert repo.get_account(s, "lim").max_leverage == 5


def test_keys_set_encrypts_and_list_masks(env: dict[str, str | None], db: Engine) -> None:
    _add(env, "bn", "binanceusdm")
    result = run(keys_app, ["set", "--account", "bn"], env, input=f"{API_KEY}\n{API_SECRET}\n\n")
    assert result.exit_code == 0, result.output
    assert API_KEY not in result.output and API_SECRET not in result.output
    assert "****WXYZ" in result.output
    listing = run(accounts_app, ["list"], env)
    assert "****WXYZ" in listing.output and API_KEY not in listing.output
    kek = env["TRADINGBOT_KEK"]
    assert kek is not None
    with session_scope(db) as s:
        account = repo.get_account(s, "bn")
        creds = repo.load_credentials(s, account, EnvelopeCipher(KeyRing.from_base64(kek)))
        assert creds is not None and creds.api_secret.reveal() == API_SECRET


def test_keys_set_refuses_paper_and_okx_without_passphrase(env: dict[str, str | None]) -> None:
    _add(env, "pp", "paper")
    _add(env, "ok", "okx")
    paper = run(
        keys_app,
        ["set", "--account", "pp"],
        {**env, "TRADINGBOT_API_KEY": API_KEY, "TRADINGBOT_API_SECRET": API_SECRET},
    )
    assert paper.exit_code == 2 and "need no API keys" in paper.output
    okx = run(keys_app, ["set", "--account", "ok"], env, input=f"{API_KEY}\n{API_SECRET}\n\n")
    assert okx.exit_code == 2 and "passphrase" in okx.output


def test_keys_rotate_with_a_new_kek_from_the_environment(env: dict[str, str | None], db: Engine) -> None:
    _add(env, "bn", "binanceusdm")
    run(keys_app, ["set", "--account", "bn"], env, input=f"{API_KEY}\n{API_SECRET}\n\n")
    new = Kek.generate()
    result = run(keys_app, ["rotate"], {**env, "TRADINGBOT_NEW_KEK": new.to_base64()})
    assert result.exit_code == 0, result.output
    assert f"re-encrypted 1 credential(s) under KEK {new.id}" in result.output
    assert new.to_base64() not in result.output
    with session_scope(db) as s:
        assert s.scalars(select(ApiCredential.kek_id)).one() == new.id
    # the old key alone no longer opens it: the CLI reports it instead of printing garbage
    listing = run(accounts_app, ["list"], env)
    assert listing.exit_code == 0
    with session_scope(db) as s:
        creds = repo.load_credentials(s, repo.get_account(s, "bn"), EnvelopeCipher(KeyRing(new)))
        assert creds is not None and creds.api_key.reveal() == API_KEY


def test_keys_rotate_with_the_local_key_file(env: dict[str, str | None], db: Engine, tmp_path: Path) -> None:
    file_env = {**env, "TRADINGBOT_KEK": None}
    _add(file_env, "bn", "binanceusdm")
    assert run(keys_app, ["set", "--account", "bn"], file_env, input=f"{API_KEY}\n{API_SECRET}\n\n").exit_code == 0
    before = (tmp_path / "kek").read_text()
    result = run(keys_app, ["rotate"], file_env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "kek").read_text() != before
    assert (tmp_path / "kek.previous").read_text() == before
    assert not (tmp_path / "kek.new").exists()
    current = Kek.from_base64((tmp_path / "kek").read_text())
    with session_scope(db) as s:
        assert s.scalars(select(ApiCredential.kek_id)).one() == current.id
        creds = repo.load_credentials(s, repo.get_account(s, "bn"), EnvelopeCipher(local_key_file_provider(tmp_path)))
        assert creds is not None and creds.api_secret.reveal() == API_SECRET


def test_wrong_kek_is_reported_not_garbage(env: dict[str, str | None], db: Engine) -> None:
    _add(env, "bn", "binanceusdm")
    run(keys_app, ["set", "--account", "bn"], env, input=f"{API_KEY}\n{API_SECRET}\n\n")
    wrong = {
        **env,
        "TRADINGBOT_KEK": base64.b64encode(os.urandom(32)).decode(),
        "TRADINGBOT_NEW_KEK": Kek.generate().to_base64(),
    }
    result = run(keys_app, ["rotate"], wrong)
    assert result.exit_code == 1
    assert "encrypted under key-encryption key" in result.output and "not configured" in result.output
    with session_scope(db) as s:  # nothing changed
        assert s.scalars(select(ApiCredential.kek_id)).one() == Kek.from_base64(str(env["TRADINGBOT_KEK"])).id


def test_database_unreachable_names_the_url_without_password(
    env: dict[str, str | None], servers: Servers, closed_port: int
) -> None:
    url = database_url_with_password(f"postgresql://trader@127.0.0.1:{closed_port}/tradingbot", "hunter2-secret")
    result = run(accounts_app, ["list"], {**env, "DATABASE_URL": url})
    assert result.exit_code == 1
    assert f"cannot reach the database at postgresql+pg8000://trader:***@127.0.0.1:{closed_port}/tradingbot" in (
        result.output
    )
    assert "hunter2-secret" not in result.output
    assert "Traceback" not in result.output
