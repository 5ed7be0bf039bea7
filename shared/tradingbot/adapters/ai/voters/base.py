"""The voter interface and the retry/timeout policy every adapter shares.

Why our own retry loop instead of the SDKs' (all SDK clients are built with ``max_retries=0``):
the OpenAI and Anthropic SDKs retry twice by default and honour ``Retry-After`` for up to a
minute, and botocore has its own retry modes; none of them knows the voter's time budget. Here a
voter has one budget (``timeout_s``, default 8 s) for the whole call: at most two attempts, the
second only after a transient failure (429, 5xx, connection error, timeout) and only if enough of
the budget is left. Every failure ends as an :class:`Abstention` with a stable reason code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from tradingbot.adapters.ai.defaults import DEFAULT_TIMEOUT_S
from tradingbot.domain.brief import Brief
from tradingbot.domain.vote import AbstainReason, Abstention, Usage, Vote, parse_vote

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # the first call plus exactly one retry
RETRY_BACKOFF_S = 0.2
MIN_ATTEMPT_S = 0.05  # below this a retry cannot succeed; abstain instead of burning a request


@runtime_checkable
class Voter(Protocol):
    """Anything that turns a brief into a ballot. Never raises for provider trouble."""

    name: str  # unique within an ensemble, e.g. "openai"
    provider: str  # whose spend cap applies: "openai", "anthropic", "bedrock", "openai_compatible"
    model: str
    timeout_s: float

    def vote(self, brief: Brief) -> Vote | Abstention: ...


@dataclass(frozen=True)
class Reply:
    """What one successful HTTP exchange produced, before vote validation."""

    answer: str | dict[str, Any] | None
    usage: Usage = field(default_factory=Usage)
    refusal: str | None = None


@dataclass(frozen=True)
class CallFailure:
    """A provider error already classified by the adapter."""

    reason: AbstainReason
    transient: bool
    detail: str = ""


def failure_from_status(status: int, detail: str) -> CallFailure:
    """Map an HTTP status to a reason; 408, 409, 429 and 5xx are worth the one retry."""
    if status == 429:
        return CallFailure("rate_limited", True, detail)
    if status >= 500:
        return CallFailure("server_error", True, detail)
    if status == 408:
        return CallFailure("timeout", True, detail)
    if status == 409:
        return CallFailure("server_error", True, detail)
    return CallFailure("api_error", False, detail)


@dataclass
class RetryingVoter:
    """Base for adapters: subclasses implement :meth:`_call` (one attempt) and :meth:`_classify`."""

    name: str
    provider: str
    model: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    # Cap on one attempt; None = the whole remaining budget. Set it below timeout_s (e.g. 5 of 8 s)
    # to leave room for retrying a timed-out first attempt.
    attempt_timeout_s: float | None = None
    backoff_s: float = RETRY_BACKOFF_S
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def _call(self, brief: Brief, timeout_s: float) -> Reply:
        raise NotImplementedError

    def _classify(self, exc: Exception) -> CallFailure:
        raise NotImplementedError

    def vote(self, brief: Brief) -> Vote | Abstention:
        deadline = self.clock() + self.timeout_s
        failure = CallFailure("timeout", True, "no time left for an attempt")
        for attempt in range(1, MAX_ATTEMPTS + 1):
            remaining = deadline - self.clock()
            if remaining < MIN_ATTEMPT_S:
                return self._abstain(failure, attempt - 1)
            budget = min(remaining, self.attempt_timeout_s or remaining)
            try:
                reply = self._call(brief, budget)
            except Exception as exc:  # provider SDKs raise many types; all become reasons
                failure = self._safe_classify(exc)
                log.info("voter %s attempt %d failed: %s %s", self.name, attempt, failure.reason, failure.detail)
                if not failure.transient or attempt == MAX_ATTEMPTS:
                    return self._abstain(failure, attempt)
                if deadline - self.clock() < self.backoff_s + MIN_ATTEMPT_S:
                    return self._abstain(failure, attempt)
                self.sleep(self.backoff_s)
                continue
            return self._ballot(reply, attempt)
        return self._abstain(failure, MAX_ATTEMPTS)  # pragma: no cover - loop always returns

    def _safe_classify(self, exc: Exception) -> CallFailure:
        try:
            return self._classify(exc)
        except Exception:  # a classifier bug must not take the ensemble down
            log.exception("classifying %r failed", exc)
            return CallFailure("internal_error", False, repr(exc)[:200])

    def _ballot(self, reply: Reply, attempts: int) -> Vote | Abstention:
        if reply.refusal is not None:
            return Abstention(
                voter=self.name,
                model=self.model,
                reason="refusal",
                detail=reply.refusal[:200],
                usage=reply.usage,
                attempts=attempts,
            )
        return parse_vote(reply.answer, voter=self.name, model=self.model, usage=reply.usage, attempts=attempts)

    def _abstain(self, failure: CallFailure, attempts: int) -> Abstention:
        return Abstention(
            voter=self.name, model=self.model, reason=failure.reason, detail=failure.detail[:200], attempts=attempts
        )


def classify_stainless(exc: Exception, sdk: Any) -> CallFailure:
    """Classify an error from the OpenAI or Anthropic SDK (both share the same exception layout)."""
    if isinstance(exc, sdk.APITimeoutError):
        return CallFailure("timeout", True, "request timed out")
    if isinstance(exc, sdk.APIConnectionError):
        return CallFailure("connection_error", True, str(exc))
    if isinstance(exc, sdk.APIStatusError):
        return failure_from_status(int(exc.status_code), f"HTTP {exc.status_code}: {exc.message}")
    if isinstance(exc, sdk.APIResponseValidationError):
        return CallFailure("malformed", False, str(exc))
    if isinstance(exc, ValueError):  # e.g. a 200 whose body is not JSON
        return CallFailure("malformed", False, f"{type(exc).__name__}: {exc}")
    return CallFailure("internal_error", False, f"{type(exc).__name__}: {exc}")
