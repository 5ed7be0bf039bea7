"""Redis layer: latest prices and candles, AI results, idempotency keys, kill switch, rate limits.

Redis is a speed-up and a coordination point, never the record (PostgreSQL is). Each path's
behaviour when Redis is unreachable (connection refused or no answer within ``timeout_s``,
250 ms by default, no retries: a Lambda must not spend its budget waiting) is decided here:

==========================  =====================================================================
path                        when Redis is unreachable
==========================  =====================================================================
latest price, candles       FALL BACK: reads return None (a miss), writes are dropped. The caller
                            fetches from the exchange's REST API, as on a cold cache.
AI result cache (5 min)     FALL BACK: a miss; the ensemble asks the models again (slower, costs
                            tokens, but correct). Writes are dropped.
idempotency keys (SET NX)   RAISE ``CacheUnavailable``: the webhook then relies on the database's
                            unique ``alerts.idempotency_key`` (``record_alert``), which is the
                            authority anyway; Redis only answers duplicates before the DB is hit.
kill switch                 REFUSE: ``kill_switch()`` raises; the order gate treats an unknown
                            switch as engaged. Engaging/releasing raise, so an operator never
                            believes a switch flipped that did not.
rate-limit counters         the CALLER CHOOSES with ``when_unavailable``: ingress limits allow
                            (the alert is still authenticated and deduplicated by the DB); the
                            order path's limit refuses.
order gate                  REFUSE: ``order_gate`` raises ``TradingHalted``. Without Redis we can
                            see neither the kill switch nor the order rate: no trading blind.
leases (``acquire_lease``)  REFUSE: no lease is granted, so the caller does not act (the order
                            service sends nothing). Releasing is best effort: the lease expires.
==========================  =====================================================================

The reasoning is in docs/adr/0003-redis-unavailable.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from tradingbot.errors import DependencyUnavailable, PermanentError

PRICE_TTL_S = 15
CANDLES_TTL_S = 15
AI_RESULT_TTL_S = 300
IDEMPOTENCY_TTL_S = 24 * 3600  # TradingView retries within minutes; the DB keeps the key forever
ORDERS_PER_MINUTE = 30  # per account; well under Binance's and OKX's order-rate limits
PREFIX = "tb:"
MARKET_MODE_KEY = f"{PREFIX}market:mode"  # {"mode": "live" | "offline replay", ...}
KILL_SWITCH_KEY = PREFIX + "kill"

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_log = logging.getLogger(__name__)
T = TypeVar("T")


class CacheUnavailable(DependencyUnavailable):
    """Redis could not be reached (the message names host:port, never a password). Transient: redis
    ``ConnectionError``/``TimeoutError`` and socket errors become this, here and nowhere else."""


class TradingHalted(PermanentError):  # noqa: N818
    """The order path refuses: kill switch engaged, Redis unreachable, or order rate exceeded.
    Permanent for this decision: the alert is not retried into a market that has moved on."""


@dataclass(frozen=True)
class Lease:
    """A held lease on ``key``: ours until released or until its TTL runs out. ``token`` proves
    ownership, so a holder whose lease expired cannot release the next holder's."""

    key: str
    token: str


# The single-instance lock of the SET command's documentation (https://redis.io/commands/set/,
# "Patterns"): SET key token NX EX ttl to take it, and a script that deletes the key only if it
# still holds our token, so an expired holder never frees someone else's lease. The check and the
# delete must be one atomic step, hence Lua (https://redis.io/commands/eval/).
_RELEASE_LEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


@dataclass(frozen=True)
class PriceQuote:
    symbol: str
    price: Decimal
    ts_ms: int


