"""Anthropic voter through the official ``anthropic`` SDK (Messages API, ``POST /v1/messages``).

The vote is forced through tool use: one tool, ``cast_vote``, whose ``input_schema`` is the vote
schema, and ``tool_choice`` = that tool, so the answer arrives as a decoded ``tool_use.input`` object
instead of free text. (Forced tool choice is incompatible with extended thinking, which we do not
enable. This SDK generation no longer takes a ``temperature`` argument, so sampling is left at the
model default.) ``stop_reason == "refusal"`` or an answer without the tool call is an abstention.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anthropic
from anthropic.types import MessageParam, ToolChoiceToolParam, ToolParam

from tradingbot.adapters.ai.defaults import DEFAULT_ANTHROPIC_MODEL
from tradingbot.adapters.ai.voters.base import CallFailure, Reply, RetryingVoter, classify_stainless
from tradingbot.domain.brief import SYSTEM_PROMPT, Brief, render_user_prompt
from tradingbot.domain.vote import VOTE_JSON_SCHEMA, Usage

MAX_OUTPUT_TOKENS = 400
TOOL_NAME = "cast_vote"
VOTE_TOOL: ToolParam = {
    "name": TOOL_NAME,
    "description": "Cast your vote on the market brief. Call exactly once.",
    "input_schema": VOTE_JSON_SCHEMA,
}


_FORCE_VOTE: ToolChoiceToolParam = {"type": "tool", "name": TOOL_NAME}


def _user(brief: Brief) -> MessageParam:
    return {"role": "user", "content": render_user_prompt(brief)}


def _message_reply(msg: Any) -> Reply:
    usage = Usage(input_tokens=msg.usage.input_tokens, output_tokens=msg.usage.output_tokens)
    if msg.stop_reason == "refusal":
        text = " ".join(b.text for b in msg.content if getattr(b, "type", None) == "text")
        return Reply(answer=None, usage=usage, refusal=text or "refusal")
    for block in msg.content:
        if getattr(block, "type", None) == "tool_use" and block.name == TOOL_NAME:
            answer: dict[str, Any] = dict(block.input) if isinstance(block.input, dict) else {}
            return Reply(answer=answer if isinstance(block.input, dict) else None, usage=usage)
    text = " ".join(b.text for b in msg.content if getattr(b, "type", None) == "text")
    # no tool call: a text answer might still be the JSON object; parse_vote decides
    return Reply(answer=text or None, usage=usage)


@dataclass
class AnthropicVoter(RetryingVoter):
    name: str = "anthropic"
    provider: str = "anthropic"
    model: str = DEFAULT_ANTHROPIC_MODEL
    api_key: str = field(default="", repr=False)
    base_url: str | None = None
    client: anthropic.Anthropic | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.client is None:
            # max_retries=0: RetryingVoter owns the retry policy (one retry inside the budget)
            self.client = anthropic.Anthropic(
                api_key=self.api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout_s
            )

    def _call(self, brief: Brief, timeout_s: float) -> Reply:
        assert self.client is not None
        msg = self.client.messages.create(
            model=self.model,
            max_tokens=MAX_OUTPUT_TOKENS,
            system=SYSTEM_PROMPT,
            messages=[_user(brief)],
            tools=[VOTE_TOOL],
            tool_choice=_FORCE_VOTE,
            timeout=timeout_s,
        )
        return _message_reply(msg)

    def _classify(self, exc: Exception) -> CallFailure:
        return classify_stainless(exc, anthropic)
