"""`tradingbot optimize`: grid or genetic search, alone or walked forward, on a symbol's downloaded
history (or a candle file); prints the folds and the evidence, writes the HTML report / JSON, and
with ``--store`` / ``--promote`` keeps the run in PostgreSQL and judges it for promotion."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from tradingbot.domain.costs import SLIPPAGE_BPS, TAKER_FEE_RATE
from tradingbot.entrypoints.cli.console import lazy_console

if TYPE_CHECKING:
    from tradingbot.domain.optimise import OptimisationResult

_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "140"))
out = lazy_console(width=_WIDTH, highlight=False)
err = lazy_console(stderr=True, width=_WIDTH, highlight=False)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(2)


def optimize(
    strategy: Annotated[str, typer.Option(help="strategy name (see `tradingbot strategies`)")],
    symbol: Annotated[
        str | None, typer.Option(help="downloaded history of this ticker, else the packaged sample")
    ] = None,
    timeframe: Annotated[str, typer.Option(help="with --symbol: bar interval")] = "1h",
    exchange: Annotated[str, typer.Option(help="with --symbol: binanceusdm or okx")] = "binanceusdm",
    data: Annotated[Path | None, typer.Option(help="candles: .csv, .csv.gz or .parquet (else --symbol)")] = None,
    method: Annotated[str, typer.Option(help="grid (every valid combination) or genetic (NSGA-II)")] = "grid",
    walk_forward: Annotated[int, typer.Option("--walk-forward", help="K out-of-sample folds (0: in sample only)")] = 0,
    window: Annotated[str, typer.Option(help="with --walk-forward: rolling or anchored")] = "rolling",
    in_sample_ratio: Annotated[float, typer.Option(help="in-sample bars per out-of-sample bar")] = 3.0,
    objective: Annotated[
        list[str] | None,
        typer.Option(help="statistic to optimise (repeat for multi-objective, e.g. total_return and max_drawdown)"),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="key=v1,v2,... values to try (default: the declared range)")
    ] = None,
    budget: Annotated[int | None, typer.Option(help="genetic: backtests per window (default 20 % of the grid)")] = None,
    population: Annotated[int, typer.Option(help="genetic: population per generation")] = 20,
    seed: Annotated[int, typer.Option(help="genetic: random seed")] = 0,
    min_trades: Annotated[int, typer.Option(help="in-sample trades a combination needs to be chosen")] = 1,
    fee: Annotated[float, typer.Option(help="taker fee per side, fraction of notional")] = float(TAKER_FEE_RATE),
    slippage_bps: Annotated[float, typer.Option("--slippage-bps", help="slippage on every fill, bps")] = float(
        SLIPPAGE_BPS
    ),
    leverage: float = 1.0,
    size: float = 1.0,
    top: Annotated[int, typer.Option(help="rows to print (no walk-forward)")] = 10,
    sort_by: Annotated[str | None, typer.Option(help="alias of --objective (one statistic)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the run (folds, every candidate)")] = None,
    report: Annotated[Path | None, typer.Option(help="write a self-contained HTML report")] = None,
    store: Annotated[bool, typer.Option("--store", help="keep the run (folds, candidates) in PostgreSQL")] = False,
    promote: Annotated[
        bool, typer.Option("--promote", help="store, then promote if the out-of-sample evidence is good enough")
    ] = False,
    account: Annotated[list[str] | None, typer.Option(help="with --promote: account name(s); default all")] = None,
) -> None:
    """Grid or genetic search of one strategy's parameters, optionally walked forward."""
    from tradingbot.adapters.history import HistoryError, resolve_candles
    from tradingbot.domain.backtest import BacktestConfig, BacktestConfigError
    from tradingbot.domain.candles import CandleDataError, load_candles
    from tradingbot.domain.optimise import OptimiseError, SearchSpace, SearchSpec, WalkForwardSpec
    from tradingbot.domain.strategies import StrategyError
    from tradingbot.entrypoints.cli import _progress, atomic_write, parse_params

    objectives = tuple(objective or ([sort_by] if sort_by else ["sharpe"]))
    try:
        ranges = {k: v.split(",") for k, v in parse_params(param or []).items()}
        space = SearchSpace.of(strategy, ranges=ranges)
        if method not in ("grid", "genetic"):
            raise OptimiseError(f"--method {method!r}: choose grid or genetic")
        search = SearchSpec(method=method, objectives=objectives, min_trades=min_trades, budget=budget,  # type: ignore[arg-type]
                            population=population, seed=seed)  # fmt: skip
        if window not in ("rolling", "anchored"):
            raise OptimiseError(f"--window {window!r}: choose rolling or anchored")
        kind: Literal["rolling", "anchored"] = "rolling" if window == "rolling" else "anchored"
        wf = WalkForwardSpec(folds=walk_forward, window=kind, in_sample_ratio=in_sample_ratio) if walk_forward else None
        if promote and wf is None:
            raise OptimiseError("--promote needs out-of-sample evidence: add --walk-forward K")
        if (store or promote) and data is not None:
            raise OptimiseError("--store / --promote need --symbol (a run is kept per market), not --data")
        config = BacktestConfig(fee=fee, slippage_bps=slippage_bps, leverage=leverage, size=size)
        if (data is None) == (symbol is None):
            raise HistoryError("give either --data FILE or --symbol TICKER [--timeframe 1h] [--exchange binanceusdm]")
        if data is not None:
            candles, label = load_candles(data), f"file {data}"
        else:
            assert symbol is not None
            choice = resolve_candles(symbol, timeframe, exchange)
            candles, label = choice.candles, choice.label
            err.print(f"[{'yellow' if choice.kind == 'sample' else 'green'}]data:[/] {label}", highlight=False)
        if wf is not None:
            wf.windows(len(candles))  # a window longer than the history: said now, not after the search
    except (CandleDataError, StrategyError, BacktestConfigError, HistoryError, OptimiseError) as exc:
        _fail(str(exc))
        return
    if method == "genetic":
        try:
            import optuna  # noqa: F401
        except ImportError:
            _fail("--method genetic needs optuna: pip install 'tradingbot[optimise]'")
    windows = (wf.folds + 1) if wf else 1
    grid_size = len(space.points())
    per_window = grid_size if method == "grid" else min(grid_size, budget or max(population, -(-grid_size // 5)))
    started = dt.datetime.now(dt.UTC)
    from tradingbot.pipeline.optimise import Job, run_job

    job = Job(strategy, (symbol or "FILE").upper().removesuffix(".P"), timeframe, exchange)
    with _progress() as progress:
        task = progress.add_task(f"{method} {strategy}", total=per_window * windows)
        try:
            result = run_job(job, candles, search=search, walk_forward=wf, ranges=ranges, config=config,
                             progress=lambda k: progress.advance(task, k))  # fmt: skip
        except OptimiseError as exc:
            _fail(str(exc))
            return
    _print(result, top)
    if json_out:
        from tradingbot.domain.optimise.report import to_json

        with atomic_write(json_out) as tmp:
            tmp.write_text(to_json(result))
    if report:
        from tradingbot.domain.optimise.report import render_html

        with atomic_write(report) as tmp:
            tmp.write_text(render_html(result, data_label=label), encoding="utf-8")
        err.print(f"report: {report}")
    if store or promote:
        _store(result, job, label, candles, started, promote, account or [])


def _print(result: OptimisationResult, top: int) -> None:
    from rich.table import Table

    from tradingbot.domain.optimise.evaluate import row_metrics

    obj = result.search.objectives[0]
    if not result.folds:
        import pandas as pd

        frame = pd.DataFrame(
            [p | row_metrics(r) for p, r in zip(result.latest.params, result.latest.table, strict=True)]
        )
        frame = frame.sort_values(obj, ascending=obj in ("max_drawdown", "fees"))
        out.print(f"{len(frame):,} combinations, best by {obj}:")
        typer.echo(frame.head(top).to_string(index=False, line_width=200))
    else:
        table = Table(title=f"{result.strategy}: {len(result.folds)} folds ({result.walk_forward.window})")  # type: ignore[union-attr]
        for col in ("fold", "out of sample", "params", f"IS {obj}", f"OOS {obj}", "OOS return", "current", "buy&hold",
                    "trades", "status"):  # fmt: skip
            table.add_column(col)
        for f in result.folds:
            o = f.out_of_sample_metrics or {}
            table.add_row(
                str(f.index), f"{f.times['out_of_sample_start'][:10]} .. {f.times['out_of_sample_end'][:10]}",
                json.dumps(f.params), f"{(f.in_sample_metrics or {}).get(obj, float('nan')):.3f}",
                f"{o.get(obj, float('nan')):.3f}", f"{o.get('total_return', 0) * 100:+.2f} %",
                f"{f.baseline_return * 100:+.2f} %", f"{f.buy_hold_return * 100:+.2f} %", str(int(o.get("trades", 0))),
                f.status,
            )  # fmt: skip
        out.print(table)
        s = result.summary

        def num(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.3f}"

        out.print(
            f"out of sample: {s['out_of_sample_return'] * 100:+.2f} % over {s['out_of_sample_bars']:,} bars, "
            f"{s['out_of_sample_trades']} trades; current parameters {s['baseline_return'] * 100:+.2f} %, "
            f"buy-and-hold {s['buy_hold_return'] * 100:+.2f} %; walk-forward efficiency "
            f"{num(s['walk_forward_efficiency'])}; deflated Sharpe {num(s['deflated_sharpe'])}; "
            f"stability {num((s['stability'] or {}).get('score'))}"
        )
    out.print(f"recommended: {json.dumps(result.recommended)} ({result.recommended_reason}); "
              f"{result.evaluations:,} backtests")  # fmt: skip


def _store(
    result: OptimisationResult, job: object, label: str, candles: object, started: dt.datetime, promote: bool,
    accounts: list[str],
) -> None:  # fmt: skip
    from tradingbot.adapters.history import CandleChoice
    from tradingbot.adapters.persistence import repositories as repo
    from tradingbot.entrypoints.cli.accounts import _engine, _settings
    from tradingbot.pipeline.optimise import Job, policy_from, store_and_promote
    from tradingbot.settings import Settings

    assert isinstance(job, Job)
    engine = _engine(_settings())
    ids: list[int] | None = None
    if accounts:
        from tradingbot.adapters.persistence.db import session_scope

        with session_scope(engine) as s:
            found = {name: repo.find_account(s, name) for name in accounts}
        missing = [n for n, a in found.items() if a is None]
        if missing:
            _fail(f"--account: no account named {', '.join(missing)}")
        ids = [a.id for a in found.values() if a is not None]
    policy = policy_from(Settings().optimise) if promote else None
    choice = CandleChoice(candles, label, "", "history")  # type: ignore[arg-type]
    run_id, outcomes = store_and_promote(
        engine, result, job=job, choice=choice, started_at=started, policy=policy, account_ids=ids
    )
    out.print(f"stored: run #{run_id} ({len(result.folds)} folds)")
    for o in outcomes:
        out.print(f"  {o.account}: {o.reason} (promotion #{o.promotion_id})")
