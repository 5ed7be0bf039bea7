"""`tradingbot` command line. Bad input exits non-zero with a message naming what is wrong;
output files are written to a temporary name and renamed, so a failure never leaves half a file."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradingbot.domain.costs import SLIPPAGE_BPS, TAKER_FEE_RATE  # the one cost default (backtest, paper, validator)
from tradingbot.entrypoints.cli.accounts import accounts_app, keys_app
from tradingbot.entrypoints.cli.console import lazy_console
from tradingbot.entrypoints.cli.data import data_app
from tradingbot.entrypoints.cli.exchange import reconcile
from tradingbot.entrypoints.cli.feed import feed
from tradingbot.entrypoints.cli.model import model_app
from tradingbot.entrypoints.cli.operators import operators_app, telegram_app
from tradingbot.entrypoints.cli.optimise import optimize
from tradingbot.entrypoints.cli.params import params_app
from tradingbot.entrypoints.cli.pine import pine_app
from tradingbot.entrypoints.cli.pipeline import executions_app, kill_switch, replay, serve
from tradingbot.entrypoints.cli.pnl import pnl
from tradingbot.entrypoints.local.servers import servers_app

if TYPE_CHECKING:  # the commands import these when they run: `tradingbot --help` stays under 0.3 s
    import pandas as pd
    from rich.progress import Progress

    from tradingbot.domain.backtest import BacktestConfig

# Plain click help, not typer's rich help: rendering it imports typer.rich_utils (rich.markdown,
# markdown_it, rich.traceback), about 150 ms, half of the --help budget. Sub-groups inherit this.
app = typer.Typer(no_args_is_help=True, add_completion=False, help="TradingBot AI command line.", rich_markup_mode=None)
app.add_typer(accounts_app, name="accounts", help="Trading accounts, webhook tokens and risk limits.")
app.add_typer(keys_app, name="keys", help="Exchange API keys, encrypted at rest.")
app.add_typer(servers_app, name="servers", help="Local PostgreSQL and Redis (embedded) for `make run`.")
app.add_typer(executions_app, name="executions", help="Pipeline executions: list, show.")
app.add_typer(data_app, name="data", help="Candle history for research: download, list.")
app.add_typer(pine_app, name="pine", help="TradingView: Pine Script export, alert messages, script check.")
app.command()(serve)
app.command()(replay)
app.command("reconcile")(reconcile)
app.command("pnl")(pnl)
app.command("kill-switch")(kill_switch)
app.command("feed")(feed)
app.command("optimize")(optimize)  # issue 18: entrypoints/cli/optimise.py
app.add_typer(params_app, name="params", help="Live strategy parameters: show, promote, rollback.")
app.add_typer(model_app, name="model", help="LSTM price model: train, evaluate, export, list, predict.")
app.add_typer(operators_app, name="operators", help="Operators: who steers which accounts; API tokens.")
app.add_typer(telegram_app, name="telegram", help="The Telegram bot: set-webhook, poll.")
# When piped (CI logs, README tables) rich would wrap at 80 columns and cut strategy names.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "140"))
out = lazy_console(width=_WIDTH)
err = lazy_console(stderr=True, width=_WIDTH)


def fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def parse_params(pairs: list[str]) -> dict[str, str]:
    from tradingbot.domain.strategies import StrategyError

    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise StrategyError(f"--param {pair!r}: expected key=value")
        params[key.strip()] = value.strip()
    return params


def _progress() -> Progress:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
        TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=err, transient=True,
    )  # fmt: skip


Data = Annotated[Path | None, typer.Option(help="candles: .csv, .csv.gz or .parquet (else --symbol)")]
Symbol = Annotated[
    str | None,
    typer.Option(help="downloaded history of this ticker (tradingbot data download), else the packaged sample"),
]
Timeframe = Annotated[str, typer.Option(help="with --symbol: bar interval")]
Exchange = Annotated[str, typer.Option(help="with --symbol: binanceusdm or okx")]


def load_research_candles(data: Path | None, symbol: str | None, timeframe: str, exchange: str) -> pd.DataFrame:
    """``--data FILE``, or ``--symbol`` resolved to the downloaded history (else the packaged sample,
    labelled so on stderr). Raises CandleDataError / HistoryError with the reason."""
    from tradingbot.adapters.history import HistoryError, resolve_candles
    from tradingbot.domain.candles import load_candles

    if (data is None) == (symbol is None):
        raise HistoryError("give either --data FILE or --symbol TICKER [--timeframe 1h] [--exchange binanceusdm]")
    if data is not None:
        return load_candles(data)
    assert symbol is not None
    choice = resolve_candles(symbol, timeframe, exchange)
    style = "yellow" if choice.kind == "sample" else "green"
    err.print(f"[{style}]data:[/] {choice.label}", highlight=False)
    return choice.candles


Fee = Annotated[float, typer.Option(help="taker fee per side, fraction of notional")]
Slip = Annotated[float, typer.Option("--slippage-bps", help="adverse slippage on every fill, basis points")]


@app.command()
def backtest(
    data: Data = None,
    symbol: Symbol = None,
    timeframe: Timeframe = "1h",
    exchange: Exchange = "binanceusdm",
    strategy: Annotated[str | None, typer.Option(help="strategy name (see `tradingbot strategies`)")] = None,
    param: Annotated[list[str] | None, typer.Option(help="strategy parameter key=value, repeatable")] = None,
    all_: Annotated[bool, typer.Option("--all", help="run all strategies with defaults, print a table")] = False,
    fee: Fee = float(TAKER_FEE_RATE),
    slippage_bps: Slip = float(SLIPPAGE_BPS),
    leverage: Annotated[float, typer.Option(help="leverage (1-125)")] = 1.0,
    size: Annotated[float, typer.Option(help="fraction of equity per position (0-1]")] = 1.0,
    stop_loss: Annotated[float, typer.Option(help="stop-loss distance, fraction of entry (0 = off)")] = 0.0,
    take_profit: Annotated[float, typer.Option(help="take-profit distance, fraction of entry (0 = off)")] = 0.0,
    initial_cash: Annotated[float, typer.Option(help="starting balance, USDT")] = 10_000.0,
    json_out: Annotated[Path | None, typer.Option("--json", help="write metrics, trades and equity")] = None,
    report: Annotated[Path | None, typer.Option(help="write a self-contained HTML report")] = None,
) -> None:
    """Backtest one strategy (or --all) on a candle file or a symbol's downloaded history."""
    from tradingbot.adapters.history import HistoryError
    from tradingbot.domain.backtest import BacktestConfig, BacktestConfigError, run_strategy
    from tradingbot.domain.backtest.report import render_html, to_json  # plotly loads inside render_html
    from tradingbot.domain.candles import CandleDataError, find_gaps
    from tradingbot.domain.strategies import StrategyError, get_strategy

    try:
        if all_ == (strategy is not None):
            raise StrategyError("give either --strategy NAME or --all")
        if all_ and (param or json_out or report):
            raise StrategyError("--param, --json and --report apply to a single --strategy run")
        config = BacktestConfig(
            initial_cash=initial_cash, fee=fee, slippage_bps=slippage_bps, leverage=leverage, size=size,
            stop_loss=stop_loss, take_profit=take_profit,
        )  # fmt: skip
        if strategy is not None:
            strat = get_strategy(strategy)
            params = strat.resolve(parse_params(param or []))
        candles = load_research_candles(data, symbol, timeframe, exchange)
    except (CandleDataError, StrategyError, BacktestConfigError, HistoryError) as exc:
        fail(str(exc))
        return
    for gap in find_gaps(candles)[:5]:
        err.print(f"[yellow]warning:[/] {gap.missing_bars} bar(s) missing between {gap.after} and {gap.before}")

    if all_:
        _backtest_all(candles, config)
        return

    with _progress() as progress:
        task = progress.add_task(f"backtest {strat.name}", total=1 + bool(json_out) + bool(report))
        result = run_strategy(candles, strat, params, config)
        progress.advance(task)
        if json_out:
            with atomic_write(json_out) as tmp:
                tmp.write_text(to_json(result))
            progress.advance(task)
        if report:
            with atomic_write(report) as tmp:
                tmp.write_text(render_html(result), encoding="utf-8")
            progress.advance(task)
    _print_metrics(result.strategy, result.params, result.metrics)


