"""Local HTTP servers that answer like Binance USDT-M futures (fapi) and OKX v5 REST, for the real
ccxt clients. Only the subset the adapter uses, with real signature checks, realistic JSON and
injectable faults. Each server counts the orders it accepted, so a test can assert "exactly one".

Faults (``venue.inject(Fault(...))``) are consumed by the next order-create request, in order:

* ``timeout_after_accept``: the order is booked, then the answer waits ``delay_s`` (past the
  client's timeout), so the client never learns the outcome.
* ``error_5xx`` / ``error_5xx_after_accept``: a 503 before / after the order is booked.
* ``status_unknown``: Binance -1007 "Timeout waiting for response from backend server. Send status
  unknown; execution status unknown." / OKX 50004 "Endpoint request timeout (does not indicate
  success or failure of order ...)", on a 503; the order is booked when ``accept`` (the default),
  not booked otherwise: the answer is the same, which is the point.
* ``rate_limit_5xx``: the venue's rate-limit code on a 503 page (ccxt raises its rate-limit class;
  the status says the request reached the back end); booked when ``accept``.
* ``bad_response``: Binance -1006 "An unexpected response was received from the message bus.
  Execution status unknown." on a 400 (ccxt: OperationFailed); booked when ``accept``.
* ``rate_limit``: 429 (or 418 with ``status=418``) and ``Retry-After``; nothing booked. Binance
  documents the header on both ("A Retry-After header is sent with a 418 or 429 responses and will
  give the number of seconds required to wait, in the case of a 429, to prevent a ban, or, in the
  case of a 418, until the ban is over"; bans last "from 2 minutes to 3 days",
  https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info). OKX
  documents 429 with code 50011 ("Rate limit reached", https://www.okx.com/docs-v5/en/#error-code)
  but no Retry-After: ``retry_after_s=None`` sends none (OKX only; Binance always sends it).
* ``insufficient_margin``: the venue's margin error; nothing booked.
* ``partial_fill``: the order fills ``fraction`` of its quantity.

Documented venue rules the servers follow (each cited where it is enforced): Binance's client id is
unique among OPEN orders only (a filled order's id is accepted again), its format is checked
(-4015), reduce-only without a position to reduce is refused (-2022), a Hedge Mode account refuses
one-way orders (-4061), and commission is published only in the trade list; OKX checks the clOrdId
format (51000) and the demo header (``x-simulated-trading: 1``), and publishes fills with clOrdId.

Conditional orders (stop-loss / take-profit) rest until ``book.trigger(cid)`` fires one at its
trigger price: a reduce-only market execution of at most the position it can reduce. Neither
stand-in cancels a conditional order when its position closes or its sibling fires: Binance has
no OCO and its Algo Service cancels a conditional order itself only for ``GTE_GTC``
("EXPIRED: ... a user places a GTE_GTC Time-In-Force conditional order but then closes all
positions on that symbol", https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-Algo-Order-Update);
OKX's ``conditional`` algo orders stay unless placed with ``cxlOnClosePos``, which the adapter does
not send. Binance algo statuses follow that page (NEW -> FINISHED once triggered and executed,
REJECTED when the matching engine refuses it, e.g. nothing left to reduce; CANCELED); Query Algo
Order carries ``actualOrderId`` (https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Query-Algo-Order).
OKX algo ``state``: live, effective (triggered), canceled, order_failed
(https://www.okx.com/docs-v5/en/#order-book-trading-algo-trading-get-algo-order-details).

Book knobs: ``read_lag_s`` (the order exists, but Query Order answers "does not exist" for that long
after acceptance: the venue's read side lagging its matching engine), ``trade_lag_s`` (the same for
the trade list), ``hedge_mode``, ``brackets_missing`` (bases without leverage brackets / ``lever``).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import itertools
import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_KEY = "fake-api-key-0123456789abcdef"
API_SECRET = "fake-api-secret-fedcba9876543210"
PASSPHRASE = "fake-passphrase"


@dataclass
class Fault:
    kind: str
    delay_s: float = 0.0
    status: int = 429
    retry_after_s: float | None = 1.0  # None: no Retry-After header (OKX documents none)
    fraction: Decimal = Decimal("0.5")
    accept: bool = True  # status_unknown / rate_limit_5xx / bad_response: was the order booked?


@dataclass
class SymbolSpec:
    base: str
    price: Decimal
    step: Decimal  # Binance lot step / OKX lot size in contracts
    tick: Decimal
    min_qty: Decimal  # base units
    min_notional: Decimal
    max_leverage: int
    ct_val: Decimal = Decimal(1)  # OKX contract value in base units


SPECS = {
    "BTC": SymbolSpec("BTC", Decimal("50000"), Decimal("0.001"), Decimal("0.1"), Decimal("0.001"), Decimal(100), 125,
                      ct_val=Decimal("0.01")),
    "ETH": SymbolSpec("ETH", Decimal("3000"), Decimal("0.001"), Decimal("0.01"), Decimal("0.001"), Decimal(20), 100,
                      ct_val=Decimal("0.1")),
}  # fmt: skip


@dataclass
class Book:
    """Venue-agnostic state: orders by client id, net positions by base asset, wallet."""

    wallet: Decimal = Decimal(10_000)
    leverage: dict[str, int] = field(default_factory=dict)
    margin_mode: dict[str, str] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # client id -> its latest order
    positions: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # base -> (signed qty, entry)
    accepted: list[str] = field(default_factory=list)  # client ids in booking order (duplicates would show)
    trades: list[dict[str, Any]] = field(default_factory=list)  # executions, in order
    create_requests: int = 0
    lookups: int = 0
    request_log: list[tuple[str, str]] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    read_lag_s: float = 0.0
    trade_lag_s: float = 0.0
    hedge_mode: bool = False
    brackets_missing: set[str] = field(default_factory=set)
    create_delay_s: float = 0.0  # every accepted create answers this much later (concurrency tests)
    fee_rate: Decimal = Decimal("0.0005")
    marks: dict[str, Decimal] = field(default_factory=dict)  # base -> mark price, when it moved from SPECS' price
    # Binance's BNB fee discount: "Users will receive a 10% discount on standard trading fees when they use BNB
    # to pay for trading fees ... otherwise the system will automatically deduct USDT"
    # (https://www.binance.com/en/support/faq/360033544231): with "BNB" the commission is charged in BNB at
    # ``bnb_price`` (the trade list shows the BNB amount, ``commissionAsset`` "BNB"), and the USDT wallet pays none
    fee_asset: str = "USDT"
    bnb_price: Decimal = Decimal(600)
    bnb_fees_total: Decimal = Decimal(0)  # BNB charged (only with fee_asset "BNB")
    # the venue's own ledger (issue 15 accounting): what the tests compare the recorded figures with
    realized_total: Decimal = Decimal(0)  # realised PnL of every fill, gross of fees
    fees_total: Decimal = Decimal(0)  # commission charged on every fill
    funding: list[dict[str, Any]] = field(default_factory=list)  # funding settlements, income sign
    ids: Any = field(default_factory=lambda: itertools.count(8_389_765_000))
    lock: threading.RLock = field(default_factory=threading.RLock)

    def inject(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def next_fault(self) -> Fault | None:
        return self.faults.popleft() if self.faults else None

    def used_margin(self) -> Decimal:
        total = Decimal(0)
        for base, (qty, entry) in self.positions.items():
            total += abs(qty) * entry / self.leverage.get(base, 20)
        return total

    def available(self) -> Decimal:
        return self.wallet - self.used_margin()

    def fill(self, base: str, side: str, qty: Decimal, price: Decimal) -> Decimal:
        """Apply a fill to the net position and the wallet (realised PnL and fee); returns the
        fill's realised PnL (Binance ``realizedPnl`` / OKX ``fillPnl``: the closing part's, gross)."""
        signed = qty if side == "buy" else -qty
        cur, entry = self.positions.get(base, (Decimal(0), Decimal(0)))
        new = cur + signed
        realized = Decimal(0)
        if cur == 0 or (cur > 0) == (signed > 0):
            entry = (abs(cur) * entry + qty * price) / abs(new)
        else:
            closed = min(abs(cur), qty)
            realized = closed * (price - entry) * (1 if cur > 0 else -1)
            self.wallet += realized
            if new != 0 and (new > 0) != (cur > 0):
                entry = price
        if self.fee_asset == "BNB":
            self.bnb_fees_total += self.bnb_fee(qty * price * self.fee_rate)
        else:
            self.wallet -= qty * price * self.fee_rate
            self.fees_total += qty * price * self.fee_rate
        self.realized_total += realized
        if new == 0:
            self.positions.pop(base, None)
        else:
            self.positions[base] = (new, entry)
        return realized

    def bnb_fee(self, usdt_fee: Decimal) -> Decimal:
        """The BNB charged for a fee of ``usdt_fee`` USDT: 10 % off, at ``bnb_price``."""
        return (usdt_fee * Decimal("0.9") / self.bnb_price).quantize(Decimal("0.00000001"))

    def settle_funding(self, base: str, rate: Decimal, mark: Decimal | None = None) -> Decimal:
        """One funding settlement of the open ``base`` position: "Funding Amount = Nominal Value of
        Positions x Funding Rate", longs pay a positive rate
        (https://www.binance.com/en/support/faq/introduction-to-binance-futures-funding-rates-360033525031);
        returns the account's income (< 0 paid), credited to the wallet and kept in ``funding``."""
        with self.lock:
            qty, _ = self.positions[base]
            price = mark if mark is not None else SPECS[base].price
            income = -(qty * price * rate).quantize(Decimal("0.00000001"))
            self.wallet += income
            self.funding.append({"id": next(self.ids), "base": base, "income": income, "time": int(time.time() * 1000),
                                 "wallet": self.wallet, "qty": qty})  # fmt: skip
            return income

    def book_order(self, cid: str, base: str, side: str, otype: str, qty: Decimal, price: Decimal | None,
                   trigger: Decimal | None, reduce_only: bool, fraction: Decimal) -> dict[str, Any]:  # fmt: skip
        spec = SPECS[base]
        order: dict[str, Any] = {
            "id": next(self.ids), "cid": cid, "base": base, "side": side, "type": otype, "qty": qty,
            "price": price, "trigger": trigger, "reduce_only": reduce_only, "filled": Decimal(0),
            "avg": Decimal(0), "status": "NEW", "time": int(time.time() * 1000), "accepted_at": time.monotonic(),
        }  # fmt: skip
        if reduce_only and otype in ("MARKET", "LIMIT"):
            qty = min(qty, self.reducible(base, side))
        marketable = otype == "MARKET" or (
            otype == "LIMIT" and price is not None and ((side == "buy") == (price >= spec.price))
        )
        if marketable and qty > 0:
            fill_qty = (qty * fraction).quantize(spec.step, ROUND_DOWN) if fraction < 1 else qty
            fill_price = spec.price if otype == "MARKET" else (price or spec.price)
            pnl = self.fill(base, side, fill_qty, fill_price)
            order["filled"], order["avg"] = fill_qty, fill_price
            self.trades.append({
                "id": next(self.ids), "order": order, "price": fill_price, "qty": fill_qty,
                "fee": fill_qty * fill_price * self.fee_rate, "time": int(time.time() * 1000),
                "accepted_at": time.monotonic(), "pnl": pnl,
            })  # fmt: skip
            if fill_qty == order["qty"]:
                order["status"] = "FILLED"
            else:
                order["status"] = "EXPIRED" if otype == "MARKET" else "PARTIALLY_FILLED"
        self.orders[cid] = order
        self.accepted.append(cid)
        return order

    def trigger(self, cid: str) -> dict[str, Any]:
        """Fire the conditional order ``cid`` at its trigger price: the venue's reduce-only market
        execution of what it can reduce (``FINISHED``), or ``REJECTED`` when nothing is left to."""
        with self.lock:
            order = self.orders[cid]
            assert order["type"] in ("STOP_MARKET", "TAKE_PROFIT_MARKET") and order["status"] == "NEW", order
            qty = (
                min(order["qty"], self.reducible(order["base"], order["side"]))
                if order["reduce_only"]
                else order["qty"]
            )
            if qty <= 0:
                order["status"] = "REJECTED"
                return order
            price = order["trigger"]
            pnl = self.fill(order["base"], order["side"], qty, price)
            actual = {**order, "id": next(self.ids), "cid": f"algo{order['id']}", "type": "MARKET", "qty": qty,
                      "filled": qty, "avg": price, "status": "FILLED", "time": int(time.time() * 1000)}  # fmt: skip
            self.trades.append({
                "id": next(self.ids), "order": actual, "price": price, "qty": qty, "fee": qty * price * self.fee_rate,
                "time": int(time.time() * 1000), "accepted_at": time.monotonic(), "pnl": pnl,
            })  # fmt: skip
            order.update(status="FINISHED", filled=qty, avg=price, actual_id=actual["id"])
            return order

    def mark(self, base: str) -> Decimal:
        """The mark price the venue publishes for ``base`` (``marks`` once a test moved it)."""
        return self.marks.get(base, SPECS[base].price)

    def open_orders(self, *, conditional: bool) -> list[dict[str, Any]]:
        """The account's open orders as the venue's open-order lists serve them: NEW / PARTIALLY_FILLED,
        regular or conditional, and (the read side lags like Query Order does) older than ``read_lag_s``."""
        with self.lock:
            return [o for o in self.orders.values() if o["status"] in ("NEW", "PARTIALLY_FILLED")
                    and (o["type"] in ("STOP_MARKET", "TAKE_PROFIT_MARKET")) == conditional
                    and self.visible(o, self.read_lag_s)]  # fmt: skip

    def open_conditional(self, base: str | None = None) -> list[dict[str, Any]]:
        """The conditional orders still live (NEW) on the venue."""
        with self.lock:
            return [o for o in self.orders.values() if o["type"] in ("STOP_MARKET", "TAKE_PROFIT_MARKET")
                    and o["status"] == "NEW" and (base is None or o["base"] == base)]  # fmt: skip

    def reducible(self, base: str, side: str) -> Decimal:
        """How much a reduce-only order on ``side`` can reduce: the opposite position's size."""
        cur = self.positions.get(base, (Decimal(0), Decimal(0)))[0]
        return abs(cur) if cur != 0 and (cur > 0) == (side == "sell") else Decimal(0)

    def is_open(self, cid: str) -> bool:
        order = self.orders.get(cid)
        return order is not None and order["status"] in ("NEW", "PARTIALLY_FILLED")

    def visible(self, row: dict[str, Any], lag_s: float) -> bool:
        """The read side lags the matching engine by ``lag_s``: a younger row is not served yet."""
        return time.monotonic() - float(row["accepted_at"]) >= lag_s

    def margin_ok(self, base: str, qty: Decimal, reduce_only: bool) -> bool:
        if reduce_only:
            return True
        lev = self.leverage.get(base, 20)
        return qty * SPECS[base].price / lev + qty * SPECS[base].price * self.fee_rate <= self.available()


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler], book: Book) -> None:
        self.book = book
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.book = book  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body leave in two writes: without this, Nagle + delayed ACK add ~40 ms
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    @property
    def book(self) -> Book:
        return self.server.book  # type: ignore[attr-defined,no-any-return]

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client timed out and left
            self.wfile.write(raw)

    def _body(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode() if length else ""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        raise NotImplementedError


_BINANCE_CID = re.compile(r"[\.A-Z\:/a-z0-9_-]{1,36}")
# OKX clOrdId: "Client Order ID as assigned by the client. A combination of case-sensitive
# alphanumerics, all numbers, or all letters of up to 32 characters."
# (https://www.okx.com/docs-v5/en/#order-book-trading-trade-post-place-order)
_OKX_CID = re.compile(r"[A-Za-z0-9]{1,32}")
_OKX_ALGO_STATE = {"CANCELED": "canceled", "FINISHED": "effective", "REJECTED": "order_failed"}
_UNKNOWN_FAULTS = frozenset({"status_unknown", "rate_limit_5xx", "bad_response"})


def _d(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


# ====================================================================== Binance USDT-M futures


class BinanceHandler(_Handler):
    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        body = self._body()
        with self.book.lock:
            self.book.request_log.append((method, parts.path))
        route = getattr(self, f"_{method.lower()}_{parts.path.strip('/').replace('/', '_')}", None)
        if route is None:
            self._send(404, {"code": -5000, "msg": f"Path {parts.path}, Method {method} is invalid"})
            return
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        params.update(dict(parse_qsl(body, keep_blank_values=True)))
        if (
            "signature" in params
            or parts.path.startswith(("/fapi/v2", "/fapi/v3"))
            or route.__name__.startswith(("_post", "_delete"))
            or parts.path.endswith(("/order", "/algoOrder", "/leverageBracket"))
        ):
            error = self._check_signature(parts.query, body)
            if error:
                self._send(401 if error[0] == -2015 else 400, {"code": error[0], "msg": error[1]})
                return
        route(params)

    def _check_signature(self, query: str, body: str) -> tuple[int, str] | None:
        if self.headers.get("X-MBX-APIKEY") != API_KEY:
            return -2015, "Invalid API-key, IP, or permissions for action."
        payload = "&".join(p for p in (query, body) if p)
        signed, _, signature = payload.rpartition("&signature=")
        expected = hmac.new(API_SECRET.encode(), signed.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            return -1022, "Signature for this request is not valid."
        ts = int(dict(parse_qsl(signed)).get("timestamp", "0"))
        window = int(dict(parse_qsl(signed)).get("recvWindow", "5000"))
        if abs(time.time() * 1000 - ts) > window:
            return -1021, "Timestamp for this request is outside of the recvWindow."
        return None

    # ---- public

    def _get_fapi_v1_time(self, _: dict[str, str]) -> None:
        self._send(200, {"serverTime": int(time.time() * 1000)})

    def _get_fapi_v1_exchangeInfo(self, _: dict[str, str]) -> None:  # noqa: N802
        symbols = []
        for spec in SPECS.values():
            symbols.append({
                "symbol": f"{spec.base}USDT", "pair": f"{spec.base}USDT", "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000, "onboardDate": 1569398400000, "status": "TRADING",
                "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000", "baseAsset": spec.base,
                "quoteAsset": "USDT", "marginAsset": "USDT", "pricePrecision": 2, "quantityPrecision": 3,
                "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": ["PoW"],
                "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
                "maxMoveOrderLimit": 10000,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.10", "maxPrice": "4529764",
                     "tickSize": _d(spec.tick)},
                    {"filterType": "LOT_SIZE", "minQty": _d(spec.min_qty), "maxQty": "1000", "stepSize": _d(spec.step)},
                    {"filterType": "MARKET_LOT_SIZE", "minQty": _d(spec.min_qty), "maxQty": "120",
                     "stepSize": _d(spec.step)},
                    {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                    {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                    {"filterType": "MIN_NOTIONAL", "notional": _d(spec.min_notional)},
                    {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                     "multiplierDecimal": "4"},
                ],
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                               "TRAILING_STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            })  # fmt: skip
        self._send(200, {
            "timezone": "UTC", "serverTime": int(time.time() * 1000), "futuresType": "U_MARGINED",
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                           {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200}],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": symbols,
        })  # fmt: skip

    # ---- orders

    def _order_json(self, o: dict[str, Any]) -> dict[str, Any]:
        return {
            "orderId": o["id"], "symbol": f"{o['base']}USDT", "status": o["status"], "clientOrderId": o["cid"],
            "price": _d(o["price"] or Decimal(0)), "avgPrice": _d(o["avg"]), "origQty": _d(o["qty"]),
            "executedQty": _d(o["filled"]), "cumQuote": _d(o["filled"] * o["avg"]), "timeInForce": "GTC",
            "type": o["type"], "reduceOnly": o["reduce_only"], "closePosition": False, "side": o["side"].upper(),
            "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE", "priceProtect": False,
            "origType": o["type"], "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0, "time": o["time"], "updateTime": o["time"],
        }  # fmt: skip

    def _algo_json(self, o: dict[str, Any]) -> dict[str, Any]:
        return {
            "algoId": o["id"], "clientAlgoId": o["cid"], "algoType": "CONDITIONAL", "orderType": o["type"],
            "symbol": f"{o['base']}USDT", "side": o["side"].upper(), "positionSide": "BOTH", "timeInForce": "GTC",
            "quantity": _d(o["qty"]), "algoStatus": o["status"], "triggerPrice": _d(o["trigger"] or Decimal(0)),
            "price": "0", "icebergQuantity": None, "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": "CONTRACT_PRICE", "priceMatch": "NONE", "closePosition": False, "priceProtect": False,
            "reduceOnly": o["reduce_only"], "createTime": o["time"], "updateTime": o["time"], "triggerTime": 0,
            "goodTillDate": 0, "actualOrderId": str(o.get("actual_id") or ""), "actualPrice": _d(o["avg"]),
        }  # fmt: skip

    def _spec(self, params: dict[str, str]) -> SymbolSpec | None:
        symbol = params.get("symbol", "")
        base = symbol.removesuffix("USDT")
        if not symbol.endswith("USDT") or base not in SPECS:
            self._send(400, {"code": -1121, "msg": "Invalid symbol."})
            return None
        return SPECS[base]

    def _create(self, params: dict[str, str], algo: bool) -> None:
        book = self.book
        spec = self._spec(params)
        if spec is None:
            return
        cid = params.get("clientAlgoId" if algo else "newClientOrderId", "")
        qty = Decimal(params.get("quantity", "0"))
        reduce_only = params.get("reduceOnly") == "true"
        price = Decimal(params["price"]) if "price" in params and not algo else None
        trigger = Decimal(params["triggerPrice"]) if algo and "triggerPrice" in params else None
        otype = params.get("type", "MARKET")
        with book.lock:
            book.create_requests += 1
            fault = book.next_fault()
            if fault and fault.kind == "rate_limit":
                code = -1003
                msg = "Too many requests; current limit of IP is 2400 requests per minute."
                self._send(fault.status, {"code": code, "msg": msg}, {"Retry-After": str(fault.retry_after_s or 1)})
                return
            if fault and fault.kind == "error_5xx":
                # -1001 DISCONNECTED "Internal error; unable to process your request. Please try again."
                # (error-code page); on a 503 "it means this is a failure API operation and you can resend
                # your request if you need" (general info, HTTP return codes): nothing booked
                self._send(503, {"code": -1001, "msg": "Internal error; unable to process your request. "
                                 "Please try again."})  # fmt: skip
                return
            unbooked = fault is not None and fault.kind in _UNKNOWN_FAULTS and not fault.accept
            if unbooked:
                self._unknown_answer(fault)  # type: ignore[arg-type]
                return
            # newClientOrderId: "A unique id among open orders. Automatically generated if not sent.
            # Can only be string following the rule: ^[\.A-Z\:/a-z0-9_-]{1,36}$"
            # https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Order
            # (-4015 CLIENT_ORDER_ID_INVALID "Client order id is not valid.",
            # https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code)
            if cid and not _BINANCE_CID.fullmatch(cid):
                self._send(400, {"code": -4015, "msg": "Client order id is not valid."})
                return
            # unique among OPEN orders only: the id of a filled/canceled/expired order is accepted
            # again as a NEW order (-4116 DUPLICATED_CLIENT_ORDER_ID "ClientOrderId is duplicated.")
            if cid and book.is_open(cid):
                self._send(400, {"code": -4116, "msg": "ClientOrderId is duplicated."})
                return
            # positionSide: "Default BOTH for One-way Mode; LONG or SHORT for Hedge Mode. It must be
            # sent in Hedge Mode." (New Order) -> -4061 POSITION_SIDE_NOT_MATCH
            if book.hedge_mode and params.get("positionSide", "BOTH") == "BOTH":
                self._send(400, {"code": -4061, "msg": "Order's position side does not match user's setting."})
                return
            # -2022 REDUCE_ONLY_REJECT "ReduceOnly Order is rejected.": nothing to reduce
            if reduce_only and not algo and book.reducible(spec.base, params["side"].lower()) == 0:
                self._send(400, {"code": -2022, "msg": "ReduceOnly Order is rejected."})
                return
            if (qty % spec.step) != 0 or qty < spec.min_qty:
                self._send(400, {"code": -4003, "msg": "Quantity less than or equal to zero."})
                return
            if not reduce_only and qty * spec.price < spec.min_notional:
                msg = f"Order's notional must be no smaller than {spec.min_notional} (unless you choose reduce only)."
                self._send(400, {"code": -4164, "msg": msg})
                return
            if (fault and fault.kind == "insufficient_margin") or not book.margin_ok(spec.base, qty, reduce_only):
                self._send(400, {"code": -2019, "msg": "Margin is insufficient."})
                return
            fraction = fault.fraction if fault and fault.kind == "partial_fill" else Decimal(1)
            if algo:
                order = book.book_order(cid, spec.base, params["side"].lower(), otype, qty, None, trigger, reduce_only,
                                        Decimal(0))  # fmt: skip
            else:
                order = book.book_order(cid, spec.base, params["side"].lower(), otype, qty, price, None, reduce_only,
                                        fraction)  # fmt: skip
            answer = self._algo_json(order) if algo else self._order_json(order)
        if book.create_delay_s:
            time.sleep(book.create_delay_s)
        if fault and fault.kind == "timeout_after_accept":
            time.sleep(fault.delay_s)
        if fault and fault.kind == "error_5xx_after_accept":
            self._send(503, {"code": -1007, "msg": "Timeout waiting for response from backend server. "
                             "Send status unknown; execution status unknown."})  # fmt: skip
            return
        if fault and fault.kind in _UNKNOWN_FAULTS:
            self._unknown_answer(fault)
            return
        self._send(200, answer)

    def _unknown_answer(self, fault: Fault) -> None:
        """Answers after which the order may or may not exist. "HTTP 5XX return codes are used for
        internal errors ... the execution status is UNKNOWN and could have been a success."
        (https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info)"""
        if fault.kind == "status_unknown":
            self._send(503, {"code": -1007, "msg": "Timeout waiting for response from backend server. "
                             "Send status unknown; execution status unknown."})  # fmt: skip
        elif fault.kind == "rate_limit_5xx":
            self._send(503, {"code": -1003, "msg": "Too many requests; current limit is 2400 requests per minute."})
        else:  # bad_response
            self._send(400, {"code": -1006, "msg": "An unexpected response was received from the message bus. "
                             "Execution status unknown."})  # fmt: skip

    def _lookup(self, params: dict[str, str], algo: bool) -> dict[str, Any] | None:
        """Query Order by origClientOrderId or orderId ("Either orderId or origClientOrderId must be
        sent", https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Query-Order);
        an order younger than ``read_lag_s`` answers -2013 "Order does not exist." like a missing one."""
        cid = params.get("clientAlgoId" if algo else "origClientOrderId")
        with self.book.lock:
            self.book.lookups += 1
            if cid is not None:
                order = self.book.orders.get(cid)
            else:
                oid = params.get("algoId" if algo else "orderId")
                order = next((o for o in self.book.orders.values() if str(o["id"]) == oid), None)
            return order if order is not None and self.book.visible(order, self.book.read_lag_s) else None

    def _post_fapi_v1_order(self, params: dict[str, str]) -> None:
        self._create(params, algo=False)

    def _post_fapi_v1_algoOrder(self, params: dict[str, str]) -> None:  # noqa: N802
        self._create(params, algo=True)

    def _get_fapi_v1_order(self, params: dict[str, str]) -> None:
        order = self._lookup(params, algo=False)
        if order is None or order["type"] not in ("MARKET", "LIMIT"):
            self._send(400, {"code": -2013, "msg": "Order does not exist."})
        else:
            self._send(200, self._order_json(order))

    def _get_fapi_v1_algoOrder(self, params: dict[str, str]) -> None:  # noqa: N802
        order = self._lookup(params, algo=True)
        if order is None or order["type"] in ("MARKET", "LIMIT"):
            self._send(400, {"code": -2013, "msg": "Order does not exist."})
        else:
            self._send(200, self._algo_json(order))

    def _cancel(self, params: dict[str, str], algo: bool) -> None:
        order = self._lookup(params, algo)
        if order is None or order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            self._send(400, {"code": -2011, "msg": "Unknown order sent."})
            return
        order["status"] = "CANCELED"
        if algo:
            self._send(200, {"algoId": order["id"], "clientAlgoId": order["cid"], "code": "200", "msg": "success"})
        else:
            self._send(200, self._order_json(order))

    def _delete_fapi_v1_order(self, params: dict[str, str]) -> None:
        self._cancel(params, algo=False)

    def _delete_fapi_v1_algoOrder(self, params: dict[str, str]) -> None:  # noqa: N802
        self._cancel(params, algo=True)

    # ---- account

    def _get_fapi_v1_premiumIndex(self, params: dict[str, str]) -> None:  # noqa: N802
        """Mark Price (public): ``symbol, markPrice, indexPrice, estimatedSettlePrice, lastFundingRate,
        interestRate, nextFundingTime, time``
        (https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Mark-Price)."""
        spec = self._spec(params)
        if spec is None:
            return
        mark = self.book.mark(spec.base)
        now = int(time.time() * 1000)
        self._send(200, {
            "symbol": f"{spec.base}USDT", "markPrice": _d(mark), "indexPrice": _d(mark),
            "estimatedSettlePrice": _d(mark), "lastFundingRate": "0.00010000", "interestRate": "0.00010000",
            "nextFundingTime": now + 3_600_000,
            "time": now,
        })  # fmt: skip

    def _get_fapi_v1_openOrders(self, params: dict[str, str]) -> None:  # noqa: N802
        """Current All Open Orders: every symbol's when ``symbol`` is omitted (weight 40), the Query
        Order row for each (https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Current-All-Open-Orders)."""
        rows = [self._order_json(o) for o in self.book.open_orders(conditional=False)]
        self._send(200, [r for r in rows if params.get("symbol") in (None, r["symbol"])])

    def _get_fapi_v1_openAlgoOrders(self, params: dict[str, str]) -> None:  # noqa: N802
        """Current All Algo Open Orders: "If the symbol is not sent, orders for all symbols will be
        returned in an array" (https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Current-All-Algo-Open-Orders)."""
        rows = [self._algo_json(o) for o in self.book.open_orders(conditional=True)]
        self._send(200, [r for r in rows if params.get("symbol") in (None, r["symbol"])])

    def _post_fapi_v1_leverage(self, params: dict[str, str]) -> None:
        spec = self._spec(params)
        if spec is None:
            return
        lev = int(params["leverage"])
        if lev > spec.max_leverage:
            self._send(400, {"code": -4028, "msg": f"Leverage {lev} is not valid"})
            return
        self.book.leverage[spec.base] = lev
        self._send(200, {"leverage": lev, "maxNotionalValue": "1000000", "symbol": f"{spec.base}USDT"})

    def _post_fapi_v1_marginType(self, params: dict[str, str]) -> None:  # noqa: N802
        spec = self._spec(params)
        if spec is None:
            return
        if self.book.margin_mode.get(spec.base) == params["marginType"]:
            self._send(400, {"code": -4046, "msg": "No need to change margin type."})
            return
        self.book.margin_mode[spec.base] = params["marginType"]
        self._send(200, {"code": 200, "msg": "success"})

    def _get_fapi_v1_positionSide_dual(self, _: dict[str, str]) -> None:  # noqa: N802
        """Get Current Position Mode: ``{"dualSidePosition": true}`` = Hedge Mode, false = One-way
        (https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Get-Current-Position-Mode)."""
        self._send(200, {"dualSidePosition": self.book.hedge_mode})

    def _get_fapi_v1_userTrades(self, params: dict[str, str]) -> None:  # noqa: N802
        """Account Trade List: symbol required, orderId optional, startTime/endTime; the rows carry
        ``orderId`` but no client order id, and the ``commission``
        (https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Account-Trade-List)."""
        spec = self._spec(params)
        if spec is None:
            return
        start = int(params.get("startTime", "0"))
        end = int(params.get("endTime", str(2**62)))
        if "startTime" in params and "endTime" in params and end - start > 7 * 86_400_000:
            self._send(400, {"code": -1127, "msg": "More than 7 days between startTime and endTime."})
            return
        out = []
        with self.book.lock:
            for t in self.book.trades:
                o = t["order"]
                if o["base"] != spec.base or not self.book.visible(t, self.book.trade_lag_s):
                    continue
                if "orderId" in params and str(o["id"]) != params["orderId"]:
                    continue
                if not start <= t["time"] <= end:
                    continue
                # the documented example prints a taker's commission with a minus sign
                # ("commission": "-0.07819010", Account Trade List); the stand-in does the same
                bnb = self.book.fee_asset == "BNB"
                fee = self.book.bnb_fee(t["fee"]) if bnb else t["fee"]
                out.append({
                    "buyer": o["side"] == "buy", "commission": _d(-fee), "commissionAsset": self.book.fee_asset,
                    "id": t["id"], "maker": False, "orderId": o["id"], "price": _d(t["price"]), "qty": _d(t["qty"]),
                    "quoteQty": _d(t["qty"] * t["price"]), "realizedPnl": _d(t.get("pnl", Decimal(0))),
                    "side": o["side"].upper(), "positionSide": "BOTH", "symbol": f"{spec.base}USDT", "time": t["time"],
                })  # fmt: skip
        # at most ``limit`` (default 500, max 1000): the oldest from startTime, else the most recent
        limit = min(int(params.get("limit", "500")), 1000)
        self._send(200, out[:limit] if "startTime" in params else out[-limit:])

    def _get_fapi_v1_income(self, params: dict[str, str]) -> None:
        """Get Income History: ``incomeType`` FUNDING_FEE, startTime/endTime inclusive (neither: the
        last 7 days), limit default 100 max 1000; rows ``symbol, incomeType, income`` (signed:
        positive = inflow), ``asset, info, time, tranId`` ("unique in the same incomeType for a
        user"), ``tradeId``
        (https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Get-Income-History)."""
        now = int(time.time() * 1000)
        start = int(params.get("startTime", now - 7 * 86_400_000 if "endTime" not in params else 0))
        end = int(params.get("endTime", str(2**62)))
        kind = params.get("incomeType")
        out = []
        with self.book.lock:
            for f in self.book.funding:
                if kind not in (None, "FUNDING_FEE") or not start <= f["time"] <= end:
                    continue
                if "symbol" in params and params["symbol"] != f"{f['base']}USDT":
                    continue
                out.append({"symbol": f"{f['base']}USDT", "incomeType": "FUNDING_FEE", "income": _d(f["income"]),
                            "asset": "USDT", "info": "FUNDING_FEE", "time": f["time"], "tranId": f["id"],
                            "tradeId": ""})  # fmt: skip
        self._send(200, out[: min(int(params.get("limit", "100")), 1000)])

    def _get_fapi_v1_leverageBracket(self, params: dict[str, str]) -> None:  # noqa: N802
        out = []
        for spec in SPECS.values():
            if spec.base in self.book.brackets_missing:
                continue
            out.append({"symbol": f"{spec.base}USDT", "notionalCoef": 1.0, "brackets": [
                {"bracket": 1, "initialLeverage": spec.max_leverage, "notionalCap": 50000, "notionalFloor": 0,
                 "maintMarginRatio": 0.004, "cum": 0.0},
                {"bracket": 2, "initialLeverage": 50, "notionalCap": 600000, "notionalFloor": 50000,
                 "maintMarginRatio": 0.005, "cum": 50.0}]})  # fmt: skip
        self._send(200, out)

    def _get_fapi_v3_positionRisk(self, _: dict[str, str]) -> None:  # noqa: N802
        out = []
        with self.book.lock:
            for base, (qty, entry) in self.book.positions.items():
                mark = SPECS[base].price
                lev = self.book.leverage.get(base, 20)
                out.append({
                    "symbol": f"{base}USDT", "positionSide": "BOTH", "positionAmt": _d(qty), "entryPrice": _d(entry),
                    "breakEvenPrice": _d(entry), "markPrice": _d(mark), "unRealizedProfit": _d(qty * (mark - entry)),
                    "liquidationPrice": "0", "isolatedMargin": "0", "notional": _d(qty * mark), "marginAsset": "USDT",
                    "isolatedWallet": "0", "initialMargin": _d(abs(qty) * mark / lev),
                    "maintMargin": _d(abs(qty) * mark * Decimal("0.004")),
                    "positionInitialMargin": _d(abs(qty) * mark / lev), "openOrderInitialMargin": "0", "adl": 1,
                    "bidNotional": "0", "askNotional": "0", "updateTime": int(time.time() * 1000),
                })  # fmt: skip
        self._send(200, out)

    def _get_fapi_v3_account(self, _: dict[str, str]) -> None:
        with self.book.lock:
            wallet, avail = self.book.wallet, self.book.available()
        self._send(200, {
            "totalInitialMargin": _d(wallet - avail), "totalMaintMargin": "0", "totalWalletBalance": _d(wallet),
            "totalUnrealizedProfit": "0", "totalMarginBalance": _d(wallet), "availableBalance": _d(avail),
            "maxWithdrawAmount": _d(avail),
            "assets": [{"asset": "USDT", "walletBalance": _d(wallet), "unrealizedProfit": "0",
                        "marginBalance": _d(wallet), "maintMargin": "0", "initialMargin": _d(wallet - avail),
                        "positionInitialMargin": _d(wallet - avail), "openOrderInitialMargin": "0",
                        "crossWalletBalance": _d(wallet), "crossUnPnl": "0", "availableBalance": _d(avail),
                        "maxWithdrawAmount": _d(avail), "updateTime": int(time.time() * 1000)}],
            "positions": [],
        })  # fmt: skip


# ====================================================================== OKX v5


def _okx_ok(data: list[dict[str, Any]]) -> dict[str, Any]:
    now = str(int(time.time() * 1_000_000))
    return {"code": "0", "msg": "", "data": data, "inTime": now, "outTime": now}


class OkxHandler(_Handler):
    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        body = self._body()
        with self.book.lock:
            self.book.request_log.append((method, parts.path))
        name = f"_{method.lower()}_{parts.path.removeprefix('/api/v5/').replace('/', '_').replace('-', '_')}"
        route = getattr(self, name, None)
        if route is None:
            self._send(404, {"code": "50014", "msg": f"{parts.path} not found", "data": []})
            return
        if not parts.path.startswith("/api/v5/public/"):
            error = self._check_signature(method, self.path, body)
            if error:
                self._send(401, {"code": error[0], "msg": error[1], "data": []})
                return
            # the demo keys answer only with "x-simulated-trading: 1" on the request
            # (https://www.okx.com/docs-v5/en/#overview-demo-trading-services); without it 50101
            # "APIKey does not match current environment." (https://www.okx.com/docs-v5/en/#error-code)
            if self.headers.get("x-simulated-trading") != "1":
                self._send(401, {"code": "50101", "msg": "APIKey does not match current environment.", "data": []})
                return
        params: Any = dict(parse_qsl(parts.query)) if method == "GET" else (json.loads(body) if body else {})
        route(params)

    def _check_signature(self, method: str, path: str, body: str) -> tuple[str, str] | None:
        h = self.headers
        if h.get("OK-ACCESS-KEY") != API_KEY:
            return "50111", "Invalid OK-ACCESS-KEY"
        if h.get("OK-ACCESS-PASSPHRASE") != PASSPHRASE:
            return "50105", "Invalid OK-ACCESS-PASSPHRASE"
        ts = h.get("OK-ACCESS-TIMESTAMP", "")
        mac = hmac.new(API_SECRET.encode(), f"{ts}{method}{path}{body}".encode(), hashlib.sha256)
        if not hmac.compare_digest(h.get("OK-ACCESS-SIGN", ""), base64.b64encode(mac.digest()).decode()):
            return "50113", "Invalid Sign"
        sent = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
        if abs((dt.datetime.now(dt.UTC) - sent).total_seconds()) > 30:
            return "50102", "Timestamp request expired"
        return None

    def _spec(self, inst_id: str) -> SymbolSpec | None:
        base = inst_id.removesuffix("-USDT-SWAP")
        return SPECS.get(base) if inst_id.endswith("-USDT-SWAP") else None

    def _fail(self, code: str, msg: str, cid: str = "", algo: bool = False) -> None:
        item = {"clOrdId": cid, "ordId": "", "sCode": code, "sMsg": msg, "tag": "", "ts": ""}
        if algo:
            item.update({"algoClOrdId": cid, "algoId": ""})
        self._send(200, {"code": "1", "msg": "All operations failed", "data": [item]})

    def _get_public_instruments(self, params: dict[str, str]) -> None:
        data = []
        if params.get("instType") == "SWAP":
            for spec in SPECS.values():
                data.append({
                    "alias": "", "baseCcy": "", "category": "1", "ctMult": "1", "ctType": "linear",
                    "ctVal": _d(spec.ct_val), "ctValCcy": spec.base, "expTime": "", "instFamily": f"{spec.base}-USDT",
                    "instId": f"{spec.base}-USDT-SWAP", "instType": "SWAP",
                    "lever": "" if spec.base in self.book.brackets_missing else str(spec.max_leverage),
                    "listTime": "1611916828000", "lotSz": "0.01", "maxIcebergSz": "100000000", "maxLmtAmt": "20000000",
                    "maxLmtSz": "100000000", "maxMktAmt": "", "maxMktSz": "12000", "maxStopSz": "12000",
                    "maxTriggerSz": "100000000", "maxTwapSz": "100000000", "minSz": "0.01", "optType": "",
                    "quoteCcy": "", "settleCcy": "USDT", "state": "live", "stk": "", "tickSz": _d(spec.tick),
                    "uly": f"{spec.base}-USDT", "ruleType": "normal",
                })  # fmt: skip
        self._send(200, _okx_ok(data))

    def _post_trade_order(self, p: dict[str, Any]) -> None:
        self._create(p, algo=False)

    def _post_trade_order_algo(self, p: dict[str, Any]) -> None:
        self._create(p, algo=True)

    def _create(self, p: dict[str, Any], algo: bool) -> None:
        book = self.book
        cid = str(p.get("algoClOrdId") if algo else p.get("clOrdId", ""))
        spec = self._spec(str(p.get("instId", "")))
        if spec is None:
            self._fail("51001", "Instrument ID does not exist", cid, algo)
            return
        contracts = Decimal(str(p.get("sz", "0")))
        qty = contracts * spec.ct_val
        reduce_only = str(p.get("reduceOnly", "false")).lower() == "true"
        with book.lock:
            book.create_requests += 1
            fault = book.next_fault()
            if fault and fault.kind == "rate_limit":
                retry_after = {} if fault.retry_after_s is None else {"Retry-After": str(fault.retry_after_s)}
                self._send(429, {"code": "50011", "msg": "Too Many Requests", "data": []}, retry_after)
                return
            if fault and fault.kind == "error_5xx":
                self._send(503, {"code": "50001", "msg": "Service temporarily unavailable, please try again later.",
                                 "data": []})  # fmt: skip
                return
            if fault is not None and fault.kind in _UNKNOWN_FAULTS and not fault.accept:
                self._unknown_answer(fault)
                return
            if cid and not _OKX_CID.fullmatch(cid):  # 51000 "Parameter {param0} error"
                self._fail("51000", f"Parameter {'algoClOrdId' if algo else 'clOrdId'} error", cid, algo)
                return
            # OKX documents the clOrdId format, not how long it stays unique; the stand-in takes the
            # weaker rule (Binance's: unique among live orders), so nothing passes only because
            # the venue refused a duplicate
            if cid and book.is_open(cid):
                self._fail("51016", "Duplicated clOrdId", cid, algo)
                return
            # long_short_mode needs posSide long/short on every order: 51000 "Parameter posSide error"
            if book.hedge_mode and p.get("posSide", "net") == "net":
                self._fail("51000", "Parameter posSide error", cid, algo)
                return
            if reduce_only and not algo and book.reducible(spec.base, str(p.get("side"))) == 0:
                self._fail("51169", "Order failed because you don't have any positions in this direction for "
                           "this contract to reduce or close.", cid, algo)  # fmt: skip
                return
            if contracts < Decimal("0.01") or (contracts % Decimal("0.01")) != 0:
                self._fail("51020", "Order amount should be greater than the min available amount.", cid, algo)
                return
            if (fault and fault.kind == "insufficient_margin") or not book.margin_ok(spec.base, qty, reduce_only):
                self._fail("51008", "Order failed. Insufficient USDT margin in account", cid, algo)
                return
            fraction = fault.fraction if fault and fault.kind == "partial_fill" else Decimal(1)
            if algo:
                trigger = Decimal(str(p.get("slTriggerPx") or p.get("tpTriggerPx")))
                otype = "STOP_MARKET" if p.get("slTriggerPx") else "TAKE_PROFIT_MARKET"
                order = book.book_order(cid, spec.base, p["side"], otype, qty, None, trigger, reduce_only, Decimal(0))
            else:
                otype = "MARKET" if p.get("ordType") == "market" else "LIMIT"
                price = Decimal(str(p["px"])) if p.get("px") else None
                order = book.book_order(cid, spec.base, p["side"], otype, qty, price, None, reduce_only, fraction)
            if order["status"] == "EXPIRED":  # OKX: an IOC remainder is canceled
                order["status"] = "CANCELED"
        if book.create_delay_s:
            time.sleep(book.create_delay_s)
        if fault and fault.kind == "timeout_after_accept":
            time.sleep(fault.delay_s)
        if fault and fault.kind == "error_5xx_after_accept":
            self._send(503, {"code": "50001", "msg": "Service temporarily unavailable", "data": []})
            return
        if fault and fault.kind in _UNKNOWN_FAULTS:
            self._unknown_answer(fault)
            return
        item = {"clOrdId": "" if algo else cid, "ordId": str(order["id"]), "sCode": "0", "sMsg": "Order placed",
                "tag": "", "ts": str(order["time"])}  # fmt: skip
        if algo:
            item = {"algoClOrdId": cid, "algoId": str(order["id"]), "clOrdId": "", "sCode": "0", "sMsg": "",
                    "tag": ""}  # fmt: skip
        self._send(200, _okx_ok([item]))

    def _unknown_answer(self, fault: Fault) -> None:
        if fault.kind == "rate_limit_5xx":
            self._send(503, {"code": "50011", "msg": "Too Many Requests", "data": []})
        else:  # 50004 "Endpoint request timeout (does not indicate success or failure of order, please
            # check order status)" (https://www.okx.com/docs-v5/en/#error-code)
            self._send(503, {"code": "50004", "msg": "Endpoint request timeout (does not indicate success or "
                             "failure of order, please check order status)", "data": []})  # fmt: skip

    def _state(self, o: dict[str, Any]) -> str:
        return {"NEW": "live", "PARTIALLY_FILLED": "partially_filled", "FILLED": "filled",
                "CANCELED": "canceled", "EXPIRED": "canceled"}[o["status"]]  # fmt: skip

    def _order_json(self, o: dict[str, Any]) -> dict[str, Any]:
        spec = SPECS[o["base"]]
        fee = o["filled"] * o["avg"] * self.book.fee_rate
        return {
            "accFillSz": _d(o["filled"] / spec.ct_val), "avgPx": _d(o["avg"]) if o["filled"] else "",
            "cTime": str(o["time"]), "category": "normal", "ccy": "", "clOrdId": o["cid"], "fee": _d(-fee),
            "feeCcy": "USDT", "fillPx": _d(o["avg"]) if o["filled"] else "", "fillSz": _d(o["filled"] / spec.ct_val),
            "fillTime": str(o["time"]), "instId": f"{o['base']}-USDT-SWAP", "instType": "SWAP",
            "lever": str(self.book.leverage.get(o["base"], 20)), "ordId": str(o["id"]),
            "ordType": "market" if o["type"] == "MARKET" else "limit", "pnl": "0", "posSide": "net",
            "px": _d(o["price"]) if o["price"] else "", "rebate": "0", "rebateCcy": "USDT",
            "reduceOnly": "true" if o["reduce_only"] else "false", "side": o["side"], "slOrdPx": "",
            "slTriggerPx": "", "source": "", "state": self._state(o), "sz": _d(o["qty"] / spec.ct_val), "tag": "",
            "tdMode": "isolated", "tgtCcy": "", "tpOrdPx": "", "tpTriggerPx": "", "tradeId": "",
            "uTime": str(o["time"]),
        }  # fmt: skip

    def _algo_json(self, o: dict[str, Any]) -> dict[str, Any]:
        spec = SPECS[o["base"]]
        sl = o["type"] == "STOP_MARKET"
        trig = _d(o["trigger"] or Decimal(0))
        return {
            "algoClOrdId": o["cid"], "algoId": str(o["id"]), "cTime": str(o["time"]), "clOrdId": "",
            "instId": f"{o['base']}-USDT-SWAP", "instType": "SWAP", "lever": "20", "ordType": "conditional",
            "posSide": "net", "reduceOnly": "true" if o["reduce_only"] else "false", "side": o["side"],
            "slOrdPx": "-1" if sl else "", "slTriggerPx": trig if sl else "", "slTriggerPxType": "last",
            "state": _OKX_ALGO_STATE.get(o["status"], "live"),
            "sz": _d(o["qty"] / spec.ct_val), "actualSz": _d(o["filled"] / spec.ct_val) if o["filled"] else "",
            "actualPx": _d(o["avg"]) if o["filled"] else "",
            "tdMode": "isolated", "tpOrdPx": "" if sl else "-1", "tpTriggerPx": "" if sl else trig,
            "tpTriggerPxType": "last", "triggerPx": "", "uTime": str(o["time"]),
            "ordId": str(o.get("actual_id") or ""), "ordIdList": [str(o["actual_id"])] if o.get("actual_id") else [],
        }  # fmt: skip

    def _find(self, cid: str | None, algo: bool) -> dict[str, Any] | None:
        with self.book.lock:
            self.book.lookups += 1
            order = self.book.orders.get(cid or "")
            if order is None or not self.book.visible(order, self.book.read_lag_s):
                return None  # 51603 "Order does not exist" (also while the read side lags)
        if (order["type"] in ("MARKET", "LIMIT")) == algo:
            return None
        return order

    def _get_public_mark_price(self, p: dict[str, str]) -> None:
        """Get mark price (public): ``instType, instId, markPx, ts``
        (https://www.okx.com/docs-v5/en/#public-data-rest-api-get-mark-price)."""
        spec = self._spec(str(p.get("instId", "")))
        if spec is None:
            self._send(200, {"code": "51001", "msg": "Instrument ID does not exist", "data": []})
            return
        row = {"instType": "SWAP", "instId": f"{spec.base}-USDT-SWAP", "markPx": _d(self.book.mark(spec.base)),
               "ts": str(int(time.time() * 1000))}  # fmt: skip
        self._send(200, _okx_ok([row]))

    def _get_trade_orders_pending(self, p: dict[str, str]) -> None:
        """Get order list: the incomplete orders (https://www.okx.com/docs-v5/en/#order-book-trading-trade-get-order-list)."""
        rows = [self._order_json(o) for o in self.book.open_orders(conditional=False)]
        self._send(200, _okx_ok([r for r in rows if p.get("instId") in (None, r["instId"])]))

    def _get_trade_orders_algo_pending(self, p: dict[str, str]) -> None:
        """Get algo order list: ``ordType`` is required (conditional here)
        (https://www.okx.com/docs-v5/en/#order-book-trading-algo-trading-get-algo-order-list)."""
        if not p.get("ordType"):
            self._send(200, {"code": "50014", "msg": "Parameter ordType can not be empty.", "data": []})
            return
        rows = [self._algo_json(o) for o in self.book.open_orders(conditional=True)]
        self._send(200, _okx_ok([r for r in rows if r["ordType"] == p["ordType"]
                                 and p.get("instId") in (None, r["instId"])]))  # fmt: skip

    def _get_asset_currencies(self, _: dict[str, str]) -> None:
        self._send(200, _okx_ok([]))  # ccxt reads it outside demo trading; nothing the tests need

    def _get_account_config(self, _: dict[str, str]) -> None:
        """posMode ``long_short_mode`` (hedge) or ``net_mode`` (one-way)
        (https://www.okx.com/docs-v5/en/#trading-account-rest-api-get-account-configuration)."""
        mode = "long_short_mode" if self.book.hedge_mode else "net_mode"
        self._send(200, _okx_ok([{
            "acctLv": "2", "autoLoan": False, "ctIsoMode": "automatic", "greeksType": "PA", "level": "Lv1",
            "levelTmp": "", "mgnIsoMode": "automatic", "posMode": mode, "uid": "44705892343619584",
            "mainUid": "44705892343619584", "label": "tradingbot", "perm": "read_only,trade",
        }]))  # fmt: skip

    def _fills(self, p: dict[str, str]) -> None:
        """Transaction details: instType, instId, ordId, begin/end (ms); rows carry clOrdId and
        fillSz in contracts, fee negative for a charge
        (https://www.okx.com/docs-v5/en/#order-book-trading-trade-get-transaction-details-last-3-months)."""
        spec = self._spec(str(p.get("instId", "")))
        begin, end = int(p.get("begin") or 0), int(p.get("end") or 2**62)
        data = []
        with self.book.lock:
            for t in reversed(self.book.trades):  # newest first
                o = t["order"]
                if spec is None or o["base"] != spec.base or not self.book.visible(t, self.book.trade_lag_s):
                    continue
                if (p.get("ordId") and p["ordId"] != str(o["id"])) or not begin <= t["time"] <= end:
                    continue
                data.append({
                    "instType": "SWAP", "instId": f"{spec.base}-USDT-SWAP", "tradeId": str(t["id"]),
                    "ordId": str(o["id"]), "clOrdId": o["cid"], "billId": str(t["id"]), "subType": "1", "tag": "",
                    "fillPx": _d(t["price"]), "fillSz": _d(t["qty"] / spec.ct_val), "fillIdxPx": "",
                    "fillPnl": _d(t.get("pnl", Decimal(0))), "fillPxVol": "", "fillPxUsd": "", "fillMarkVol": "",
                    "fillFwdPx": "",
                    "fillMarkPx": _d(spec.price), "side": o["side"], "posSide": "net", "execType": "T",
                    "feeCcy": "USDT", "fee": _d(-t["fee"]), "ts": str(t["time"]), "fillTime": str(t["time"]),
                })  # fmt: skip
        self._send(200, _okx_ok(data[: int(p.get("limit") or 100)]))

    def _get_trade_fills(self, p: dict[str, str]) -> None:
        self._fills(p)

    def _get_trade_fills_history(self, p: dict[str, str]) -> None:
        self._fills(p)

    def _bills(self, p: dict[str, str]) -> None:
        """Bills details: filters instType, type (8 = funding fee; subType 173 funding fee expense,
        174 funding fee income), begin/end (ms), ``after`` = records earlier than that billId; newest
        first, limit default 100 max 100; ``balChg`` signed (the balance change), ``billId``, ``ts``
        (https://www.okx.com/docs-v5/en/#trading-account-rest-api-get-bills-details-last-7-days;
        types and subtypes as ccxt's okx.fetch_funding_history lists them)."""
        begin, end = int(p.get("begin") or 0), int(p.get("end") or 2**62)
        after = int(p["after"]) if p.get("after") else None
        data = []
        with self.book.lock:
            for f in reversed(self.book.funding):
                if p.get("type") not in (None, "8") or p.get("instType") not in (None, "SWAP"):
                    continue
                if not begin <= f["time"] <= end or (after is not None and f["id"] >= after):
                    continue
                spec = SPECS[f["base"]]
                data.append({
                    "bal": _d(f["wallet"]), "balChg": _d(f["income"]), "billId": str(f["id"]), "ccy": "USDT",
                    "clOrdId": "", "execType": "", "fee": "0", "fillFwdPx": "", "fillIdxPx": "", "fillMarkPx": "",
                    "fillMarkVol": "", "fillPxUsd": "", "fillPxVol": "", "fillTime": "", "from": "",
                    "instId": f"{f['base']}-USDT-SWAP", "instType": "SWAP", "interest": "0", "mgnMode": "isolated",
                    "notes": "", "ordId": "", "pnl": _d(f["income"]), "posBal": "0", "posBalChg": "0",
                    "px": _d(spec.price), "subType": "174" if f["income"] > 0 else "173",
                    "sz": _d(abs(f["qty"]) / spec.ct_val), "tag": "", "to": "", "tradeId": "", "ts": str(f["time"]),
                    "type": "8",
                })  # fmt: skip
        self._send(200, _okx_ok(data[: min(int(p.get("limit") or 100), 100)]))

    def _get_account_bills(self, p: dict[str, str]) -> None:
        self._bills(p)

    def _get_account_bills_archive(self, p: dict[str, str]) -> None:
        self._bills(p)

    def _get_trade_order(self, p: dict[str, str]) -> None:
        order = self._find(p.get("clOrdId"), algo=False)
        if order is None:
            self._send(200, {"code": "51603", "msg": "Order does not exist", "data": []})
        else:
            self._send(200, _okx_ok([self._order_json(order)]))

    def _get_trade_order_algo(self, p: dict[str, str]) -> None:
        order = self._find(p.get("algoClOrdId"), algo=True)
        if order is None:
            self._send(200, {"code": "51603", "msg": "Order does not exist", "data": []})
        else:
            self._send(200, _okx_ok([self._algo_json(order)]))

    def _post_trade_cancel_order(self, p: dict[str, Any]) -> None:
        order = self._find(p.get("clOrdId"), algo=False)
        if order is None or order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            self._fail("51400", "Order cancellation failed as the order has been filled, canceled or does not exist",
                       str(p.get("clOrdId", "")))  # fmt: skip
            return
        order["status"] = "CANCELED"
        self._send(200, _okx_ok([{"clOrdId": order["cid"], "ordId": str(order["id"]), "sCode": "0", "sMsg": ""}]))

    def _post_trade_cancel_algos(self, p: Any) -> None:
        """Cancel algo orders: one result per item; an algo order that is no longer live (triggered,
        cancelled) or unknown fails with its own sCode (51400 "Order cancellation failed as the order
        has been filled, canceled or does not exist", https://www.okx.com/docs-v5/en/#error-code)."""
        items = p if isinstance(p, list) else [p]
        out = []
        for item in items:
            order = self._find(item.get("algoClOrdId"), algo=True)
            if order is None or order["status"] != "NEW":
                out.append(
                    {
                        "algoId": "",
                        "algoClOrdId": item.get("algoClOrdId", ""),
                        "sCode": "51400",
                        "sMsg": "Order cancellation failed as the order has been filled, canceled or does not exist",
                    }
                )
                continue
            order["status"] = "CANCELED"
            out.append({"algoId": str(order["id"]), "algoClOrdId": order["cid"], "sCode": "0", "sMsg": ""})
        if any(o["sCode"] != "0" for o in out):
            self._send(200, {"code": "1", "msg": "All operations failed", "data": out})
        else:
            self._send(200, _okx_ok(out))

    def _post_account_set_leverage(self, p: dict[str, Any]) -> None:
        spec = self._spec(str(p.get("instId", "")))
        if spec is None:
            self._send(200, {"code": "51001", "msg": "Instrument ID does not exist", "data": []})
            return
        lever = int(p["lever"])
        if lever > spec.max_leverage:
            self._send(200, {"code": "59102", "msg": "Leverage exceeds the maximum leverage", "data": []})
            return
        self.book.leverage[spec.base] = lever
        self.book.margin_mode[spec.base] = str(p.get("mgnMode"))
        self._send(200, _okx_ok([{"instId": p["instId"], "lever": str(lever), "mgnMode": p.get("mgnMode"),
                                  "posSide": ""}]))  # fmt: skip

    def _get_account_positions(self, _: dict[str, str]) -> None:
        data = []
        with self.book.lock:
            for base, (qty, entry) in self.book.positions.items():
                spec = SPECS[base]
                lev = self.book.leverage.get(base, 20)
                data.append({
                    "adl": "1", "availPos": "", "avgPx": _d(entry), "cTime": "1619507758793", "ccy": "USDT",
                    "deltaBS": "", "deltaPA": "", "gammaBS": "", "gammaPA": "", "imr": "",
                    "instId": f"{base}-USDT-SWAP",
                    "instType": "SWAP", "interest": "0", "last": _d(spec.price), "lever": str(lev), "liab": "",
                    "liabCcy": "", "liqPx": "", "margin": _d(abs(qty) * entry / lev), "markPx": _d(spec.price),
                    "mgnMode": self.book.margin_mode.get(base, "isolated"), "mgnRatio": "", "mmr": "0",
                    "notionalUsd": _d(abs(qty) * spec.price), "optVal": "", "pTime": "", "pos": _d(qty / spec.ct_val),
                    "posCcy": "", "posId": "1", "posSide": "net", "thetaBS": "", "thetaPA": "", "tradeId": "1",
                    "uTime": str(int(time.time() * 1000)), "upl": _d(qty * (spec.price - entry)), "uplRatio": "0",
                    "vegaBS": "", "vegaPA": "",
                })  # fmt: skip
        self._send(200, _okx_ok(data))

    def _get_account_balance(self, _: dict[str, str]) -> None:
        with self.book.lock:
            wallet, avail = self.book.wallet, self.book.available()
        detail = {
            "ccy": "USDT",
            "eq": _d(wallet),
            "cashBal": _d(wallet),
            "availBal": _d(avail),
            "availEq": _d(avail),
            "frozenBal": _d(wallet - avail),
            "ordFrozen": "0",
            "upl": "0",
            "uTime": str(int(time.time() * 1000)),
        }
        self._send(200, _okx_ok([{"totalEq": _d(wallet), "uTime": detail["uTime"], "details": [detail]}]))


def binance_server(book: Book | None = None) -> _Server:
    return _Server(BinanceHandler, book or Book())


def okx_server(book: Book | None = None) -> _Server:
    return _Server(OkxHandler, book or Book())
