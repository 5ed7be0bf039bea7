"""`tradingbot operators ...` and `tradingbot telegram ...`: who steers which account, and the bot.

Mounted with ``app.add_typer(operators_app, name="operators")`` and ``app.add_typer(telegram_app,
name="telegram")``. Exit status: 0 done, 2 bad input (unknown operator or account, duplicate name),
1 the environment failed (database unreachable, Telegram unreachable or refusing).

An operator owns accounts (``--account``, repeatable; an account has one owner), may be reached
from Telegram chats (``--telegram-chat``: only mapped chats may command) and authenticates to the
operator API with a token (``operators token``: printed once, only its SHA-256 is stored) or, on
AWS, as the Cognito user whose ``sub`` is ``--cognito-sub``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from tradingbot.entrypoints.cli.accounts import _fail, _transaction, err, out

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

operators_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Operators and their accounts.")
telegram_app = typer.Typer(no_args_is_help=True, add_completion=False, help="The Telegram bot's webhook and polling.")


@contextmanager
def _tx() -> Iterator[Session]:
    with _transaction() as (session, _):
        yield session


def _account_ids(session: Session, names: list[str]) -> list[int]:
    from tradingbot.adapters.persistence import repositories as repo

    return [repo.get_account(session, n).id for n in names]


@operators_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="operator name")],
    account: Annotated[list[str] | None, typer.Option("--account", help="an account it owns (repeatable)")] = None,
    telegram_chat: Annotated[
        list[int] | None, typer.Option("--telegram-chat", help="a Telegram chat id that may command (repeatable)")
    ] = None,
    cognito_sub: Annotated[str | None, typer.Option(help="the Cognito user's sub claim (AWS)")] = None,
) -> None:
    """Create an operator, give it accounts and Telegram chats."""
    from tradingbot.adapters.persistence.repositories import operators as ops

    with _tx() as s:
        op = ops.create_operator(s, name=name, cognito_sub=cognito_sub)
        for account_id in _account_ids(s, account or []):
            ops.assign_account(s, operator_id=op.id, account_id=account_id)
        for chat in telegram_chat or []:
            ops.link_chat(s, operator_id=op.id, chat_id=chat)
    out.print(f"operator {name!r} created; accounts: {', '.join(account or []) or 'none'}; "
              f"telegram chats: {', '.join(map(str, telegram_chat or [])) or 'none'}")  # fmt: skip


@operators_app.command("assign")
def assign(
    name: Annotated[str, typer.Argument(help="operator name")],
    account: Annotated[list[str], typer.Option("--account", help="account to own (repeatable)")],
) -> None:
    """Make the operator the owner of accounts (replacing their previous owner)."""
    from tradingbot.adapters.persistence.repositories import operators as ops

    with _tx() as s:
        op = ops.get_operator(s, name)
        for account_id in _account_ids(s, account):
            ops.assign_account(s, operator_id=op.id, account_id=account_id)
    out.print(f"operator {name!r} now owns {', '.join(account)}")


@operators_app.command("link-chat")
def link_chat(
    name: Annotated[str, typer.Argument(help="operator name")],
    chat: Annotated[int, typer.Option("--telegram-chat", help="Telegram chat id")],
) -> None:
    """Allow a Telegram chat to command as the operator."""
    from tradingbot.adapters.persistence.repositories import operators as ops

    with _tx() as s:
        ops.link_chat(s, operator_id=ops.get_operator(s, name).id, chat_id=chat)
    out.print(f"chat {chat} commands as {name!r}")


@operators_app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="as JSON")] = False) -> None:
    """Operators with their accounts, chats and live token count (never a token)."""
    from rich.table import Table

    from tradingbot.adapters.persistence.repositories import operators as ops

    with _tx() as s:
        rows = ops.list_operators(s)
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    table = Table("name", "enabled", "accounts", "telegram chats", "live tokens", "cognito sub")
    for r in rows:
        table.add_row(r["name"], "yes" if r["enabled"] else "no", ", ".join(r["accounts"]) or "-",
                      ", ".join(map(str, r["telegram_chats"])) or "-", str(r["live_tokens"]),
                      r["cognito_sub"] or "-")  # fmt: skip
    out.print(table)


@operators_app.command("token")
def token(
    name: Annotated[str, typer.Argument(help="operator name")],
    ttl_days: Annotated[float, typer.Option(help="days until it expires")] = 30.0,
    label: Annotated[str, typer.Option(help="what it is for (shown in the audit)")] = "",
    revoke: Annotated[bool, typer.Option("--revoke", help="revoke every live token instead")] = False,
) -> None:
    """Print a new operator API token (shown once; only its SHA-256 is stored), or --revoke them all."""
    from tradingbot.adapters.persistence.repositories import operators as ops

    if not revoke and not 0 < ttl_days <= 3650:
        _fail(f"--ttl-days: must be in (0, 3650], got {ttl_days}", 2)
    with _tx() as s:
        op = ops.get_operator(s, name)
        if revoke:
            count = ops.revoke_tokens(s, operator_id=op.id)
        else:
            secret = ops.issue_token(s, operator_id=op.id, ttl=dt.timedelta(days=ttl_days), label=label)
        ops.audit(s, channel="cli", actor="cli", operator_id=op.id, command="revoke" if revoke else "token",
                  outcome="ok", args={"ttl_days": ttl_days} if not revoke else {})  # fmt: skip
    if revoke:
        out.print(f"revoked {count} token(s) of {name!r}")
        return
    err.print(f"operator token for {name!r}, valid {ttl_days:g} days (shown only now):")
    typer.echo(secret)


# ------------------------------------------------------------------ telegram


@telegram_app.command("set-webhook")
def set_webhook(url: Annotated[str, typer.Argument(help="public HTTPS URL ending in /telegram/webhook")]) -> None:
    """Point the bot at the webhook with the configured secret (TELEGRAM_WEBHOOK_SECRET), which
    Telegram then sends in X-Telegram-Bot-Api-Secret-Token on every update."""
    from tradingbot.adapters.notify import TelegramBot
    from tradingbot.errors import TradingBotError
    from tradingbot.settings import Settings

    s = Settings().pipeline
    if not s.telegram_token():
        _fail("TELEGRAM_BOT_TOKEN is not set", 2)
    if s.telegram_webhook_secret is None:
        _fail("TELEGRAM_WEBHOOK_SECRET is not set: the webhook refuses every update without it", 2)
    if not url.startswith("https://"):
        _fail(f"url: Telegram delivers webhooks over HTTPS only, got {url!r}", 2)
    try:
        TelegramBot(api_url=s.telegram_api_url, token=s.telegram_token()).set_webhook(
            url, secret_token=s.telegram_webhook_secret.get_secret_value()
        )
    except TradingBotError as exc:
        _fail(str(exc), 1)
    out.print(f"webhook set to {url}")


@telegram_app.command("poll")
def poll(once: Annotated[bool, typer.Option("--once", help="one getUpdates round, then exit")] = False) -> None:
    """Long-poll Telegram (getUpdates) and answer commands: for a machine without a public URL."""
    import threading

    from tradingbot.pipeline.runtime import Runtime, set_runtime
    from tradingbot.pipeline.telegram_commands import TelegramPoller
    from tradingbot.settings import Settings

    rt = Runtime(config=Settings())
    set_runtime(rt)
    if not rt.settings.telegram_token():
        _fail("TELEGRAM_BOT_TOKEN is not set", 2)
    poller = TelegramPoller(rt)
    if once:
        out.print(f"handled {poller.poll_once()} update(s)")
        return
    stop = threading.Event()
    out.print("polling Telegram (Ctrl-C stops)")
    try:
        poller.run(stop)
    except KeyboardInterrupt:
        stop.set()
