"""`tradingbot params show | promote | rollback`: the live strategy parameters per account, strategy,
symbol and timeframe (what the Strategies stage and the win-rate rule use), and their history."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

from tradingbot.entrypoints.cli.console import lazy_console

params_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Live strategy parameters.")
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "140"))
out = lazy_console(width=_WIDTH, highlight=False)
err = lazy_console(stderr=True, width=_WIDTH, highlight=False)

Account = Annotated[str, typer.Option("--account", help="account name")]
Strategy = Annotated[str, typer.Option(help="strategy name")]
Symbol = Annotated[str, typer.Option(help="ticker, e.g. ETHUSDT")]
Timeframe = Annotated[str, typer.Option(help="bar interval")]


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _ticker(symbol: str) -> str:
    return symbol.upper().removesuffix(".P")  # as tradingbot.domain.alert normalises the alert's symbol


@params_app.command("show")
def show(
    account: Annotated[str | None, typer.Option("--account", help="only this account")] = None,
    history: Annotated[int, typer.Option(help="also list this many latest decisions per account")] = 0,
) -> None:
    """The live parameters (no row: the strategy's defaults) and, with --history, the decisions."""
    from rich.table import Table

    from tradingbot.adapters.persistence import repositories as repo
    from tradingbot.adapters.persistence.repositories import optimisation as opt_repo
    from tradingbot.entrypoints.cli.accounts import _transaction

    with _transaction() as (s, _):
        accounts = [a for a in repo.list_accounts(s) if account is None or a.name == account]
        if account is not None and not accounts:
            _fail(f"--account: no account named {account!r}")
        names = {a.id: a.name for a in accounts}
        table = Table(title="live strategy parameters")
        for col in ("account", "strategy", "symbol", "timeframe", "params", "set by", "since"):
            table.add_column(col)
        for a in accounts:
            for row in opt_repo.list_live_parameters(s, account_id=a.id):
                table.add_row(names[a.id], row.strategy, row.symbol, row.timeframe, json.dumps(row.params),
                              f"promotion #{row.promotion_id}", f"{row.updated_at:%Y-%m-%d %H:%M}")  # fmt: skip
        out.print(table)
        if not table.rows:
            out.print("no promoted parameters: every strategy trades its defaults")
        for a in accounts if history else []:
            for p in opt_repo.promotions(s, account_id=a.id, limit=history):
                mark = "[green]promoted[/]" if p.promoted else "[yellow]not promoted[/]"
                run = f" run #{p.run_id}" if p.run_id else ""
                out.print(f"#{p.id} {p.created_at:%Y-%m-%d %H:%M} {a.name} {p.strategy} {p.symbol} {p.timeframe} "
                          f"{p.action}{run}: {mark} {json.dumps(p.params)}: {p.reason}")  # fmt: skip


@params_app.command("promote")
def promote(
    account: Account,
    run: Annotated[int, typer.Option(help="a stored run (tradingbot optimize --walk-forward K --store)")],
) -> None:
    """Promote a stored run's parameters for one account: only when its out-of-sample result beats
    the account's current parameters and buy-and-hold by OPTIMISE_PROMOTION_MARGIN (and passes the
    deflated Sharpe guard). The decision is stored either way; exit 1 when not promoted."""
    from tradingbot.adapters.persistence import repositories as repo
    from tradingbot.entrypoints.cli.accounts import _transaction
    from tradingbot.pipeline.common import StageError
    from tradingbot.pipeline.optimise import policy_from, promote_stored_run
    from tradingbot.settings import Settings

    policy = policy_from(Settings().optimise)
    try:
        with _transaction() as (s, _):
            acc = repo.find_account(s, account)
            if acc is None:
                raise StageError(f"--account: no account named {account!r}")
            outcome = promote_stored_run(s, run_id=run, account_id=acc.id, policy=policy)
    except StageError as exc:
        _fail(str(exc))
        return
    out.print(f"{outcome.account}: {outcome.reason} (promotion #{outcome.promotion_id})")
    if not outcome.promoted:
        raise typer.Exit(1)


@params_app.command("rollback")
def rollback(
    account: Account,
    strategy: Strategy,
    symbol: Symbol,
    timeframe: Timeframe = "1h",
    reason: Annotated[str, typer.Option(help="why (stored with the rollback)")] = "operator rollback",
) -> None:
    """Back to the parameters in force before the live ones (or the defaults); stored as a decision."""
    from tradingbot.adapters.persistence import repositories as repo
    from tradingbot.entrypoints.cli.accounts import _transaction
    from tradingbot.pipeline.common import StageError
    from tradingbot.pipeline.optimise import Job
    from tradingbot.pipeline.optimise import rollback as do_rollback

    try:
        with _transaction() as (s, _):
            acc = repo.find_account(s, account)
            if acc is None:
                raise StageError(f"--account: no account named {account!r}")
            params, pid = do_rollback(
                s, account_id=acc.id, job=Job(strategy, _ticker(symbol), timeframe), reason=reason
            )
    except StageError as exc:
        _fail(str(exc))
        return
    now = "the defaults" if params is None else json.dumps(params)
    out.print(f"{account} {strategy} {_ticker(symbol)} {timeframe}: now {now} (promotion #{pid})")
