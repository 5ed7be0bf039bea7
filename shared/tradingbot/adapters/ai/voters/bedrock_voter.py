"""Llama on Amazon Bedrock through boto3's ``bedrock-runtime`` Converse API.

The only module of the AI package that imports boto3/botocore. Converse supports tool use for
Llama 3.1+, but a *forced* tool choice only for some model families, so the vote is requested as a
JSON object in text and validated like any other answer; a ``toolUse`` block is accepted too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# boto3/botocore ship no type information; they are only ever touched in this module.
import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from tradingbot.adapters.ai.defaults import DEFAULT_BEDROCK_MODEL
from tradingbot.adapters.ai.voters.base import CallFailure, Reply, RetryingVoter
from tradingbot.domain.brief import SYSTEM_PROMPT, Brief, render_user_prompt
from tradingbot.domain.vote import VOTE_JSON_SCHEMA, Usage

MAX_OUTPUT_TOKENS = 300
_JSON_INSTRUCTION = (
    "\n\nAnswer with exactly one JSON object and nothing else, matching this JSON "
    f"schema: {json.dumps(VOTE_JSON_SCHEMA, separators=(',', ':'))}"
)
_TRANSIENT_CODES = {
    "ThrottlingException": "rate_limited",
    "ServiceUnavailableException": "server_error",
    "InternalServerException": "server_error",
    "ModelNotReadyException": "server_error",
    "ModelTimeoutException": "timeout",
}
_REFUSAL_STOPS = {"guardrail_intervened", "content_filtered"}
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def _text_answer(text: str) -> str:
    # Llama sometimes wraps JSON in a Markdown fence despite the instruction; strip only that.
    return _FENCE.sub("", text.strip())


def _converse_reply(resp: dict[str, Any]) -> Reply:
    u = resp.get("usage", {})
    usage = Usage(input_tokens=int(u.get("inputTokens", 0)), output_tokens=int(u.get("outputTokens", 0)))
    if resp.get("stopReason") in _REFUSAL_STOPS:
        return Reply(answer=None, usage=usage, refusal=str(resp["stopReason"]))
    content = resp.get("output", {}).get("message", {}).get("content", [])
    for block in content:
        if "toolUse" in block:
            return Reply(answer=block["toolUse"].get("input"), usage=usage)
    text = "".join(block.get("text", "") for block in content)
    return Reply(answer=_text_answer(text) or None, usage=usage)


@dataclass
class BedrockLlamaVoter(RetryingVoter):
    name: str = "llama"
    provider: str = "bedrock"
    model: str = DEFAULT_BEDROCK_MODEL
    region: str = "us-east-1"
    client: Any = field(default=None, repr=False)  # a botocore BedrockRuntime client

    def __post_init__(self) -> None:
        if self.client is None:
            # botocore timeouts are per socket operation and fixed per client: read_timeout is the
            # voter budget; the ensemble's deadline bounds the call as a whole.
            config = Config(
                connect_timeout=min(self.timeout_s, 3.0),
                read_timeout=self.timeout_s,
                retries={"total_max_attempts": 1, "mode": "standard"},
            )
            self.client = boto3.client("bedrock-runtime", region_name=self.region, config=config)

    def _call(self, brief: Brief, timeout_s: float) -> Reply:
        resp = self.client.converse(
            modelId=self.model,
            system=[{"text": SYSTEM_PROMPT + _JSON_INSTRUCTION}],
            messages=[{"role": "user", "content": [{"text": render_user_prompt(brief)}]}],
            inferenceConfig={"maxTokens": MAX_OUTPUT_TOKENS, "temperature": 0.0},
        )
        return _converse_reply(resp)

    def _classify(self, exc: Exception) -> CallFailure:
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in _TRANSIENT_CODES:
                return CallFailure(_TRANSIENT_CODES[code], True, f"{code}: {exc}")  # type: ignore[arg-type]
            if isinstance(status, int) and status >= 500:
                return CallFailure("server_error", True, f"{code}: {exc}")
            return CallFailure("api_error", False, f"{code}: {exc}")
        if isinstance(exc, ReadTimeoutError | ConnectTimeoutError):
            return CallFailure("timeout", True, str(exc))
        if isinstance(exc, EndpointConnectionError):
            return CallFailure("connection_error", True, str(exc))
        return CallFailure("internal_error", False, f"{type(exc).__name__}: {exc}")
