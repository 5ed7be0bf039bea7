"""Run the voters concurrently and apply the 2-of-3 rule; every ballot goes in the record.

The rule (from the source document): a signal only when at least two voters agree on LONG or SHORT
(and outnumber the opposite side); its confidence is the mean of the agreeing voters' confidences.
Everything else is "no signal", with the reason spelled out (tie, neutral majority, too few votes,
all abstained, no voters). Abstentions are never counted as votes, and with no voter configured
the record says so and counts zero voters.

Locally voters run on a thread pool (the SDK calls are blocking I/O); on AWS the state machine's
Parallel state runs one branch per voter and :func:`decide` combines their ballots.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict

from tradingbot.adapters.ai.spend import CallMetric, MetricsSink, SpendLedger, estimate_cost
from tradingbot.adapters.ai.vote_cache import VoteCache
from tradingbot.adapters.ai.voters.base import Voter
from tradingbot.domain.brief import Brief
from tradingbot.domain.vote import Abstention, Ballot, Usage, Vote

log = logging.getLogger(__name__)

QUORUM: Final = 2
# Slack on top of a voter's own budget before the ensemble stops waiting for it (the adapter's
# own timeout normally fires first; this bounds a hung socket or a slow SDK).
DEADLINE_GRACE_S: Final = 0.5
NO_VOTERS_NOTE: Final = (
    "no AI voters configured (set OPENAI_API_KEY, ANTHROPIC_API_KEY, BEDROCK_REGION "
    "or AI_OPENAI_COMPATIBLE_BASE_URL); nothing was asked, no AI vote counted"
)

Outcome = Literal["agreement", "tie", "neutral_majority", "no_quorum", "all_abstained", "no_voters"]


class Tally(BaseModel):
    model_config = ConfigDict(frozen=True)

    signal: Literal["LONG", "SHORT"] | None
    outcome: Outcome
    confidence: float | None
    agreeing: list[str]
    counts: dict[str, int]


class EnsembleDecision(BaseModel):
    """The decision record: stored and shown as is."""

    model_config = ConfigDict(frozen=True)

    brief_digest: str
    decided_at: str
    voters_configured: int
    signal: Literal["LONG", "SHORT"] | None
    outcome: Outcome
    confidence: float | None
    agreeing: list[str]
    counts: dict[str, int]
    ballots: list[Ballot]
    note: str = ""
    latency_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


def decide(ballots: Sequence[Vote | Abstention]) -> Tally:
    """The pure voting rule over whatever ballots came back."""
    votes = [b for b in ballots if isinstance(b, Vote)]
    counts: Counter[str] = Counter(v.vote for v in votes)
    tally_counts = {
        "LONG": counts["LONG"],
        "SHORT": counts["SHORT"],
        "NEUTRAL": counts["NEUTRAL"],
        "ABSTAIN": len(ballots) - len(votes),
    }
    base: dict[str, Any] = {"counts": tally_counts, "signal": None, "confidence": None, "agreeing": []}
    if not ballots:
        return Tally(outcome="no_voters", **base)
    sides: tuple[tuple[Literal["LONG", "SHORT"], str], ...] = (("LONG", "SHORT"), ("SHORT", "LONG"))
    for side, other in sides:
        if counts[side] >= QUORUM and counts[side] > counts[other]:
            agreeing = [v for v in votes if v.vote == side]
            confidence = sum(v.confidence for v in agreeing) / len(agreeing)
            return Tally(
                outcome="agreement",
                signal=side,
                confidence=round(confidence, 4),
                agreeing=[v.voter for v in agreeing],
                counts=tally_counts,
            )
    if not votes:
        return Tally(outcome="all_abstained", **base)
    if counts["LONG"] == counts["SHORT"] and counts["LONG"] > 0:
        return Tally(outcome="tie", **base)
    if counts["NEUTRAL"] >= QUORUM:
        return Tally(outcome="neutral_majority", **base)
    return Tally(outcome="no_quorum", **base)


class Ensemble:
    """Ask every voter about one brief, in parallel, through the cache and the spend cap."""

    def __init__(
        self,
        voters: Sequence[Voter],
        *,
        cache: VoteCache | None = None,
        ledger: SpendLedger | None = None,
        metrics: MetricsSink | None = None,
        grace_s: float = DEADLINE_GRACE_S,
    ) -> None:
        names = [v.name for v in voters]
        if len(set(names)) != len(names):
            raise ValueError(f"voter names must be unique: {names}")
        self.voters = list(voters)
        self.cache = cache
        self.ledger = ledger
        self.metrics = metrics
        self.grace_s = grace_s
        # Twice the voters: a voter abandoned at the deadline may still hold its thread for a while.
        self._pool = ThreadPoolExecutor(max_workers=max(1, 2 * len(voters)), thread_name_prefix="voter")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Ensemble:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def decide(self, brief: Brief) -> EnsembleDecision:
        started = time.perf_counter()
        now = time.monotonic()
        futures = [
            (v, self._pool.submit(self._ballot, v, brief), now + v.timeout_s + self.grace_s) for v in self.voters
        ]
        ballots = [self._collect(v, f, deadline) for v, f, deadline in futures]
        tally = decide(ballots)
        return EnsembleDecision(
            brief_digest=brief.digest(),
            decided_at=dt.datetime.now(dt.UTC).isoformat(),
            voters_configured=len(self.voters),
            ballots=ballots,
            note=self._note(),
            latency_ms=(time.perf_counter() - started) * 1e3,
            input_tokens=sum(b.usage.input_tokens for b in ballots),
            output_tokens=sum(b.usage.output_tokens for b in ballots),
            cost_usd=sum(b.cost_usd for b in ballots),
            **tally.model_dump(),
        )

    def _note(self) -> str:
        if not self.voters:
            return NO_VOTERS_NOTE
        if len(self.voters) < 3:
            return f"{len(self.voters)} of 3 voters configured; a signal still needs {QUORUM} agreeing votes"
        return ""

    def _collect(self, voter: Voter, future: Future[Vote | Abstention], deadline: float) -> Vote | Abstention:
        try:
            ballot = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            # The thread cannot be killed; it finishes in the background (its cost still reaches
            # the ledger) but its answer no longer counts.
            future.cancel()
            ballot = Abstention(
                voter=voter.name,
                model=voter.model,
                reason="timeout",
                detail=f"no answer within {voter.timeout_s:g} s (ensemble deadline)",
                latency_ms=(voter.timeout_s + self.grace_s) * 1e3,
            )
        self._record(voter, ballot)
        return ballot

    def _ballot(self, voter: Voter, brief: Brief) -> Vote | Abstention:
        started = time.perf_counter()
        try:
            ballot = self._ask(voter, brief)
        except Exception as exc:  # an adapter bug becomes one abstention, not a failed decision
            log.exception("voter %s crashed", voter.name)
            ballot = Abstention(
                voter=voter.name,
                model=voter.model,
                reason="internal_error",
                detail=f"{type(exc).__name__}: {exc}"[:200],
            )
        return ballot.model_copy(update={"latency_ms": (time.perf_counter() - started) * 1e3})

    def _ask(self, voter: Voter, brief: Brief) -> Vote | Abstention:
        if (hit := self._cached(voter, brief)) is not None:
            # a cached vote was paid for once already; this use costs nothing
            return hit.model_copy(update={"cached": True, "cost_usd": 0.0, "usage": Usage(), "attempts": 0})
        if (capped := self._spend_check(voter)) is not None:
            return capped
        ballot = voter.vote(brief)
        cost = estimate_cost(voter.provider, voter.model, ballot.usage)
        ballot = ballot.model_copy(update={"cost_usd": cost})
        try:
            if self.ledger is not None:
                self.ledger.add(voter.provider, cost)
            if self.cache is not None and isinstance(ballot, Vote):
                self.cache.put(brief, ballot)
        except Exception:  # the vote is real; losing its bookkeeping must not lose the vote
            log.exception("recording %s's vote in cache/ledger failed", voter.name)
        return ballot

    def _cached(self, voter: Voter, brief: Brief) -> Vote | None:
        if self.cache is None:
            return None
        try:
            return self.cache.get(brief, voter.name, voter.model)
        except Exception:  # cache down = cache miss: availability over saving one call
            log.exception("vote cache read failed; asking %s", voter.name)
            return None

    def _spend_check(self, voter: Voter) -> Abstention | None:
        if self.ledger is None:
            return None
        try:
            if not self.ledger.cap_reached(voter.provider):
                return None
            detail = f"daily spend cap for {voter.provider} reached ({self.ledger.spent(voter.provider):.4f} USD)"
        except Exception as exc:  # fail closed: an unknown spend must not become unlimited spend
            log.exception("spend ledger unavailable")
            detail = f"spend ledger unavailable ({type(exc).__name__}); not calling {voter.provider}"
        return Abstention(voter=voter.name, model=voter.model, reason="spend_cap", detail=detail)

    def _record(self, voter: Voter, ballot: Vote | Abstention) -> None:
        if self.metrics is None:
            return
        self.metrics.record(
            CallMetric(
                voter=voter.name,
                provider=voter.provider,
                model=voter.model,
                outcome="vote" if isinstance(ballot, Vote) else ballot.reason,
                input_tokens=ballot.usage.input_tokens,
                output_tokens=ballot.usage.output_tokens,
                cost_usd=ballot.cost_usd,
                latency_ms=ballot.latency_ms,
                attempts=ballot.attempts,
                cached=ballot.cached,
            )
        )
