"""`tradingbot accounts ...` and `tradingbot keys ...`: manage trading accounts and their keys.

Mounted on the main CLI with ``app.add_typer(accounts_app, name="accounts")`` and
``app.add_typer(keys_app, name="keys")``. The database is ``DATABASE_URL``, or the local servers
that ``tradingbot servers up`` started. Exit status: 0 done, 2 bad input (unknown exchange,
duplicate name, invalid limits...), 1 the environment failed (database unreachable, wrong KEK).

Secrets are never options on the command line (shell history, ``ps``): API keys are prompted for
with hidden input or read from ``TRADINGBOT_API_KEY`` / ``TRADINGBOT_API_SECRET`` /
``TRADINGBOT_API_PASSPHRASE``; a new KEK for ``keys rotate`` comes from an environment variable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from tradingbot.entrypoints.cli.console import lazy_console

# Persistence (SQLAlchemy, pydantic-settings), cryptography and rich load inside the commands that
# use them, so `tradingbot --help` and `tradingbot accounts --help` stay fast.
if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from tradingbot.settings import PersistenceSection

# = tradingbot.adapters.persistence.models.EXCHANGES (a test keeps them equal); that module loads SQLAlchemy
EXCHANGES = ("paper", "binanceusdm", "okx")

accounts_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Trading accounts and webhook tokens.")
keys_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Exchange API keys, encrypted at rest.")

_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "140"))
out = lazy_console(width=_WIDTH, highlight=False)
err = lazy_console(stderr=True, width=_WIDTH, highlight=False)

NameOpt = Annotated[str, typer.Option("--name", help="account name")]


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _settings() -> PersistenceSection:
    """Read per command, not the process-wide cache: a test run invokes many commands in one process."""
    from tradingbot.settings import Settings

    return Settings().persistence


def _database_url(settings: PersistenceSection) -> str:
    from tradingbot.adapters.persistence.config import ServersNotConfiguredError, database_url

    try:
        return database_url(settings)
    except ServersNotConfiguredError as exc:
        _fail(str(exc), 1)


def _engine(settings: PersistenceSection) -> Engine:
    from tradingbot.adapters.persistence.db import check_connection, get_engine

    engine = get_engine(
        _database_url(settings),
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    check_connection(engine)
    return engine


@contextmanager
def _transaction() -> Iterator[tuple[Session, PersistenceSection]]:
    """One transaction per command; domain errors become a message and an exit status, no traceback."""
    from tradingbot.adapters.crypto import CryptoError
    from tradingbot.adapters.persistence.db import session_scope
    from tradingbot.adapters.persistence.errors import DatabaseUnavailable, PersistenceError

    settings = _settings()
    try:
        with session_scope(_engine(settings)) as session:
            yield session, settings
    except DatabaseUnavailable as exc:
        _fail(str(exc), 1)
    except CryptoError as exc:
        _fail(str(exc), 1)
    except PersistenceError as exc:
        _fail(str(exc), 2)


# ------------------------------------------------------------------ accounts


@accounts_app.command("add")
def add(
    name: NameOpt,
    exchange: Annotated[str, typer.Option(help=f"one of: {', '.join(EXCHANGES)}")],
    testnet: Annotated[bool, typer.Option("--testnet", help="use the exchange's testnet")] = False,
) -> None:
    """Create an account and print its webhook token (shown once; only its hash is stored)."""
    from tradingbot.adapters.persistence import repositories as repo

    with _transaction() as (session, _):
        account, token = repo.create_account(session, name=name, exchange=exchange, testnet=testnet)
        mode = _mode(exchange, testnet)
    out.print(f"account {account.name!r} created ({account.exchange}, {mode})")
    if exchange != "paper" and not testnet:
        out.print("[yellow]live account: orders will use real funds once keys are set[/]")
    out.print("webhook token (shown only now; put it in the TradingView alert):")
    out.print(token, soft_wrap=True)


@accounts_app.command("list")
def list_() -> None:
    """Accounts with their mode, risk limits and masked API key (never tokens or secrets)."""
    from rich.table import Table

    from tradingbot.adapters.persistence import repositories as repo

    with _transaction() as (session, _):
        accounts = repo.list_accounts(session)
        hints = repo.credential_hints(session)
        table = Table(
            "name",
            "exchange",
            "mode",
            "max pos USD",
            "max lev",
            "max daily loss",
            "max open",
            "risk %",
            "api key",
            "token rotated",
        )
        for a in accounts:
            table.add_row(
                a.name,
                a.exchange,
                _mode(a.exchange, a.testnet),
                _num(a.max_position_usd),
                str(a.max_leverage),
                _num(a.max_daily_loss_usd),
                str(a.max_open_positions),
                _num(a.risk_per_trade_pct),
                hints.get(a.id, "-"),
                a.token_rotated_at.strftime("%Y-%m-%d %H:%M"),
            )
    if not accounts:
        out.print("no accounts yet: tradingbot accounts add --name NAME --exchange paper")
        return
    out.print(table)


def _mode(exchange: str, testnet: bool) -> str:
    if exchange == "paper":
        return "simulated"
    return "testnet" if testnet else "live"


def _num(value: Decimal) -> str:
    return f"{value.normalize():f}"


@accounts_app.command("rotate-token")
def rotate_token(name: NameOpt) -> None:
    """Replace the account's webhook token; the old one stops working at once."""
    from tradingbot.adapters.persistence import repositories as repo

    with _transaction() as (session, _):
        token = repo.rotate_webhook_token(session, name)
    out.print(f"new webhook token for {name!r} (shown only now; update the TradingView alert):")
    out.print(token, soft_wrap=True)


