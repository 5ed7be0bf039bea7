"""``tradingbot reconcile [--account NAME] [--fix]``: compare stored orders and positions with the
exchange, report drift, and with ``--fix`` repair it (see tradingbot.pipeline.reconcile).

Mount it with ``app.command("reconcile")(reconcile)``. Exit status: 0 in sync (or all drift
fixed), 3 drift found and not fixed, 1 database or exchange unreachable, 2 bad input."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from tradingbot.entrypoints.cli.console import lazy_console

# The pipeline, persistence (SQLAlchemy), Redis and the exchange adapters load when the command runs,
# so `tradingbot --help` does not pay for them.
if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from tradingbot.adapters.cache import Cache
    from tradingbot.adapters.crypto import EnvelopeCipher
    from tradingbot.pipeline.reconcile import ReconcileReport
    from tradingbot.settings import PersistenceSection

_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "140"))
out = lazy_console(width=_WIDTH, highlight=False)
err = lazy_console(stderr=True, width=_WIDTH, highlight=False)


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _urls(settings: PersistenceSection) -> tuple[str, str]:
    from tradingbot.adapters.persistence.config import ServersNotConfiguredError, database_url, redis_url

    try:
        return database_url(settings), redis_url(settings)
    except ServersNotConfiguredError as exc:
        _fail(str(exc), 1)


def _print(name: str, report: ReconcileReport) -> None:
    if not report.drifts:
        out.print(
            f"{name}: in sync ({report.orders_checked} live orders, {report.positions_checked} positions checked)"
        )
        return
    for d in report.drifts:
        mark = "fixed" if d.fixed else "drift"
        out.print(f"{name}: {mark} {d.kind} {d.key}: stored {d.stored!r}, exchange {d.exchange!r} -> {d.repair}")


def run_reconcile(
    engine: Engine, cache: Cache, cipher: EnvelopeCipher, account: str | None, fix: bool
) -> list[ReconcileReport]:
    """The command's work without the CLI around it (tests call this)."""
    from tradingbot.adapters.persistence import repositories as repo
    from tradingbot.adapters.persistence.db import session_scope
    from tradingbot.adapters.persistence.errors import UnknownAccount
    from tradingbot.pipeline.order_service import default_exchange_factory, load_account
    from tradingbot.pipeline.reconcile import ResendGuard, reconcile_account
    from tradingbot.settings import Settings

    def sessions() -> AbstractContextManager[Session]:
        return session_scope(engine)

    with sessions() as s:
        accounts = repo.account_refs(s, account)
    if account is not None and not accounts:
        raise UnknownAccount(account)
    factory = default_exchange_factory(sessions, cache, cipher)
    # the cache: kill switch and order gate for an entry proven never placed (sent again with --fix,
    # unless EXCHANGE_RECONCILE_RESEND_UNPLACED=false)
    config = Settings()
    resend = cache if config.exchange.reconcile_resend_unplaced else None
    # resent only while fresh and near its price (EXCHANGE_RECONCILE_RESEND_MAX_AGE_S, VALIDATE_MAX_PRICE_DEVIATION_PCT)
    guard = ResendGuard.from_settings(config.exchange, config.pipeline)
    reports = []
    for ref in accounts:
        settings = load_account(sessions, ref.id)
        assert settings is not None
        reports.append(reconcile_account(sessions, factory(settings), ref.id, fix=fix, cache=resend,
                                         resend_guard=guard))  # fmt: skip
    return reports


def reconcile(
    account: Annotated[
        str | None, typer.Option("--account", help="account name (default: every enabled account)")
    ] = None,
    fix: Annotated[bool, typer.Option("--fix", help="repair the drift found (default: report only)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the reports as JSON")] = False,
) -> None:
    """Compare stored orders and positions with the exchange; report (or --fix) the drift."""
    from tradingbot.adapters.cache import Cache
    from tradingbot.adapters.crypto import CryptoError
    from tradingbot.adapters.persistence.config import envelope_cipher
    from tradingbot.adapters.persistence.db import check_connection, get_engine
    from tradingbot.adapters.persistence.errors import PersistenceError
    from tradingbot.domain.exchange import ExchangeError
    from tradingbot.settings import Settings

    settings = Settings().persistence  # this command's own read (a test run shares the process)
    db_url, redis_url = _urls(settings)
    try:
        engine = get_engine(db_url, connect_timeout_s=settings.db_connect_timeout_s)
        check_connection(engine)
        cache = Cache.from_url(redis_url, timeout_s=settings.redis_timeout_s)
        reports = run_reconcile(engine, cache, envelope_cipher(settings), account, fix)
    except (PersistenceError, CryptoError) as exc:
        _fail(str(exc), 2 if "no account" in str(exc) else 1)
    except ExchangeError as exc:
        _fail(str(exc), 1)
    if as_json:
        out.print_json(json.dumps([r.to_dict() for r in reports]))
    else:
        for r in reports:
            _print(f"account {r.account_id}", r)
    if any(not d.fixed for r in reports for d in r.drifts):
        raise typer.Exit(3)


reconcile_app = typer.Typer(help="Reconcile stored orders and positions with the exchanges.")
reconcile_app.command("run")(reconcile)
