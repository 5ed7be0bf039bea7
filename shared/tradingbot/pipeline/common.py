"""What the stage modules share: the permanent stage error and the candle read.

Stages raise :class:`StageError` (a :class:`~tradingbot.errors.PermanentError`) when retrying cannot
help: the execution records the reason and fails. A dependency that was briefly unavailable raises a
:class:`~tradingbot.errors.TransientError` (the adapters' DatabaseUnavailable, CacheUnavailable ...);
the Lambda edge (``tradingbot.entrypoints.lambdas.edge``) reports it under the one error name the
state machine retries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tradingbot.adapters.market import MarketDataUnavailable
from tradingbot.errors import PermanentError
from tradingbot.pipeline.runtime import Runtime

if TYPE_CHECKING:
    import pandas as pd


class StageError(PermanentError):
    """Permanent: retrying cannot help (bad state, missing data, a refusal)."""


def stage_candles(rt: Runtime, symbol: str) -> pd.DataFrame:
    """The candles the stages decide on; no candles for the symbol is permanent for this alert."""
    try:
        return rt.candles().candles(symbol, rt.settings.candles_for_signals)
    except MarketDataUnavailable as exc:
        raise StageError(str(exc)) from None
