"""Triple AI ensemble: OpenAI, Anthropic and Llama voters, 2-of-3 agreement, caching, spend caps.

Entry points: :func:`tradingbot.ai.brief.build_brief`, :func:`tradingbot.ai.factory.build_ensemble`
and :meth:`tradingbot.ai.ensemble.Ensemble.decide`.
"""

from tradingbot.ai.brief import Brief, build_brief
from tradingbot.ai.ensemble import Ensemble, EnsembleDecision, decide
from tradingbot.ai.vote import Abstention, Vote

__all__ = ["Abstention", "Brief", "Ensemble", "EnsembleDecision", "Vote", "build_brief", "decide"]
