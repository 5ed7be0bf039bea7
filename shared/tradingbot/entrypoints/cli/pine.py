"""`tradingbot pine export|alert-message|check`: the TradingView side (domain/pine, docs/tradingview.md).

Exit status: 0 done (for ``check``: every alert yields a body the webhook accepts), 1 ``check``
found something to fix, 2 bad input (unknown strategy, bad parameter, unreadable file).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from tradingbot.entrypoints.cli.console import lazy_console

out = lazy_console(highlight=False, soft_wrap=True)
err = lazy_console(stderr=True, highlight=False)
pine_app = typer.Typer(no_args_is_help=True, add_completion=False, help="TradingView: Pine Script and alert messages.")


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            _fail(f"--param {pair!r}: expected NAME=VALUE, e.g. --param fast=10")
        params[key.strip()] = value.strip()
    return params


@pine_app.command("export")
def export(
    strategy: Annotated[str, typer.Option(help="a built-in strategy (`tradingbot strategies`)")],
    param: Annotated[list[str] | None, typer.Option("--param", help="NAME=VALUE, repeatable")] = None,
    stop_loss_pct: Annotated[float, typer.Option(help="stop-loss input's default, % of entry (0 = off)")] = 0.0,
    take_profit_pct: Annotated[float, typer.Option(help="take-profit input's default, % of entry (0 = off)")] = 0.0,
    out_file: Annotated[Path | None, typer.Option("--out", help="write here instead of standard output")] = None,
) -> None:
    """A Pine Script v5 strategy() with our indicators, parameters, rules and webhook alert messages."""
    from tradingbot.domain.pine import export_script
    from tradingbot.domain.strategies import StrategyError

    try:
        script = export_script(
            strategy=strategy, params=_params(param or []),
            stop_loss_pct=stop_loss_pct, take_profit_pct=take_profit_pct,
        )  # fmt: skip
    except (StrategyError, ValueError) as exc:
        _fail(str(exc))
    if out_file is None:
        sys.stdout.write(script)
        return
    out_file.write_text(script, encoding="utf-8")
    err.print(f"wrote {out_file} ({len(script.splitlines())} lines); in TradingView: Pine Editor -> paste -> "
              "Add to chart, then Create Alert with Message {{strategy.order.alert_message}}")  # fmt: skip


@pine_app.command("alert-message")
def alert_message_cmd(
    strategy: Annotated[str, typer.Option(help="the strategy name the alert reports (a built-in one)")],
    account: Annotated[
        str | None,
        typer.Option(
            help="the account the alert is for (its token is not stored in clear: paste the one `accounts add` printed)"
        ),
    ] = None,
) -> None:
    """The message to paste into TradingView's alert dialog for your own Pine strategy."""
    from tradingbot.domain.pine import TOKEN_PLACEHOLDER, alert_message
    from tradingbot.domain.strategies import StrategyError

    try:
        message = alert_message(strategy=strategy)
    except StrategyError as exc:
        _fail(str(exc))
    sys.stdout.write(message + "\n")
    who = f"account {account!r}" if account else "the account"
    err.print(
        f"Replace {TOKEN_PLACEHOLDER} with {who}'s webhook token (`tradingbot accounts rotate-token` issues a new "
        "one). TradingView fills {{ticker}}, {{close}}, {{timenow}}, {{interval}} and "
        "{{strategy.market_position}} when the alert fires."
    )


@pine_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="a Pine Script file")],
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON")] = False,
) -> None:
    """Report a script's version, kind, inputs and alerts, and whether each alert body passes our webhook."""
    from tradingbot.domain.pine.check import PineError, check_script, render_report

    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(f"{file}: no such file")
    except UnicodeDecodeError:
        _fail(f"{file}: not a text file (expected UTF-8 Pine Script)")
    except OSError as exc:
        _fail(f"{file}: {exc.strerror}")
    try:
        report = check_script(text)
    except PineError as exc:
        _fail(f"{file}: {exc}")
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2, default=str) + "\n")
    else:
        for line in render_report(report, path=str(file)):
            out.print(line, markup=False)
    if not report.ok:
        raise typer.Exit(1)
