"""The Validate stage: quality rules and risk limits over the earlier stages' results, each with a
verdict and a reason (``tradingbot.domain.validation``), and the trade intent Execute acts on."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from tradingbot.adapters.cache import CacheUnavailable
from tradingbot.adapters.feed.store import latest_funding, latest_price
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import session_scope
from tradingbot.adapters.persistence.repositories import accounting as accounting_repo
from tradingbot.domain.timeframes import MarketSymbolError, unified_symbol
from tradingbot.domain.validation import RiskState, ValidationConfig, ValidationInput, validate
from tradingbot.pipeline import kill_switch
from tradingbot.pipeline.common import StageError, market_venue
from tradingbot.pipeline.contracts import PipelineState, TradeIntentOut, ValidationResult
from tradingbot.pipeline.runtime import Runtime
from tradingbot.pipeline.vote import tally

_NOT_RUN = {"model": "unavailable", "reason": "predict did not run"}


def risk_state(rt: Runtime, account_id: int, symbol: str) -> RiskState:
    """What the risk rules need to know about the account right now (one transaction)."""
    try:
        kill = kill_switch.state(lambda: session_scope(rt.engine()), rt.cache(), account_id)  # durable + Redis
    except CacheUnavailable:
        kill = "kill switch state unknown (Redis unreachable): refusing to trade blind"
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with session_scope(rt.engine()) as s:
        account = repo.account_by_id(s, account_id)
        if account is None:
            raise StageError(f"account {account_id} does not exist")
        open_positions = repo.open_positions(s, account_id)
        # the venue's own records, as the accounting sync stored them (pipeline/accounting.py)
        equity = accounting_repo.equity_peak_and_last(s, account_id)
        cursor = accounting_repo.cursor(s, account_id)
        return RiskState(
            kill_switch=kill,
            open_positions=len(open_positions),
            has_position_in_symbol=any(p.symbol == symbol for p in open_positions),
            realized_pnl_today=accounting_repo.net_pnl_since(s, account_id, today),
            max_position_usd=Decimal(account.max_position_usd),
            max_leverage=int(account.max_leverage),
            max_daily_loss_usd=Decimal(account.max_daily_loss_usd),
            max_open_positions=int(account.max_open_positions),
            max_drawdown_pct=Decimal(account.max_drawdown_pct),
            equity_peak=equity[0] if equity else None,
            equity_now=equity[1] if equity else None,
            accounting_synced_at=cursor.last_sync_at.isoformat(timespec="seconds") if cursor else None,
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
