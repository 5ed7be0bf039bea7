"""The Redis lease behind exactly-once order placement (tradingbot.adapters.cache): one holder at a
time, only the holder releases, it expires by itself, no lease at all when Redis is unreachable; and the
PostgreSQL claim that decides which attempt sends a leg."""

from __future__ import annotations

from contextlib import AbstractContextManager
from decimal import Decimal

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tradingbot.adapters.cache import Cache
from tradingbot.adapters.exchange.paper import PaperExchange
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.domain.exchange import OrderRequest
from tradingbot.pipeline.order_service import OrderPlacer, RetryPolicy

BTC = "BTC/USDT:USDT"


def test_one_holder_at_a_time_and_release_frees_it(cache: Cache) -> None:
    first = cache.acquire_lease("orderlock:tb-1", 120)
    assert first is not None and first.key == "tb:orderlock:tb-1"
    assert cache.acquire_lease("orderlock:tb-1", 120) is None
    assert cache.acquire_lease("orderlock:tb-2", 120) is not None  # leases are per name
    assert 119_000 < cache.client.pttl("tb:orderlock:tb-1") <= 120_000
    assert cache.release_lease(first)
    assert cache.client.exists("tb:orderlock:tb-1") == 0
    assert cache.acquire_lease("orderlock:tb-1", 120) is not None


def test_an_expired_holder_cannot_release_the_next_holders_lease(cache: Cache) -> None:
    stale = cache.acquire_lease("orderlock:tb-1", 120)
    assert stale is not None
    cache.client.delete(stale.key)  # what the TTL does to a holder that stalled
    current = cache.acquire_lease("orderlock:tb-1", 120)
    assert current is not None and current.token != stale.token
    assert not cache.release_lease(stale)
    assert cache.client.get("tb:orderlock:tb-1") == current.token.encode()


def test_context_manager_releases_on_the_way_out_even_on_error(cache: Cache) -> None:
    with pytest.raises(RuntimeError), cache.lease("orderlock:tb-1", 120) as held:
        assert held is not None
        with cache.lease("orderlock:tb-1", 120) as second:
            assert second is None  # a second worker is refused while the first holds it
        raise RuntimeError("placement failed")
    assert cache.client.exists("tb:orderlock:tb-1") == 0


def test_no_lease_when_redis_is_unreachable(closed_port: int) -> None:
    down = Cache.from_url(f"redis://127.0.0.1:{closed_port}/0", timeout_s=0.2)
    assert down.acquire_lease("orderlock:tb-1", 120) is None
    with down.lease("orderlock:tb-1", 120) as held:
        assert held is None


def test_a_leg_is_sent_only_by_the_attempt_that_marks_it_submitted(db: Engine, cache: Cache) -> None:
    """The PostgreSQL compare-and-set behind exactly-once: pending -> submitted happens once, before
    the send; an attempt that finds the row submitted looks it up and never sends."""
    with session_scope(db) as s:
        account, _ = repo.create_account(s, name="paper", exchange="paper", testnet=True)
    cache.put_price("binanceusdm", BTC, Decimal(50000))

    def sessions() -> AbstractContextManager[Session]:
        return session_scope(db)

    paper = PaperExchange(sessions, cache, account.id)
    placer = OrderPlacer(sessions, paper, account.id, RetryPolicy(), sleep=lambda _s: None)
    request = OrderRequest(BTC, "buy", "market", Decimal("0.01"), "tb-claimed")
    assert placer.write_rows([(request, None)]) is None
    with session_scope(db) as s:  # another worker claimed it and has not answered yet
        repo.transition_order(s, "tb-claimed", "submitted", detail={"via": "send"})
    unknown = placer.place("open", request)
    assert unknown.status == "submitted" and (unknown.reason or "").startswith("outcome_unknown:")
    assert paper.fetch_order_by_client_id(BTC, "tb-claimed") is None  # nothing reached the venue

    fresh = OrderRequest(BTC, "buy", "market", Decimal("0.01"), "tb-fresh")
    placer.write_rows([(fresh, None)])
    placed = placer.place("open", fresh)
    assert (placed.status, placed.filled) == ("filled", Decimal("0.01"))
    with session_scope(db) as s:
        order = repo.order_by_client_id(s, "tb-fresh")
        assert order is not None and [e.to_status for e in order.events] == ["pending", "submitted", "filled"]
    assert placer.place("open", fresh).status == "filled"  # a replay reads the row
