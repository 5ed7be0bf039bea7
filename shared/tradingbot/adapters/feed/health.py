"""``GET /health`` for the ECS container health check: 200 when every connection is up, has
delivered a frame within ``fresh_s`` and Redis took a write within ``fresh_s``; 503 otherwise.
The body is the metrics snapshot, so the same URL answers "what is it doing"."""

from __future__ import annotations

import json

from aiohttp import web

from tradingbot.adapters.feed.service import FeedService


def make_app(service: FeedService, fresh_s: float = 10.0) -> web.Application:
    async def health(_: web.Request) -> web.Response:
        ok, reason = service.healthy(fresh_s)
        body = {"status": "ok" if ok else "unhealthy", "reason": reason} | service.metrics.snapshot(service.buffer)
        return web.Response(
            status=200 if ok else 503, text=json.dumps(body, default=str), content_type="application/json"
        )

    app = web.Application()
    app.router.add_get("/health", health)
    return app


async def start_health(service: FeedService, host: str, port: int, fresh_s: float = 10.0) -> web.AppRunner:
    """Serve /health in the running loop; the caller awaits ``runner.cleanup()`` on shutdown."""
    runner = web.AppRunner(make_app(service, fresh_s), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
