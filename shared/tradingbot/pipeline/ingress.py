"""The webhook's ingress guard: what is refused before an alert row is written, and how refusals are
counted without letting a flood write a row per request.

* **Nothing is written before authentication.** A refusal before the token is verified (IP not
  allowed, locked-out source, bad body, wrong token) is a *tally*, not an alert row: Redis counts it
  per minute, reason and source in one round trip (``Cache.tally_refusal``), and PostgreSQL's
  ``ingress_refusals`` gets one row per (minute, reason, source) — written when the first attempt
  of the minute arrives and refreshed by at most one flush every ``FLUSH_EVERY_S`` from the refusals
  themselves, and by the schedule whether more arrive or not (``pipeline.redrive.scheduled_sweep``:
  the ``sweeper`` Lambda every minute, ``serve`` every ``LOCAL_SWEEP_INTERVAL_S``) — plus at most
  ``refusal_samples_per_hour`` truncated, token-masked bodies per reason (``ingress_refusal_samples``).
  Sources past ``refusal_sources_per_minute`` per reason and minute are counted as ``*other*``, so
  the rows per minute are bounded whatever the number of senders. When Redis is unreachable the
  tally goes straight to PostgreSQL (one upsert per refusal; still one row per minute and source).
* **Wrong tokens lock the source out.** A sliding window per source IP (``bad_token_limit`` wrong
  tokens within ``bad_token_window_s``) locks the IP for ``bad_token_lockout_s``: a locked source is
  refused 429 from Redis alone, before its body is parsed or the database touched. TradingView's
  own addresses (``lockout_exempt_ips``) are never locked: every TradingView user's alerts come from
  them, so a lockout there would let anyone with a TradingView account lock our alerts out; their
  wrong tokens are refused 401 and counted. A wrong token names no account (a token is 256 random
  bits, looked up by its hash), so there is no per-account lockout: locking an account on someone
  else's wrong tokens would hand anyone a way to silence it.
* **Accepted alerts per account** are limited (``account_alerts_per_minute``): beyond it a new alert
  is refused 429 and tallied; a redelivery of an alert already stored still gets its id.
* An authenticated alert's refusal (stale, unknown symbol ...) stays an alert row, as evidence for
  the account's owner; past the account's limit it is tallied instead, so rows stay bounded too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tradingbot.adapters import metrics as business_metrics
from tradingbot.adapters.cache import CacheUnavailable
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.repositories import ingress as ingress_repo
from tradingbot.adapters.persistence.repositories import operators as operators_repo
from tradingbot.adapters.persistence.repositories.ingress import RefusalCount
from tradingbot.pipeline.runtime import Runtime

log = logging.getLogger(__name__)

FLUSH_EVERY_S = 10  # at most one copy of the Redis tallies into PostgreSQL per this many seconds
FLUSH_LOOKBACK_MIN = 15  # minutes of tallies each flush copies (older ones were copied by earlier flushes)
RETENTION_DAYS = 30  # tallies and samples older than this are purged by the flush
SAMPLE_BYTES = 512  # a kept body is cut to this many bytes before decoding

_TOKEN_FIELD = re.compile(r'("token"\s*:\s*")[^"]*("|$)', re.IGNORECASE)
_TOKEN_SHAPE = re.compile(r"tbwh_[A-Za-z0-9_\-]*")  # TOKEN_PREFIX: a token anywhere else in the text


@dataclass(frozen=True)
class Answer:
    """An HTTP answer of the ingress guard (``pipeline.webhook`` wraps it as its WebhookResult)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def sample_body(raw: bytes) -> str:
    """What a kept sample shows: the first ``SAMPLE_BYTES`` bytes as text (undecodable bytes
    replaced, NUL made visible), with any token masked, whole or cut off."""
    text = raw[:SAMPLE_BYTES].decode("utf-8", errors="replace").replace("\x00", "\\u0000")
    return _TOKEN_SHAPE.sub("***", _TOKEN_FIELD.sub(r"\1***\2", text))


def _minute_of(at: dt.datetime) -> int:
    return int(at.timestamp()) // 60


