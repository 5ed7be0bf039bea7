"""`tradingbot feed`: the market feed, live or replayed from a candle file.

Mounted on the main CLI with ``app.command("feed")(feed)``. With ``--replay FILE`` it writes the
file's candles into Redis at ``--speed`` x real time (``make run``'s market); without it, it runs
the live exchange feed (``python -m tradingbot.entrypoints.feed`` does the same, configured by ``FEED_*``).
Redis comes from ``--redis-url``, else ``REDIS_URL``, else the local servers' state file
(``tradingbot servers up``). Exit status: 0 done, 2 bad input, 1 Redis unreachable.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from tradingbot.entrypoints.cli.console import lazy_console

_WIDTH = None if sys.stderr.isatty() else int(os.environ.get("COLUMNS", "140"))  # no wrapping in logs
err = lazy_console(stderr=True, width=_WIDTH, highlight=False)


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _redis_url(explicit: str | None) -> str:
    if explicit:
        return explicit
    from tradingbot.adapters.persistence.config import read_state
    from tradingbot.settings import PersistenceSection

    settings = PersistenceSection()  # this command's own read (a test run shares the process)
    if settings.redis_url is not None:
        return settings.redis_url.get_secret_value()
    state = read_state(settings.data_dir)
    if state is None:
        _fail("no Redis: pass --redis-url, set REDIS_URL, or run `tradingbot servers up`", 1)
    return state.redis_url


def feed(
    replay: Annotated[
        Path | None, typer.Option("--replay", help="candles (.csv/.csv.gz/.parquet) to replay instead of going live")
    ] = None,
    speed: Annotated[float, typer.Option(help="replay speed: N x real time (inf: as fast as possible)")] = 1.0,
    symbols: Annotated[str, typer.Option(help="unified symbols, comma separated (replay: the first)")] = (
        "BTC/USDT:USDT"
    ),
    exchange: Annotated[str, typer.Option(help="exchange ids (live: comma separated; replay: one)")] = "binanceusdm",
    warmup: Annotated[int, typer.Option(help="replay: leading bars written at once as history")] = 0,
    limit: Annotated[int | None, typer.Option(help="replay: stop after N paced bars")] = None,
    redis_url: Annotated[str | None, typer.Option("--redis-url", help="default: REDIS_URL or local servers")] = None,
) -> None:
    """Feed market data into Redis: live from the exchanges, or replayed from a file."""
    if replay is None:
        _live(symbols, exchange, redis_url)
        return
    if not (speed > 0 or math.isinf(speed)):
        _fail(f"--speed must be > 0, got {speed}")
    from tradingbot.adapters.cache import Cache
    from tradingbot.adapters.feed.replay import replay as run_replay
    from tradingbot.domain.candles import CandleDataError

    cache = Cache.from_url(_redis_url(redis_url), timeout_s=2.0)
    if not cache.ping():
        _fail("Redis is unreachable", 1)
    symbol = symbols.split(",")[0].strip()
    err.print(f"replaying {replay} into Redis as {exchange} {symbol} at {speed:g}x")
    try:
        n = run_replay(replay, speed, cache, exchange=exchange, symbol=symbol, warmup=warmup, limit=limit)
    except (CandleDataError, ValueError) as exc:
        _fail(str(exc))
    err.print(f"replayed {n} bars")


def _live(symbols: str, exchanges: str, redis_url: str | None) -> None:
    import asyncio
    import logging

    from tradingbot.entrypoints.feed import main
    from tradingbot.settings import FeedSection

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = FeedSection(symbols=symbols, exchanges=exchanges, redis_url=_redis_url(redis_url))
    asyncio.run(main(settings))
