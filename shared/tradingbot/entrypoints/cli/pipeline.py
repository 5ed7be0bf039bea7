"""`tradingbot serve`, `tradingbot executions list|show`, `tradingbot replay`: the pipeline, locally."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradingbot.entrypoints.cli.console import lazy_console

# The pipeline and persistence (SQLAlchemy) load inside the commands, so `tradingbot --help` stays fast.
if TYPE_CHECKING:
    from tradingbot.adapters.persistence.models import Decision

out = lazy_console()
err = lazy_console(stderr=True)
executions_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Pipeline executions.")

DEMO_ACCOUNT = "demo"


def _runtime() -> Any:
    from tradingbot.pipeline.runtime import Runtime, set_runtime
    from tradingbot.settings import Settings

    rt = Runtime(config=Settings())  # this command's own read, not the process-wide cache
    try:
        rt.engine()
    except RuntimeError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    set_runtime(rt)
    return rt


def _demo_token(rt: Any, data_dir: Path) -> str:
    """The demo paper account's webhook token, created on first run and kept in .data (mode 0600)
    so the printed curl command stays valid across restarts."""
    from tradingbot.adapters.persistence import repositories as repo
    from tradingbot.adapters.persistence.db import session_scope

    token_file = data_dir / "demo-webhook-token"
    with session_scope(rt.engine()) as s:
        exists = repo.find_account(s, DEMO_ACCOUNT) is not None
        if exists and token_file.exists():
            return token_file.read_text().strip()
        if exists:
            token = repo.rotate_webhook_token(s, DEMO_ACCOUNT)
        else:
            _, token = repo.create_account(s, name=DEMO_ACCOUNT, exchange="paper", testnet=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token


def sample_alert(token: str, price: float, action: str = "long", strategy: str = "bollinger") -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {"token": token, "strategy": strategy, "symbol": "BTCUSDT", "action": action, "price": price,
            "time": now, "comment": "sample alert from make run"}  # fmt: skip


def _market_price(rt: Any, venue: str, symbol: str = "BTC/USDT:USDT", wait_s: float = 15.0) -> float:
    """The market's current BTC price for the sample alert (the live feed's first price can take a
    few seconds: its warm-up backfill); the packaged candles' last close if none arrives."""
    deadline = time.monotonic() + wait_s
    while True:
        quote = rt.cache().get_price(venue, symbol)
        if quote is not None:
            return float(quote.price)
        if time.monotonic() > deadline:
            from tradingbot.adapters.market import BundledCandles

            return BundledCandles().last_price()
        time.sleep(0.2)


def _model_direction(rt: Any) -> str | None:
    """The committed LSTM's call on the market's last closed bar (None without a model)."""
    from tradingbot.domain.alert import AlertContent
    from tradingbot.pipeline.predict import predict_alert

    alert = sample_alert("x" * 20, 1.0)
    alert.pop("token")
    try:
        direction = getattr(predict_alert(rt, AlertContent.model_validate(alert)), "direction", None)
    except Exception:  # no candles yet (the feed still warming up): the sample alert goes long
        return None
    return direction if direction in ("long", "short") else None


