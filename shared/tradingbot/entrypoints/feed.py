"""``python -m tradingbot.entrypoints.feed``: the live market feed (the Fargate task's command).

Settings come from ``FEED_*`` variables and ``REDIS_URL`` (``Settings.feed``). Stops
cleanly on SIGTERM (ECS) or SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys

from tradingbot.adapters.feed.health import start_health
from tradingbot.adapters.feed.service import service_from_settings
from tradingbot.settings import FeedSection, get_settings

log = logging.getLogger("tradingbot.adapters.feed")


async def main(settings: FeedSection) -> None:
    service = service_from_settings(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.stop)
    runner = await start_health(service, settings.health_host, settings.health_port, settings.fresh_s)

    async def report() -> None:  # one metrics line a minute: messages/s, lag, reconnects
        while True:
            await asyncio.sleep(settings.metrics_every_s)
            log.info("metrics %s", json.dumps(service.metrics.snapshot(service.buffer), default=str))

    reporter = asyncio.create_task(report())
    try:
        await service.run()
    finally:
        reporter.cancel()
        await runner.cleanup()
        await service.writer.client.aclose()
        log.info("feed stopped: %s", json.dumps(service.metrics.snapshot(service.buffer), default=str))


def run() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(main(get_settings().feed))
    return 0


if __name__ == "__main__":
    sys.exit(run())
