"""The one error tree: every exception class in the package is a TradingBotError on exactly one
branch (permanent or transient), the transient set is written down here so that a change to it is
a visible decision, and each adapter turns its library's failures into the tree at its boundary."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
import socket

import aiohttp
import ccxt
import pg8000.exceptions  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError

import tradingbot
from tradingbot import errors
from tradingbot.adapters.cache import Cache, CacheUnavailable
from tradingbot.adapters.exchange.ccxt_adapter import translate
from tradingbot.adapters.feed import backfill
from tradingbot.adapters.persistence.db import create_db_engine, is_unavailable, session_scope
from tradingbot.adapters.persistence.errors import DatabaseUnavailable, PersistenceError
from tradingbot.domain import exchange as ex

# Families span both branches, so they sit on neither; only their leaves are raised.
FAMILIES = {
    "tradingbot.domain.exchange.ExchangeError",
    "tradingbot.adapters.persistence.errors.PersistenceError",
    "tradingbot.adapters.feed.backfill.BackfillError",
}

# The decision: these, and only these, are worth retrying (see tradingbot/errors.py for why).
TRANSIENT = {
    "tradingbot.errors.TransientError",
    "tradingbot.errors.DependencyUnavailable",
    "tradingbot.errors.RateLimited",
    "tradingbot.adapters.cache.CacheUnavailable",
    "tradingbot.adapters.persistence.errors.DatabaseUnavailable",
    "tradingbot.adapters.feed.backfill.BackfillUnavailable",
    "tradingbot.adapters.history.HistoryUnavailable",  # history download: venue/S3 timeout, run again to resume
    "tradingbot.adapters.optimise_results.ResultsUnavailable",  # issue 18: the fan-out's S3 documents, a blip
    "tradingbot.domain.exchange.ExchangeUnavailable",
    # Binance's documented 503 failures ("Service Unavailable.", "Internal error ..."): certainly not
    # placed, so the order path resends under the same client id
    "tradingbot.domain.exchange.ExchangeFailedNotPlaced",
    "tradingbot.domain.exchange.RateLimited",
    "tradingbot.pipeline.order_service.BudgetExhausted",  # the execute stage's time budget is spent
    "tradingbot.pipeline.order_service.ExecutionBusy",  # another execution holds the symbol's plan lease
    "tradingbot.adapters.notify.TelegramUnavailable",  # Bot API unreachable or 5xx
    "tradingbot.adapters.notify.TelegramRateLimited",  # 429 with retry_after
    "tradingbot.entrypoints.lambdas.edge.TransientError",  # the name the state machine retries
    "tradingbot.entrypoints.local.asl.Interrupted",  # a checkpoint not stored: the execution resumes later
}


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _package_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(tradingbot.__path__, "tradingbot."):
        # __main__ runs the CLI; the Alembic env script only runs inside Alembic
        if info.name.endswith("__main__") or ".migrations.env" in info.name:
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__.startswith("tradingbot."):
                found[_name(obj)] = obj
    return found


EXCEPTIONS = _package_exceptions()
ROOTS = {errors.TradingBotError, errors.PermanentError}


def test_the_walk_finds_the_package_errors() -> None:
    assert len(EXCEPTIONS) > 40
    assert EXCEPTIONS.keys() >= FAMILIES
    assert EXCEPTIONS.keys() >= TRANSIENT


@pytest.mark.parametrize("name", sorted(EXCEPTIONS))
def test_every_error_is_a_tradingbot_error_on_exactly_one_branch(name: str) -> None:
    cls = EXCEPTIONS[name]
    assert issubclass(cls, errors.TradingBotError), f"{name} is outside the tree"
    permanent, transient = issubclass(cls, errors.PermanentError), issubclass(cls, errors.TransientError)
    if name in FAMILIES:
        assert not permanent and not transient, f"family {name} must stay on neither branch"
        return
    if cls in ROOTS:
        return
    assert permanent != transient, f"{name}: permanent={permanent}, transient={transient}"


def test_the_transient_set_is_the_decided_one() -> None:
    assert {n for n, c in EXCEPTIONS.items() if issubclass(c, errors.TransientError)} == TRANSIENT


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_family_has_leaves_on_both_branches(family: str) -> None:
    leaves = [c for c in EXCEPTIONS.values() if c is not EXCEPTIONS[family] and issubclass(c, EXCEPTIONS[family])]
    assert any(issubclass(c, errors.PermanentError) for c in leaves)
    assert any(issubclass(c, errors.TransientError) for c in leaves)


def test_existing_second_bases_are_kept() -> None:
    """Callers (and pydantic validators) catch ValueError / RuntimeError for these."""
    for name in (
        "tradingbot.domain.candles.CandleDataError",
        "tradingbot.domain.features.FeatureError",
        "tradingbot.domain.alert.AlertError",
        "tradingbot.domain.strategies.base.StrategyError",
        "tradingbot.domain.backtest.engine.BacktestConfigError",
        "tradingbot.adapters.model.artifact.ArtifactError",
        "tradingbot.adapters.feed.messages.FeedParseError",
    ):
        assert issubclass(EXCEPTIONS[name], ValueError), name
    for name in (
        "tradingbot.adapters.market.MarketDataUnavailable",
        "tradingbot.adapters.persistence.config.ServersNotConfiguredError",
        "tradingbot.entrypoints.local.servers.ServerStartError",
        "tradingbot.adapters.feed.backfill.BackfillError",
    ):
        assert issubclass(EXCEPTIONS[name], RuntimeError), name


def test_exchange_rate_limited_keeps_its_constructor() -> None:
    err = ex.RateLimited("binanceusdm: create order: rate limited", 2.5)
    assert isinstance(err, errors.RateLimited) and isinstance(err, ex.ExchangeError)
    assert err.retry_after_s == 2.5 and err.reason == "rate_limited" and str(err).endswith("rate limited")
    assert ex.RateLimited("no header").retry_after_s is None
    assert errors.RateLimited("m", retry_after_s=1.0).retry_after_s == 1.0


def test_kill_switch_and_refusals_are_permanent() -> None:
    from tradingbot.adapters.cache import TradingHalted

    assert issubclass(TradingHalted, errors.PermanentError)
    for cls in (ex.UnknownSymbol, ex.BelowMinimum, ex.LeverageTooHigh, ex.InsufficientMargin, ex.OrderRejected,
                ex.MissingCredentials, ex.DuplicateOrder):  # fmt: skip
        assert issubclass(cls, errors.PermanentError), cls


# ------------------------------------------------------------------ boundaries


@pytest.fixture
def closed_port() -> int:
    """A TCP port on 127.0.0.1 with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_redis_connection_refused_is_cache_unavailable(closed_port: int) -> None:
    cache = Cache.from_url(f"redis://127.0.0.1:{closed_port}/0")
    with pytest.raises(CacheUnavailable, match="unreachable") as info:
        cache.claim("alert-1")
    assert isinstance(info.value, errors.DependencyUnavailable)


