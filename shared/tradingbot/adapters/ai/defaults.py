"""Default model ids and limits for the voters. They live in :mod:`tradingbot.settings` (which sits
below the adapters and so cannot import them); the voters import them from here.

Defaults favour fast, inexpensive models: a vote must arrive inside an 8 s budget and is asked on
every alert. Override with AI_OPENAI_MODEL, AI_ANTHROPIC_MODEL and AI_BEDROCK_MODEL.
"""

from __future__ import annotations

from tradingbot.settings import (
    DEFAULT_ANTHROPIC_MODEL,
    DEFAULT_BEDROCK_MODEL,
    DEFAULT_COMPATIBLE_MODEL,
    DEFAULT_OPENAI_MODEL,
    DEFAULT_TIMEOUT_S,
)

__all__ = [
    "DEFAULT_ANTHROPIC_MODEL",
    "DEFAULT_BEDROCK_MODEL",
    "DEFAULT_COMPATIBLE_MODEL",
    "DEFAULT_OPENAI_MODEL",
    "DEFAULT_TIMEOUT_S",
]
