"""Binance USDT-M futures and OKX swaps through ccxt's synchronous REST clients.

What this adapter adds to ccxt:

* Quantities in base units on both venues (OKX counts contracts: ``contracts = qty / ctVal``),
  rounded with ccxt's ``amount_to_precision`` / ``price_to_precision`` (truncating, from the
  market's precision), then checked against the market's minimum quantity and notional.
* The client order id is passed through ccxt's params (Binance ``newClientOrderId`` /
  ``clientAlgoId``, OKX ``clOrdId`` / ``algoClOrdId``) so a retry can never create a second order.
* ccxt's exceptions become the domain errors of :mod:`tradingbot.domain.exchange`; in particular a
  timeout, a 5xx (whatever ccxt class it came as, DDoSProtection included), ccxt's
  ``OperationFailed``/``BadResponse`` and the venues' "status unknown" codes (Binance -1007) are
  :class:`ExchangeUnavailable` ("outcome unknown"), never "not placed"; only a 429/418 is
  :class:`RateLimited` ("refused before processing"), only Binance's 503 "Service Unavailable." /
  "Internal error; unable to process your request. Please try again." (documented as "a failure API
  operation") is :class:`ExchangeFailedNotPlaced` (may be resent), and the venue's duplicate-id codes
  (Binance -4116, OKX 51016) become :class:`DuplicateOrder`.
* Account checks before anything is sent: hedge mode refused (Binance ``GET
  /fapi/v1/positionSide/dual``, OKX ``GET /api/v5/account/config`` ``posMode``), a symbol without
  leverage brackets refused (never assumed).
* The venue's trade list (Binance ``GET /fapi/v1/userTrades``, OKX ``GET
  /api/v5/trade/fills-history``): the second way to find an order whose create answer was lost,
  and on Binance the only place the commission is published.
* Testnet per account: Binance's demo-trading endpoints (ccxt refuses the retired futures
  testnet), OKX's simulated trading (``x-simulated-trading: 1``).
* The REST base URL per account (``rest_url``, from ``EXCHANGE_*`` or the account's
  ``venue_urls``): OKX's regional hosts through ccxt's ``hostname`` option (``https://{hostname}``,
  e.g. ``my.okx.com``), any other URL (a local stand-in) as ccxt's ``urls['api']``; Binance's
  USD-M paths under the given base. Nothing else changes: signing and parsing stay ccxt's.
* Protective orders: stop-loss / take-profit as reduce-only conditional orders (Binance's Algo
  Service ``POST /fapi/v1/algoOrder`` STOP_MARKET / TAKE_PROFIT_MARKET; OKX ``order-algo``
  ``conditional`` with ``slTriggerPx`` / ``tpTriggerPx``), cancelled by client id; an order the venue
  no longer has open (filled, cancelled, unknown) is :class:`OrderGone` on cancel.

Backoff on 429/418 is the order service's job (it must look the order up between attempts); this
adapter reports ``Retry-After`` on :class:`RateLimited`.
"""

from __future__ import annotations

import logging
import re
import time
from decimal import Decimal
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import ccxt

from tradingbot.adapters.crypto import ExchangeCredentials
from tradingbot.domain.accounting import FundingPayment, VenueTrade
from tradingbot.domain.exchange import (
    Balance,
    BelowMinimum,
    DuplicateOrder,
    ExchangeError,
    ExchangeFailedNotPlaced,
    ExchangeUnavailable,
    HedgeModeUnsupported,
    InsufficientMargin,
    LeverageUnknown,
    MarginMode,
    MarketInfo,
    MissingCredentials,
    OrderGone,
    OrderRejected,
    OrderRequest,
    OrderResult,
    OrderStatus,
    OrderType,
    Position,
    RateLimited,
    Side,
    UnknownSymbol,
    VenueFill,
    VenueOpenOrder,
    usdt_fee,
)

log = logging.getLogger(__name__)

VenueId = Literal["binanceusdm", "okx"]
SUPPORTED: tuple[VenueId, ...] = ("binanceusdm", "okx")

# ccxt logs every request's headers at DEBUG, and those carry the API key (X-MBX-APIKEY,
# OK-ACCESS-KEY). Nothing below INFO from ccxt may reach a log handler.
logging.getLogger("ccxt").setLevel(logging.INFO)

# Venue codes read from the answer's body ("code" on Binance, "code"/"sCode" on OKX), because
# ccxt maps some of them to generic exceptions and the decision must not depend on that mapping.
_CODE = re.compile(r'"s?[cC]ode"\s*:\s*"?(-?\d+)"?')
# "you already sent an order with this client id"
_DUPLICATE_CODES = frozenset({"-4116", "51016"})
# "no such order" (ccxt does not map these to OrderNotFound on every endpoint)
_NOT_FOUND_CODES = frozenset({"-2013", "51603"})
# a cancel of an order that is no longer open: Binance -2011 "Unknown order sent." (also for a
# filled or cancelled one), OKX 51400 "Order cancellation failed as the order has been filled,
# canceled or does not exist" and 51401/51402 (already cancelled / completed)
# (https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code,
# https://www.okx.com/docs-v5/en/#error-code)
_GONE_CODES = frozenset({"-2011", "-2013", "51400", "51401", "51402", "51603"})
# margin or balance insufficient
_MARGIN_CODES = frozenset({"-2019", "-2018", "51008", "51127", "51131"})
# Binance -4061 POSITION_SIDE_NOT_MATCH "Order's position side does not match user's setting." (the
# account is in Hedge Mode; ccxt maps it to OperationRejected, binance.py exceptions 'exact')
# https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code
_HEDGE_CODES = frozenset({"-4061"})