def serve(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8001,
    host: Annotated[str, typer.Option(help="bind address (keep 127.0.0.1 unless behind a proxy)")] = "127.0.0.1",
    data_dir: Annotated[Path, typer.Option(help="embedded servers' data")] = Path(".data"),
) -> None:
    """Run the webhook and the whole pipeline locally (the state machine's ASL on the local runtime's
    worker processes, embedded PostgreSQL and Redis) on the live market (the feed, FEED_*), or on the
    labelled offline replay of the packaged candles when the venue cannot be reached; paper orders
    fill on its prices. Ctrl-C stops."""
    from tradingbot.adapters.exchange.paper_matcher import start_paper_matcher
    from tradingbot.adapters.persistence import config as persistence_config
    from tradingbot.entrypoints.local.executions import (
        LocalSfnClient,
        WorkerPool,
        freeze_startup_heap,
        requeue_orphans,
    )
    from tradingbot.entrypoints.local.http import make_server, serve_in_thread
    from tradingbot.entrypoints.local.market import LocalMarket
    from tradingbot.entrypoints.local.runner import FUNCTION_PREFIX, STATE_MACHINE_ARN, render_definition
    from tradingbot.entrypoints.local.servers import start_detached
    from tradingbot.pipeline.redrive import SweepLoop, scheduled_sweep
    from tradingbot.pipeline.runtime import Runtime, set_runtime
    from tradingbot.settings import Settings

    settings = Settings()
    db_url = redis_url = None  # None: the settings' DATABASE_URL / REDIS_URL
    if settings.persistence.database_url is None or settings.persistence.redis_url is None:
        servers = start_detached(data_dir)
        db_url = None if settings.persistence.database_url else servers.database_url
        redis_url = None if settings.persistence.redis_url else servers.redis_url
    # threaded server + in-process pipeline share the pool
    rt = Runtime(config=settings, database_url=db_url, redis_url=redis_url, db_pool_size=40)
    set_runtime(rt)
    database = db_url or persistence_config.database_url(settings.persistence)
    redis = redis_url or persistence_config.redis_url(settings.persistence)
    market = LocalMarket(settings, redis, rt.cache).start()
    # fills resting paper stops / targets (and settles funding) on every price the market writes
    matcher = start_paper_matcher(database, redis, price_source=market.venue)
    # issue 15: the reconcile Lambda's every-minute pass, on a timer here (tradingbot.pipeline.reconcile)
    from tradingbot.pipeline.reconcile import ReconcileLoop, scheduled_pass

    reconciler = ReconcileLoop(lambda: scheduled_pass(rt) or [], every_s=settings.exchange.reconcile_every_s).start()
    # executions: durable rows in PostgreSQL run by worker processes (the HTTP server only
    # acknowledges); what a previous `serve` left running (kill -9) is queued again first
    rt.settings = rt.settings.model_copy(update={"state_machine_arn": STATE_MACHINE_ARN})
    resumed = requeue_orphans(rt, STATE_MACHINE_ARN)
    local = settings.local
    workers = WorkerPool(database_url=database, redis_url=redis, state_machine_arn=STATE_MACHINE_ARN,
                         definition=render_definition(), function_prefix=FUNCTION_PREFIX,
                         workers=local.workers, threads=local.worker_threads).start()  # fmt: skip
    rt.sfn_client = LocalSfnClient(rt, STATE_MACHINE_ARN, wake=workers.wake)
    # at start nothing of ours is in flight: every undecided alert; then every LOCAL_SWEEP_INTERVAL_S,
    # with the ingress refusal tallies copied into ingress_refusals (what the sweeper Lambda does on AWS)
    redriven = scheduled_sweep(rt, grace_s=0)
    sweeper = SweepLoop(
        rt,
        every_s=local.sweep_interval_s,
        on_error=lambda exc: err.print(f"re-drive sweep failed: {type(exc).__name__}"),
    ).start()
    token = _demo_token(rt, data_dir)

    from tradingbot.entrypoints.lambdas.webhook import handler as webhook_handler
    from tradingbot.entrypoints.local.cockpit import demo_operator_token, start_telegram_polling
    from tradingbot.entrypoints.local.routes import local_routes

    # /api and /dashboard -> the operator API, /telegram/webhook -> the bot, the rest -> the webhook
    server = make_server(host, port, local_routes(webhook_handler))
    operator_token = demo_operator_token(rt, data_dir, DEMO_ACCOUNT)
    telegram_stop = start_telegram_polling(rt)
    serve_in_thread(server)
    url = f"http://{host}:{server.server_address[1]}"
    price = _market_price(rt, market.venue)
    direction = _model_direction(rt)
    alert = json.dumps(sample_alert(token, price, action=direction or "long"))
    out.print(f"[bold green]TradingBot AI[/] listening on {url}")
    if market.mode == "live":
        feed = market.feed_settings
        out.print(f"  market:      live feed from {', '.join(feed.exchanges)} ({', '.join(feed.symbols)}; "
                  f"{', '.join(feed.timeframes)})", highlight=False)  # fmt: skip
    else:
        out.print(f"  [bold yellow]market:      OFFLINE REPLAY[/] of the packaged candles ({market.reason})",
                  highlight=False)  # fmt: skip
        out.print("               decisions and orders on it are labelled 'offline replay'", highlight=False)
    out.print(f"  executions:  {local.workers} worker processes x {local.worker_threads}; after a restart "
              f"{resumed} resumed, {redriven.count('redriven')} undecided alerts re-driven",
              highlight=False)  # fmt: skip
    out.print(f"  Swagger UI:  {url}/docs")
    out.print(f"  dashboard:   {url}/dashboard#token={operator_token}", soft_wrap=True, highlight=False)
    out.print(f"  operator API {url}/api/docs (operator {'demo'!r}; token in {data_dir / 'demo-operator-token'})")
    if telegram_stop is not None:
        out.print("  telegram:    answering commands by long polling (getUpdates)")
    out.print(f"  health:      {url}/health")
    out.print(f"  demo account {DEMO_ACCOUNT!r} (paper); its webhook token is in {data_dir / 'demo-webhook-token'}")
    why = f"in the direction the LSTM predicts ({direction})" if direction else "long (no model loaded)"
    out.print(f"  send a sample alert ({why}, so it passes the LSTM rule):")
    out.print(f"    curl -s -X POST {url}/webhook/tradingview -H 'Content-Type: application/json' -d '{alert}'",
              soft_wrap=True, highlight=False)  # fmt: skip
    out.print("  then: tradingbot executions list / tradingbot executions show ID")
    freeze_startup_heap()  # start-up is done: full collections no longer stall the acknowledgements
    out.print(f"  reconcile:   every {settings.exchange.reconcile_every_s:g} s (EXCHANGE_RECONCILE_EVERY_S): orders, "
              "positions, stops and targets", highlight=False)  # fmt: skip
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        out.print("stopping")
    finally:
        server.shutdown()
        if telegram_stop is not None:
            telegram_stop.set()
        sweeper.stop()
        workers.stop()
        matcher.stop()
        reconciler.stop()
        market.stop()


