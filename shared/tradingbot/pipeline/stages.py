"""The pipeline's stages. Each takes the execution state (a JSON dict) and returns its own output;
the state machine places that output under the stage's key (``$.predict``, ``$.strategies`` ...).

State shape (what the webhook starts an execution with)::

    {"alert": {...TradingViewAlert without token...}, "alert_id": 1, "account_id": 1,
     "idempotency_key": "tv-1-...", "received_at": "2026-...Z"}

Stages raise :class:`StageError` for a permanent failure (the execution records it and fails) and
:class:`TransientStageError` for one worth retrying (the state machine retries with backoff).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import requests
from sqlalchemy import func, select

from tradingbot.adapters.cache import CacheUnavailable
from tradingbot.adapters.market import MarketDataError
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.models import Account, Position
from tradingbot.domain.alert import TradingViewAlert
from tradingbot.domain.validation import RiskState, ValidationConfig, ValidationInput, validate
from tradingbot.pipeline.runtime import Runtime

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

VOTERS = ("openai", "anthropic", "llama")


class StageError(RuntimeError):
    """Permanent: retrying cannot help (bad state, missing data)."""


class TransientStageError(RuntimeError):
    """Worth retrying: a dependency was briefly unavailable."""


def _alert(state: dict[str, Any]) -> TradingViewAlert:
    try:
        body = dict(state["alert"])
    except (KeyError, TypeError):
        raise StageError("state has no alert") from None
    # the token never enters the pipeline; a placeholder satisfies the model's shape
    return TradingViewAlert.model_validate({**body, "token": "x" * 16})


def _candles(rt: Runtime, symbol: str) -> pd.DataFrame:
    try:
        return rt.candles().candles(symbol, rt.settings.candles_for_signals)
    except MarketDataError as exc:
        raise StageError(str(exc)) from None


# ------------------------------------------------------------------ predict


def predict_stage(rt: Runtime, state: dict[str, Any]) -> dict[str, Any]:
    """LSTM prediction, or an explicit ``model: unavailable`` when no model is deployed."""
    alert = _alert(state)
    try:
        from tradingbot.adapters.model.predictor import load_default_predictor  # type: ignore[import-not-found]
    except ImportError:
        return {"model": "unavailable", "reason": "no model package installed"}
    predictor = load_default_predictor()
    if predictor is None:
        return {"model": "unavailable", "reason": "no model artifact configured"}
    candles = _candles(rt, alert.symbol)
    try:
        result: dict[str, Any] = predictor.predict(candles).to_dict()
    except ValueError as exc:  # too few candles or a feature mismatch: fail closed
        raise StageError(f"predict: {exc}") from None
    return result


# ------------------------------------------------------------------ one AI voter


def vote_stage(rt: Runtime, state: dict[str, Any]) -> dict[str, Any]:
    """One branch of the ensemble: ask one provider. An unconfigured provider says so; it is not
    an abstention and never counts as a vote."""
    from tradingbot.adapters.ai.ensemble import Ensemble
    from tradingbot.adapters.ai.factory import build_voters
    from tradingbot.adapters.ai.settings import AISettings
    from tradingbot.adapters.ai.spend import SpendLedger
    from tradingbot.adapters.ai.vote_cache import DictStore, RedisStore
    from tradingbot.domain.brief import build_brief
    from tradingbot.domain.vote import Abstention

    name = state.get("voter")
    if name not in VOTERS:
        raise StageError(f"voter must be one of {', '.join(VOTERS)}, got {name!r}")
    settings = AISettings()
    seat = {"openai": {"openai"}, "anthropic": {"anthropic"}, "llama": {"bedrock", "openai_compatible"}}[name]
    voters = [v for v in build_voters(settings) if v.provider in seat]
    if not voters:
        return {"voter": name, "configured": False, "reason": f"no credentials configured for {name}"}
    alert = _alert(state)
    predict = state.get("predict") or {}
    lstm = {k: v for k, v in predict.items() if isinstance(v, str | int | float)} or None
    brief = build_brief(_candles(rt, alert.symbol), symbol=alert.symbol, timeframe="1h", lstm=lstm,
                        comment=alert.comment)  # fmt: skip
    try:
        store: Any = RedisStore(rt.cache().client)
    except RuntimeError:
        store = DictStore()  # no Redis configured at all: no cache, caps per process
    with Ensemble(voters, cache=None if isinstance(store, DictStore) else _vote_cache(store, settings),
                  ledger=SpendLedger(store, settings.spend_caps())) as ensemble:  # fmt: skip
        ballot = ensemble.decide(brief).ballots[0]
    out: dict[str, Any] = json.loads(ballot.model_dump_json())
    out["configured"] = True
    out["voter"] = name
    if isinstance(ballot, Abstention):
        log.info("voter %s abstained: %s", name, ballot.reason)
    return out


def _vote_cache(store: Any, settings: Any) -> Any:
    from tradingbot.adapters.ai.vote_cache import VoteCache

    return VoteCache(store, ttl_s=settings.ai_cache_ttl_s)


def tally(ballots: list[dict[str, Any]]) -> dict[str, Any]:
    """The 2-of-3 rule over the branches' outputs; unconfigured seats are not ballots."""
    from pydantic import TypeAdapter

    from tradingbot.adapters.ai.ensemble import decide
    from tradingbot.domain.vote import Ballot

    adapter: TypeAdapter[Any] = TypeAdapter(Ballot)
    parsed = []
    for b in ballots:
        if not b.get("configured", True):
            continue
        try:
            parsed.append(adapter.validate_python({k: v for k, v in b.items() if k != "configured"}))
        except ValueError as exc:
            raise StageError(f"unreadable ballot from {b.get('voter')}: {exc}") from None
    result = decide(parsed)
    out: dict[str, Any] = result.model_dump()
    out["voters_configured"] = len(parsed)
    return out


