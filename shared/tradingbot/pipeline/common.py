"""What the stage modules share: the permanent stage error and the candle read.

Stages raise :class:`StageError` (a :class:`~tradingbot.errors.PermanentError`) when retrying cannot
help: the execution records the reason and fails. A dependency that was briefly unavailable raises a
:class:`~tradingbot.errors.TransientError` (the adapters' DatabaseUnavailable, CacheUnavailable ...);
the Lambda edge (``tradingbot.entrypoints.lambdas.edge``) reports it under the one error name the
state machine retries.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from tradingbot.adapters.market import MarketDataUnavailable
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.domain.alert import AlertContent
from tradingbot.domain.timeframes import MarketSymbolError, TimeframeError
from tradingbot.errors import PermanentError
from tradingbot.pipeline.runtime import Runtime

if TYPE_CHECKING:
    from tradingbot.adapters.live_candles import CandleWindow


_VENUE_TTL_S = 60.0  # an account's exchange is set when it is created; a minute bounds a change's reach


class StageError(PermanentError):
    """Permanent: retrying cannot help (bad state, missing data, a refusal)."""


def market_venue(rt: Runtime, account_id: int | None) -> str:
    """Whose market an account's alerts are judged on: its exchange, or for a paper account (and
    without an account) the configured reference venue (``PAPER_REFERENCE_VENUE``)."""
    if account_id is None:
        return rt.settings.paper_reference_venue
    known = rt.account_exchanges.get(account_id)
    if known is not None and known[1] > time.monotonic():
        exchange = known[0]
    else:
        with session_scope(rt.engine()) as s:
            account = repo.account_by_id(s, account_id)
            if account is None:
                raise StageError(f"account {account_id} does not exist")
            exchange = str(account.exchange)
        rt.account_exchanges[account_id] = (exchange, time.monotonic() + _VENUE_TTL_S)
    return rt.settings.paper_reference_venue if exchange == "paper" else exchange


def stage_candles(rt: Runtime, alert: AlertContent, account_id: int | None) -> CandleWindow:
    """The live closed candles the stages decide on (the alert's symbol, timeframe and venue); stale,
    too short, invalid or missing candles fail the stage closed, with the reason."""
    venue = market_venue(rt, account_id)
    s = rt.settings
    try:
        return rt.market().window(
            venue, alert.symbol, alert.timeframe(), bars=s.candles_for_signals, min_bars=s.min_candles
        )
    except (MarketDataUnavailable, TimeframeError, MarketSymbolError) as exc:
        raise StageError(str(exc)) from None
