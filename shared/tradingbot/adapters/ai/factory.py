"""Build the ensemble from ``Settings.ai``: only voters whose credentials are configured exist."""

from __future__ import annotations

from pydantic import SecretStr

from tradingbot.adapters.ai.ensemble import Ensemble
from tradingbot.adapters.ai.spend import MetricsSink, SpendLedger
from tradingbot.adapters.ai.vote_cache import KeyValueStore, VoteCache
from tradingbot.adapters.ai.voters.anthropic_voter import AnthropicVoter
from tradingbot.adapters.ai.voters.base import Voter
from tradingbot.adapters.ai.voters.openai_voter import OpenAICompatibleVoter, OpenAIVoter
from tradingbot.settings import AISection


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def build_voters(s: AISection) -> list[Voter]:
    voters: list[Voter] = []
    timeout = s.ai_timeout_s
    if key := _secret(s.openai_api_key):
        voters.append(
            OpenAIVoter(model=s.ai_openai_model, api_key=key, base_url=s.ai_openai_base_url, timeout_s=timeout)
        )
    if key := _secret(s.anthropic_api_key):
        voters.append(
            AnthropicVoter(model=s.ai_anthropic_model, api_key=key, base_url=s.ai_anthropic_base_url, timeout_s=timeout)
        )
    if s.ai_openai_compatible_base_url:
        voters.append(
            OpenAICompatibleVoter(
                model=s.ai_openai_compatible_model,
                api_key=_secret(s.ai_openai_compatible_api_key) or "unused",
                base_url=s.ai_openai_compatible_base_url,
                timeout_s=timeout,
            )
        )
    elif s.bedrock_region:
        # Imported here so a deployment without Bedrock never loads boto3 for the AI package.
        from tradingbot.adapters.ai.voters.bedrock_voter import BedrockLlamaVoter

        voters.append(BedrockLlamaVoter(model=s.ai_bedrock_model, region=s.bedrock_region, timeout_s=s.ai_timeout_s))
    return voters


def build_ensemble(s: AISection, store: KeyValueStore, metrics: MetricsSink | None = None) -> Ensemble:
    return Ensemble(
        build_voters(s),
        cache=VoteCache(store, ttl_s=s.ai_cache_ttl_s),
        ledger=SpendLedger(store, s.spend_caps()),
        metrics=metrics,
    )
