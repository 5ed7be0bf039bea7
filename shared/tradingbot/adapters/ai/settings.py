"""AI ensemble settings, from the environment (or ``.env``); every default works locally.

A voter exists only when its credentials/endpoint are set: no key, no voter, no pretend vote.
Bedrock uses the ambient AWS credential chain, so it is switched on by ``BEDROCK_REGION``.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tradingbot.adapters.ai.defaults import (
    DEFAULT_ANTHROPIC_MODEL,
    DEFAULT_BEDROCK_MODEL,
    DEFAULT_COMPATIBLE_MODEL,
    DEFAULT_OPENAI_MODEL,
    DEFAULT_TIMEOUT_S,
)


class AISettings(BaseSettings):
    """Field names map to env vars case-insensitively: ``openai_api_key`` <- ``OPENAI_API_KEY``."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    openai_api_key: SecretStr | None = None
    anthropic_api_key: SecretStr | None = None
    bedrock_region: str | None = None

    ai_openai_model: str = DEFAULT_OPENAI_MODEL
    ai_openai_base_url: str | None = None
    ai_anthropic_model: str = DEFAULT_ANTHROPIC_MODEL
    ai_anthropic_base_url: str | None = None
    ai_bedrock_model: str = DEFAULT_BEDROCK_MODEL
    # An OpenAI-compatible endpoint (e.g. Ollama http://127.0.0.1:11434/v1) takes the Llama seat
    # instead of Bedrock when set.
    ai_openai_compatible_base_url: str | None = None
    ai_openai_compatible_model: str = DEFAULT_COMPATIBLE_MODEL
    ai_openai_compatible_api_key: SecretStr | None = None

    ai_timeout_s: float = DEFAULT_TIMEOUT_S
    ai_cache_ttl_s: int = 300
    # Daily caps in USD per provider (UTC day); <= 0 means no cap.
    ai_daily_cap_openai_usd: float = 5.0
    ai_daily_cap_anthropic_usd: float = 5.0
    ai_daily_cap_bedrock_usd: float = 5.0

    def spend_caps(self) -> dict[str, float]:
        caps = {
            "openai": self.ai_daily_cap_openai_usd,
            "anthropic": self.ai_daily_cap_anthropic_usd,
            "bedrock": self.ai_daily_cap_bedrock_usd,
        }
        return {k: v for k, v in caps.items() if v > 0}