def _as_datetime(minute: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(minute * 60, dt.UTC)


def record_refusal(
    rt: Runtime, *, reason: str, message: str, source_ip: str | None, raw: bytes = b"", account_id: int | None = None
) -> None:
    """Count one refused attempt (module docstring). Never raises: a refusal's answer must not
    depend on where it is counted; a failure to count is logged."""
    s = rt.settings
    now = rt.clock()
    minute = _minute_of(now)
    source = (source_ip or "unknown")[:64]
    try:
        tally = rt.cache().tally_refusal(
            minute=minute, reason=reason, source=source, hour=minute // 60,
            max_sources=s.refusal_sources_per_minute, flush_every_s=FLUSH_EVERY_S,
        )  # fmt: skip
    except CacheUnavailable:
        _record_without_redis(rt, reason=reason, message=message, source=source, raw=raw, account_id=account_id)
        return
    except Exception:  # counting must never turn a 4xx into a 5xx
        log.warning("refusal %s from %s not counted", reason, source, exc_info=True)
        return
    keep_sample = tally.samples_this_hour <= s.refusal_samples_per_hour
    if not (tally.count == 1 or keep_sample or tally.flush):
        return  # the common case under a flood: counted in Redis only
    try:
        if tally.count == 1:  # one log line per (minute, reason, source), never one per request
            log.info("refusing %s from %s (counted per minute in ingress_refusals)", reason, tally.source)
        with session_scope(rt.engine()) as session:
            if tally.count == 1:  # the first of its minute: the row exists at once
                first = RefusalCount(_as_datetime(minute), reason, tally.source, 1, account_id)
                ingress_repo.add_refusals(session, [first], exact=True)
            if keep_sample:
                ingress_repo.add_refusal_sample(
                    session, reason=reason, source=source, message=message, body=sample_body(raw),
                    body_bytes=len(raw),
                )  # fmt: skip
        if tally.flush:
            flush_refusals(rt)
    except Exception:  # the tally is in Redis; the next flush copies it
        log.warning("refusal %s from %s not written to the database", reason, source, exc_info=True)


def _record_without_redis(
    rt: Runtime, *, reason: str, message: str, source: str, raw: bytes, account_id: int | None
) -> None:
    s = rt.settings
    now = rt.clock()
    try:
        with session_scope(rt.engine()) as session:
            count = RefusalCount(_as_datetime(_minute_of(now)), reason, source, 1, account_id)
            ingress_repo.add_refusals(session, [count], exact=False)
            hour_start = now.replace(minute=0, second=0, microsecond=0)
            kept = ingress_repo.refusal_samples_since(session, reason=reason, since=hour_start)
            if kept < s.refusal_samples_per_hour:
                ingress_repo.add_refusal_sample(
                    session, reason=reason, source=source, message=message, body=sample_body(raw),
                    body_bytes=len(raw),
                )  # fmt: skip
    except Exception:  # neither Redis nor PostgreSQL: the refusal is only logged
        log.warning("refusal %s from %s not counted: Redis and the database unavailable", reason, source)


def flush_refusals(rt: Runtime) -> int:
    """Copy the last ``FLUSH_LOOKBACK_MIN`` minutes of Redis tallies into ``ingress_refusals`` (the
    stored count becomes Redis's running total, so a repeated flush changes nothing) and purge
    tallies older than ``RETENTION_DAYS``. Returns the rows written. Raises when Redis or the
    database is unreachable (callers that must not fail catch it)."""
    now_minute = _minute_of(rt.clock())
    minutes = list(range(now_minute - FLUSH_LOOKBACK_MIN, now_minute + 1))
    tallies = rt.cache().refusal_tallies(minutes)
    counts = [
        RefusalCount(_as_datetime(minute), reason, source, count)
        for minute, fields in tallies.items()
        for (reason, source), count in fields.items()
    ]
    with session_scope(rt.engine()) as session:
        written = ingress_repo.add_refusals(session, counts, exact=True)
        ingress_repo.purge_refusals(session, older_than=rt.clock() - dt.timedelta(days=RETENTION_DAYS))
    return written


def refuse(
    rt: Runtime, *, status: int, reason: str, message: str, source_ip: str | None, raw: bytes = b"",
    account_id: int | None = None, headers: dict[str, str] | None = None,
) -> Answer:  # fmt: skip
    """Count the refusal (``record_refusal``) and answer it: ``{"error": reason, "message": ...}``."""
    record_refusal(rt, reason=reason, message=message, source_ip=source_ip, raw=raw, account_id=account_id)
    count_refused(reason)
    return Answer(status, {"error": reason, "message": message}, headers or {})


def count_refused(reason: str) -> None:
    """Issue 17: ``AlertsRefused`` and ``AlertsRefused<Reason>`` (EMF; tradingbot.adapters.metrics), for
    every refusal: the tallied ones here, an authenticated alert's (its row) in ``webhook._reject``."""
    business_metrics.alert_refused(reason)


def count_accepted() -> None:
    """Issue 17: ``AlertsAccepted`` (EMF), once per new alert stored (``webhook._accept``)."""
    business_metrics.alert_accepted()


def lockout(rt: Runtime, source_ip: str | None) -> Answer | None:
    """A locked-out source's 429 (with ``Retry-After``), decided from Redis alone; None otherwise."""
    if source_ip is None or source_ip in rt.settings.lockout_exempt_ips:
        return None
    remaining = rt.cache().lockout_remaining(source_ip)
    if remaining <= 0:
        return None
    return refuse(
        rt, status=429, reason="too_many_bad_tokens", source_ip=source_ip,
        message=f"too many attempts with a wrong token from this address; try again in {remaining} s",
        headers={"Retry-After": str(remaining)},
    )  # fmt: skip


def wrong_token(rt: Runtime, raw: bytes, source_ip: str | None) -> Answer:
    """A wrong token: counted towards the source's lockout (unless exempt), refused 401 and tallied."""
    s = rt.settings
    if source_ip is not None and source_ip not in s.lockout_exempt_ips:
        rt.cache().note_bad_token(
            source_ip, limit=s.bad_token_limit, window_s=s.bad_token_window_s, lockout_s=s.bad_token_lockout_s
        )
    return refuse(
        rt, status=401, reason="bad_token", message="token: unknown or disabled account token", source_ip=source_ip,
        raw=raw,
    )  # fmt: skip


def account_over_limit(rt: Runtime, account_id: int) -> bool:
    """Count one authenticated alert of ``account_id`` in this minute's window; True when it is past
    ``account_alerts_per_minute``. Redis unreachable: not limited (the database still de-duplicates)."""
    return accounts_over_limit(rt, [account_id])[0]


def accounts_over_limit(rt: Runtime, account_ids: Sequence[int]) -> list[bool]:
    """:func:`account_over_limit` for a batch of authenticated alerts (one per entry, an account may
    repeat), counted in one Redis round trip. Redis unreachable: none limited."""
    try:
        totals = rt.cache().window_counts([f"webhook-account:{a}" for a in account_ids], 60)
    except CacheUnavailable:
        return [False] * len(account_ids)
    return [n > rt.settings.account_alerts_per_minute for n in totals]


def account_limited(rt: Runtime, account_id: int, raw: bytes, source_ip: str | None) -> Answer:
    limit = rt.settings.account_alerts_per_minute
    return refuse(
        rt, status=429, reason="account_rate_limited", source_ip=source_ip, raw=raw, account_id=account_id,
        message=f"more than {limit} alerts this minute for this account; try again in a minute",
        headers={"Retry-After": "60"},
    )  # fmt: skip


# ---------------------------------------------------------------- mutual TLS: the client certificate's subject


def _rdns(dn: str) -> set[str]:
    """``"CN=TradingView Webhooks,O=TradingView\\, Inc."`` -> {"cn=tradingview webhooks", "o=tradingview, inc."}."""
    parts = re.split(r"(?<!\\),", dn)
    out = set()
    for part in parts:
        key, sep, value = part.strip().partition("=")
        if sep:
            out.add(f"{key.strip().lower()}={value.strip().replace(chr(92) + ',', ',').lower()}")
    return out


def client_certificate_refusal(rt: Runtime, event: dict[str, Any]) -> Answer | None:
    """With ``client_cert_subject`` set (mutual TLS on the custom domain), refuse (403) a request
    whose client certificate's subject lacks any of its RDNs. API Gateway has already verified the
    chain against the truststore and passes the certificate in ``requestContext.identity.clientCert``
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/rest-api-mutual-tls.html); TradingView
    documents the subject it presents (https://www.tradingview.com/support/solutions/43000680459/)."""
    required = _rdns(rt.settings.client_cert_subject)
    if not required:
        return None
    identity = ((event.get("requestContext") or {}).get("identity")) or {}
    cert = identity.get("clientCert") or {}
    subject = str(cert.get("subjectDN") or "")
    if required <= _rdns(subject):
        return None
    return refuse(
        rt, status=403, reason="client_certificate", source_ip=identity.get("sourceIp"),
        message="client certificate: missing or not TradingView's (subject does not match)",
    )  # fmt: skip


# ---------------------------------------------------------------- /health: public up/down, details for operators


def detailed_health_allowed(rt: Runtime, authorization: str | None) -> bool:
    """``Authorization: Bearer <token>`` with the token whose SHA-256 is ``HEALTH_TOKEN_SHA256`` (no
    I/O: works when the database is down) or a live operator token (issue 17)."""
    if not authorization or not authorization.lower().startswith("bearer "):
        return False
    token = authorization[7:].strip()
    if not token:
        return False
    wanted = rt.settings.health_token_sha256
    if wanted and hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(), wanted):
        return True
    try:
        with session_scope(rt.engine()) as session:
            return operators_repo.operator_by_token(session, token, now=rt.clock()).operator is not None
    except Exception:  # no database, no operator check: the public answer stands
        return False