# ------------------------------------------------------------------ strategies


def strategies_stage(rt: Runtime, state: dict[str, Any]) -> dict[str, Any]:
    """Every strategy's signal on the latest bar, and the alert's strategy backtested on the same
    candles (its win rate feeds the validator)."""
    # pandas, pandas-ta and numba load here only: this stage ships as a container image
    from tradingbot.domain.backtest import BacktestConfig, run_strategy
    from tradingbot.domain.indicators import Indicators
    from tradingbot.domain.strategies import REGISTRY, get_strategy

    alert = _alert(state)
    candles = _candles(rt, alert.symbol)
    ind = Indicators(candles)  # one memo for all six signal runs and the backtest below
    signals: dict[str, str] = {}
    for name, strat in REGISTRY.items():
        sig = strat.signals(ind)
        last = {k: bool(v[-1]) for k, v in sig._asdict().items()}
        signals[name] = "long" if last["long_entry"] else "short" if last["short_entry"] else "none"
    summary: dict[str, Any] = {"name": alert.strategy, "known": alert.strategy in REGISTRY}
    if summary["known"]:
        result = run_strategy(candles, get_strategy(alert.strategy), None, BacktestConfig(), indicators=ind)
        m = result.metrics
        summary.update(
            win_rate=m["win_rate"], trades=m["trades"], total_return=m["total_return"], sharpe=m["sharpe"],
            max_drawdown=m["max_drawdown"], bars=len(candles),
        )  # fmt: skip
    return {"signals": signals, "alert_strategy": summary, "as_of": candles.index[-1].isoformat()}


# ------------------------------------------------------------------ validate


def _risk_state(rt: Runtime, account_id: int, symbol: str) -> RiskState:
    try:
        kill = rt.cache().kill_switch(account_id)
    except CacheUnavailable:
        kill = "kill switch state unknown (Redis unreachable): refusing to trade blind"
    with session_scope(rt.engine()) as s:
        account = s.get(Account, account_id)
        if account is None:
            raise StageError(f"account {account_id} does not exist")
        open_q = select(Position).where(Position.account_id == account_id, Position.closed_at.is_(None))
        open_positions = s.scalars(open_q).all()
        today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        pnl = s.scalar(
            select(func.coalesce(func.sum(Position.realized_pnl), 0)).where(
                Position.account_id == account_id, Position.closed_at >= today
            )
        )
        return RiskState(
            kill_switch=kill,
            open_positions=len(open_positions),
            has_position_in_symbol=any(p.symbol == symbol for p in open_positions),
            realized_pnl_today=Decimal(pnl or 0),
            max_position_usd=Decimal(account.max_position_usd),
            max_leverage=int(account.max_leverage),
            max_daily_loss_usd=Decimal(account.max_daily_loss_usd),
            max_open_positions=int(account.max_open_positions),
        )


