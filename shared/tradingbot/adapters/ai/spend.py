"""Per-call tokens, cost and latency as metrics, and a daily spend cap per provider.

Costs are an ESTIMATE: list prices per million tokens, copied by hand into :data:`PRICES` (check
them against the providers' pricing pages when models change). They ignore cached-input discounts,
batch tiers and taxes, so the real invoice can differ. A model missing from the table is charged
at :data:`UNKNOWN_MODEL_PRICE`, the dearest rate listed, so a cap errs on the side of stopping early.

The cap is checked before a call and the cost added after it, so concurrent calls can overshoot
the cap by at most one call per voter; the counter lives in Redis so every Lambda shares it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from tradingbot.adapters.ai.vote_cache import KeyValueStore
from tradingbot.domain.vote import Usage


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float


# USD per 1M tokens, list prices (estimate; see module docstring).
PRICES: Final[dict[str, Price]] = {
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "gpt-5-nano": Price(0.05, 0.40),
    "gpt-5": Price(1.25, 10.00),
    "claude-haiku-4-5": Price(1.00, 5.00),
    "claude-sonnet-4-5": Price(3.00, 15.00),
    "claude-opus-4-1": Price(15.00, 75.00),
    "meta.llama3-1-70b-instruct-v1:0": Price(0.72, 0.72),
    "meta.llama3-1-8b-instruct-v1:0": Price(0.22, 0.22),
    "meta.llama3-3-70b-instruct-v1:0": Price(0.72, 0.72),
    "meta.llama4-maverick-17b-instruct-v1:0": Price(0.24, 0.97),
}
UNKNOWN_MODEL_PRICE: Final = Price(15.00, 75.00)
FREE: Final = Price(0.0, 0.0)
_REGION_PREFIXES = ("us.", "eu.", "apac.", "global.")
_SPEND_TTL_S = 2 * 24 * 3600  # keep yesterday's counter a while for inspection


def price_for(provider: str, model: str) -> Price:
    if provider == "openai_compatible":
        return FREE  # self-hosted (e.g. Ollama): no per-token bill
    bare = model
    for prefix in _REGION_PREFIXES:  # Bedrock inference profiles share the base model's price
        bare = bare.removeprefix(prefix)
    if bare in PRICES:
        return PRICES[bare]
    # dated snapshots ("claude-haiku-4-5-20251001") are priced as their alias
    for name in sorted(PRICES, key=len, reverse=True):
        if bare.startswith(name + "-"):
            return PRICES[name]
    return UNKNOWN_MODEL_PRICE


def estimate_cost(provider: str, model: str, usage: Usage) -> float:
    p = price_for(provider, model)
    return (usage.input_tokens * p.input_per_mtok + usage.output_tokens * p.output_per_mtok) / 1e6


@dataclass(frozen=True)
class CallMetric:
    voter: str
    provider: str
    model: str
    outcome: str  # "vote" or the abstention reason
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: float
    attempts: int
    cached: bool


class MetricsSink(Protocol):
    """Where per-call metrics go: a Powertools EMF adapter at the Lambda edge, a list locally."""

    def record(self, metric: CallMetric) -> None: ...


class InMemoryMetrics:
    def __init__(self) -> None:
        self.calls: list[CallMetric] = []
        self._lock = threading.Lock()

    def record(self, metric: CallMetric) -> None:
        with self._lock:
            self.calls.append(metric)


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


class SpendLedger:
    """Daily (UTC) spend per provider against a cap; a provider without a cap is unlimited."""

    def __init__(
        self, store: KeyValueStore, caps_usd: Mapping[str, float], today: Callable[[], dt.date] = _utc_today
    ) -> None:
        self.store = store
        self.caps_usd = dict(caps_usd)
        self._today = today

    def _key(self, provider: str) -> str:
        return f"tradingbot:ai:spend:{provider}:{self._today().isoformat()}"

    def spent(self, provider: str) -> float:
        raw = self.store.get(self._key(provider))
        return float(raw) if raw else 0.0

    def cap_reached(self, provider: str) -> bool:
        cap = self.caps_usd.get(provider)
        return cap is not None and self.spent(provider) >= cap

    def add(self, provider: str, usd: float) -> float:
        if usd <= 0:
            return self.spent(provider)
        return self.store.incr_float(self._key(provider), usd, _SPEND_TTL_S)
