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
ingress lockouts, refusal   ALLOW: a lockout that cannot be read is "not locked" and a wrong token
tallies                     is not counted (the database still authenticates every alert); the
                            webhook then writes its refusal tallies straight to PostgreSQL.
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
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.driver_info import DriverInfo
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
INGRESS_PREFIX = f"{PREFIX}ingress:"
#: sockets a client keeps at most: the busiest process (`serve`: HTTP threads, feed, matcher, workers'
#: stages) needs a few dozen at once; Redis answers in well under a millisecond, so a caller waits little
MAX_CONNECTIONS = 50
INGRESS_OTHER = "*other*"  # the source sources past the per-minute cap are counted under
REFUSAL_TTL_S = 2 * 3600  # tallies live in Redis this long; flushed to PostgreSQL well before

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


# Sliding-window lockout: drop attempts older than the window, add this one, count; at the limit set
# the lock key (TTL = the lockout) and start the window afresh. One script, so concurrent attempts from
# one source cannot both slip under the limit (https://redis.io/docs/latest/commands/eval/: a script
# runs atomically). KEYS: attempts zset, lock key. ARGV: now, window_s, limit, lockout_s, member.
_SLIDING_LOCKOUT = """
local now = tonumber(ARGV[1])
redis.call('zremrangebyscore', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('zadd', KEYS[1], now, ARGV[5])
redis.call('expire', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
local n = redis.call('zcard', KEYS[1])
if n >= tonumber(ARGV[3]) then
  redis.call('set', KEYS[2], '1', 'EX', ARGV[4])
  redis.call('del', KEYS[1])
  return {n, 1}
end
return {n, 0}
"""

# One refused attempt. KEYS: the minute's tallies (hash "reason|source" -> count), the reason's sample
# counter for the hour, the flush lease, the minute's distinct-source set of the reason.
# ARGV: field, the "*other*" field, max distinct sources, tally TTL, flush lease TTL.
_TALLY_REFUSAL = """
local field = ARGV[1]
if redis.call('sismember', KEYS[4], field) == 0 then
  if redis.call('scard', KEYS[4]) >= tonumber(ARGV[3]) then
    field = ARGV[2]
  else
    redis.call('sadd', KEYS[4], field)
    redis.call('expire', KEYS[4], ARGV[4])
  end
end
local n = redis.call('hincrby', KEYS[1], field, 1)
redis.call('expire', KEYS[1], ARGV[4])
local samples = redis.call('incr', KEYS[2])
redis.call('expire', KEYS[2], 3700)
local flush = redis.call('set', KEYS[3], '1', 'NX', 'EX', ARGV[5])
return {field, n, samples, flush and 1 or 0}
"""