def validate_stage(rt: Runtime, state: dict[str, Any]) -> dict[str, Any]:
    alert = _alert(state)
    s = rt.settings
    direction = alert.direction()
    price = alert.price
    sign = Decimal(1) if direction == "long" else Decimal(-1)
    stop = alert.stop_loss or price * (1 - sign * Decimal(str(s.default_stop_loss_pct)) / 100)
    target = alert.take_profit or price * (1 + sign * Decimal(str(s.default_take_profit_pct)) / 100)
    ensemble = tally(list(state.get("ballots") or []))
    v = ValidationInput(
        direction=direction, symbol=alert.symbol, price=price, quantity=alert.quantity,
        leverage=alert.leverage or 1, stop_loss=stop, take_profit=target,
        predict=state.get("predict") or {"model": "unavailable", "reason": "predict did not run"},
        ensemble=ensemble, strategy=(state.get("strategies") or {}).get("alert_strategy", {}),
    )  # fmt: skip
    cfg = ValidationConfig(
        symbols=s.symbols(), min_ai_confidence=s.min_ai_confidence, min_win_rate=s.min_win_rate,
        min_reward_risk=s.min_reward_risk,
        when_model_unavailable="reject" if s.when_model_unavailable == "reject" else "skip",
        when_ai_unavailable="reject" if s.when_ai_unavailable == "reject" else "skip",
    )  # fmt: skip
    report = validate(v, _risk_state(rt, int(state["account_id"]), alert.symbol), cfg)
    out = report.to_dict()
    out["ensemble"] = ensemble
    out["intent"] = {
        "direction": direction, "symbol": alert.symbol, "price": str(price),
        "stop_loss": str(stop) if direction != "flat" else None,
        "take_profit": str(target) if direction != "flat" else None,
        "quantity": str(alert.quantity) if alert.quantity else None, "leverage": alert.leverage or 1,
    }  # fmt: skip
    return out


# ------------------------------------------------------------------ notify and record


def notify_stage(rt: Runtime, state: dict[str, Any]) -> dict[str, Any]:
    """Tell the operator: Telegram when a bot token is configured, the log otherwise."""
    alert = state.get("alert", {})
    execution = state.get("execution") or {}
    text = (f"{alert.get('strategy')} {alert.get('action')} {alert.get('symbol')} @ {alert.get('price')}: "
            f"{execution.get('status', 'no order')}")  # fmt: skip
    return _send(rt, text)


def notify_alarms(rt: Runtime, records: list[dict[str, Any]]) -> dict[str, Any]:
    """CloudWatch alarms arrive through SNS; each becomes one message."""
    sent = []
    for record in records:
        sns = record.get("Sns") or {}
        try:
            alarm = json.loads(sns.get("Message") or "{}")
        except json.JSONDecodeError:
            alarm = {"AlarmName": sns.get("Subject", "alarm"), "NewStateReason": sns.get("Message", "")}
        text = f"{alarm.get('NewStateValue', 'ALARM')}: {alarm.get('AlarmName')}: {alarm.get('NewStateReason', '')}"
        sent.append(_send(rt, text[:4000]))
    return {"sent": len(sent), "messages": sent}


def _send(rt: Runtime, text: str) -> dict[str, Any]:
    s = rt.settings
    if not s.telegram_bot_token:
        log.info("notify: %s", text)
        return {"channel": "log", "text": text}
    url = f"{s.telegram_api_url.rstrip('/')}/bot{s.telegram_bot_token}/sendMessage"
    try:
        resp = requests.post(url, json={"chat_id": s.telegram_chat_id, "text": text}, timeout=5)
    except requests.RequestException as exc:
        raise TransientStageError(f"telegram unreachable: {type(exc).__name__}") from None
    if resp.status_code == 429 or resp.status_code >= 500:
        raise TransientStageError(f"telegram answered {resp.status_code}")
    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    if not body.get("ok"):
        raise StageError(f"telegram refused the message: {body.get('description', resp.status_code)}")
    return {"channel": "telegram", "text": text, "message_id": body.get("result", {}).get("message_id")}


STAGE_KEYS = ("predict", "ballots", "strategies", "validation", "execution", "notify", "error")