@accounts_app.command("set-limits")
def set_limits(
    name: NameOpt,
    max_position_usd: Annotated[Decimal | None, typer.Option(help="largest position notional, USD")] = None,
    max_leverage: Annotated[int | None, typer.Option(help="1..125")] = None,
    max_daily_loss_usd: Annotated[Decimal | None, typer.Option(help="stop trading for the day beyond this")] = None,
    max_open_positions: Annotated[int | None, typer.Option(help="concurrent open positions")] = None,
    risk_per_trade_pct: Annotated[Decimal | None, typer.Option(help="equity risked per trade, percent")] = None,
    max_drawdown_pct: Annotated[
        Decimal | None, typer.Option(help="refuse new entries this far below the equity peak, percent")
    ] = None,
) -> None:
    """Change an account's risk limits (only the ones given)."""
    from tradingbot.adapters.persistence import repositories as repo

    with _transaction() as (session, _):
        account = repo.set_limits(
            session,
            name,
            max_position_usd=max_position_usd,
            max_leverage=max_leverage,
            max_daily_loss_usd=max_daily_loss_usd,
            max_open_positions=max_open_positions,
            risk_per_trade_pct=risk_per_trade_pct,
            max_drawdown_pct=max_drawdown_pct,
        )
        limits = repo.RiskLimits.of(account)
    out.print(
        f"limits for {name!r}: max position {_num(limits.max_position_usd)} USD, leverage {limits.max_leverage}x, "
        f"daily loss {_num(limits.max_daily_loss_usd)} USD, open positions {limits.max_open_positions}, "
        f"risk/trade {_num(limits.risk_per_trade_pct)}%, max drawdown {_num(limits.max_drawdown_pct)}%"
    )


@accounts_app.command("endpoints")
def endpoints(
    name: NameOpt,
    rest_url: Annotated[
        str | None, typer.Option(help="REST base URL, e.g. https://my.okx.com ('' = the EXCHANGE_* default)")
    ] = None,
    ws_url: Annotated[str | None, typer.Option(help="WebSocket base URL ('' = the EXCHANGE_* default)")] = None,
) -> None:
    """Point an account at other venue hosts (a regional OKX host, a local stand-in); shows them."""
    from tradingbot.adapters.persistence import repositories as repo
    from tradingbot.settings import Settings

    with _transaction() as (session, _):
        account = repo.set_venue_urls(session, name, rest_url=rest_url, ws_url=ws_url)
        urls, venue, testnet = dict(account.venue_urls or {}), account.exchange, account.testnet
    if venue == "paper":
        out.print(f"{name!r} is a paper account: it trades on no venue host")
        return
    defaults = Settings().exchange
    rest = urls.get("rest") or f"{defaults.rest_url(venue, testnet=testnet)} (default)"
    ws = urls.get("ws") or f"{defaults.ws_url(venue, testnet=testnet)} (default)"
    out.print(f"endpoints for {name!r} ({venue}): REST {rest}, WebSocket {ws}", soft_wrap=True)


# ------------------------------------------------------------------ keys


