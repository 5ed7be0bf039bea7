"""`tradingbot data download|list`: candle history for research (adapters/history.py).

Exit status: 0 done, 2 bad input or a venue answer that cannot be stored, 1 the venue (or S3)
did not answer: run again, the download resumes from the last stored bar.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from typing import Annotated, NoReturn

import typer

from tradingbot.entrypoints.cli.console import lazy_console

_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "140"))
out = lazy_console(width=_WIDTH, highlight=False)
err = lazy_console(stderr=True, width=_WIDTH, highlight=False)
data_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Candle history for research.")


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _date(text: str, option: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        _fail(f"{option} {text!r}: expected a date like 2023-01-01 or 2023-01-01T00:00Z")
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@data_app.command("download")
def download(
    symbol: Annotated[str, typer.Option(help="ticker, e.g. ETHUSDT (a USDT perpetual)")],
    since: Annotated[str, typer.Option(help="first bar's date (UTC), e.g. 2023-01-01; ignored when resuming")],
    timeframe: Annotated[str, typer.Option(help="bar interval, e.g. 1m, 15m, 1h, 4h, 1d")] = "1h",
    exchange: Annotated[str, typer.Option(help="binanceusdm or okx")] = "binanceusdm",
    until: Annotated[str | None, typer.Option(help="stop before this date (default: now)")] = None,
    allow_gaps: Annotated[
        bool, typer.Option("--allow-gaps", help="store a series with holes the venue has (reported)")
    ] = False,
    uri: Annotated[str | None, typer.Option(help="folder or s3://bucket/prefix (default: HISTORY_URI)")] = None,
) -> None:
    """Download closed candles with ccxt (public endpoints, paginated); a second run continues
    from the last stored bar. Writes {root}/{exchange}/{SYMBOL}-{tf}.parquet."""
    from tradingbot.adapters.history import (
        DownloadReport,
        HistoryError,
        HistoryKey,
        HistoryStore,
        HistoryUnavailable,
        ccxt_client,
    )
    from tradingbot.adapters.history import download as run_download
    from tradingbot.settings import FeedSection, HistorySection

    try:
        key = HistoryKey.parse(exchange, symbol, timeframe)
    except HistoryError as exc:
        _fail(str(exc))
    start = _date(since, "--since")
    stop = _date(until, "--until") if until else None
    history = HistorySection()  # this command's own read
    feed = FeedSection()
    store = HistoryStore(uri or history.root())
    rest_url = feed.okx_rest_url if key.exchange == "okx" else feed.binance_rest_url
    client = ccxt_client(key.exchange, rest_url, history.timeout_s)
    err.print(f"downloading {key} from {rest_url} into {store.location(key)}")

    def progress(r: DownloadReport) -> None:
        if r.last is not None and r.requests % 10 == 1:
            err.print(f"  {r.added:,} bars, up to {r.last:%Y-%m-%dT%H:%MZ}")

    try:
        report = run_download(
            key, start, store=store, client=client, until=stop, allow_gaps=allow_gaps, on_page=progress
        )
    except HistoryUnavailable as exc:
        _fail(str(exc), 1)
    except HistoryError as exc:
        _fail(str(exc))
    if report.note:
        err.print(f"[yellow]note:[/] {report.note}")
    for after, before, missing in report.gaps[:10]:
        err.print(
            f"[yellow]gap:[/] {missing} bar(s) missing between {after:%Y-%m-%dT%H:%MZ} and {before:%Y-%m-%dT%H:%MZ}"
        )
    resumed = f", resumed after {report.resumed_from:%Y-%m-%dT%H:%MZ}" if report.resumed_from else ""
    span = f" ({report.first:%Y-%m-%dT%H:%MZ} to {report.last:%Y-%m-%dT%H:%MZ})" if report.first and report.last else ""
    out.print(
        f"{key}: {report.added:,} new bars{span}{resumed}; {report.total:,} stored in {report.location} "
        f"({report.requests} request(s))"
    )


@data_app.command("list")
def list_history(
    uri: Annotated[str | None, typer.Option(help="folder or s3://bucket/prefix (default: HISTORY_URI)")] = None,
) -> None:
    """The downloaded history files (local folder only) and the packaged offline samples."""
    from pathlib import Path

    from tradingbot.adapters.history import SAMPLE_SYMBOLS, SAMPLE_TIMEFRAME
    from tradingbot.domain.candles import bundled_path
    from tradingbot.settings import HistorySection

    root = uri or HistorySection().root()
    if root.startswith("s3://"):
        out.print(f"history: {root} (S3; list it with `aws s3 ls {root}/ --recursive`)")
    else:
        files = sorted(Path(root).glob("*/*.parquet"))
        out.print(f"history in {root}: {len(files)} file(s)")
        for f in files:
            out.print(f"  {f.parent.name} {f.stem}  {f.stat().st_size:,} bytes")
    out.print("offline samples (packaged): " + ", ".join(f"{s} {SAMPLE_TIMEFRAME}" for s in SAMPLE_SYMBOLS))
    out.print(f"  in {bundled_path('').parent}")