def test_postgres_connection_refused_is_database_unavailable(closed_port: int) -> None:
    engine = create_db_engine(f"postgresql://app:pw-s3cr3t@127.0.0.1:{closed_port}/trading", connect_timeout_s=1)
    try:
        with pytest.raises(DatabaseUnavailable, match="cannot reach the database") as info, session_scope(engine) as s:
            s.execute(text("SELECT 1"))
        assert isinstance(info.value, errors.TransientError) and isinstance(info.value, PersistenceError)
        assert "pw-s3cr3t" not in str(info.value)
    finally:
        engine.dispose()


def _server_error(code: str, message: str) -> DBAPIError:
    """What SQLAlchemy raises for a pg8000 ErrorResponse (its fields in ``args[0]``)."""
    orig = pg8000.exceptions.DatabaseError({"S": "ERROR", "C": code, "M": message})
    return DBAPIError("SELECT 1", None, orig)


@pytest.mark.parametrize(
    ("code", "transient"),
    [
        ("57014", True),  # query_canceled: our statement_timeout
        ("57P01", True),  # admin_shutdown
        ("57P03", True),  # cannot_connect_now
        ("53300", True),  # too_many_connections
        ("08006", True),  # connection_failure
        ("57P04", False),  # database_dropped
        ("23505", False),  # unique_violation
        ("42601", False),  # syntax_error
    ],
)
def test_server_errors_that_pass_are_unavailable(code: str, transient: bool) -> None:
    assert is_unavailable(_server_error(code, "boom")) is transient