@dataclass(frozen=True)
class RefusalTally:
    """What Redis counted for one refused attempt (see ``Cache.tally_refusal``)."""

    source: str  # the source it was counted under: the IP, "unknown" or "*other*"
    count: int  # attempts of this (minute, reason, source) so far, this one included
    samples_this_hour: int  # attempts of this reason this hour, this one included
    flush: bool  # this caller holds the flush lease


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
    def from_url(cls, url: str, *, timeout_s: float = 0.25, max_connections: int = MAX_CONNECTIONS) -> Cache:
        """A client on a bounded, blocking pool: at most ``max_connections`` sockets, a caller waits
        up to ``timeout_s`` for a free one (then CacheUnavailable, like an unreachable Redis). A burst
        of 200 threads (``tradingbot serve``) would otherwise open a connection per thread, each with
        its handshake; its version is passed (``driver_info``) so redis-py does not look its own version up in the
        installed packages' metadata for every new connection (~16 ms of CPU each, py-spy/yappi under
        bench_burst)."""
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # fail fast; the callers below decide what failure means
            decode_responses=False,
            driver_info=DriverInfo(lib_version=redis.__version__),
        )
        return cls(redis.Redis(connection_pool=pool))

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

    def get_price(self, exchange: str, symbol: str, *, strict: bool = False) -> PriceQuote | None:
        """The last price the feed wrote (None: none fresh). ``strict``: an unreachable Redis raises
        ``CacheUnavailable`` instead of reading as "no price" (the paper venue filling an order at it)."""
        key = f"{PREFIX}px:{exchange}:{symbol}"
        raw = (
            self._strict(lambda: self.client.get(key))
            if strict
            else self._soft(lambda: self.client.get(key), None, "get_price")
        )
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

    def window_count(self, bucket: str, window_s: int, *, add: bool) -> int:
        """The fixed-window counter ``allow`` keeps for ``bucket``: read it (``add=False``) or count one
        more hit and return the new total. Raises ``CacheUnavailable``; the caller decides."""
        if add:
            return self.window_counts([bucket], window_s)[0]
        key = f"{PREFIX}rl:{bucket}:{int(time.time()) // window_s}"
        return self._strict(lambda: int(self.client.get(key) or 0))

    def window_counts(self, buckets: Sequence[str], window_s: int) -> list[int]:
        """Count one hit per entry of ``buckets`` (a bucket may repeat) in its fixed window, in one round
        trip; per entry, the total its own hit brought the bucket to (as :meth:`window_count` with
        ``add=True`` would answer called once per entry, in order). Raises ``CacheUnavailable``."""
        window = int(time.time()) // window_s
        hits = Counter(buckets)
        order = list(hits)

        def op() -> list[int]:
            pipe = self.client.pipeline(transaction=True)
            for bucket in order:
                key = f"{PREFIX}rl:{bucket}:{window}"
                pipe.incrby(key, hits[bucket])
                pipe.expire(key, window_s + 1)
            totals = {b: int(t) for b, t in zip(order, pipe.execute()[::2], strict=True)}
            seen: Counter[str] = Counter()
            out = []
            for bucket in buckets:  # the batch's hits are the last ones counted in each bucket
                seen[bucket] += 1
                out.append(totals[bucket] - hits[bucket] + seen[bucket])
            return out

        return self._strict(op) if buckets else []

    # ---------------------------------------------------------- ingress: lockouts and refusal tallies (allow)
    # Ingress paths never refuse an alert because Redis is down (docs/adr/0003): a lockout that cannot be
    # read is "not locked" and the database still authenticates; tallies then go straight to PostgreSQL.

    def lockout_remaining(self, source: str) -> int:
        """Seconds the source is still locked out for (0: not locked, or Redis unreachable)."""
        key = f"{INGRESS_PREFIX}lock:{source}"
        return max(self._soft(lambda: int(self.client.ttl(key)), 0, "lockout check"), 0)

    def note_bad_token(self, source: str, *, limit: int, window_s: int, lockout_s: int) -> bool:
        """Count a wrong token from ``source`` in a sliding window (a sorted set of attempt times); at
        ``limit`` attempts within ``window_s`` the source is locked out for ``lockout_s``. True when this
        attempt locked it. Redis unreachable: nothing counted, False."""
        now = time.time()
        keys = [f"{INGRESS_PREFIX}bad:{source}", f"{INGRESS_PREFIX}lock:{source}"]
        args: list[str | int | float] = [now, window_s, limit, lockout_s, f"{now:.6f}-{secrets.token_hex(4)}"]
        result = self._soft(lambda: self.client.eval(_SLIDING_LOCKOUT, 2, *keys, *args), None, "bad-token count")
        return bool(result and int(result[1]))

    def tally_refusal(
        self, *, minute: int, reason: str, source: str, hour: int, max_sources: int, flush_every_s: int
    ) -> RefusalTally:
        """One refused attempt, in one round trip: its (minute, reason, source) counter, its reason's
        sample counter for the hour, and whether this caller holds the flush lease (at most one flush of
        the tallies to PostgreSQL per ``flush_every_s``). A source past ``max_sources`` distinct sources
        of its reason and minute is counted as ``*other*``. Raises ``CacheUnavailable``."""
        keys = [
            f"{INGRESS_PREFIX}refusals:{minute}",
            f"{INGRESS_PREFIX}samples:{hour}:{reason}",
            f"{INGRESS_PREFIX}flush",
            f"{INGRESS_PREFIX}reasons:{minute}:{reason}",
        ]
        args: list[str | int] = [
            f"{reason}|{source}",
            f"{reason}|{INGRESS_OTHER}",
            max_sources,
            REFUSAL_TTL_S,
            flush_every_s,
        ]
        field, count, samples, flush = self._strict(lambda: self.client.eval(_TALLY_REFUSAL, 4, *keys, *args))
        counted = field.decode() if isinstance(field, bytes) else str(field)
        return RefusalTally(
            source=counted.split("|", 1)[1], count=int(count), samples_this_hour=int(samples), flush=bool(flush)
        )

    def refusal_tallies(self, minutes: Sequence[int]) -> dict[int, dict[tuple[str, str], int]]:
        """The counters of the given minutes: ``{minute: {(reason, source): count}}``. Raises
        ``CacheUnavailable``."""

        def op() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for minute in minutes:
                pipe.hgetall(f"{INGRESS_PREFIX}refusals:{minute}")
            return list(pipe.execute())

        out: dict[int, dict[tuple[str, str], int]] = {}
        for minute, raw in zip(minutes, self._strict(op), strict=True):
            fields: dict[tuple[str, str], int] = {}
            for key, value in (raw or {}).items():
                reason, _, source = (key.decode() if isinstance(key, bytes) else str(key)).partition("|")
                fields[(reason, source)] = int(value)
            if fields:
                out[minute] = fields
        return out

    # ---------------------------------------------------------- order path (refuse)

    def order_gate(
        self, account_id: int, *, orders_per_minute: int = ORDERS_PER_MINUTE, reduce_only: bool = False
    ) -> None:
        """Raise TradingHalted unless an order for ``account_id`` may be sent right now.
        ``reduce_only`` (a close: it only reduces risk) passes an engaged kill switch; the order
        rate still applies, and still refuses when Redis is unreachable."""
        if not reduce_only:
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
