"""Receiving a TradingView alert: authenticate, validate, de-duplicate, store, start the pipeline.

Every attempt is stored in ``alerts`` with its outcome, accepted or not. The idempotency key is
also the Step Functions execution name, so a redelivered alert can never start a second execution:
the database's unique key answers first, and Step Functions itself refuses a second execution with
the same name.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.repositories import ingress as ingress_repo
from tradingbot.domain.alert import AlertError, TradingViewAlert, check_freshness, idempotency_key, parse_alert
from tradingbot.domain.timeframes import TimeframeError, check_venue_timeframe
from tradingbot.pipeline import ingress
from tradingbot.pipeline.contracts import PipelineState
from tradingbot.pipeline.runtime import Runtime

_TOKEN_IN_TEXT = re.compile(r'("token"\s*:\s*")[^"]*(")')


@dataclass(frozen=True)
class WebhookResult:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Retry-After on a 429


def _answer(answer: ingress.Answer) -> WebhookResult:
    return WebhookResult(answer.status, answer.body, answer.headers)


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
    """A refused attempt. Before authentication (no account), or past the account's alert limit: a
    tally (tradingbot.pipeline.ingress), never a row per request; an authenticated alert's refusal:
    an alert row with its reason, the evidence its owner looks for."""
    if account_id is None or ingress.account_over_limit(rt, account_id):
        return _answer(ingress.refuse(rt, status=err.status, reason=err.reason, message=_storable(err.message),
                                      source_ip=source_ip, raw=raw, account_id=account_id))  # fmt: skip
    with session_scope(rt.engine()) as s:
        repo.record_alert(
            s, idempotency_key=f"rejected-{uuid.uuid4().hex}", raw_body=_masked_body(raw), source_ip=source_ip,
            account_id=account_id, status="rejected", reason=_storable(f"{err.reason}: {err.message}"[:1000]),
        )  # fmt: skip
    ingress.count_refused(err.reason)  # issue 17: AlertsRefused<Reason> (EMF), once its row is stored
    return WebhookResult(err.status, {"error": err.reason, "message": _storable(err.message)})


def receive_alert(rt: Runtime, raw: bytes, source_ip: str | None) -> WebhookResult:
    allow = rt.settings.ip_allowlist()
    if allow and source_ip not in allow:
        return _reject(rt, raw, source_ip, AlertError(403, "ip_not_allowed", f"source IP {source_ip} is not allowed"))
    locked = ingress.lockout(rt, source_ip)  # from Redis alone: a locked source costs no parse, no query
    if locked is not None:
        return _answer(locked)
    try:
        alert = parse_alert(raw, rt.settings.webhook_max_body_bytes)
    except AlertError as err:
        return _reject(rt, raw, source_ip, err)

    arrival = _Arrival(repo.hash_token(alert.token), alert, _masked_body(raw), source_ip, rt.clock())
    verdict = rt.group_commit("webhook.receive", lambda batch: _receive(rt, batch)).submit(arrival)
    if isinstance(verdict, _WrongToken):
        return _answer(ingress.wrong_token(rt, raw, source_ip))  # counted towards the source's lockout
    if isinstance(verdict, _Refused):
        return _reject(rt, raw, source_ip, verdict.error, verdict.account_id)
    if isinstance(verdict, _Limited):
        return _answer(ingress.account_limited(rt, verdict.account_id, raw, source_ip))
    return _answer_stored(rt, verdict)


def _check(rt: Runtime, alert: TradingViewAlert, exchange: str) -> AlertError | None:
    """Why an authenticated alert is refused (stale, a symbol or interval not traded), or None."""
    s = rt.settings
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
        return err
    return None


@dataclass(frozen=True)
class _Arrival:
    """A parsed alert on its way in: its token's hash, not yet authenticated."""

    token_hash: bytes
    alert: TradingViewAlert
    masked_body: str
    source_ip: str | None
    received_at: dt.datetime


class _WrongToken:
    """No enabled account has the alert's token."""


@dataclass(frozen=True)
class _Refused:
    """Authenticated, and refused for ``error`` (stored with its reason by :func:`_reject`)."""

    error: AlertError
    account_id: int


@dataclass(frozen=True)
class _Limited:
    """Authenticated and valid, past the account's alerts per minute (and not a redelivery)."""

    account_id: int


