"""Redis layer on a real redis-server: TTLs, idempotency, kill switch, rate limits, and what each
path does when Redis is unreachable (the policy in tradingbot.adapters.cache's docstring)."""

from __future__ import annotations

import logging
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tradingbot.adapters import cache as cache_mod
from tradingbot.adapters.cache import AI_RESULT_TTL_S, PRICE_TTL_S, Cache, CacheUnavailable, TradingHalted
from tradingbot.entrypoints.local.servers import EmbeddedRedis

AI_INPUTS = {"symbol": "BTC/USDT:USDT", "timeframe": "1h", "close": 64250.5, "signal": "long"}


def test_price_round_trip_and_ttl(cache: Cache) -> None:
    assert cache.put_price("binanceusdm", "BTC/USDT:USDT", Decimal("64250.10"), ts_ms=1_700_000_000_000)
    quote = cache.get_price("binanceusdm", "BTC/USDT:USDT")
    assert quote is not None and quote.price == Decimal("64250.10") and quote.ts_ms == 1_700_000_000_000
    ttl_ms = cache.client.pttl("tb:px:binanceusdm:BTC/USDT:USDT")
    assert PRICE_TTL_S * 1000 - 1000 < ttl_ms <= PRICE_TTL_S * 1000


def test_candles_and_ai_results_have_their_ttls(cache: Cache) -> None:
    rows = [[1_700_000_000_000, 1.0, 2.0, 0.5, 1.5, 10.0], [1_700_003_600_000, 1.5, 2.5, 1.0, 2.0, 12.0]]
    cache.put_candles("okx", "ETH/USDT:USDT", "1h", rows)
    assert cache.get_candles("okx", "ETH/USDT:USDT", "1h") == rows
    assert 14_000 < cache.client.pttl("tb:ohlcv:okx:ETH/USDT:USDT:1h") <= 15_000

    cache.put_ai_result(AI_INPUTS, {"vote": "long", "confidence": 0.7})
    assert cache.get_ai_result(dict(reversed(AI_INPUTS.items()))) == {"vote": "long", "confidence": 0.7}
    assert cache.get_ai_result({**AI_INPUTS, "close": 64251}) is None
    ttl_ms = cache.client.pttl(f"tb:ai:{cache_mod.ai_cache_key(AI_INPUTS)}")
    assert (AI_RESULT_TTL_S - 1) * 1000 < ttl_ms <= AI_RESULT_TTL_S * 1000


def test_prices_really_expire(cache: Cache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_mod, "PRICE_TTL_S", 1)
    cache.put_price("paper", "BTC/USDT:USDT", Decimal(1))
    assert cache.get_price("paper", "BTC/USDT:USDT") is not None
    time.sleep(1.2)
    assert cache.get_price("paper", "BTC/USDT:USDT") is None


def test_idempotency_claim_is_first_wins(cache: Cache) -> None:
    assert cache.claim("alert-123") is True
    assert cache.claim("alert-123") is False
    assert cache.claim("alert-124") is True
    assert 0 < cache.client.ttl("tb:idem:alert-123") <= cache_mod.IDEMPOTENCY_TTL_S


def test_kill_switch_global_and_per_account(cache: Cache) -> None:
    cache.order_gate(1)  # nothing engaged: no exception
    cache.engage_kill_switch("drawdown 12%", account_id=1)
    with pytest.raises(TradingHalted, match="drawdown 12%"):
        cache.order_gate(1)
    cache.order_gate(2)  # other accounts keep trading
    cache.engage_kill_switch("exchange maintenance")
    with pytest.raises(TradingHalted, match="exchange maintenance"):
        cache.order_gate(2)
    cache.release_kill_switch()
    cache.release_kill_switch(account_id=1)
    cache.order_gate(1)


def test_rate_limit_counts_per_window(cache: Cache) -> None:
    results = [cache.allow("webhook:1.2.3.4", 3, 60, when_unavailable="allow") for _ in range(5)]
    assert results == [True, True, True, False, False]
    for _ in range(2):
        cache.order_gate(7, orders_per_minute=2)
    with pytest.raises(TradingHalted, match="more than 2 orders"):
        cache.order_gate(7, orders_per_minute=2)


def test_a_batch_of_hits_counts_as_the_same_hits_one_by_one(cache: Cache) -> None:
    """window_counts (the webhook's group commit: one round trip per batch) answers what window_count
    answers called once per entry, in order, and both count into the same window."""
    assert cache.window_count("acct:1", 60, add=True) == 1
    assert cache.window_counts(["acct:1", "acct:2", "acct:1", "acct:1"], 60) == [2, 1, 3, 4]
    assert cache.window_count("acct:1", 60, add=True) == 5
    assert cache.window_count("acct:2", 60, add=False) == 1
    assert cache.window_counts([], 60) == []


def _check_unreachable_policy(down: Cache) -> None:
    started = time.monotonic()
    # fall back: misses and dropped writes, no exception
    assert down.put_price("paper", "BTC/USDT:USDT", Decimal(1)) is False
    assert down.get_price("paper", "BTC/USDT:USDT") is None
    assert down.get_candles("paper", "BTC/USDT:USDT", "1h") is None
    assert down.put_ai_result(AI_INPUTS, {"vote": "long"}) is False
    assert down.get_ai_result(AI_INPUTS) is None
    assert down.ping() is False
    # raise: the caller must decide (the webhook falls back to the DB's unique idempotency key)
    with pytest.raises(CacheUnavailable, match="unreachable"):
        down.claim("alert-1")
    with pytest.raises(CacheUnavailable):
        down.kill_switch()
    with pytest.raises(CacheUnavailable):
        down.engage_kill_switch("panic")
    with pytest.raises(CacheUnavailable):  # the webhook then limits nobody (ingress.accounts_over_limit)
        down.window_counts(["webhook-account:1"], 60)
    # the caller chooses for rate limits
    assert down.allow("webhook:x", 10, 60, when_unavailable="allow") is True
    assert down.allow("orders:x", 10, 60, when_unavailable="refuse") is False
    # the order path refuses
    with pytest.raises(TradingHalted, match="kill switch cannot be read"):
        down.order_gate(1)
    assert time.monotonic() - started < 5  # fails fast: no retries, short timeouts


def test_redis_never_reachable(closed_port: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tradingbot.adapters.cache")
    _check_unreachable_policy(Cache.from_url(f"redis://:pw-not-logged@127.0.0.1:{closed_port}/0"))
    assert "falling back" in caplog.text
    assert "pw-not-logged" not in caplog.text


def test_redis_going_away_mid_run() -> None:
    """A server that was up and then stops: pooled connections are dead, the policy still holds."""
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp))
        c = Cache.from_url(server.start())
        try:
            c.put_price("paper", "BTC/USDT:USDT", Decimal(5))
            assert c.claim("k") is True
            c.order_gate(1)
        finally:
            server.stop()
        _check_unreachable_policy(c)
