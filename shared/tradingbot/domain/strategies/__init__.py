"""Strategy registry. Importing this package registers the six built-in strategies."""

from tradingbot.domain.strategies import builtin as _builtin  # noqa: F401  (registers on import)
from tradingbot.domain.strategies.base import (
    REGISTRY,
    Param,
    Params,
    Signals,
    Strategy,
    StrategyError,
    get_strategy,
    register,
)

__all__ = ["REGISTRY", "Param", "Params", "Signals", "Strategy", "StrategyError", "get_strategy", "register"]
