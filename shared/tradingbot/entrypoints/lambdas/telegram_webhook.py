"""Lambda ``telegram_webhook``: ``POST /telegram/webhook`` (the bot's commands), and the scheduled
notifications (EventBridge: ``{"task": "daily_summary"}`` once a day, ``{"task": "watch_fills"}``
every minute for stops and targets hit).

Telegram authenticates nothing in the body; ``setWebhook``'s ``secret_token`` comes back in the
``X-Telegram-Bot-Api-Secret-Token`` header of every webhook request
(https://core.telegram.org/bots/api#setwebhook), compared here in constant time. A missing or
forged header is refused (401) and audited; no secret configured refuses everything (503). A
command's own refusal is still a 200 (Telegram would redeliver anything else); a dependency
outage answers 503 so Telegram redelivers, and the update id keeps it from running twice.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.repositories import operators as ops
from tradingbot.entrypoints.lambdas.edge import emf_enabled, http_edge, logger, metrics, tracer
from tradingbot.errors import TransientError
from tradingbot.pipeline import notifications
from tradingbot.pipeline.runtime import get_runtime
from tradingbot.pipeline.telegram_commands import answer

SECRET_HEADER = "x-telegram-bot-api-secret-token"


def _count(name: str) -> None:
    """One EMF count, where metrics are flushed (on Lambda); locally nothing accumulates."""
    if emf_enabled():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def _json(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    return None


def _refuse(reason: str, status: int) -> dict[str, Any]:
    rt = get_runtime()
    with session_scope(rt.engine()) as s:
        ops.audit(s, channel="telegram", actor="anonymous", command="webhook", outcome="refused", reason=reason)
    _count("TelegramWebhookRefused")
    logger.warning("telegram webhook refused", extra={"event": "telegram_refused", "reason": reason})
    return _json(status, {"error": "unauthorized" if status == 401 else "unavailable", "message": reason})


@tracer.capture_method
def webhook(event: dict[str, Any]) -> dict[str, Any]:
    rt = get_runtime()
    secret = rt.settings.telegram_webhook_secret
    if secret is None or not secret.get_secret_value():
        return _refuse("TELEGRAM_WEBHOOK_SECRET is not configured: every update is refused", 503)
    given = _header(event, SECRET_HEADER)
    if given is None:
        return _refuse("missing X-Telegram-Bot-Api-Secret-Token header", 401)
    if not hmac.compare_digest(given.encode(), secret.get_secret_value().encode()):
        return _refuse("forged X-Telegram-Bot-Api-Secret-Token header", 401)
    try:
        update = json.loads(event.get("body") or "")
    except json.JSONDecodeError:
        return _json(400, {"error": "bad_request", "message": "body: not a JSON Update object"})
    if not isinstance(update, dict):
        return _json(400, {"error": "bad_request", "message": "body: not a JSON Update object"})
    try:
        reply = answer(rt, update)
    except TransientError as exc:
        logger.warning("telegram command: dependency unavailable", extra={"event": "telegram_unavailable"})
        return _json(503, {"error": "unavailable", "message": str(exc)})
    _count(f"TelegramCommand{reply.outcome.capitalize()}")
    return _json(200, {"ok": True, "outcome": reply.outcome})


@http_edge("telegram_webhook", correlation_id_path="requestContext.requestId")
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    task = event.get("task") if "httpMethod" not in event else None
    if task == "daily_summary":
        return {"statusCode": 200, "sent": notifications.daily_summary(get_runtime())}
    if task == "watch_fills":
        return {"statusCode": 200, "sent": notifications.watch_protective_fills(get_runtime())}
    if event.get("httpMethod") != "POST":
        return _json(405, {"error": "method_not_allowed", "message": "POST an Update"})
    return webhook(event)
