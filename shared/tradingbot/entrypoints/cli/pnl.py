"""``tradingbot pnl --account NAME [--days N] [--equity] [--sync] [--json]``: the account's realised
PnL per UTC day (venue realised PnL, fees, funding, net) and its equity series with the current
drawdown, as the accounting sync stored them from the venue's own records (pipeline/accounting.py).

Mount it with ``app.command("pnl")(pnl)``. Exit status: 0, 1 database or venue unreachable,
2 bad input (unknown account, --days < 1)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from tradingbot.entrypoints.cli.console import lazy_console

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from tradingbot.adapters.persistence.repositories.accounting import DailyPnl

_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "140"))
out = lazy_console(width=_WIDTH, highlight=False)
err = lazy_console(stderr=True, width=_WIDTH, highlight=False)


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@dataclass
class PnlView:
    """What the command shows: the days, the equity series and its drawdown, the sync's state."""

    account: str
    exchange: str
    days: list[DailyPnl]
    equity: list[tuple[dt.datetime, Decimal]]
    peak: Decimal | None
    drawdown_pct: Decimal | None
    max_drawdown_pct: Decimal
    max_daily_loss_usd: Decimal
    last_sync: dt.datetime | None
    last_error: str | None
    fills_fee_unknown: int
    sync: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account, "exchange": self.exchange,
            "days": [{"day": d.day.isoformat(), "realized_pnl": str(d.realized), "fees": str(d.fees),
                      "funding": str(d.funding), "net": str(d.net), "trades": d.trades,
                      "other_fees": {k: str(v) for k, v in d.other_fees.items()}} for d in self.days],
            "equity": [{"at": at.isoformat(), "equity": str(e)} for at, e in self.equity],
            "peak": None if self.peak is None else str(self.peak),
            "drawdown_pct": None if self.drawdown_pct is None else str(self.drawdown_pct),
            "max_drawdown_pct": str(self.max_drawdown_pct), "max_daily_loss_usd": str(self.max_daily_loss_usd),
            "last_sync": self.last_sync.isoformat() if self.last_sync else None, "last_error": self.last_error,
            "fills_fee_unknown": self.fills_fee_unknown, "sync": self.sync,
        }  # fmt: skip


def run_pnl(engine: Engine, account: str, days: int, *, sync: Any = None) -> PnlView:
    """The command's work without the CLI (tests call this). ``sync``: an exchange factory; when
    given, one accounting pass runs first."""
    from tradingbot.adapters.persistence import repositories as repo
    from tradingbot.adapters.persistence.db import session_scope
    from tradingbot.adapters.persistence.repositories import accounting as acc
    from tradingbot.domain.accounting import drawdown, utc_day_start

    if days < 1:
        raise ValueError(f"--days: {days} is not a positive number of days")

    def sessions() -> Any:
        return session_scope(engine)

    with sessions() as s:
        row = repo.get_account(s, account)
        account_id, exchange = row.id, row.exchange
        limits = (Decimal(row.max_drawdown_pct), Decimal(row.max_daily_loss_usd))
    report = None
    if sync is not None:
        from tradingbot.pipeline.accounting import sync_account
        from tradingbot.pipeline.order_service import load_account

        settings = load_account(sessions, account_id)
        assert settings is not None
        report = sync_account(sessions, sync(settings), account_id).to_dict()
    since = utc_day_start(dt.datetime.now(dt.UTC)) - dt.timedelta(days=days - 1)
    with sessions() as s:
        daily = acc.daily_pnl(s, account_id, since=since)
        series = acc.equity_series(s, account_id)
        cursor = acc.cursor(s, account_id)
        unknown = acc.fills_with_unknown_fee(s, account_id)
    dd = drawdown(series)
    return PnlView(
        account=account, exchange=exchange, days=daily, equity=[p for p in series if p[0] >= since],
        peak=dd.peak if dd else None, drawdown_pct=dd.pct if dd else None, max_drawdown_pct=limits[0],
        max_daily_loss_usd=limits[1], last_sync=cursor.last_sync_at if cursor else None,
        last_error=cursor.last_error if cursor else None, fills_fee_unknown=unknown, sync=report,
    )  # fmt: skip