@executions_app.command("list")
def executions_list(
    limit: Annotated[int, typer.Option(help="rows")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="as JSON: each with its status, outcome and reason")] = False,
) -> None:
    """The latest executions with their final outcome and its reason."""
    from rich.table import Table

    from tradingbot.adapters.persistence import repositories as repo
    from tradingbot.adapters.persistence.db import session_scope

    rt = _runtime()
    with session_scope(rt.engine()) as s:
        rows = [summary(d) for d in repo.recent_decisions(s, limit)]
    if as_json:
        typer.echo(json.dumps(rows, indent=1, default=str))
        return
    table = Table(title="executions (newest first)")
    for col in ("id", "execution", "symbol", "action", "outcome", "status", "ms", "market"):
        table.add_column(col)
    table.add_column("reason", overflow="fold")
    for r in rows:
        table.add_row(str(r["id"]), r["execution_name"], r["symbol"], r["final_action"] or "-", r["outcome"],
                      r["status"] or "-", str(r["duration_ms"] if r["duration_ms"] is not None else "-"),
                      r["market"], r["reason"] or "")  # fmt: skip
    out.print(table)


def summary(d: Decision) -> dict[str, Any]:
    """One execution as ``executions list|show`` report it: its Step Functions status and duration,
    what actually happened (the outcome) and why."""
    stages = d.stages or {}
    meta = stages.get("_execution") or {}
    result, reason = outcome(stages, d.final_action, d.rejection_reason)
    return {"id": d.id, "execution_name": d.execution_name, "symbol": d.symbol, "final_action": d.final_action,
            "status": meta.get("status"), "duration_ms": meta.get("duration_ms"), "outcome": result,
            "reason": reason, "market": market_label(meta)}  # fmt: skip


def outcome(stages: dict[str, Any], final_action: str | None, rejection_reason: str | None) -> tuple[str, str | None]:
    """What actually happened (the operator API answers the same: tradingbot.pipeline.operator_api.outcome)."""
    from tradingbot.pipeline.operator_api import outcome as decided

    return decided(stages, final_action, rejection_reason)


def market_label(meta: dict[str, Any]) -> str:
    """Where the decision's market data came from (``tradingbot serve`` records it)."""
    market = meta.get("market")
    return str(market.get("mode") or "-") if isinstance(market, dict) else "-"


def _find(s: Any, ident: str) -> Decision:
    from tradingbot.adapters.persistence import repositories as repo

    decision = repo.find_decision(s, ident)
    if decision is None:
        err.print(f"[bold red]error:[/] no execution {ident!r} (see `tradingbot executions list`)")
        raise typer.Exit(2)
    return decision


