"""Default model ids and limits, in one boto3-free place (settings import this, not the adapters).

Defaults favour fast, inexpensive models: a vote must arrive inside an 8 s budget and is asked on
every alert. Override with AI_OPENAI_MODEL, AI_ANTHROPIC_MODEL and AI_BEDROCK_MODEL.
"""

from __future__ import annotations

from typing import Final

DEFAULT_TIMEOUT_S: Final = 8.0
DEFAULT_OPENAI_MODEL: Final = "gpt-4.1-mini"
DEFAULT_ANTHROPIC_MODEL: Final = "claude-haiku-4-5"
# Llama 3.3 70B is served on demand through the cross-region inference profile (the "us." prefix).
DEFAULT_BEDROCK_MODEL: Final = "us.meta.llama3-3-70b-instruct-v1:0"
DEFAULT_COMPATIBLE_MODEL: Final = "llama3.1:8b"
