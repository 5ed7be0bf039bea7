"""The Notify stage: tell the operator about the trade (Telegram when a bot token is configured, the
log otherwise); CloudWatch alarms arriving through SNS go the same way."""

from __future__ import annotations

import json
import logging
from typing import Any

import requests

from tradingbot.errors import TransientError
from tradingbot.pipeline.common import StageError
from tradingbot.pipeline.contracts import AlarmsResult, NotifyResult, PipelineState
from tradingbot.pipeline.runtime import Runtime

log = logging.getLogger(__name__)


def notify_stage(rt: Runtime, state: PipelineState) -> NotifyResult:
    alert = state.alert
    status = state.execution.status if state.execution is not None else "no order"
    return send(rt, f"{alert.strategy} {alert.action} {alert.symbol} @ {alert.price}: {status}")


def notify_alarms(rt: Runtime, records: list[dict[str, Any]]) -> AlarmsResult:
    """CloudWatch alarms arrive through SNS; each becomes one message."""
    sent = []
    for record in records:
        sns = record.get("Sns") or {}
        try:
            alarm = json.loads(sns.get("Message") or "{}")
        except json.JSONDecodeError:
            alarm = {"AlarmName": sns.get("Subject", "alarm"), "NewStateReason": sns.get("Message", "")}
        text = f"{alarm.get('NewStateValue', 'ALARM')}: {alarm.get('AlarmName')}: {alarm.get('NewStateReason', '')}"
        sent.append(send(rt, text[:4000]))
    return AlarmsResult(sent=len(sent), messages=sent)


def send(rt: Runtime, text: str) -> NotifyResult:
    """One message. Telegram's Bot API answers 429 (with ``retry_after``) when flooded and 5xx when
    it is down: both are worth retrying; any other refusal (``ok: false``) is permanent
    (https://core.telegram.org/bots/api#making-requests)."""
    s = rt.settings
    token = s.telegram_token()
    if not token:
        log.info("notify: %s", text)
        return NotifyResult(channel="log", text=text)
    url = f"{s.telegram_api_url.rstrip('/')}/bot{token}/sendMessage"
    try:
        resp = requests.post(url, json={"chat_id": s.telegram_chat_id, "text": text}, timeout=5)
    except requests.RequestException as exc:
        raise TransientError(f"telegram unreachable: {type(exc).__name__}") from None
    if resp.status_code == 429 or resp.status_code >= 500:
        raise TransientError(f"telegram answered {resp.status_code}")
    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    if not body.get("ok"):
        raise StageError(f"telegram refused the message: {body.get('description', resp.status_code)}")
    return NotifyResult(channel="telegram", text=text, message_id=body.get("result", {}).get("message_id"))