def _num(value: Decimal, places: int = 2) -> str:
    return f"{value:,.{places}f}"


def _render(view: PnlView, show_equity: bool) -> None:
    from rich.table import Table

    table = Table(title=f"{view.account} ({view.exchange}): realised PnL per UTC day, from the venue's records")
    for name in ("day", "trades", "realised PnL", "fees", "funding", "net"):
        table.add_column(name, justify="left" if name == "day" else "right")
    for d in view.days:
        fees = _num(d.fees, 4) + "".join(f" + {_num(v, 6)} {k}" for k, v in d.other_fees.items())
        table.add_row(d.day.isoformat(), str(d.trades), _num(d.realized, 4), fees, _num(d.funding, 4), _num(d.net, 4))
    if view.days:
        out.print(table)
    else:
        out.print(f"{view.account}: no trades or funding recorded in the window")
    if view.peak is not None and view.drawdown_pct is not None and view.equity:
        out.print(
            f"equity {_num(view.equity[-1][1])} USDT, peak {_num(view.peak)} USDT, drawdown "
            f"{view.drawdown_pct:.2f} % (limit {view.max_drawdown_pct:g} %); daily loss limit "
            f"{_num(view.max_daily_loss_usd)} USDT"
        )
    else:
        out.print("equity: no snapshot yet (run `tradingbot reconcile` or `tradingbot pnl --sync`)")
    if show_equity and view.equity:
        eq = Table(title="equity series")
        eq.add_column("at (UTC)")
        eq.add_column("equity USDT", justify="right")
        for at, e in view.equity:
            eq.add_row(at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"), _num(e, 4))
        out.print(eq)
    synced = view.last_sync.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if view.last_sync else "never"
    out.print(f"last sync {synced} UTC" + (f"; last error: {view.last_error}" if view.last_error else ""))
    if view.fills_fee_unknown:
        out.print(f"{view.fills_fee_unknown} fill(s) with the fee not known yet (the venue's trade list lagged)")


def pnl(
    account: Annotated[str, typer.Option("--account", help="account name")],
    days: Annotated[int, typer.Option("--days", help="UTC days back, today included")] = 7,
    equity: Annotated[bool, typer.Option("--equity", help="also print the equity series")] = False,
    sync: Annotated[bool, typer.Option("--sync", help="pull the venue's trades, funding and balance first")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
) -> None:
    """Realised PnL per UTC day and the equity series with its drawdown (the venue's own records)."""
    from tradingbot.adapters.cache import Cache
    from tradingbot.adapters.crypto import CryptoError
    from tradingbot.adapters.persistence.config import ServersNotConfiguredError, database_url, envelope_cipher
    from tradingbot.adapters.persistence.config import redis_url as redis_url_of
    from tradingbot.adapters.persistence.db import check_connection, get_engine
    from tradingbot.adapters.persistence.errors import PersistenceError, UnknownAccount
    from tradingbot.settings import Settings

    settings = Settings().persistence
    try:
        engine = get_engine(database_url(settings), connect_timeout_s=settings.db_connect_timeout_s)
        check_connection(engine)
        factory = None
        if sync:
            from tradingbot.adapters.persistence.db import session_scope
            from tradingbot.pipeline.order_service import default_exchange_factory

            cache = Cache.from_url(redis_url_of(settings), timeout_s=settings.redis_timeout_s)
            factory = default_exchange_factory(lambda: session_scope(engine), cache, envelope_cipher(settings))
        view = run_pnl(engine, account, days, sync=factory)
    except UnknownAccount as exc:
        _fail(str(exc), 2)
    except ValueError as exc:
        _fail(str(exc), 2)
    except (PersistenceError, CryptoError, ServersNotConfiguredError) as exc:
        _fail(str(exc), 1)
    if as_json:
        out.print_json(json.dumps(view.to_dict()))
    else:
        _render(view, equity)
