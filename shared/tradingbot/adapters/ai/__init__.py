"""Triple AI ensemble: OpenAI, Anthropic and Llama voters, 2-of-3 agreement, caching, spend caps.

Entry points: :func:`tradingbot.domain.brief.build_brief`, :func:`tradingbot.adapters.ai.factory.build_ensemble`
and :meth:`tradingbot.adapters.ai.ensemble.Ensemble.decide`.
"""

from tradingbot.adapters.ai.ensemble import Ensemble, EnsembleDecision, decide
from tradingbot.domain.brief import Brief, build_brief
from tradingbot.domain.vote import Abstention, Vote

__all__ = ["Abstention", "Brief", "Ensemble", "EnsembleDecision", "Vote", "build_brief", "decide"]