def record_outcome_stage(rt: Runtime, payload: dict[str, Any]) -> dict[str, Any]:
    """Store the decision record (inputs, every stage's output, the final action and reason) and the
    alert's final status. Called on every path: traded, rejected, failed."""
    outcome = payload.get("outcome")
    state = payload.get("state") or {}
    if outcome not in ("traded", "rejected", "failed"):
        raise StageError(f"outcome must be traded, rejected or failed, got {outcome!r}")
    execution_name = payload.get("execution_name") or state.get("idempotency_key")
    if not execution_name or "account_id" not in state:
        raise StageError("state lacks idempotency_key / account_id")
    reason: str | None = None
    if outcome == "rejected":
        reason = (state.get("validation") or {}).get("reason") or "rejected"
    elif outcome == "failed":
        err = state.get("error") or {}
        reason = f"{err.get('Error', 'Error')}: {_cause(err.get('Cause'))}"[:1000]
    stages = {k: state[k] for k in STAGE_KEYS if k in state}
    inputs = {k: state.get(k) for k in ("alert", "alert_id", "idempotency_key", "received_at")}
    with session_scope(rt.engine()) as s:
        decision = repo.record_decision(
            s, execution_name=str(execution_name), account_id=int(state["account_id"]),
            symbol=str(state.get("alert", {}).get("symbol", "?")), inputs=inputs,
            alert_id=state.get("alert_id"), stages=stages,
            final_action=_final_action(outcome, state),
            rejection_reason=reason,
        )  # fmt: skip
        if state.get("alert_id") is not None:
            status = {"traded": "processed", "rejected": "rejected", "failed": "failed"}[outcome]
            repo.set_alert_status(s, int(state["alert_id"]), status, reason)
        return {"decision_id": decision.id, "outcome": outcome, "reason": reason}


def _final_action(outcome: str, state: dict[str, Any]) -> str:
    """decisions.final_action: what was done (long / short / close), or rejected, or error."""
    if outcome == "rejected":
        return "rejected"
    if outcome == "failed":
        return "error"
    direction = ((state.get("validation") or {}).get("intent") or {}).get("direction")
    return {"long": "long", "short": "short", "flat": "close"}.get(str(direction), "hold")


def _cause(cause: Any) -> str:
    """Step Functions passes a Lambda error's Cause as a JSON string: keep its message."""
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
        except json.JSONDecodeError:
            return cause
        if isinstance(parsed, dict):
            return str(parsed.get("errorMessage", cause))
    return str(cause)


# ------------------------------------------------------------------ optimisation worker


def optimise(event: dict[str, Any]) -> dict[str, Any]:
    """Grid search for one strategy (an EventBridge schedule, or one item of a Map state).

    Event: ``{"strategy": "ema_crossover", "grid": {"fast": [5, 10], "slow": [50, 100]},
    "top": 5, "sort_by": "sharpe"}``; a scheduled event without ``strategy`` optimises every
    strategy over a coarse grid. Candles: the bundled series (the feed's history on AWS is a
    follow-up; the event says which data was used).
    """
    from tradingbot.domain.backtest import run_grid
    from tradingbot.domain.candles import bundled_path, load_candles
    from tradingbot.domain.indicators import Indicators
    from tradingbot.domain.strategies import REGISTRY, StrategyError, get_strategy

    candles = load_candles(bundled_path())
    ind = Indicators(candles)
    names = [event["strategy"]] if event.get("strategy") else list(REGISTRY)
    top = int(event.get("top", 5))
    sort_by = str(event.get("sort_by", "sharpe"))
    results: dict[str, Any] = {}
    for name in names:
        try:
            strat = get_strategy(name)
        except StrategyError as exc:
            raise StageError(str(exc)) from None
        grid = event.get("grid") or {p.name: p.values()[:: max(1, len(p.values()) // 4)] for p in strat.params}
        combos = list(strat.grid(grid))[: int(event.get("max_combinations", 2000))]
        table = run_grid(candles, strat, combos, indicators=ind)
        if sort_by not in table.columns:
            raise StageError(f"sort_by {sort_by!r}: choose one of {', '.join(table.columns)}")
        best = table.sort_values(sort_by, ascending=sort_by == "max_drawdown").head(top)
        results[name] = {"combinations": len(combos), "best": json.loads(best.to_json(orient="records"))}
    return {"data": "bundled BTCUSDT 1h", "bars": len(candles), "sort_by": sort_by, "results": results}