def _secret_input(given: str | None, prompt: str) -> str:
    return (
        given if given is not None else typer.prompt(prompt, hide_input=True, default="", show_default=False)
    ).strip()


@keys_app.command("set")
def set_keys(
    account: Annotated[str, typer.Option("--account", help="account name")],
    api_key: Annotated[str | None, typer.Option(envvar="TRADINGBOT_API_KEY", hidden=True)] = None,
    api_secret: Annotated[str | None, typer.Option(envvar="TRADINGBOT_API_SECRET", hidden=True)] = None,
    passphrase: Annotated[str | None, typer.Option(envvar="TRADINGBOT_API_PASSPHRASE", hidden=True)] = None,
) -> None:
    """Store an account's exchange API key and secret, encrypted (AES-256-GCM, envelope).

    Prompted for with hidden input, or read from TRADINGBOT_API_KEY, TRADINGBOT_API_SECRET and
    (OKX) TRADINGBOT_API_PASSPHRASE."""
    from tradingbot.adapters.crypto import ExchangeCredentials, Secret
    from tradingbot.adapters.persistence import repositories as repo
    from tradingbot.adapters.persistence.config import envelope_cipher

    with _transaction() as (session, settings):
        acct = repo.get_account(session, account)
        if acct.exchange == "paper":
            _fail("paper accounts trade against cached prices and need no API keys", 2)
        key = _secret_input(api_key, "API key")
        secret = _secret_input(api_secret, "API secret")
        phrase = _secret_input(passphrase, "Passphrase") if acct.exchange == "okx" else ""
        if not key or not secret:
            _fail("API key and secret must not be empty", 2)
        if acct.exchange == "okx" and not phrase:
            _fail("OKX API keys come with a passphrase; it is required", 2)
        creds = ExchangeCredentials(
            api_key=Secret(key),
            api_secret=Secret(secret, visible=0),
            passphrase=Secret(phrase, visible=0) if phrase else None,
        )
        cipher = envelope_cipher(settings)
        repo.store_credentials(session, acct, creds, cipher)
    out.print(f"keys stored for {account!r}: api key {creds.hint}, encrypted under KEK {cipher.provider.current().id}")


@keys_app.command("rotate")
def rotate_keys(
    new_kek_env: Annotated[
        str, typer.Option(help="environment variable holding the new KEK (base64, 32 bytes)")
    ] = "TRADINGBOT_NEW_KEK",
) -> None:
    """Re-encrypt every stored key under a new key-encryption key (one transaction: all or nothing).

    Locally with the generated ``.data/kek``, a new key is generated and the old one kept as
    ``kek.previous``. With TRADINGBOT_KEK, the new key comes from ``--new-kek-env``. With Secrets
    Manager, put the new key as the secret's current version first; the previous stays readable."""
    from tradingbot.adapters import crypto
    from tradingbot.adapters.crypto import CryptoError, EnvelopeCipher, Kek, RotatingProvider
    from tradingbot.adapters.persistence import repositories as repo
    from tradingbot.adapters.persistence.config import envelope_cipher

    settings = _settings()
    cipher = envelope_cipher(settings)
    new_text = os.environ.get(new_kek_env)
    key_file = settings.data_dir / "kek"
    pending: Path | None = None
    try:
        if new_text:
            cipher = EnvelopeCipher(RotatingProvider(Kek.from_base64(new_text), cipher.provider))
        elif settings.kek is not None:
            _fail(f"TRADINGBOT_KEK is set: put the new key in {new_kek_env} (base64 of 32 random bytes)", 2)
        elif settings.kek_secret_id is None:
            # Written before the database commit: if we die in between, the local provider still
            # finds kek.new, so nothing becomes unreadable.
            new = Kek.generate()
            pending = key_file.with_name("kek.new")
            crypto.write_key_file(pending, new)
            cipher = EnvelopeCipher(RotatingProvider(new, cipher.provider))
    except CryptoError as exc:
        _fail(str(exc), 2)
    with _transaction() as (session, _):
        done, skipped = repo.reencrypt_all_credentials(session, cipher)
    if pending is not None:
        os.replace(key_file, key_file.with_name("kek.previous"))
        os.replace(pending, key_file)
    new_id = cipher.provider.current().id
    out.print(f"re-encrypted {done} credential(s) under KEK {new_id}; {skipped} were already under it")
    if new_text:
        out.print(f"now set TRADINGBOT_KEK to the value of {new_kek_env}")
