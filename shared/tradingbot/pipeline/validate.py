"""The Validate stage: quality rules and risk limits over the earlier stages' results, each with a
verdict and a reason (``tradingbot.domain.validation``), and the trade intent Execute acts on."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from tradingbot.adapters.cache import CacheUnavailable
from tradingbot.adapters.feed.store import latest_funding, latest_price
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.repositories import risk as risk_repo
from tradingbot.domain.timeframes import MarketSymbolError, unified_symbol
from tradingbot.domain.validation import RiskState, ValidationConfig, ValidationInput, validate
from tradingbot.pipeline import kill_switch
from tradingbot.pipeline.common import StageError, market_venue
from tradingbot.pipeline.contracts import PipelineState, TradeIntentOut, ValidationResult
from tradingbot.pipeline.runtime import Runtime
from tradingbot.pipeline.vote import tally

_NOT_RUN = {"model": "unavailable", "reason": "predict did not run"}


def risk_state(rt: Runtime, account_id: int, ticker: str) -> RiskState:
    """What the risk rules need to know about the account right now, for an alert on ``ticker``
    (TradingView's ``BTCUSDT``; positions are stored under the venue's unified ``BTC/USDT:USDT``):
    Redis's kill switch, then one statement for the rest (``repositories.risk``)."""
    try:
        symbol = unified_symbol(ticker)
    except MarketSymbolError:
        symbol = ticker  # no position can be held in it (the symbol rule refuses such an alert)
    try:
        fast: str | None = rt.cache().kill_switch(account_id)  # the durable switch is read below
        cache_down = None
    except CacheUnavailable:
        fast, cache_down = None, "kill switch state unknown (Redis unreachable): refusing to trade blind"
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with session_scope(rt.engine()) as s:
        # the venue's own PnL and equity records, as the accounting sync stored them (pipeline/accounting.py)
        snap = risk_repo.risk_snapshot(s, account_id, symbol=symbol, since=today,
                                       kill_switch_scopes=kill_switch.scopes_of(account_id))  # fmt: skip
    if snap is None:
        raise StageError(f"account {account_id} does not exist")
    kill = cache_down or fast or kill_switch.from_durable(rt.cache(), account_id, snap.kill_switches)
    synced = snap.accounting_synced_at
    return RiskState(
        kill_switch=kill,
        open_positions=snap.open_positions,
        has_position_in_symbol=snap.has_position_in_symbol,
        realized_pnl_today=snap.net_pnl_since,
        max_position_usd=snap.max_position_usd,
        max_leverage=snap.max_leverage,
        max_daily_loss_usd=snap.max_daily_loss_usd,
        max_open_positions=snap.max_open_positions,
        max_drawdown_pct=snap.max_drawdown_pct,
        equity_peak=snap.equity_peak,
        equity_now=snap.equity_now,
        accounting_synced_at=synced.isoformat(timespec="seconds") if synced else None,
    )


def live_price(rt: Runtime, account_id: int, ticker: str) -> tuple[Decimal | None, str]:
    """The feed's last traded price (``tb:px``), else its mark price (``tb:funding``), when fresh;
    with a label naming venue and kind for the rule's reason."""
    venue = market_venue(rt, account_id)
    try:
        symbol = unified_symbol(ticker)
    except MarketSymbolError:
        return None, f"{venue} (no USDT perpetual named {ticker})"
    max_age = rt.settings.live_price_max_age_s
    now_ms = int(rt.clock().timestamp() * 1000)
    cache = rt.cache()
    quote = latest_price(cache, venue, symbol, max_age_s=max_age, now_ms=now_ms)
    if quote is not None:
        return quote.price, f"{venue} last price"
    funding = latest_funding(cache, venue, symbol, max_age_s=max_age, now_ms=now_ms)
    if funding is not None and funding.mark is not None:
        return funding.mark, f"{venue} mark price"
    return None, f"{venue}'s feed (no price younger than {max_age:g} s)"


def validate_stage(rt: Runtime, state: PipelineState) -> ValidationResult:
    alert = state.alert
    s = rt.settings
    direction = alert.direction()
    price = alert.price
    sign = Decimal(1) if direction == "long" else Decimal(-1)
    stop = alert.stop_loss or price * (1 - sign * Decimal(str(s.default_stop_loss_pct)) / 100)
    target = alert.take_profit or price * (1 + sign * Decimal(str(s.default_take_profit_pct)) / 100)
    ensemble = tally(state.ballots or [])
    market_price, price_source = live_price(rt, state.account_id, alert.symbol)
    v = ValidationInput(
        direction=direction, symbol=alert.symbol, price=price, quantity=alert.quantity,
        leverage=alert.leverage or 1, stop_loss=stop, take_profit=target,
        predict=state.predict.model_dump() if state.predict is not None else dict(_NOT_RUN),
        ensemble=ensemble.model_dump(),
        strategy=state.strategies.alert_strategy.model_dump() if state.strategies is not None else {},
        live_price=market_price, live_price_source=price_source,
    )  # fmt: skip
    cfg = ValidationConfig(
        symbols=s.symbols(), min_ai_confidence=s.min_ai_confidence, min_win_rate=s.min_win_rate,
        min_reward_risk=s.min_reward_risk, when_model_unavailable=s.when_model_unavailable,
        when_ai_unavailable=s.when_ai_unavailable, max_price_deviation_pct=float(s.max_price_deviation_pct),
    )  # fmt: skip
    report = validate(v, risk_state(rt, state.account_id, alert.symbol), cfg)
    closing = direction == "flat"
    intent = TradeIntentOut(
        direction=direction, symbol=alert.symbol, price=price, stop_loss=None if closing else stop,
        take_profit=None if closing else target, quantity=alert.quantity, leverage=alert.leverage or 1,
    )  # fmt: skip
    return ValidationResult.model_validate(report.to_dict() | {"ensemble": ensemble, "intent": intent})