@executions_app.command("show")
def executions_show(
    ident: Annotated[str, typer.Argument(help="decision id or execution name")],
    as_json: Annotated[bool, typer.Option("--json", help="the whole record as JSON, with its status")] = False,
) -> None:
    """Each state of one execution with its own result (what it added to the state) and duration."""
    from rich.table import Table

    from tradingbot.adapters.persistence.db import session_scope
    from tradingbot.pipeline.operator_api import execution_states

    rt = _runtime()
    with session_scope(rt.engine()) as s:
        d = _find(s, ident)
        head = summary(d)
        states = execution_states(d.stages or {})
        record: dict[str, Any] = {
            **head, "rejection_reason": d.rejection_reason, "inputs": d.inputs, "states": states,
            "stages": d.stages,
        }  # fmt: skip
        market = ((d.stages or {}).get("_execution") or {}).get("market")
    if as_json:
        typer.echo(json.dumps(record, indent=1, default=str))
        return
    out.print(f"[bold]{head['execution_name']}[/] {head['status'] or '?'} in {head['duration_ms'] or '?'} ms: "
              f"{head['final_action']} -> {head['outcome']} {head['reason'] or ''}", highlight=False)  # fmt: skip
    if isinstance(market, dict):
        style = "green" if market.get("live") else "bold yellow"
        out.print(f"market: [{style}]{market.get('mode')}[/] ({market.get('reason', '')})", highlight=False)
    table = Table()
    for col in ("state", "ms", "result"):
        table.add_column(col, overflow="fold")
    for st in states:
        own = st["result"] if "result" in st else {"error": st.get("error"), "cause": st.get("cause")}
        table.add_row(st["state"], str(st.get("duration_ms") or ""), json.dumps(own, default=str)[:300])
    out.print(table)


def replay(
    ident: Annotated[str, typer.Argument(help="decision id or execution name")],
    new_order: Annotated[bool, typer.Option("--new-order", help="allow a second order for the same alert")] = False,
) -> None:
    """Re-run an execution with its recorded input. The order's client id comes from the alert, so
    the exchange layer answers "already placed" unless --new-order is given."""
    from tradingbot.adapters.persistence.db import session_scope
    from tradingbot.entrypoints.local.runner import LocalStepFunctions

    rt = _runtime()
    with session_scope(rt.engine()) as s:
        d = _find(s, ident)
        state = dict(d.inputs)
        state["account_id"] = d.account_id
        base = d.execution_name
    if new_order:
        state["order_nonce"] = uuid.uuid4().hex[:8]
    name = f"{base[:50]}-replay-{uuid.uuid4().hex[:8]}"
    local = LocalStepFunctions(rt).start()
    try:
        desc = local.run(name, state)
    finally:
        local.stop()
    with session_scope(rt.engine()) as s:
        replayed = _find(s, name)
        result, reason = outcome(replayed.stages or {}, replayed.final_action, replayed.rejection_reason)
        out.print(f"{name}: {desc['status']}, {replayed.final_action} -> {result} {reason or ''}", highlight=False)
        execution = (replayed.stages or {}).get("execution")
        if execution:
            out.print(json.dumps(execution, default=str))


def kill_switch(
    action: Annotated[str, typer.Argument(help="engage | release | status")],
    account: Annotated[str | None, typer.Option(help="one account (default: every account)")] = None,
    reason: Annotated[str, typer.Option(help="why (stored, shown in every rejection)")] = "operator",
) -> None:
    """Stop (or allow again) all new orders, for one account or all of them."""
    from tradingbot.adapters.cache import CacheUnavailable
    from tradingbot.adapters.persistence import repositories as repo
    from tradingbot.adapters.persistence.db import session_scope

    if action not in ("engage", "release", "status"):
        err.print(f"[bold red]error:[/] action must be engage, release or status, got {action!r}")
        raise typer.Exit(2)
    rt = _runtime()
    account_id = None
    if account is not None:
        with session_scope(rt.engine()) as s:
            account_id = repo.get_account(s, account).id
    from tradingbot.pipeline import kill_switch as switch

    def sessions() -> Any:
        return session_scope(rt.engine())

    try:  # PostgreSQL is the durable record, Redis the fast path (pipeline/kill_switch.py)
        cache = rt.cache()
        if action == "engage":
            switch.engage(sessions, cache, reason=reason, account_id=account_id)
        elif action == "release":
            switch.release(sessions, cache, account_id=account_id)
        state = switch.state(sessions, cache, account_id)
    except CacheUnavailable as exc:
        err.print(f"[bold red]error:[/] Redis unreachable, the switch state is unknown ({exc}); orders are refused")
        raise typer.Exit(1) from None
    scope = f"account {account}" if account else "all accounts"
    out.print(f"kill switch for {scope}: {'ENGAGED: ' + state if state else 'released'}")