# Answers that say "we do not know whether it executed": Binance -1000 unknown, -1001 internal
# error, -1006 "Execution status unknown", -1007 "Timeout waiting for response from backend server.
# Send status unknown; execution status unknown.", -1008 overloaded
# (https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code); OKX 50001
# maintenance, 50004 "Endpoint request timeout (does not indicate success or failure of order,
# please check order status)", 50013 busy, 50026 system error (https://www.okx.com/docs-v5/en/#error-code).
# ccxt maps several of them to plain ExchangeError/BadResponse, which must not read as "rejected".
_UNKNOWN_OUTCOME_CODES = frozenset({"-1000", "-1001", "-1006", "-1007", "-1008", "50001", "50004", "50013", "50026"})
# ... except the answers Binance documents as a FAILURE (not executed, may be resent). USD-M futures
# general info, HTTP return codes (https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info):
# "HTTP 503 return code is used when: 1. If there is an error message "Unknown error, please check
# your request or try again later." ... the execution status is UNKNOWN and could have been a success;
# 2. If there is an error message "Service Unavailable." ... it means this is a failure API operation
# ...; 3. If there is an error message "Internal error; unable to process your request. Please try
# again." ... it means this is a failure API operation and you can resend your request if you need."
# Only those exact messages on an HTTP 503 from Binance. OKX documents no such promise: its 50001
# "Service temporarily unavailable, please try again later." (503), 50013 "System is busy, please try
# again later." (200) and 50026 "System error. Try again later" (500) say nothing about the order's
# fate (https://www.okx.com/docs-v5/en/#error-code), so they stay "outcome unknown" (looked up, never
# resent blindly).
# Matched as the answer's JSON "msg" (an HTML error page of a proxy saying "Service Unavailable" is not it).
_BINANCE_FAILED_503 = re.compile(
    r'"msg"\s*:\s*"(?:Service Unavailable\.|Internal error; unable to process your request\. Please try again\.)"'
)

_CONDITIONAL_TYPES: dict[str, str] = {"stop_market": "stopLossPrice", "take_profit_market": "takeProfitPrice"}


def local_urls(venue: VenueId, base_url: str) -> dict[str, str]:
    """``urls['api']`` for a venue served at ``base_url`` (an account's ``rest_url``, or the feed's
    and the history's REST hosts); only the paths change, so signing and parsing stay ccxt's own."""
    base = base_url.rstrip("/")
    if venue == "okx":
        return {"rest": base}
    return {
        "fapiPublic": f"{base}/fapi/v1",
        "fapiPublicV2": f"{base}/fapi/v2",
        "fapiPublicV3": f"{base}/fapi/v3",
        "fapiPrivate": f"{base}/fapi/v1",
        "fapiPrivateV2": f"{base}/fapi/v2",
        "fapiPrivateV3": f"{base}/fapi/v3",
        "fapiData": f"{base}/futures/data",
        "public": f"{base}/api/v3",
        "private": f"{base}/api/v3",
        "sapi": f"{base}/sapi/v1",
    }


def _point_at(client: Any, venue: VenueId, rest_url: str) -> None:
    """Send the client's REST calls to ``rest_url``. OKX: a plain https host (``https://my.okx.com``)
    is ccxt's ``hostname`` option (its ``urls['api']['rest']`` is ``https://{hostname}``); a URL with a
    port or path (a local stand-in) replaces ``urls['api']``. Binance: the USD-M paths under it."""
    parts = urlsplit(rest_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"rest_url: {rest_url!r} is not an http(s) URL")
    if venue == "okx":
        if parts.scheme == "https" and parts.port is None and parts.path.strip("/") == "":
            client.hostname = parts.hostname
        else:
            client.urls["api"] = {"rest": rest_url.rstrip("/")}
        return
    if client.urls["api"].get("fapiPrivate") == f"{rest_url.rstrip('/')}/fapi/v1":
        return  # ccxt's own host for this mode (live or demo): its spot/sapi urls stay ccxt's too
    client.urls["api"] = {**client.urls["api"], **local_urls(venue, rest_url)}


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


