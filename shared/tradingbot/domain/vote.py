"""What a voter returns: a validated :class:`Vote` or an :class:`Abstention` that says why not.

A model's answer is untrusted input. It becomes a vote only if it validates against
:class:`VotePayload` exactly (no extra keys, confidence 0-100, rationale <= 300 characters);
anything else is an abstention whose ``detail`` keeps the validation error, so a bad answer is
visible in the decision record instead of silently counted.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Direction = Literal["LONG", "SHORT", "NEUTRAL"]

RATIONALE_MAX_CHARS: Final = 300

# Why a voter did not vote. Stable codes: they are stored, counted and shown.
AbstainReason = Literal[
    "timeout",  # no answer inside the voter's time budget (after the retry, if one fitted)
    "rate_limited",  # 429 / throttling, still failing after the one retry
    "server_error",  # 5xx / overloaded, still failing after the one retry
    "connection_error",  # could not reach the provider, after the one retry
    "refusal",  # the model declined to answer
    "malformed",  # the answer was not parseable JSON / not the expected shape
    "invalid_vote",  # parseable, but outside the vote contract (enum, range, length)
    "spend_cap",  # the provider's daily spend cap is reached
    "api_error",  # non-transient provider error (400, 401, 404 ...)
    "internal_error",  # a bug or an unexpected exception in our adapter
]


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens, output_tokens=self.output_tokens + other.output_tokens
        )


class VotePayload(BaseModel):
    """The exact contract a model must meet; also the source of the JSON schema sent to providers."""

    # strict: "70" is not a confidence, "long" is not a direction; a sloppy answer abstains.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    vote: Direction
    confidence: Annotated[float, Field(ge=0, le=100)]
    rationale: Annotated[str, Field(max_length=RATIONALE_MAX_CHARS)]


# Hand-written rather than generated so it stays inside the subset that OpenAI's strict structured
# outputs accept (every key required, additionalProperties false); Anthropic and Bedrock accept it too.
VOTE_JSON_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "vote": {
            "type": "string",
            "enum": ["LONG", "SHORT", "NEUTRAL"],
            "description": "Direction for the next few bars; NEUTRAL when there is no edge.",
        },
        "confidence": {
            "type": "number",
            "minimum": 0,
            "maximum": 100,
            "description": "0-100, how sure you are of this vote.",
        },
        "rationale": {"type": "string", "description": f"At most {RATIONALE_MAX_CHARS} characters, plain text."},
    },
    "required": ["vote", "confidence", "rationale"],
    "additionalProperties": False,
}


class _Ballot(BaseModel):
    """Fields every ballot carries, filled by the adapter and the ensemble (not by the model)."""

    model_config = ConfigDict(frozen=True)

    voter: str
    model: str
    usage: Usage = Usage()
    attempts: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    cached: bool = False


class Vote(_Ballot):
    kind: Literal["vote"] = "vote"
    vote: Direction
    confidence: float
    rationale: str


class Abstention(_Ballot):
    kind: Literal["abstention"] = "abstention"
    reason: AbstainReason
    detail: str = ""


Ballot = Annotated[Vote | Abstention, Field(discriminator="kind")]


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_vote(
    raw: str | dict[str, Any] | None, *, voter: str, model: str, usage: Usage | None = None, attempts: int = 1
) -> Vote | Abstention:
    """Validate a model's answer (JSON text or an already-decoded tool input) into a ballot."""
    meta: dict[str, Any] = {"voter": voter, "model": model, "usage": usage or Usage(), "attempts": attempts}
    if raw is None:
        return Abstention(reason="malformed", detail="empty answer", **meta)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            return Abstention(reason="malformed", detail=_short(f"not JSON: {exc}: {raw!r}"), **meta)
    if not isinstance(raw, dict):
        return Abstention(reason="malformed", detail=_short(f"expected a JSON object, got {raw!r}"), **meta)
    try:
        payload = VotePayload.model_validate(raw)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors())
        return Abstention(reason="invalid_vote", detail=_short(errors), **meta)
    return Vote(vote=payload.vote, confidence=payload.confidence, rationale=payload.rationale, **meta)
