"""ccxt's exceptions as the domain's: only a 429/418 is "refused before processing"; a 5xx,
ccxt's OperationFailed branch (DDoSProtection, BadResponse, timeouts) and the venues' "status
unknown" codes are "outcome unknown" (Binance: a 5xx's "execution status is UNKNOWN and could have
been a success", https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info)."""

from __future__ import annotations

import ccxt
import pytest

from tradingbot.adapters.exchange.ccxt_adapter import translate
from tradingbot.domain.exchange import (
    DuplicateOrder,
    ExchangeFailedNotPlaced,
    ExchangeUnavailable,
    HedgeModeUnsupported,
    InsufficientMargin,
    OrderRejected,
    RateLimited,
)

BINANCE = "binanceusdm"


@pytest.mark.parametrize(
    ("exc", "status", "expected"),
    [
        (ccxt.DDoSProtection("binanceusdm 429 Too Many Requests"), 429, RateLimited),
        (ccxt.DDoSProtection("binanceusdm 418 I'm a teapot"), 418, RateLimited),
        (ccxt.RateLimitExceeded('{"code":-1003,"msg":"Too many requests"}'), 429, RateLimited),
        # the same classes on a 5xx page, or with no answer at all: the order may exist
        (ccxt.DDoSProtection("<html>503 Service Unavailable</html>"), 503, ExchangeUnavailable),
        (ccxt.RateLimitExceeded('{"code":-1003,"msg":"Too many requests"}'), 503, ExchangeUnavailable),
        (ccxt.DDoSProtection("binanceusdm DDoS protection"), None, ExchangeUnavailable),
        # ccxt could not read the answer (below 500): unknown, not "rejected"
        (ccxt.BadResponse("binanceusdm unexpected response"), 400, ExchangeUnavailable),
        (ccxt.OperationFailed('{"code":-1006,"msg":"Execution status unknown."}'), 400, ExchangeUnavailable),
        (ccxt.RequestTimeout('{"code":-1007,"msg":"Timeout waiting for response from backend server."}'), 503,
         ExchangeUnavailable),
        (ccxt.ExchangeError('{"code":-1007,"msg":"Send status unknown; execution status unknown."}'), 400,
         ExchangeUnavailable),
        # a refusal code on a 5xx is not believed over the status
        (ccxt.InvalidOrder('{"code":-4116,"msg":"ClientOrderId is duplicated."}'), 503, ExchangeUnavailable),
        (ccxt.InvalidOrder('{"code":-4116,"msg":"ClientOrderId is duplicated."}'), 400, DuplicateOrder),
        (ccxt.InsufficientFunds('{"code":-2019,"msg":"Margin is insufficient."}'), 400, InsufficientMargin),
        (ccxt.OperationRejected('{"code":-4061,"msg":"Order\'s position side does not match"}'), 400,
         HedgeModeUnsupported),
        (ccxt.BadRequest('{"code":-4015,"msg":"Client order id is not valid."}'), 400, OrderRejected),
        (ccxt.InvalidOrder('{"code":-2022,"msg":"ReduceOnly Order is rejected."}'), 400, OrderRejected),
    ],
)  # fmt: skip
def test_translation(exc: Exception, status: int | None, expected: type) -> None:
    error = translate(exc, BINANCE, "create order tb1", status=status, retry_after_s=1.0)
    assert type(error) is expected
    unknown = expected in (ExchangeUnavailable, DuplicateOrder)
    assert error.definitely_not_placed is (not unknown)


def test_okx_position_side_error_is_hedge_mode_and_other_parameter_errors_are_not() -> None:
    hedge = translate(
        ccxt.BadRequest('{"sCode":"51000","sMsg":"Parameter posSide error"}'), "okx", "create", status=200
    )
    assert isinstance(hedge, HedgeModeUnsupported)
    other = translate(
        ccxt.BadRequest('{"sCode":"51000","sMsg":"Parameter clOrdId error"}'), "okx", "create", status=200
    )
    assert type(other) is OrderRejected


# Binance USD-M general info, HTTP return codes
# (https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info): on a 503, "Service
# Unavailable." and "Internal error; unable to process your request. Please try again." are "a failure API
# operation" (may be resent); "Unknown error, please check your request or try again later." is UNKNOWN.
# OKX documents no outcome for 50001 / 50013 / 50026 (https://www.okx.com/docs-v5/en/#error-code): unknown.
@pytest.mark.parametrize(
    ("venue", "exc", "status", "expected"),
    [
        ("binanceusdm", ccxt.ExchangeNotAvailable(
            'binanceusdm {"code":-1001,"msg":"Internal error; unable to process your request. Please try again."}'),
         503, ExchangeFailedNotPlaced),
        ("binanceusdm", ccxt.ExchangeNotAvailable('binanceusdm {"code":-1001,"msg":"Service Unavailable."}'), 503,
         ExchangeFailedNotPlaced),
        ("binanceusdm", ccxt.ExchangeNotAvailable(
            'binanceusdm {"code":-1000,"msg":"Unknown error, please check your request or try again later."}'),
         503, ExchangeUnavailable),
        # the documented words only on a 503, only as the answer's msg, only from Binance
        ("binanceusdm", ccxt.ExchangeNotAvailable(
            'binanceusdm {"code":-1001,"msg":"Internal error; unable to process your request. Please try again."}'),
         500, ExchangeUnavailable),
        ("binanceusdm", ccxt.DDoSProtection("<html><h1>503 Service Unavailable.</h1></html>"), 503,
         ExchangeUnavailable),
        ("okx", ccxt.ExchangeNotAvailable(
            'okx {"code":"50001","msg":"Service temporarily unavailable, please try again later.","data":[]}'),
         503, ExchangeUnavailable),
        ("okx", ccxt.ExchangeNotAvailable('okx {"code":"50013","msg":"System is busy, please try again later."}'),
         200, ExchangeUnavailable),
        ("okx", ccxt.ExchangeNotAvailable('okx {"code":"50026","msg":"System error. Try again later"}'), 500,
         ExchangeUnavailable),
    ],
)  # fmt: skip
def test_a_documented_failure_is_not_placed_and_everything_else_unknown(
    venue: str, exc: Exception, status: int, expected: type
) -> None:
    error = translate(exc, venue, "create order tb1", status=status)
    assert type(error) is expected, error
    assert error.definitely_not_placed is (expected is ExchangeFailedNotPlaced)
    assert error.reason == (
        "exchange_failed_not_placed" if expected is ExchangeFailedNotPlaced else "exchange_unavailable"
    )
