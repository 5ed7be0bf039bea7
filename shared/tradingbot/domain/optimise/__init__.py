"""Parameter optimisation (pure): search spaces, grid and genetic search, walk-forward analysis,
the deflated Sharpe ratio, and the promotion rule."""

from tradingbot.domain.optimise.evaluate import Evaluator, Window
from tradingbot.domain.optimise.genetic import GeneticConfig, genetic_search
from tradingbot.domain.optimise.promotion import PromotionDecision, PromotionPolicy, decide, judge
from tradingbot.domain.optimise.space import OptimiseError, SearchSpace
from tradingbot.domain.optimise.walkforward import (
    Fold,
    OptimisationResult,
    SearchSpec,
    WalkForwardSpec,
    optimise,
)

__all__ = [
    "Evaluator",
    "Fold",
    "GeneticConfig",
    "OptimisationResult",
    "OptimiseError",
    "PromotionDecision",
    "PromotionPolicy",
    "SearchSpace",
    "SearchSpec",
    "WalkForwardSpec",
    "Window",
    "decide",
    "genetic_search",
    "judge",
    "optimise",
]