@dataclass(frozen=True)
class _Stored:
    """Stored (now or before): its execution name, its outbox row while undecided, whether this
    arrival stored it and whether this batch started its execution."""

    key: str
    pending: repo.PendingStart | None
    created: bool
    started_now: bool


_WRONG_TOKEN = _WrongToken()
_Verdict = _WrongToken | _Refused | _Limited | _Stored


def _receive(rt: Runtime, arrivals: Sequence[_Arrival]) -> list[_Verdict]:
    """A batch of alerts that arrived together, in one transaction (group commit): authenticate them
    (one token query), validate them, count them against their accounts' limits (one Redis round
    trip), and store the accepted ones with their execution inputs (the StartExecution outbox).

    Where the Step Functions client can start executions inside this transaction (the local
    runtime, whose executions live in the same database: ``start_in_transaction``), it does, and the
    outbox rows are stored as started in the same commit: one transaction per batch from the alert
    to its queued execution. Elsewhere (AWS) the caller calls StartExecution after the commit."""
    sfn = rt.sfn()
    start_here = getattr(sfn, "start_in_transaction", None)
    verdicts: list[_Verdict | None] = [None] * len(arrivals)
    started: list[Any] = []
    with session_scope(rt.engine()) as s:
        owners = repo.token_owners(s, [a.token_hash for a in arrivals])
        valid: list[tuple[int, _Arrival, int]] = []  # (position, arrival, account id)
        for i, a in enumerate(arrivals):
            owner = owners.get(a.token_hash)
            if owner is None or not owner.enabled or not hmac.compare_digest(a.token_hash, owner.token_hash):
                verdicts[i] = _WRONG_TOKEN
            elif (err := _check(rt, a.alert, owner.exchange)) is not None:
                verdicts[i] = _Refused(err, owner.id)
            else:
                valid.append((i, a, owner.id))
        over = ingress.accounts_over_limit(rt, [acc for _, _, acc in valid])
        keys = [idempotency_key(acc, a.alert) for _, a, acc in valid]
        # a redelivery of a stored alert is answered with its id (and re-driven) even past the limit
        known_keys = ingress_repo.alert_keys_recorded(s, [k for k, o in zip(keys, over, strict=True) if o])
        accepted: list[tuple[int, _Arrival, int, str]] = []
        for (i, a, acc), key, o in zip(valid, keys, over, strict=True):
            if o and key not in known_keys:
                verdicts[i] = _Limited(acc)
            else:
                accepted.append((i, a, acc, key))
        if accepted:
            stored, started = _store(s, start_here, accepted)
            for (i, *_), one in zip(accepted, stored, strict=True):
                verdicts[i] = one
    if started:
        sfn.notify_started(started)
    for v in verdicts:
        if isinstance(v, _Stored) and v.created:
            ingress.count_accepted()  # issue 17: AlertsAccepted (EMF), once committed
    unset = [i for i, v in enumerate(verdicts) if v is None]
    if unset:  # every arrival gets its own verdict, in its place: a gap would answer one with another's
        raise RuntimeError(f"webhook.receive: no verdict for arrivals {unset}")
    return [v for v in verdicts if v is not None]