def test_driver_network_errors_are_unavailable() -> None:
    dropped = InterfaceError("SELECT 1", None, pg8000.exceptions.InterfaceError("network error"))
    assert is_unavailable(dropped)
    integrity = IntegrityError("INSERT", None, pg8000.exceptions.DatabaseError({"C": "23505", "M": "dup"}))
    assert not is_unavailable(integrity)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ccxt.RequestTimeout("read timed out"), ex.ExchangeUnavailable),
        (ccxt.ExchangeNotAvailable("503 Service Unavailable"), ex.ExchangeUnavailable),
        (ccxt.OnMaintenance("system maintenance"), ex.ExchangeUnavailable),
        (ccxt.NetworkError("connection reset"), ex.ExchangeUnavailable),
        # "refused before processing" only on the venues' 429/418 (tests/unit/test_exchange_translate.py)
        (ccxt.DDoSProtection("429 Too Many Requests"), ex.RateLimited),
        (ccxt.RateLimitExceeded('{"code":-1003}'), ex.RateLimited),
    ],
)
def test_ccxt_network_errors_become_transient(error: Exception, expected: type[ex.ExchangeError]) -> None:
    status = 429 if expected is ex.RateLimited else None
    got = translate(error, "binanceusdm", "create order tb-1", status=status, retry_after_s=3.0)
    assert type(got) is expected
    assert isinstance(got, errors.TransientError)
    if isinstance(got, ex.RateLimited):
        assert got.retry_after_s == 3.0


@pytest.mark.parametrize(
    "error",
    [
        ccxt.InvalidOrder('binanceusdm {"code":-4003,"msg":"Quantity less than or equal to zero."}'),
        ccxt.BadSymbol("okx does not have market symbol FOO/USDT:USDT"),
        ccxt.AuthenticationError('{"code":-2015,"msg":"Invalid API-key"}'),
        ccxt.InsufficientFunds('{"code":-2019,"msg":"Margin is insufficient."}'),
        ccxt.DuplicateOrderId('{"code":-4116,"msg":"ClientOrderId is duplicated."}'),
    ],
)
def test_ccxt_refusals_become_permanent(error: Exception) -> None:
    got = translate(error, "binanceusdm", "create order tb-1")
    assert isinstance(got, errors.PermanentError) and not isinstance(got, errors.TransientError)


def test_a_5xx_is_never_a_refusal() -> None:
    got = translate(ccxt.InvalidOrder("garbled"), "okx", "create order tb-1", status=502)
    assert isinstance(got, ex.ExchangeUnavailable)


def test_backfill_connection_refused_is_transient(closed_port: int) -> None:
    async def fetch() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            await backfill.fetch_binance(session, f"http://127.0.0.1:{closed_port}", "BTC/USDT:USDT", "1h", 0, 1)

    with pytest.raises(backfill.BackfillUnavailable) as info:
        asyncio.run(fetch())
    assert isinstance(info.value, errors.TransientError) and isinstance(info.value, backfill.BackfillError)
    assert issubclass(backfill.BackfillAnswerError, errors.PermanentError)