def _print_metrics(name: str, params: dict[str, Any], metrics: dict[str, float | int]) -> None:
    from rich.table import Table

    table = Table(title=f"{name} " + " ".join(f"{k}={v}" for k, v in params.items()))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.6g}" if isinstance(value, float) else str(value))
    out.print(table)


def _backtest_all(candles: pd.DataFrame, config: BacktestConfig) -> None:
    from rich.table import Table

    from tradingbot.domain.backtest import run_strategy
    from tradingbot.domain.indicators import Indicators
    from tradingbot.domain.strategies import REGISTRY

    ind = Indicators(candles)
    rows = []
    with _progress() as progress:
        task = progress.add_task("strategies", total=len(REGISTRY))
        for name in REGISTRY:
            rows.append(run_strategy(candles, name, None, config, indicators=ind))
            progress.advance(task)
    table = Table(title=f"All strategies, defaults, {len(candles):,} bars, fee {config.fee * 100:.3f} % a side")
    for col in ("strategy", "trades", "win rate", "return", "max drawdown", "Sharpe", "fees (USDT)"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for r in rows:
        m = r.metrics
        table.add_row(
            r.strategy, str(m["trades"]), f"{m['win_rate'] * 100:.1f} %", f"{m['total_return'] * 100:+.2f} %",
            f"{m['max_drawdown'] * 100:.2f} %", f"{m['sharpe']:.2f}", f"{m['fees']:,.0f}",
        )  # fmt: skip
    out.print(table)


@app.command()
def strategies() -> None:
    """List the registered strategies and their parameters."""
    from tradingbot.domain.strategies import REGISTRY

    for strat in REGISTRY.values():
        out.print(f"[bold]{strat.name}[/]: {strat.description}")
        for p in strat.params:
            out.print(f"  {p.name} ({p.kind}) default {p.default}, range {p.low}..{p.high} step {p.step}  {p.help}")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
