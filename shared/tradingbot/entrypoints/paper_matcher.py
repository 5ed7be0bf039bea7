"""``python -m tradingbot.entrypoints.paper_matcher``: the paper venue's matcher as its own process.

On AWS it is the second container of the market feed's Fargate task (cdk/tradingbot_infra/feed.py):
it subscribes to the ticks the feed publishes and matches, liquidates and settles funding for every
paper account (tradingbot.adapters.exchange.paper_matcher). Database and Redis come from
``DATABASE_URL`` / ``REDIS_URL``, or on AWS from ``DB_SECRET_ARN`` / ``REDIS_*`` (resolved once at
start); ``PAPER_PRICE_SOURCE`` names the feed's exchange (``binanceusdm``). Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from contextlib import AbstractContextManager
from types import FrameType

from sqlalchemy.orm import Session

from tradingbot.adapters.aws import with_secrets
from tradingbot.adapters.cache import Cache
from tradingbot.adapters.exchange.paper_matcher import PaperMatcher
from tradingbot.adapters.persistence.config import database_url, redis_url
from tradingbot.adapters.persistence.db import create_db_engine, session_scope
from tradingbot.settings import get_settings

log = logging.getLogger("tradingbot.adapters.exchange.paper_matcher")


def run() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = with_secrets(get_settings())
    # no pre-ping: the matcher uses its connection all the time and retries a dropped one (on_tick)
    engine = create_db_engine(database_url(settings.persistence), pre_ping=False)
    cache = Cache.from_url(redis_url(settings.persistence), timeout_s=2.0)

    def sessions() -> AbstractContextManager[Session]:
        return session_scope(engine)

    matcher = PaperMatcher(sessions, cache, price_source=os.environ.get("PAPER_PRICE_SOURCE", "binanceusdm"))
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    log.info("paper matcher started on %s ticks", matcher.price_source)
    try:
        matcher.run(stop)
    finally:
        log.info("paper matcher stopped: %s", matcher.stats)
        cache.client.close()
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(run())
