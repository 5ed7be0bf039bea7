"""Voter adapters. The Bedrock adapter (the only boto3 user) is imported on demand, not here."""

from tradingbot.adapters.ai.voters.anthropic_voter import AnthropicVoter
from tradingbot.adapters.ai.voters.base import Reply, RetryingVoter, Voter
from tradingbot.adapters.ai.voters.openai_voter import OpenAICompatibleVoter, OpenAIVoter

__all__ = ["AnthropicVoter", "OpenAICompatibleVoter", "OpenAIVoter", "Reply", "RetryingVoter", "Voter"]