def _store(
    s: Any, start_here: Any, accepted: Sequence[tuple[int, _Arrival, int, str]]
) -> tuple[list[_Stored], list[Any]]:
    """The accepted alerts of a batch and their outbox rows (and, locally, their executions), in the
    batch's transaction ``s``: per alert its :class:`_Stored`, and the local starts' answers."""
    recorded = repo.record_alerts(s, [repo.AlertRow(key, a.masked_body, a.source_ip, acc, "accepted")
                                      for _, a, acc, key in accepted])  # fmt: skip
    new: dict[int, repo.PendingStart] = {}
    for (_, a, acc, key), r in zip(accepted, recorded, strict=True):
        if r.created:
            state = PipelineState(alert=a.alert.content(), alert_id=r.id, account_id=acc, idempotency_key=key,
                                  received_at=a.received_at)  # fmt: skip
            new[r.id] = repo.PendingStart(r.id, key, json.dumps(state.dump()), False, 0, 0.0)
    repo.record_starts(s, [(p.alert_id, p.execution_name, p.input) for p in new.values()],
                       started=start_here is not None)  # fmt: skip
    # a redelivery: its outbox row while undecided (started or not); a repeat within this batch sees
    # the row just written
    known = repo.starts_for_alerts(s, [r.id for r in recorded if not r.created])
    started: list[Any] = []
    pending: dict[int, repo.PendingStart] = {}
    if start_here is not None:
        redrive_now = [p for p in known.values() if not p.started]
        todo = [*new.values(), *redrive_now]
        # ExecutionAlreadyExists (closed, or another input): the first execution stands, as after
        # StartExecution (start_execution below); the sweeper reads what became of it
        started = start_here(s.connection(), [(p.execution_name, p.input) for p in todo])
        repo.mark_started_many(s, [p.execution_name for p in redrive_now])
        pending = {p.alert_id: dataclasses.replace(p, started=True) for p in todo}
        new = {k: pending[k] for k in new}
        known = {k: pending.get(k, p) for k, p in known.items()}
    # a repeat within the batch of an alert the batch stored is a plain duplicate, not a re-drive
    out = [_Stored(key, new[r.id], True, r.id in pending) if r.created
           else _Stored(key, known.get(r.id), False, r.id in pending and r.id not in new)
           for (_, _, _, key), r in zip(accepted, recorded, strict=True)]  # fmt: skip
    return out, started


def _answer_stored(rt: Runtime, stored: _Stored) -> WebhookResult:
    """The answer to a stored alert; it starts the execution (by the same name and the same stored
    input) when the batch did not. A repeated delivery of an alert whose execution never started, or
    failed to start, starts it now, which Step Functions treats as the same request ("Executions with
    the same name and input are considered idempotent",
    https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html)."""
    pending = stored.pending
    if stored.started_now:  # stored and started in one transaction (the local runtime), or re-driven in it
        body: dict[str, Any] = {"execution_id": stored.key}
        return WebhookResult(202, body if stored.created else body | {"duplicate": True, "redriven": True})
    if pending is None or pending.started:
        # decided, or its execution is running: TradingView's retry of an alert we already have
        return WebhookResult(202, {"execution_id": stored.key, "duplicate": True})
    return redrive(rt, pending, duplicate=not stored.created)


def _mark_started(rt: Runtime, names: Sequence[str]) -> list[None]:
    with session_scope(rt.engine()) as s:
        repo.mark_started_many(s, names)
    return [None] * len(names)


def redrive(rt: Runtime, pending: repo.PendingStart, *, duplicate: bool = False) -> WebhookResult:
    """(Re)start the execution of an accepted alert by its name and stored input; the outcome is
    stored on its outbox row. A failure answers 503: TradingView resends after a 5xx (not 504), and
    that resend comes back here."""
    try:
        start_execution(rt, pending.execution_name, pending.input)
    except Exception as exc:
        # the alert stays accepted; the resend, the sweeper or a restart of `serve` re-drives it
        with session_scope(rt.engine()) as s:
            repo.mark_start_failed(s, pending.execution_name,
                                   f"could not start the pipeline: {type(exc).__name__}: {exc}")  # fmt: skip
        return WebhookResult(503, {"error": "pipeline_unavailable", "message": "could not start the pipeline"})
    rt.group_commit("webhook.started", lambda names: _mark_started(rt, names)).submit(pending.execution_name)
    body: dict[str, Any] = {"execution_id": pending.execution_name}
    if duplicate:
        body |= {"duplicate": True, "redriven": True}
    return WebhookResult(202, body)


def start_execution(rt: Runtime, name: str, state: dict[str, Any] | str) -> str:
    """Start (idempotently, by name) the state machine; returns the execution ARN. ``state`` as a
    string is passed byte-exact (a re-drive must send the input it sent the first time)."""
    sfn = rt.sfn()
    payload = state if isinstance(state, str) else json.dumps(state)
    try:
        resp = sfn.start_execution(stateMachineArn=rt.settings.state_machine_arn, name=name, input=payload)
    except sfn.exceptions.ExecutionAlreadyExists:
        # same name and a different input (a replay attempt), or the execution is closed already: the
        # first execution stands (the StartExecution reference above)
        arn = rt.settings.state_machine_arn.replace(":stateMachine:", ":execution:")
        return f"{arn}:{name}"
    return str(resp["executionArn"])