class CcxtExchange:
    """:class:`~tradingbot.domain.exchange.Exchange` over ``ccxt.binanceusdm`` or ``ccxt.okx``."""

    def __init__(
        self,
        venue: VenueId,
        credentials: ExchangeCredentials | None,
        *,
        testnet: bool,
        timeout_ms: int = 5_000,
        rest_url: str | None = None,
        margin_mode: MarginMode = "isolated",
    ) -> None:
        """``rest_url``: the venue's REST base URL (None = ccxt's own hosts for live / demo)."""
        if venue not in SUPPORTED:
            raise ValueError(f"exchange: {venue!r} is not supported; expected one of {', '.join(SUPPORTED)}")
        self.name: str = venue
        self.venue: VenueId = venue
        self.testnet = testnet
        self._margin_mode: MarginMode = margin_mode
        self._credentials = credentials
        self._client = self._build(venue, credentials, testnet, timeout_ms, rest_url)
        self._last_status: int | None = None
        self._hook_status()
        self._markets: dict[str, MarketInfo] = {}
        self._by_ticker: dict[str, str] = {}
        self._one_way = False

    def __repr__(self) -> str:  # never the client: it holds the keys
        return f"CcxtExchange({self.venue}, {'testnet' if self.testnet else 'live'})"

    @staticmethod
    def _build(
        venue: VenueId,
        credentials: ExchangeCredentials | None,
        testnet: bool,
        timeout_ms: int,
        rest_url: str | None,
    ) -> Any:
        config: dict[str, Any] = {
            "timeout": timeout_ms,
            # ccxt's proactive throttle sleeps ``rateLimit`` x endpoint weight before calls (250 ms
            # before a positionRisk on Binance), on the order path, per container. Our volume is
            # bounded by the order gate (30 orders/min per account), far below the venues' limits,
            # and a 429/418 is handled by the order service's backoff with Retry-After.
            "enableRateLimit": False,
            "options": {
                # private "all coins" endpoints: not needed to trade perpetuals, and one more call
                "fetchCurrencies": False,
                "adjustForTimeDifference": False,
            },
        }
        if credentials is not None:
            config["apiKey"] = credentials.api_key.reveal()
            config["secret"] = credentials.api_secret.reveal()
            if credentials.passphrase is not None:
                config["password"] = credentials.passphrase.reveal()
        if venue == "okx":
            config["options"].update(
                {
                    "fetchMarkets": {"types": ["swap"]},
                    # one order per request: the single-order endpoint answers with its own sCode
                    "createOrder": "privatePostTradeOrder",
                    "defaultType": "swap",
                }
            )
            client = ccxt.okx(config)
            if testnet:
                client.set_sandbox_mode(True)  # adds x-simulated-trading: 1; same hosts
        else:
            config["options"].update({"defaultType": "swap", "defaultSubType": "linear"})
            client = ccxt.binanceusdm(config)
            if testnet:
                # the futures testnet is retired (ccxt raises); demo trading is its successor
                client.enable_demo_trading(True)
        if rest_url is not None:
            _point_at(client, venue, rest_url)
        return client

    def _hook_status(self) -> None:
        """Remember each answer's HTTP status: a 5xx means "outcome unknown" whatever code the body
        carries, and ccxt does not keep the status itself."""
        original = self._client.on_rest_response

        def on_rest_response(code: int, *rest: Any) -> Any:
            self._last_status = int(code)
            return original(code, *rest)

        self._client.on_rest_response = on_rest_response

    # ---------------------------------------------------------- error translation

    def _retry_after(self) -> float | None:
        headers = getattr(self._client, "last_response_headers", None) or {}
        value = headers.get("Retry-After") if hasattr(headers, "get") else None
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    def _translate(self, exc: Exception, what: str) -> ExchangeError:
        return translate(exc, self.venue, what, status=self._last_status, retry_after_s=self._retry_after())

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self._last_status = None
        try:
            return fn(*args, **kwargs)
        except ccxt.BaseError as exc:
            raise self._translate(exc, what) from None

    def _require_keys(self, what: str) -> None:
        if self._credentials is None:
            raise MissingCredentials(f"{self.venue}: {what} needs API keys; store them with `tradingbot keys set`")

    # ---------------------------------------------------------- markets

    def load_markets(self) -> None:
        if self._markets:
            return
        markets = self._call("load markets", self._client.load_markets)
        for symbol, m in markets.items():
            if not (m.get("swap") and m.get("linear") and m.get("settle") == "USDT" and m.get("active", True)):
                continue
            limits = m.get("limits") or {}
            lev = (limits.get("leverage") or {}).get("max")
            if self.venue == "okx" and not (m.get("info") or {}).get("lever"):
                lev = None  # ccxt reads a missing ``lever`` as 1x; it is "unknown", refused at use
            size = _dec(m.get("contractSize")) or Decimal(1)
            min_contracts = _dec((limits.get("amount") or {}).get("min"))
            info = MarketInfo(
                symbol=symbol,
                exchange_id=str(m["id"]),
                min_quantity=min_contracts * size if min_contracts is not None else None,
                min_notional=_dec((limits.get("cost") or {}).get("min")),
                # Binance publishes leverage only in the (private) brackets: fetched on first use
                max_leverage=int(lev) if lev and self.venue == "okx" else None,
                contract_size=size,
            )
            self._markets[symbol] = info
            self._by_ticker[f"{m['base']}{m['quote']}".upper()] = symbol
            self._by_ticker[str(m["id"]).upper()] = symbol

    def market(self, symbol: str) -> MarketInfo:
        self.load_markets()
        unified = symbol if symbol in self._markets else self._by_ticker.get(symbol.upper())
        if unified is None:
            raise UnknownSymbol(symbol, self.venue)
        return self._markets[unified]

    def max_leverage(self, symbol: str) -> int:
        """The venue's maximum for the first notional tier (OKX: instruments' ``lever``; Binance:
        the leverage bracket, a private call, fetched once per symbol)."""
        info = self.market(symbol)
        if info.max_leverage is not None:
            return info.max_leverage
        if self.venue == "okx":  # instruments published no ``lever``: nothing to check against
            raise LeverageUnknown(f"leverage: okx publishes no maximum leverage for {info.symbol}; refused")
        self._require_keys("reading leverage brackets")
        tiers = self._call("leverage brackets", self._client.fetch_market_leverage_tiers, info.symbol)
        levels = [int(t["maxLeverage"]) for t in tiers or [] if t.get("maxLeverage")]
        if not levels:
            # GET /fapi/v1/leverageBracket answered without brackets for this symbol: refuse rather
            # than assume the 125x of BTCUSDT's first tier (most symbols allow far less)
            raise LeverageUnknown(f"leverage: binanceusdm has no leverage brackets for {info.symbol}; refused")
        maximum = max(levels)
        self._markets[info.symbol] = MarketInfo(**{**info.__dict__, "max_leverage": maximum})
        return maximum

    def _contracts(self, info: MarketInfo, quantity: Decimal) -> str:
        """Base quantity -> venue amount string, truncated to the market's precision by ccxt."""
        try:
            return str(self._client.amount_to_precision(info.symbol, str(quantity / info.contract_size)))
        except ccxt.InvalidOrder:  # truncates to zero
            raise BelowMinimum(info.symbol, "quantity", quantity, info.min_quantity or Decimal(0)) from None

    def amount_to_precision(self, symbol: str, quantity: Decimal) -> Decimal:
        info = self.market(symbol)
        return Decimal(self._contracts(info, quantity)) * info.contract_size

    def price_to_precision(self, symbol: str, price: Decimal) -> Decimal:
        info = self.market(symbol)
        return Decimal(str(self._client.price_to_precision(info.symbol, str(price))))

    # ---------------------------------------------------------- account settings

    def set_leverage(self, symbol: str, leverage: int) -> None:
        self._require_keys("setting leverage")
        info = self.market(symbol)
        params = {"marginMode": self._margin_mode} if self.venue == "okx" else {}
        self._call("set leverage", self._client.set_leverage, leverage, info.symbol, params)

    def set_margin_mode(self, symbol: str, mode: MarginMode) -> None:
        self._require_keys("setting the margin mode")
        info = self.market(symbol)
        self._margin_mode = mode
        if self.venue == "okx":
            return  # OKX takes the margin mode per order (tdMode) and per set-leverage call
        self._last_status = None
        try:
            self._client.set_margin_mode(mode, info.symbol)
        except ccxt.BaseError as exc:
            # -4046 "No need to change margin type": already in this mode (ccxt does not map it here)
            if "-4046" not in set(_CODE.findall(str(exc))):
                raise self._translate(exc, "set margin mode") from None

    def check_position_mode(self) -> None:
        """Refuse a hedge-mode account before anything is sent: the order path sends one-way
        orders (no ``positionSide`` / ``posSide``), which such an account refuses or misreads.

        Binance ``GET /fapi/v1/positionSide/dual`` -> ``{"dualSidePosition": true}`` is Hedge Mode
        (https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Get-Current-Position-Mode);
        OKX ``GET /api/v5/account/config`` -> ``posMode`` ``long_short_mode`` is hedge, ``net_mode``
        one-way (https://www.okx.com/docs-v5/en/#trading-account-rest-api-get-account-configuration).
        A one-way answer is remembered for the client's life: a later switch to hedge mode is still
        refused by the venue itself (Binance -4061, OKX 51000 posSide), which translates to the same
        error, so nothing is placed either way."""
        if self._one_way:
            return
        self._require_keys("reading the position mode")
        if self.venue == "okx":
            raw = self._call("account config", self._client.privateGetAccountConfig)
            mode = str(((raw or {}).get("data") or [{}])[0].get("posMode") or "")
            hedged = mode == "long_short_mode"
            shown = f"posMode={mode}"
        else:
            raw = self._call("position mode", self._client.fapiPrivateGetPositionSideDual)
            hedged = str((raw or {}).get("dualSidePosition")).lower() == "true"
            shown = f"dualSidePosition={str(hedged).lower()}"
        if hedged:
            raise HedgeModeUnsupported(
                f"account: {self.venue} account is in hedge mode ({shown}); TradingBot places one-way "
                "orders only: switch the account to one-way mode"
            )
        self._one_way = True

    # ---------------------------------------------------------- orders

    def _order_params(self, request: OrderRequest) -> dict[str, Any]:
        cid = request.client_order_id
        params: dict[str, Any] = {"reduceOnly": request.reduce_only} if request.reduce_only else {}
        conditional = request.type in _CONDITIONAL_TYPES
        if conditional:
            if request.trigger_price is None:
                raise OrderRejected(f"trigger_price: a {request.type} order needs a trigger price")
            params[_CONDITIONAL_TYPES[request.type]] = str(request.trigger_price)
        if self.venue == "okx":
            params["marginMode"] = self._margin_mode
            params["clOrdId"] = cid
            if conditional:
                params["algoClOrdId"] = cid
        else:
            params["clientAlgoId" if conditional else "newClientOrderId"] = cid
        return params

    def create_order(self, request: OrderRequest) -> OrderResult:
        self._require_keys("placing an order")
        info = self.market(request.symbol)
        amount = self._contracts(info, request.quantity)
        ccxt_type = "limit" if request.type == "limit" else "market"
        price = str(request.price) if request.type == "limit" and request.price is not None else None
        raw = self._call(
            f"create order {request.client_order_id}",
            self._client.create_order,
            info.symbol,
            ccxt_type,
            request.side,
            amount,
            price,
            self._order_params(request),
        )
        result = self._result(raw, info, request)
        if result.status == "open" and result.filled == 0 and request.type == "market":
            # OKX acknowledges with ids only; the fill state comes from the order itself
            fetched = self.fetch_order_by_client_id(info.symbol, request.client_order_id)
            return fetched or result
        return self._with_fee(info, result)

    def _with_fee(self, info: MarketInfo, result: OrderResult) -> OrderResult:
        """Binance's order answers carry no commission (New Order / Query Order responses have no
        fee field: https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Order);
        it is published per trade in ``GET /fapi/v1/userTrades`` (``commission``). One read for a
        filled order. When the read fails, or the trade list does not cover the filled quantity yet
        (its read side can lag), the fee is None = unknown, never a made-up 0: the fill is stored
        with its fee pending and the accounting sync (pipeline/accounting.py) writes the venue's."""
        if self.venue != "binanceusdm" or result.filled <= 0 or result.fee or result.exchange_order_id is None:
            return result
        now = _now_ms()
        try:
            fills = self.fetch_fills(
                info.symbol, since_ms=now - 24 * 3_600_000, until_ms=now + 60_000,
                exchange_order_id=result.exchange_order_id,
            )  # fmt: skip
        except ExchangeError as exc:
            log.warning("commission of order %s not read (left for the accounting sync): %s",
                        result.exchange_order_id, exc.reason)  # fmt: skip
            return OrderResult(**{**result.__dict__, "fee": None})
        if sum((f.quantity for f in fills), Decimal(0)) != result.filled:
            return OrderResult(**{**result.__dict__, "fee": None})  # the trade list lags the fill
        return OrderResult(**{**result.__dict__, "fee": usdt_fee(fills)})  # None: charged in BNB (not USDT)

    def fetch_fills(
        self, symbol: str, *, since_ms: int, until_ms: int, exchange_order_id: str | None = None
    ) -> list[VenueFill]:
        """The account's executions on ``symbol`` in [since_ms, until_ms] (optionally of one order).

        Binance ``GET /fapi/v1/userTrades`` (symbol, orderId, startTime/endTime at most 7 days apart;
        no client order id in the rows: ``id, orderId, side, price, qty, commission, time``,
        https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Account-Trade-List);
        OKX ``GET /api/v5/trade/fills-history`` (instType, instId, ordId, begin/end; rows carry
        ``clOrdId``, ``fillSz`` in contracts, ``fee`` negative for a charge,
        https://www.okx.com/docs-v5/en/#order-book-trading-trade-get-transaction-details-last-3-months)."""
        self._require_keys("reading the trade list")
        info = self.market(symbol)
        params: dict[str, Any] = {"until": until_ms}
        if exchange_order_id is not None:
            params["ordId" if self.venue == "okx" else "orderId"] = exchange_order_id
        raw = self._call("fetch trades", self._client.fetch_my_trades, info.symbol, since_ms, 100, params)
        out: list[VenueFill] = []
        for t in raw:
            venue_row = t.get("info") or {}
            cid = venue_row.get("clOrdId") or None
            fee = t.get("fee") or {}
            out.append(
                VenueFill(
                    trade_id=str(t.get("id")),
                    exchange_order_id=str(t.get("order")),
                    client_order_id=str(cid) if cid else None,
                    side=cast(Side, t.get("side") or "buy"),
                    price=_dec(t.get("price")) or Decimal(0),
                    quantity=(_dec(t.get("amount")) or Decimal(0)) * info.contract_size,
                    fee=abs(_dec(fee.get("cost")) or Decimal(0)),
                    ts_ms=int(t.get("timestamp") or 0),
                    # Binance commissionAsset / OKX feeCcy, as the venue's row says (ccxt: fee.currency)
                    fee_currency=str(
                        venue_row.get("commissionAsset") or venue_row.get("feeCcy") or fee.get("currency") or "USDT"
                    ),
                )
            )
        return out

    def fetch_mark_price(self, symbol: str) -> Decimal:
        """The venue's mark price: Binance ``GET /fapi/v1/premiumIndex`` ``markPrice``
        (https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Mark-Price);
        OKX ``GET /api/v5/public/mark-price`` ``markPx``
        (https://www.okx.com/docs-v5/en/#public-data-rest-api-get-mark-price), through ccxt's fetchMarkPrice."""
        info = self.market(symbol)
        raw = self._call("fetch mark price", self._client.fetch_mark_price, info.symbol)
        venue_row = raw.get("info") or {}
        mark = _dec(raw.get("markPrice")) or _dec(venue_row.get("markPrice") or venue_row.get("markPx"))
        if mark is None or mark <= 0:
            raise ExchangeUnavailable(f"{self.venue}: no mark price for {info.symbol} in the venue's answer")
        return mark

    def fetch_open_orders(self) -> list[VenueOpenOrder]:
        """Every open order of the account on every USDT perpetual, regular and conditional, as the
        venue lists them (reconcile's orphan check):

        * Binance ``GET /fapi/v1/openOrders`` without ``symbol`` ("Get all open orders on a symbol.
          Careful when accessing this with no symbol", weight 40,
          https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Current-All-Open-Orders)
          and ``GET /fapi/v1/openAlgoOrders`` (the Algo Service's conditional orders,
          https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Current-All-Algo-Open-Orders);
        * OKX ``GET /api/v5/trade/orders-pending`` (instType SWAP,
          https://www.okx.com/docs-v5/en/#order-book-trading-trade-get-order-list) and
          ``GET /api/v5/trade/orders-algo-pending`` (ordType conditional,
          https://www.okx.com/docs-v5/en/#order-book-trading-algo-trading-get-algo-order-list).

        The venue's own rows are read (implicit ccxt endpoints), not ccxt's parsed orders: the client
        id and the venue's type are what reconcile compares."""
        self._require_keys("listing open orders")
        self.load_markets()
        by_id = {m.exchange_id: m for m in self._markets.values()}
        out: list[VenueOpenOrder] = []
        if self.venue == "okx":
            regular = self._call("open orders", self._client.privateGetTradeOrdersPending, {"instType": "SWAP"})
            algo = self._call("open algo orders", self._client.privateGetTradeOrdersAlgoPending,
                              {"instType": "SWAP", "ordType": "conditional"})  # fmt: skip
            rows = [(r, False) for r in regular.get("data") or []] + [(r, True) for r in algo.get("data") or []]
            for row, conditional in rows:
                info = by_id.get(str(row.get("instId")))
                if info is None:
                    continue
                out.append(
                    VenueOpenOrder(
                        symbol=info.symbol,
                        client_order_id=str(row.get("algoClOrdId" if conditional else "clOrdId") or ""),
                        exchange_order_id=str(row.get("algoId" if conditional else "ordId") or ""),
                        side=str(row.get("side") or ""),
                        type=str(row.get("ordType") or ""),
                        quantity=(_dec(row.get("sz")) or Decimal(0)) * info.contract_size,
                        conditional=conditional,
                    )
                )
            return out
        regular = self._call("open orders", self._client.fapiPrivateGetOpenOrders, {})
        algo = self._call("open algo orders", self._client.fapiPrivateGetOpenAlgoOrders, {})
        rows = [(r, False) for r in regular or []] + [(r, True) for r in algo or []]
        for row, conditional in rows:
            info = by_id.get(str(row.get("symbol")))
            if info is None:
                continue
            out.append(
                VenueOpenOrder(
                    symbol=info.symbol,
                    client_order_id=str(row.get("clientAlgoId" if conditional else "clientOrderId") or ""),
                    exchange_order_id=str(row.get("algoId" if conditional else "orderId") or ""),
                    side=str(row.get("side") or "").lower(),
                    type=str(row.get("orderType" if conditional else "type") or ""),
                    quantity=_dec(row.get("quantity" if conditional else "origQty")) or Decimal(0),
                    conditional=conditional,
                )
            )
        return out

    def cancel_order(self, symbol: str, client_order_id: str, *, conditional: bool = False) -> None:
        """Cancel by client id (Binance ``DELETE /fapi/v1/algoOrder`` ``clientAlgoId`` for a
        conditional order, ``DELETE /fapi/v1/order`` ``origClientOrderId`` otherwise; OKX
        ``cancel-algos`` / ``cancel-order``). :class:`OrderGone` when the venue has no such open order
        (already filled, cancelled, or never placed): the caller then looks it up."""
        self._require_keys("cancelling an order")
        info = self.market(symbol)
        params: dict[str, Any] = {"clientOrderId": client_order_id}
        if conditional:
            params["trigger"] = True
        self._last_status = None
        try:
            self._client.cancel_order(None, info.symbol, params)
        except ccxt.BaseError as exc:
            if (self._last_status or 0) < 500 and (
                isinstance(exc, ccxt.OrderNotFound) or set(_CODE.findall(str(exc))) & _GONE_CODES
            ):
                raise OrderGone(
                    f"{self.venue}: cancel {client_order_id}: no such open order ({_short(str(exc))})"
                ) from None
            raise self._translate(exc, f"cancel order {client_order_id}") from None

    def fetch_order_by_client_id(
        self, symbol: str, client_order_id: str, *, conditional: bool = False
    ) -> OrderResult | None:
        self._require_keys("looking up an order")
        info = self.market(symbol)
        params: dict[str, Any] = {"clientOrderId": client_order_id}
        if conditional:
            params["trigger"] = True
        self._last_status = None
        try:
            raw = self._client.fetch_order(None, info.symbol, params)
        except ccxt.OrderNotFound:
            return None
        except ccxt.BaseError as exc:
            if isinstance(exc, ccxt.ExchangeError) and set(_CODE.findall(str(exc))) & _NOT_FOUND_CODES:
                return None
            raise self._translate(exc, f"fetch order {client_order_id}") from None
        result = self._result(raw, info, None, client_order_id, conditional=conditional)
        if conditional and result.status == "filled" and (result.filled == 0 or not result.fee):
            return self._triggered_fill(info, raw, result)
        return self._with_fee(info, result)

    def _triggered_fill(self, info: MarketInfo, raw: dict[str, Any], result: OrderResult) -> OrderResult:
        """A conditional order that fired: its execution is the regular order the venue created when it
        triggered (Binance Query Algo Order ``actualOrderId``,
        https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Query-Algo-Order;
        OKX algo order ``ordIdList`` / ``ordId``,
        https://www.okx.com/docs-v5/en/#order-book-trading-algo-trading-get-algo-order-details), whose
        trades carry the quantity, price and fee. Unread (no id, or the trade list failing) leaves the
        fill unknown (filled 0): the status is still the venue's."""
        venue_row = raw.get("info") or {}
        ids = venue_row.get("ordIdList") or [venue_row.get("actualOrderId") or venue_row.get("ordId")]
        actual = next((str(i) for i in ids if i not in (None, "", "0")), None)
        if actual is None:
            return result
        now = _now_ms()
        try:  # Binance allows at most 7 days between startTime and endTime
            fills = self.fetch_fills(
                info.symbol, since_ms=now - 7 * 86_400_000 + 60_000, until_ms=now + 60_000, exchange_order_id=actual
            )
        except ExchangeError as exc:
            log.warning("fill of triggered order %s not read: %s", actual, exc.reason)
            return result
        filled = sum((f.quantity for f in fills), Decimal(0))
        if filled <= 0:
            return result
        average = sum((f.price * f.quantity for f in fills), Decimal(0)) / filled
        fee = sum((f.fee for f in fills), Decimal(0))
        return OrderResult(**{**result.__dict__, "filled": filled, "average_price": average, "fee": fee})

    def _result(
        self,
        raw: dict[str, Any],
        info: MarketInfo,
        request: OrderRequest | None,
        cid: str | None = None,
        *,
        conditional: bool = False,
    ) -> OrderResult:
        size = info.contract_size
        amount = _dec(raw.get("amount"))
        filled = _dec(raw.get("filled")) or Decimal(0)
        fee = raw.get("fee") or {}
        side = cast(Side, raw.get("side") or (request.side if request else "buy"))
        return OrderResult(
            client_order_id=str(raw.get("clientOrderId") or cid or (request.client_order_id if request else "")),
            exchange_order_id=str(raw["id"]) if raw.get("id") is not None else None,
            symbol=info.symbol,
            side=side,
            type=request.type if request else _order_type(raw, conditional),
            status=_status(raw.get("status"), filled, amount),
            quantity=(amount * size) if amount is not None else (request.quantity if request else Decimal(0)),
            filled=filled * size,
            average_price=_dec(raw.get("average")),
            fee=abs(_dec(fee.get("cost")) or Decimal(0)),
            reduce_only=bool(raw.get("reduceOnly") or (request.reduce_only if request else False)),
        )

    # ---------------------------------------------------------- account state

    def fetch_positions(self, symbols: list[str] | None = None) -> list[Position]:
        self._require_keys("reading positions")
        wanted = [self.market(s).symbol for s in symbols] if symbols else None
        raw = self._call("fetch positions", self._client.fetch_positions, wanted)
        out: list[Position] = []
        for p in raw:
            contracts = _dec(p.get("contracts")) or Decimal(0)
            if contracts == 0 or p.get("symbol") not in self._markets:
                continue
            info = self._markets[p["symbol"]]
            side = p.get("side") or ("long" if contracts > 0 else "short")
            out.append(
                Position(
                    symbol=info.symbol,
                    side="long" if side == "long" else "short",
                    quantity=abs(contracts) * info.contract_size,
                    entry_price=_dec(p.get("entryPrice")) or Decimal(0),
                    leverage=int(p.get("leverage") or 1),
                    unrealized_pnl=_dec(p.get("unrealizedPnl")) or Decimal(0),
                )
            )
        return out

    def fetch_balance(self) -> Balance:
        self._require_keys("reading the balance")
        raw = self._call("fetch balance", self._client.fetch_balance)
        usdt = raw.get("USDT") or {}
        return Balance(
            currency="USDT",
            total=_dec(usdt.get("total")) or Decimal(0),
            free=_dec(usdt.get("free")) or Decimal(0),
            used=_dec(usdt.get("used")) or Decimal(0),
        )

    # ---------------------------------------------------------- accounting (issue 15): the venue's ledger

    def fetch_account_trades(self, symbol: str, *, since_ms: int, until_ms: int) -> list[VenueTrade]:
        """Every execution on ``symbol`` in [since_ms, until_ms], all pages, with the venue's fee and
        realised PnL (:class:`~tradingbot.domain.accounting.VenueTrade`).

        Binance ``GET /fapi/v1/userTrades``: at most 7 days between startTime and endTime, up to 1000
        rows oldest first; ``commission`` + ``commissionAsset``, ``realizedPnl``
        (https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Account-Trade-List).
        Binance prints the commission of its example with a minus sign on a taker trade, and a plus
        sign elsewhere: the amount is what was charged either way (USD-M has no taker rebate), so
        its absolute value is stored as paid.
        OKX ``GET /api/v5/trade/fills-history`` (three months; ``/trade/fills``: three days), newest
        first, 100 a page: ``fee`` negative = charged, positive = rebate, in ``feeCcy``; ``fillPnl``
        the closing part's PnL; ``fillSz`` in contracts
        (https://www.okx.com/docs-v5/en/#order-book-trading-trade-get-transaction-details-last-3-months)."""
        self._require_keys("reading the trade list")
        info = self.market(symbol)
        rows: dict[str, VenueTrade] = {}
        if self.venue == "okx":
            end = until_ms
            while True:
                raw = self._call("fetch trades", self._client.fetch_my_trades, info.symbol, since_ms, None,
                                 {"until": end})  # fmt: skip
                for t in raw:
                    trade = self._venue_trade(info, t.get("info") or {})
                    rows[trade.trade_id] = trade
                if len(raw) < 100:
                    break
                oldest = min(int(t.get("timestamp") or 0) for t in raw)
                if oldest >= end:
                    break
                end = oldest
        else:
            week = 7 * 86_400_000 - 1
            start = since_ms
            while start <= until_ms:
                stop = min(start + week, until_ms)
                page_start = start
                while True:
                    raw = self._call("fetch trades", self._client.fetch_my_trades, info.symbol, page_start, 1000,
                                     {"until": stop})  # fmt: skip
                    for t in raw:
                        trade = self._venue_trade(info, t.get("info") or {})
                        rows[trade.trade_id] = trade
                    if len(raw) < 1000:
                        break
                    newest = max(int(t.get("timestamp") or 0) for t in raw)
                    if newest <= page_start:
                        break
                    page_start = newest
                start = stop + 1
        return sorted(rows.values(), key=lambda t: (t.ts_ms, t.trade_id))

    def _venue_trade(self, info: MarketInfo, row: dict[str, Any]) -> VenueTrade:
        if self.venue == "okx":
            fee_raw = _dec(row.get("fee")) or Decimal(0)
            return VenueTrade(
                trade_id=str(row["tradeId"]), exchange_order_id=str(row.get("ordId") or ""), symbol=info.symbol,
                side=cast(Side, str(row.get("side") or "buy").lower()), price=_dec(row.get("fillPx")) or Decimal(0),
                quantity=(_dec(row.get("fillSz")) or Decimal(0)) * info.contract_size,
                fee=-fee_raw, fee_currency=str(row.get("feeCcy") or "USDT"),
                realized_pnl=_dec(row.get("fillPnl")) or Decimal(0),
                ts_ms=int(row.get("fillTime") or row.get("ts") or 0),
            )  # fmt: skip
        return VenueTrade(
            trade_id=str(row["id"]), exchange_order_id=str(row.get("orderId") or ""), symbol=info.symbol,
            side=cast(Side, str(row.get("side") or "BUY").lower()), price=_dec(row.get("price")) or Decimal(0),
            quantity=_dec(row.get("qty")) or Decimal(0), fee=abs(_dec(row.get("commission")) or Decimal(0)),
            fee_currency=str(row.get("commissionAsset") or "USDT"),
            realized_pnl=_dec(row.get("realizedPnl")) or Decimal(0), ts_ms=int(row.get("time") or 0),
        )  # fmt: skip

    def fetch_funding_payments(self, *, since_ms: int, until_ms: int) -> list[FundingPayment]:
        """The account's funding payments in [since_ms, until_ms], all pages (> 0 received).

        Binance ``GET /fapi/v1/income?incomeType=FUNDING_FEE`` (ccxt ``fetch_funding_history``): up to
        1000 rows; ``income`` signed ("positive = inflow"), ``tranId`` "unique in the same incomeType
        for a user", three months kept
        (https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Get-Income-History).
        OKX ``GET /api/v5/account/bills?type=8`` (funding fee; subType 173 expense / 174 income),
        ``balChg`` signed, ``billId``, newest first, 100 a page, older pages by ``after=billId``; the
        last 7 days (``bills-archive`` for three months) (https://www.okx.com/docs-v5/en/#trading-account-rest-api-get-bills-details-last-7-days)."""
        self._require_keys("reading funding payments")
        self.load_markets()
        out: dict[str, FundingPayment] = {}
        if self.venue == "okx":
            archive = since_ms < _now_ms() - 7 * 86_400_000 + 60_000
            call = self._client.privateGetAccountBillsArchive if archive else self._client.privateGetAccountBills
            params: dict[str, Any] = {"instType": "SWAP", "type": "8", "begin": str(since_ms), "end": str(until_ms),
                                      "limit": "100"}  # fmt: skip
            while True:
                raw = self._call("fetch funding", call, params)
                data = (raw or {}).get("data") or []
                for b in data:
                    symbol = self._by_ticker.get(str(b.get("instId") or "").upper(), str(b.get("instId") or ""))
                    out[str(b["billId"])] = FundingPayment(
                        payment_id=str(b["billId"]), symbol=symbol, amount=_dec(b.get("balChg")) or Decimal(0),
                        currency=str(b.get("ccy") or "USDT"), ts_ms=int(b.get("ts") or 0),
                    )  # fmt: skip
                if len(data) < 100:
                    break
                params = {**params, "after": str(data[-1]["billId"])}
        else:
            start = since_ms
            while True:
                raw = self._call("fetch funding", self._client.fetch_funding_history, None, start, 1000,
                                 {"until": until_ms})  # fmt: skip
                for f in raw:
                    row = f.get("info") or {}
                    symbol = self._by_ticker.get(str(row.get("symbol") or "").upper(), str(row.get("symbol") or ""))
                    key = str(row["tranId"])
                    out[key] = FundingPayment(
                        payment_id=key, symbol=symbol, amount=_dec(row.get("income")) or Decimal(0),
                        currency=str(row.get("asset") or "USDT"), ts_ms=int(row.get("time") or 0),
                    )  # fmt: skip
                if len(raw) < 1000:
                    break
                newest = max(int((f.get("info") or {}).get("time") or 0) for f in raw)
                if newest <= start:
                    break
                start = newest
        return sorted(out.values(), key=lambda p: (p.ts_ms, p.payment_id))


