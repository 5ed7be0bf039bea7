"""One error tree for the whole product.

Every error the product raises on purpose derives from :class:`TradingBotError`, and is either
:class:`PermanentError` (retrying the same call cannot help: bad input, a refusal, missing data)
or :class:`TransientError` (a dependency was briefly unavailable; the same call may succeed later).
The split is the one decision a caller needs (retry or give up); *which* error it was stays in the
class and its message. Modelled on freqtrade's ``exceptions.py`` (TemporaryError versus
OperationalException), with the retry question made the first branch of the tree.

The transient errors, and why retrying can help::

    TransientError
    +-- DependencyUnavailable            a service did not answer; it usually comes back within seconds
    |   +-- DatabaseUnavailable          connection refused or dropped, server restarting, too many
    |   |                                connections, statement timeout (adapters.persistence.db)
    |   +-- CacheUnavailable             Redis connection refused, reset or timed out (adapters.cache)
    |   +-- ExchangeUnavailable          venue timeout, connection error, 5xx, maintenance: the outcome
    |   |                                of a create is UNKNOWN, look it up before resending (domain.exchange)
    |   +-- ExchangeFailedNotPlaced      the venue's documented "failure, not executed" answer (Binance's 503
    |   |                                "Service Unavailable." / "Internal error; ..."): may be resent
    |   +-- BackfillUnavailable          the feed's REST backfill timed out, or the venue answered 429/5xx
    +-- RateLimited                      "not now": the service refused before processing (retry_after_s)
        +-- domain.exchange.RateLimited  the venue's 429/418 (ccxt RateLimitExceeded/DDoSProtection)

Everything else is permanent: validation errors (alerts, candles, features, strategy parameters,
backtest settings, risk limits), refusals (below minimum, leverage too high, insufficient margin,
order rejected, unknown symbol or account, missing credentials, duplicates, the kill switch's
``TradingHalted``), crypto errors, model-artifact errors, a missing local server.

Two families span both branches and are therefore neither: ``domain.exchange.ExchangeError``
(reason codes for every venue answer) and ``adapters.persistence.errors.PersistenceError``; the
feed's ``BackfillError`` likewise. Code catches a family to report it and a branch to decide on a
retry; only their leaves are raised.

Adapters translate their library's exceptions into this tree once, at their boundary
(SQLAlchemy/pg8000 in ``adapters.persistence.db``, redis in ``adapters.cache``, ccxt in
``adapters.exchange.ccxt_adapter``, aiohttp in ``adapters.feed.backfill``; the LLM SDKs'
failures become abstentions in ``adapters.ai.voters``). Nothing above an adapter catches a
library's exception.

At the Lambda edge one decorator turns any :class:`TransientError` into the single error name the
state machine retries (:data:`RETRYABLE_ERROR_NAME`); everything else fails the state, which the
ASL's Catch records with its reason.
"""

from __future__ import annotations

#: The one error name ``statemachines/*.asl.json`` retries (besides Lambda's own service errors).
RETRYABLE_ERROR_NAME = "TransientError"


class TradingBotError(Exception):
    """Root of every error the product raises on purpose."""


class PermanentError(TradingBotError):
    """Retrying the same call cannot help: bad input, a refusal, a missing resource."""


class TransientError(TradingBotError):
    """A dependency was briefly unavailable: the same call may succeed if retried later."""


class DependencyUnavailable(TransientError):  # noqa: N818 - reads as the state it reports
    """A service the product depends on did not answer (database, cache, venue, provider)."""


class RateLimited(TransientError):  # noqa: N818
    """A service refused for now because of its rate limit; ``retry_after_s`` when it said so."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
