"""The Redis lease behind exactly-once order placement (tradingbot.adapters.cache): one holder at a
time, only the holder releases, it expires by itself, no lease at all when Redis is unreachable, and the
order service sends nothing for a leg whose lease another worker holds."""

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


def test_order_placer_sends_nothing_while_another_worker_holds_the_leg(db: Engine, cache: Cache) -> None:
    with session_scope(db) as s:
        account, _ = repo.create_account(s, name="paper", exchange="paper", testnet=True)
    cache.put_price("binanceusdm", BTC, Decimal(50000))

    def sessions() -> AbstractContextManager[Session]:
        return session_scope(db)

    paper = PaperExchange(sessions, cache, account.id)
    placer = OrderPlacer(sessions, paper, account.id, RetryPolicy(), sleep=lambda _s: None, cache=cache)
    request = OrderRequest(BTC, "buy", "market", Decimal("0.01"), "tb-leased")
    assert placer.write_rows([(request, None)])
    other = cache.acquire_lease("orderlock:tb-leased", 120)  # a concurrent worker's lease
    assert other is not None
    held = placer.place("open", request, fresh=True)
    assert held.status == "pending" and held.reason is not None and held.reason.startswith("in_progress:")
    assert paper.fetch_order_by_client_id(BTC, "tb-leased") is None  # nothing reached the venue
    assert cache.release_lease(other)
    placed = placer.place("open", request, fresh=True)
    assert (placed.status, placed.filled) == ("filled", Decimal("0.01"))
    assert cache.client.exists("tb:orderlock:tb-leased") == 0  # released after the placement
