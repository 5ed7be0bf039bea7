"""OpenAI voters through the official ``openai`` SDK.

:class:`OpenAIVoter` uses the Responses API (``POST /v1/responses``), which the SDK documents as
its primary API, with strict structured output (``text.format`` = ``json_schema``) so the model's
answer is constrained to the vote schema server-side. :class:`OpenAICompatibleVoter` uses Chat
Completions (``POST /v1/chat/completions`` with ``response_format`` = ``json_schema``) because that
is the endpoint OpenAI-compatible servers (Ollama, vLLM, LM Studio ...) implement; the Responses API
is not universally available there.

We still validate the answer ourselves: structured output is a strong hint, not a guarantee
(refusals, truncation, compatible servers that ignore the schema).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import openai

from tradingbot.adapters.ai.defaults import DEFAULT_COMPATIBLE_MODEL, DEFAULT_OPENAI_MODEL
from tradingbot.adapters.ai.voters.base import CallFailure, Reply, RetryingVoter, classify_stainless
from tradingbot.domain.brief import SYSTEM_PROMPT, Brief, render_user_prompt
from tradingbot.domain.vote import VOTE_JSON_SCHEMA, Usage
from tradingbot.errors import PermanentError

MAX_OUTPUT_TOKENS = 300
SCHEMA_NAME = "cast_vote"

# Reasoning models refuse sampling parameters: the API answers HTTP 400 {"error": {"message":
# "Unsupported parameter: 'temperature' is not supported with this model.", "type":
# "invalid_request_error", "param": "temperature", "code": "unsupported_parameter"}} (reported for
# o3-mini in openai/openai-python#2104, for o1/o3 in sigoden/aichat#1144, for gpt-5.2 in
# OpenHands/software-agent-sdk#1837; platform.openai.com/docs/guides/reasoning "limitations"). The
# o-series (o1, o3, o3-mini, o4-mini ...) and the gpt-5 family are reasoning models; the gpt-5
# "chat" snapshots (gpt-5-chat-latest) are not and take temperature (BerriAI/litellm#13781).
# Omitting it is always accepted (the API's default applies), so an unknown model is sent none
# only when it looks like one of these families.
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5)")


def accepts_temperature(model: str) -> bool:
    """Whether ``model`` takes ``temperature``; a ``provider/`` prefix and a date suffix are ignored."""
    name = model.rsplit("/", 1)[-1].strip().lower()
    return not _REASONING_MODEL.match(name) or "-chat" in name


def _sampling(model: str) -> dict[str, Any]:
    """``temperature=0`` (the steadiest vote) where the model takes it, nothing where it refuses it."""
    return {"temperature": 0} if accepts_temperature(model) else {}


def _make_client(api_key: str, base_url: str | None, timeout_s: float) -> openai.OpenAI:
    # max_retries=0: the retry policy lives in RetryingVoter (one retry inside the time budget).
    return openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s)


def _responses_reply(resp: Any) -> Reply:
    usage = (
        Usage(input_tokens=resp.usage.input_tokens, output_tokens=resp.usage.output_tokens)
        if resp.usage is not None
        else Usage()
    )
    texts: list[str] = []
    for item in resp.output:
        if getattr(item, "type", None) != "message":
            continue
        for part in item.content:
            if part.type == "refusal":
                return Reply(answer=None, usage=usage, refusal=part.refusal or "refused")
            if part.type == "output_text":
                texts.append(part.text)
    if resp.status == "incomplete":
        reason = getattr(resp.incomplete_details, "reason", None)
        if reason == "content_filter":
            return Reply(answer=None, usage=usage, refusal="content_filter")
        # a truncated JSON answer would fail validation anyway; say why precisely
        raise _IncompleteError(f"response incomplete: {reason}")
    return Reply(answer="".join(texts) or None, usage=usage)


class _IncompleteError(PermanentError, ValueError):
    """A 200 response that carries no usable answer (truncated)."""


@dataclass
class OpenAIVoter(RetryingVoter):
    """OpenAI through the Responses API with strict JSON-schema output."""

    name: str = "openai"
    provider: str = "openai"
    model: str = DEFAULT_OPENAI_MODEL
    api_key: str = field(default="", repr=False)
    base_url: str | None = None  # None = api.openai.com; tests point it at a local server
    client: openai.OpenAI | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = _make_client(self.api_key, self.base_url, self.timeout_s)

    def _call(self, brief: Brief, timeout_s: float) -> Reply:
        assert self.client is not None
        resp = self.client.responses.create(
            model=self.model,
            instructions=SYSTEM_PROMPT,
            input=render_user_prompt(brief),
            text={"format": {"type": "json_schema", "name": SCHEMA_NAME, "schema": VOTE_JSON_SCHEMA, "strict": True}},
            max_output_tokens=MAX_OUTPUT_TOKENS,
            **_sampling(self.model),
            store=False,  # nothing to keep server-side; also keeps market data out of OpenAI's logs
            timeout=timeout_s,
        )
        return _responses_reply(resp)

    def _classify(self, exc: Exception) -> CallFailure:
        return classify_stainless(exc, openai)


def _chat_reply(resp: Any) -> Reply:
    usage = (
        Usage(input_tokens=resp.usage.prompt_tokens, output_tokens=resp.usage.completion_tokens)
        if resp.usage is not None
        else Usage()
    )
    if not resp.choices:
        return Reply(answer=None, usage=usage)
    choice = resp.choices[0]
    if choice.message.refusal:
        return Reply(answer=None, usage=usage, refusal=choice.message.refusal)
    if choice.finish_reason == "content_filter":
        return Reply(answer=None, usage=usage, refusal="content_filter")
    return Reply(answer=choice.message.content, usage=usage)


@dataclass
class OpenAICompatibleVoter(RetryingVoter):
    """Any OpenAI-compatible Chat Completions endpoint, e.g. a local Ollama at :11434/v1."""

    name: str = "openai_compatible"
    provider: str = "openai_compatible"
    model: str = DEFAULT_COMPATIBLE_MODEL
    base_url: str = "http://127.0.0.1:11434/v1"
    api_key: str = field(default="unused", repr=False)  # Ollama ignores it; the SDK requires one
    client: openai.OpenAI | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = _make_client(self.api_key or "unused", self.base_url, self.timeout_s)

    def _call(self, brief: Brief, timeout_s: float) -> Reply:
        assert self.client is not None
        resp = self.client.chat.completions.create(
            model=self.model,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": render_user_prompt(brief)},
            ],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": SCHEMA_NAME, "schema": VOTE_JSON_SCHEMA, "strict": True},
            },
            # max_tokens rather than max_completion_tokens: it is what compatible servers accept
            max_tokens=MAX_OUTPUT_TOKENS,
            **_sampling(self.model),
            timeout=timeout_s,
        )
        return _chat_reply(resp)

    def _classify(self, exc: Exception) -> CallFailure:
        return classify_stainless(exc, openai)
