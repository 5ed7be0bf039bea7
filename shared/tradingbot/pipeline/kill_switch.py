"""The kill switch, durable: PostgreSQL holds it, Redis is its fast path.

Redis keeps nothing across a restart (``tradingbot serve`` runs it with ``--save "" --appendonly
no``; an ElastiCache node can be replaced), so a switch kept only there is released by a restart
(the issue-15 fault matrix's ``kill_switch_redis_restart`` cell). Here:

* :func:`engage` writes the ``kill_switches`` row first (the durable record), then the Redis key;
  :func:`release` deletes both.
* :func:`state` is engaged when EITHER says engaged (Redis first; a Redis that cannot be read is
  reported by raising ``CacheUnavailable``, which every caller treats as "refuse"). When PostgreSQL
  has a row that Redis lacks, the key is written back (re-seeded), so the order gate's fast path
  sees it again.
* :func:`check` is the order path's gate: ``TradingHalted`` when :func:`state` says engaged.

``scope``: the global switch (``account_id`` None) or one account's. Used by ``tradingbot
kill-switch engage|release|status``, the Validate stage's kill-switch rule and the Execute stage's
order gate (:func:`tradingbot.pipeline.order_service.execute_intent`).
"""

from __future__ import annotations

import logging

from tradingbot.adapters.cache import Cache, CacheUnavailable, TradingHalted
from tradingbot.adapters.persistence.db import SessionFactory
from tradingbot.adapters.persistence.repositories import kill_switches as repo

log = logging.getLogger(__name__)

GLOBAL = "global"


def scope_of(account_id: int | None) -> str:
    """The ``kill_switches.scope`` of the global switch (None) or of one account's."""
    return GLOBAL if account_id is None else f"account:{account_id}"


def engage(session_factory: SessionFactory, cache: Cache, *, reason: str, account_id: int | None = None) -> None:
    """Engage the switch: stored in PostgreSQL (committed) before Redis is told; a Redis that is
    unreachable leaves the durable row, which the next :func:`state` re-seeds from."""
    if not reason.strip():
        raise ValueError("reason: must not be empty (it is shown in every rejection)")
    with session_factory() as s:
        repo.engage_kill_switch(s, scope_of(account_id), reason)
    cache.engage_kill_switch(reason, account_id=account_id)


def release(session_factory: SessionFactory, cache: Cache, *, account_id: int | None = None) -> None:
    """Release the switch in both stores (Redis first, so a failure leaves it engaged, never half)."""
    cache.release_kill_switch(account_id=account_id)
    with session_factory() as s:
        repo.release_kill_switch(s, scope_of(account_id))


def scopes_of(account_id: int | None) -> list[str]:
    """The scopes that halt ``account_id``: the global switch first, then the account's own."""
    return [GLOBAL] if account_id is None else [GLOBAL, scope_of(account_id)]


def state(session_factory: SessionFactory, cache: Cache, account_id: int | None = None) -> str | None:
    """The reason the switch is engaged for ``account_id`` (the global switch first), or None.
    Raises ``CacheUnavailable`` when Redis cannot be read (callers refuse then)."""
    fast = cache.kill_switch(account_id)
    if fast is not None:
        return fast
    with session_factory() as s:
        rows = repo.kill_switch_reasons(s, scopes_of(account_id))
    return from_durable(cache, account_id, rows)


def from_durable(cache: Cache, account_id: int | None, rows: dict[str, str]) -> str | None:
    """When Redis had no reason: the reason among PostgreSQL's engaged ``rows`` (scope -> reason, as
    :func:`~tradingbot.adapters.persistence.repositories.kill_switch_reasons` reads them for
    :func:`scopes_of`), the global switch first; Redis is re-seeded with it (it restarted empty)."""
    for scope in scopes_of(account_id):
        if scope in rows:
            try:  # re-seed the fast path (Redis restarted empty)
                cache.engage_kill_switch(rows[scope], account_id=None if scope == GLOBAL else account_id)
                log.warning("kill switch %s: engaged in PostgreSQL, missing in Redis: re-seeded", scope)
            except CacheUnavailable:
                pass  # engaged anyway: the answer below does not depend on Redis
            return rows[scope]
    return None


def check(session_factory: SessionFactory, cache: Cache, account_id: int) -> None:
    """Raise ``TradingHalted`` when the switch is engaged (either store) or cannot be read."""
    try:
        reason = state(session_factory, cache, account_id)
    except CacheUnavailable as exc:
        raise TradingHalted(f"order refused: kill switch cannot be read ({exc})") from None
    if reason is not None:
        raise TradingHalted(f"order refused: kill switch engaged: {reason}")
