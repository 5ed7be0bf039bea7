"""The Vote stage: one seat of the AI ensemble (one Parallel branch per seat).

An unconfigured seat says so (:class:`~tradingbot.pipeline.contracts.Unconfigured`): it is not an
abstention and never counts as a vote. The 2-of-3 tally over the branches' results is
:func:`tally`, run by the Validate stage once every branch has answered.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from tradingbot.pipeline.common import stage_candles
from tradingbot.pipeline.contracts import (
    CastAbstention,
    CastVote,
    EnsembleTally,
    SeatResult,
    Unconfigured,
    VoteRequest,
)
from tradingbot.pipeline.runtime import Runtime

log = logging.getLogger(__name__)

# which providers may sit in each seat
_SEAT_PROVIDERS = {"openai": {"openai"}, "anthropic": {"anthropic"}, "llama": {"bedrock", "openai_compatible"}}


def vote_stage(rt: Runtime, req: VoteRequest) -> SeatResult:
    from tradingbot.adapters.ai.ensemble import Ensemble
    from tradingbot.adapters.ai.factory import build_voters
    from tradingbot.adapters.ai.spend import SpendLedger
    from tradingbot.adapters.ai.vote_cache import DictStore, RedisStore, VoteCache
    from tradingbot.domain.brief import build_brief
    from tradingbot.domain.vote import Abstention

    settings = rt.config.ai  # secrets filled at cold start (tradingbot.adapters.aws.with_secrets)
    voters = [v for v in build_voters(settings) if v.provider in _SEAT_PROVIDERS[req.voter]]
    if not voters:
        return Unconfigured(voter=req.voter, reason=f"no credentials configured for {req.voter}")
    predict = req.predict.model_dump() if req.predict is not None else {}
    lstm = {k: v for k, v in predict.items() if isinstance(v, str | int | float)} or None
    window = stage_candles(rt, req.alert, req.account_id)
    brief = build_brief(window.frame, symbol=req.alert.symbol, timeframe=window.timeframe, lstm=lstm,
                        comment=req.alert.comment)  # fmt: skip
    store: Any
    try:
        store = RedisStore(rt.cache().client)
    except RuntimeError:
        store = DictStore()  # no Redis configured at all: no cache, caps per process
    cache = None if isinstance(store, DictStore) else VoteCache(store, ttl_s=settings.ai_cache_ttl_s)
    with Ensemble(voters, cache=cache, ledger=SpendLedger(store, settings.spend_caps())) as ensemble:
        ballot = ensemble.decide(brief).ballots[0]
    fields = ballot.model_dump() | {"voter": req.voter}
    if isinstance(ballot, Abstention):
        log.info("voter %s abstained: %s", req.voter, ballot.reason)
        return CastAbstention.model_validate(fields)
    return CastVote.model_validate(fields)


def tally(ballots: Sequence[SeatResult]) -> EnsembleTally:
    """The 2-of-3 rule over the branches' results; unconfigured seats are not ballots."""
    from tradingbot.adapters.ai.ensemble import decide
    from tradingbot.domain.vote import Abstention, Vote

    cast: list[Vote | Abstention] = []
    for b in ballots:
        if isinstance(b, Unconfigured):
            continue
        fields = b.model_dump(exclude={"configured"})
        cast.append(Vote.model_validate(fields) if isinstance(b, CastVote) else Abstention.model_validate(fields))
    result = decide(cast)
    return EnsembleTally.model_validate(result.model_dump() | {"voters_configured": len(cast)})
