"""Receiving a TradingView alert: authenticate, validate, de-duplicate, store, start the pipeline.

Every attempt is stored in ``alerts`` with its outcome, accepted or not. The idempotency key is
also the Step Functions execution name, so a redelivered alert can never start a second execution:
the database's unique key answers first, and Step Functions itself refuses a second execution with
the same name.
"""

from __future__ import annotations

import hmac
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from tradingbot.adapters.cache import CacheUnavailable
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.domain.alert import AlertError, TradingViewAlert, check_freshness, idempotency_key, parse_alert
from tradingbot.domain.timeframes import TimeframeError, check_venue_timeframe
from tradingbot.pipeline.contracts import PipelineState
from tradingbot.pipeline.runtime import Runtime

_TOKEN_IN_TEXT = re.compile(r'("token"\s*:\s*")[^"]*(")')


@dataclass(frozen=True)
class WebhookResult:
    status: int
    body: dict[str, Any]


def _storable(text: str) -> str:
    # PostgreSQL text cannot hold NUL; keep it visible instead of failing the insert
    return text.replace("\x00", "\\u0000")


def _masked_body(raw: bytes) -> str:
    """The body as stored: the token replaced, and at most 8 KB of anything unparseable."""
    text = raw[:8192].decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return _storable(_TOKEN_IN_TEXT.sub(r"\1***\2", text))
    if isinstance(data, dict) and "token" in data:
        data["token"] = "***"
    return json.dumps(data, separators=(",", ":"))


def _reject(
    rt: Runtime, raw: bytes, source_ip: str | None, err: AlertError, account_id: int | None = None
) -> WebhookResult:
    with session_scope(rt.engine()) as s:
        repo.record_alert(
            s, idempotency_key=f"rejected-{uuid.uuid4().hex}", raw_body=_masked_body(raw), source_ip=source_ip,
            account_id=account_id, status="rejected", reason=_storable(f"{err.reason}: {err.message}"[:1000]),
        )  # fmt: skip
    return WebhookResult(err.status, {"error": err.reason, "message": _storable(err.message)})


def _too_many_bad_tokens(rt: Runtime, source_ip: str | None) -> bool:
    s = rt.settings
    try:
        # ingress limit: when Redis is down, allow (the DB still authenticates), see docs/adr/0003
        return not rt.cache().allow(f"webhook-bad-token:{source_ip or 'unknown'}", s.bad_token_limit,
                                    s.bad_token_window_s, when_unavailable="allow")  # fmt: skip
    except CacheUnavailable:
        return False


def receive_alert(rt: Runtime, raw: bytes, source_ip: str | None) -> WebhookResult:
    s = rt.settings
    allow = s.ip_allowlist()
    if allow and source_ip not in allow:
        return _reject(rt, raw, source_ip, AlertError(403, "ip_not_allowed", f"source IP {source_ip} is not allowed"))
    try:
        alert = parse_alert(raw, s.webhook_max_body_bytes)
    except AlertError as err:
        return _reject(rt, raw, source_ip, err)

    with session_scope(rt.engine()) as session:
        account = repo.find_account_by_token(session, alert.token)
        valid = (
            account is not None
            and account.enabled
            and hmac.compare_digest(repo.hash_token(alert.token), bytes(account.webhook_token_hash))
        )
        account_id = account.id if account is not None else None
        exchange = str(account.exchange) if account is not None else ""
    if not valid:
        if _too_many_bad_tokens(rt, source_ip):
            refusal = AlertError(429, "too_many_bad_tokens", "too many attempts with a wrong token; try again later")
        else:
            refusal = AlertError(401, "bad_token", "token: unknown or disabled account token")
        return _reject(rt, raw, source_ip, refusal)
    assert account_id is not None

    try:
        check_freshness(alert, rt.clock(), s.alert_max_age_s)
        if alert.symbol not in s.symbols():
            raise AlertError(422, "unknown_symbol", f"symbol: {alert.symbol} is not traded here "
                                                    f"(allowed: {', '.join(sorted(s.symbols()))})")  # fmt: skip
        venue = s.paper_reference_venue if exchange == "paper" else exchange
        try:
            check_venue_timeframe(venue, alert.timeframe())
        except TimeframeError as exc:
            raise AlertError(422, "unsupported_interval", f"interval: {alert.interval}: {exc}") from None
    except AlertError as err:
        return _reject(rt, raw, source_ip, err, account_id)
    return _accept(rt, raw, source_ip, alert, account_id)


def _accept(rt: Runtime, raw: bytes, source_ip: str | None, alert: TradingViewAlert, account_id: int) -> WebhookResult:
    key = idempotency_key(account_id, alert)
    with session_scope(rt.engine()) as s:
        recorded = repo.record_alert(s, idempotency_key=key, raw_body=_masked_body(raw), source_ip=source_ip,
                                     account_id=account_id, status="accepted")  # fmt: skip
    if not recorded.created:
        return WebhookResult(202, {"execution_id": key, "duplicate": True})
    state = PipelineState(alert=alert.content(), alert_id=recorded.id, account_id=account_id, idempotency_key=key,
                          received_at=rt.clock())  # fmt: skip
    try:
        start_execution(rt, key, state.dump())
    except Exception as exc:
        # stored as failed with the reason; TradingView's retry (same key) will find it recorded
        with session_scope(rt.engine()) as s:
            repo.set_alert_status(
                s, recorded.id, "failed", f"could not start the pipeline: {type(exc).__name__}: {exc}"[:1000]
            )
        return WebhookResult(503, {"error": "pipeline_unavailable", "message": "could not start the pipeline"})
    return WebhookResult(202, {"execution_id": key})


def start_execution(rt: Runtime, name: str, state: dict[str, Any]) -> str:
    """Start (idempotently, by name) the state machine; returns the execution ARN."""
    sfn = rt.sfn()
    try:
        resp = sfn.start_execution(stateMachineArn=rt.settings.state_machine_arn, name=name, input=json.dumps(state))
    except sfn.exceptions.ExecutionAlreadyExists:
        # same name, different input: a replay attempt; the first execution stands
        arn = rt.settings.state_machine_arn.replace(":stateMachine:", ":execution:")
        return f"{arn}:{name}"
    return str(resp["executionArn"])