def translate(
    exc: Exception, venue: str, what: str, *, status: int | None = None, retry_after_s: float | None = None
) -> ExchangeError:
    """ccxt's exception (and the answer's HTTP ``status``) as the domain's, decided once, here.

    ccxt's tree (https://github.com/ccxt/ccxt/blob/master/ts/src/base/errorHierarchy.ts) splits
    ``ExchangeError`` (the venue answered and refused: permanent) from ``OperationFailed`` >
    ``NetworkError`` (``RequestTimeout``, ``ExchangeNotAvailable``/``OnMaintenance``,
    ``DDoSProtection``, ``RateLimitExceeded``, ``InvalidNonce``: retrying can help). The latter become
    the transient :class:`RateLimited` (429/418) and :class:`ExchangeUnavailable` (the outcome of a
    create is unknown). The venue's own codes are read first, because ccxt maps some of them to
    generic exceptions: a duplicate client id or insufficient margin is a refusal whatever ccxt
    called it, and a 5xx or an "unknown outcome" code is never "rejected".
    """
    text = str(exc)
    codes = set(_CODE.findall(text))
    # Binance: "HTTP 5XX return codes are used for internal errors ... It is important to NOT treat
    # this as a failure operation; the execution status is UNKNOWN and could have been a success."
    # (https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info). So a 5xx
    # is "unknown" whatever ccxt called it, before any code in its body is believed.
    server_side = (status or 0) >= 500
    if not server_side and (isinstance(exc, ccxt.DuplicateOrderId) or codes & _DUPLICATE_CODES):
        return DuplicateOrder(f"{venue}: {what}: the client order id is already in use ({_short(text)})")
    if not server_side and (isinstance(exc, ccxt.InsufficientFunds) or codes & _MARGIN_CODES):
        return InsufficientMargin(f"{venue}: {what}: margin is insufficient ({_short(text)})")
    if not server_side and (codes & _HEDGE_CODES or ("51000" in codes and "posSide" in text)):
        return HedgeModeUnsupported(
            f"{venue}: {what}: the account is in hedge mode; TradingBot places one-way orders only ({_short(text)})"
        )
    # 429 "breaking a request rate limit" / 418 "auto-banned": refused at the gateway, nothing
    # reached the matching engine (same general-info page). A rate-limit or DDoSProtection class on
    # any other status (a 5xx page, or no answer at all) is NOT that promise: outcome unknown.
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection) and status in (418, 429):
        return RateLimited(f"{venue}: {what}: rate limited (retry after {retry_after_s} s)", retry_after_s)
    if venue == "binanceusdm" and status == 503 and _BINANCE_FAILED_503.search(text):
        return ExchangeFailedNotPlaced(f"{venue}: {what}: the venue failed it, not executed ({_short(text)})")
    unknown = server_side or bool(codes & _UNKNOWN_OUTCOME_CODES)
    # ccxt's OperationFailed branch (NetworkError: timeouts, connection errors, DDoSProtection; and
    # BadResponse/NullResponse: an answer it could not read) says nothing about the order's fate:
    # https://github.com/ccxt/ccxt/blob/master/ts/src/base/errorHierarchy.ts
    if isinstance(exc, ccxt.OperationFailed) or unknown:
        return ExchangeUnavailable(f"{venue}: {what}: {type(exc).__name__} ({_short(text)})")
    if isinstance(exc, ccxt.BadSymbol):
        return OrderRejected(f"{venue}: {what}: symbol refused ({_short(text)})")
    if isinstance(exc, ccxt.AuthenticationError | ccxt.PermissionDenied):
        err = OrderRejected(f"{venue}: {what}: API key refused ({_short(text)})")
        err.reason = "authentication_failed"
        return err
    return OrderRejected(f"{venue}: {what}: {_short(text)}")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _status(raw: str | None, filled: Decimal, amount: Decimal | None) -> OrderStatus:
    if raw == "closed":
        return "filled"
    if raw in ("canceled", "expired"):
        return "canceled"
    if raw == "rejected":
        return "rejected"
    if filled > 0 and (amount is None or filled < amount):
        return "partially_filled"
    return "open"


def _order_type(raw: dict[str, Any], conditional: bool) -> OrderType:
    info = raw.get("info") or {}
    venue_type = str(info.get("orderType") or info.get("type") or raw.get("type") or "").lower()
    if conditional or raw.get("triggerPrice") is not None:
        # Binance names the type (TAKE_PROFIT_MARKET); OKX fills tpTriggerPx or slTriggerPx
        if "take_profit" in venue_type or info.get("tpTriggerPx"):
            return "take_profit_market"
        return "stop_market"
    return "limit" if venue_type == "limit" else "market"


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
