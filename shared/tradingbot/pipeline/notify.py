"""The Notify stage: tell the operator about the trade (Telegram when a bot token is configured, the
log otherwise); CloudWatch alarms arriving through SNS go the same way."""

from __future__ import annotations

import json
import logging
from typing import Any

from tradingbot.adapters.notify import TelegramBot, TelegramRefused
from tradingbot.pipeline.common import StageError
from tradingbot.pipeline.contracts import AlarmsResult, NotifyResult, PipelineState
from tradingbot.pipeline.runtime import Runtime

log = logging.getLogger(__name__)


def notify_stage(rt: Runtime, state: PipelineState) -> NotifyResult:
    alert = state.alert
    status = state.execution.status if state.execution is not None else "no order"
    result = send(rt, f"{alert.strategy} {alert.action} {alert.symbol} @ {alert.price}: {status}")
    # issue 17: the account's owner gets the fills (price, quantity) or the error on its own chats
    from tradingbot.pipeline.notifications import execution_text, to_owner

    try:
        to_owner(rt, state.account_id, execution_text(state))
    except Exception as exc:  # a notification never fails the trade it reports
        log.warning("owner notification failed: %s", type(exc).__name__)
    return result


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
    """One message, to Telegram when a bot token is configured, else to the log. Telegram's 429 and
    5xx are transient (the state machine retries); any other refusal fails the stage with its reason."""
    s = rt.settings
    token = s.telegram_token()
    if not token:
        log.info("notify: %s", text)
        return NotifyResult(channel="log", text=text)
    try:
        message_id = TelegramBot(api_url=s.telegram_api_url, token=token).send_message(s.telegram_chat_id, text)
    except TelegramRefused as exc:
        raise StageError(str(exc)) from None
    return NotifyResult(channel="telegram", text=text, message_id=message_id)