def ai_cache_key(inputs: Mapping[str, Any]) -> str:
    """Key for an AI result: a digest of the canonical JSON of everything the models were shown."""
    canonical = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Cache:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        kwargs = client.connection_pool.connection_kwargs
        self._where = f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 0.25) -> Cache:
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # fail fast; the callers below decide what failure means
            decode_responses=False,
        )
        return cls(client)

    # ---------------------------------------------------------- plumbing

    def _strict(self, op: Callable[[], T]) -> T:
        try:
            return op()
        except _UNREACHABLE as exc:
            raise CacheUnavailable(f"Redis at {self._where} is unreachable: {type(exc).__name__}") from None

    def _soft(self, op: Callable[[], T], default: T, what: str) -> T:
        try:
            return op()
        except _UNREACHABLE as exc:
            _log.warning("redis at %s unreachable during %s (%s); falling back", self._where, what, type(exc).__name__)
            return default

    def ping(self) -> bool:
        return self._soft(lambda: bool(self.client.ping()), False, "ping")

    # ---------------------------------------------------------- market data (fall back)

    def put_price(self, exchange: str, symbol: str, price: Decimal, ts_ms: int | None = None) -> bool:
        ts = ts_ms if ts_ms is not None else int(time.time() * 1000)
        value = json.dumps({"p": str(price), "t": ts})
        key = f"{PREFIX}px:{exchange}:{symbol}"
        return self._soft(lambda: bool(self.client.set(key, value, ex=PRICE_TTL_S)), False, "put_price")

    def get_price(self, exchange: str, symbol: str) -> PriceQuote | None:
        raw = self._soft(lambda: self.client.get(f"{PREFIX}px:{exchange}:{symbol}"), None, "get_price")
        if raw is None:
            return None
        doc = json.loads(raw)
        return PriceQuote(symbol=symbol, price=Decimal(doc["p"]), ts_ms=int(doc["t"]))

    def put_candles(self, exchange: str, symbol: str, timeframe: str, candles: Sequence[Sequence[float]]) -> bool:
        """Recent candles as [ts_ms, open, high, low, close, volume] rows (ccxt's OHLCV shape)."""
        key = f"{PREFIX}ohlcv:{exchange}:{symbol}:{timeframe}"
        value = json.dumps([list(c) for c in candles])
        return self._soft(lambda: bool(self.client.set(key, value, ex=CANDLES_TTL_S)), False, "put_candles")

    def get_candles(self, exchange: str, symbol: str, timeframe: str) -> list[list[float]] | None:
        key = f"{PREFIX}ohlcv:{exchange}:{symbol}:{timeframe}"
        raw = self._soft(lambda: self.client.get(key), None, "get_candles")
        return None if raw is None else list(json.loads(raw))

    def put_market_mode(self, doc: Mapping[str, Any], ttl_s: int = PRICE_TTL_S) -> bool:
        """Where this deployment's market data comes from (``tradingbot serve`` writes it while it
        runs: live feed or offline replay); expires with the prices it describes."""
        value = json.dumps(dict(doc), default=str)
        return self._soft(lambda: bool(self.client.set(MARKET_MODE_KEY, value, ex=ttl_s)), False, "put_market_mode")

    def market_mode(self) -> dict[str, Any] | None:
        raw = self._soft(lambda: self.client.get(MARKET_MODE_KEY), None, "market_mode")
        return None if raw is None else dict(json.loads(raw))

    # ---------------------------------------------------------- AI results (fall back)

    def put_ai_result(self, inputs: Mapping[str, Any], result: Mapping[str, Any]) -> bool:
        key = f"{PREFIX}ai:{ai_cache_key(inputs)}"
        value = json.dumps(result, default=str)
        return self._soft(lambda: bool(self.client.set(key, value, ex=AI_RESULT_TTL_S)), False, "put_ai_result")

    def get_ai_result(self, inputs: Mapping[str, Any]) -> dict[str, Any] | None:
        raw = self._soft(lambda: self.client.get(f"{PREFIX}ai:{ai_cache_key(inputs)}"), None, "get_ai_result")
        return None if raw is None else dict(json.loads(raw))

    # ---------------------------------------------------------- idempotency (raise)

    def claim(self, key: str, ttl_s: int = IDEMPOTENCY_TTL_S) -> bool:
        """SET NX: True for the first caller with ``key``, False for every duplicate."""
        return self._strict(lambda: bool(self.client.set(f"{PREFIX}idem:{key}", b"1", nx=True, ex=ttl_s)))

    # ---------------------------------------------------------- leases (refuse)

    def acquire_lease(self, name: str, ttl_s: int) -> Lease | None:
        """Take the lease ``name`` (key ``tb:<name>``) for ``ttl_s`` seconds; None if another holder has it or Redis
        failed in any way (unreachable, or an error reply): without a lease the caller must not act."""
        lease = Lease(PREFIX + name, secrets.token_hex(8))
        try:
            taken = self.client.set(lease.key, lease.token, nx=True, ex=ttl_s)
        except (RedisError, OSError):
            return None
        return lease if taken else None

    def release_lease(self, lease: Lease) -> bool:
        """Give the lease back; False if it was no longer ours (expired) or Redis failed, in which
        case it expires by itself after its TTL."""
        try:
            return bool(self.client.eval(_RELEASE_LEASE, 1, lease.key, lease.token))
        except (RedisError, OSError):
            return False

    @contextmanager
    def lease(self, name: str, ttl_s: int) -> Iterator[Lease | None]:
        """``with cache.lease(name, ttl) as held:`` ``held`` is None when the lease was not granted;
        a granted one is released on the way out, whatever happens inside."""
        held = self.acquire_lease(name, ttl_s)
        try:
            yield held
        finally:
            if held is not None:
                self.release_lease(held)

    # ---------------------------------------------------------- kill switch (refuse)

    def engage_kill_switch(self, reason: str, account_id: int | None = None) -> None:
        self._strict(lambda: self.client.set(_kill_key(account_id), reason.encode()))

    def release_kill_switch(self, account_id: int | None = None) -> None:
        self._strict(lambda: self.client.delete(_kill_key(account_id)))

    def kill_switch(self, account_id: int | None = None) -> str | None:
        """The reason the switch is engaged (global first, then the account's), or None."""
        keys = [KILL_SWITCH_KEY] if account_id is None else [KILL_SWITCH_KEY, _kill_key(account_id)]
        values = self._strict(lambda: self.client.mget(keys))
        for value in values:
            if value is not None:
                return value.decode() if isinstance(value, bytes) else str(value)
        return None

    # ---------------------------------------------------------- rate limits (caller decides)

    def allow(self, bucket: str, limit: int, window_s: int, *, when_unavailable: Literal["allow", "refuse"]) -> bool:
        """Fixed-window counter: True while this window has seen at most ``limit`` hits."""
        window = int(time.time()) // window_s
        key = f"{PREFIX}rl:{bucket}:{window}"

        def hit() -> int:
            pipe = self.client.pipeline(transaction=True)
            pipe.incr(key)
            pipe.expire(key, window_s + 1)
            count, _ = pipe.execute()
            return int(count)

        try:
            return self._strict(hit) <= limit
        except CacheUnavailable:
            if when_unavailable == "allow":
                _log.warning("rate limit %s not checked: redis at %s unreachable; allowing", bucket, self._where)
                return True
            return False

    # ---------------------------------------------------------- order path (refuse)

    def order_gate(self, account_id: int, *, orders_per_minute: int = ORDERS_PER_MINUTE) -> None:
        """Raise TradingHalted unless an order for ``account_id`` may be sent right now."""
        try:
            reason = self.kill_switch(account_id)
        except CacheUnavailable as exc:
            raise TradingHalted(f"order refused: kill switch cannot be read ({exc})") from None
        if reason is not None:
            raise TradingHalted(f"order refused: kill switch engaged: {reason}")
        if not self.allow(f"orders:{account_id}", orders_per_minute, 60, when_unavailable="refuse"):
            raise TradingHalted(
                f"order refused: more than {orders_per_minute} orders this minute for account {account_id}, "
                "or Redis became unreachable"
            )


def _kill_key(account_id: int | None) -> str:
    return KILL_SWITCH_KEY if account_id is None else f"{KILL_SWITCH_KEY}:{account_id}"
