"""The accounting sync: the venue's own records of fees, realised PnL and funding, and the account's
equity, pulled into PostgreSQL so that the risk limits (max daily loss, max drawdown) measure what
the venue booked, not an estimate.

One pass for one account (:func:`sync_account`):

1. read the cursor (``accounting_cursors``): the window is [cursor - overlap, now]; a first pass
   starts at the account's creation (paper) or ``first_lookback_days`` back (live venues);
2. from the venue (:class:`~tradingbot.domain.accounting.AccountLedger`): the trades of every symbol
   the account traded through us (Binance ``userTrades`` per symbol, OKX ``fills-history``, the
   paper ledger), its funding payments (Binance income ``FUNDING_FEE``, OKX bills ``type=8``, paper
   ``paper_funding_payments``) and its balance (the equity series' next point);
3. in one transaction, under the cursor's row lock: store trades and payments once each (by the
   venue's ids), fill in realised PnL where the venue publishes none (the paper ledger: replayed by
   :func:`~tradingbot.domain.accounting.realize`), write the venue's fees onto our ``fills`` (a
   Binance fill whose commission was not readable yet is stored with fee NULL until here),
   write ``positions.realized_pnl`` = the position's trades' realised PnL - their fees + the funding
   paid or received while it was open, append the equity snapshot, and advance the cursor (only when
   every read succeeded: a failed read is retried by the next pass, over the same window).

Who runs it: every reconcile pass (``pipeline/reconcile.py``: ``tradingbot reconcile``, the
scheduled passes) and the Execute stage right after each execution (:func:`sync_after_execution`,
best effort within the Lambda's remaining time). Nothing here sends an order.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from tradingbot import errors
from tradingbot.adapters import metrics as business_metrics
from tradingbot.adapters.persistence import repositories as repo
from tradingbot.adapters.persistence.db import SessionFactory
from tradingbot.adapters.persistence.repositories import accounting as acc
from tradingbot.domain.accounting import (
    AccountLedger,
    FundingPayment,
    VenueTrade,
    episode_for,
    episodes,
    funding_between,
    ms,
    realize,
)
from tradingbot.domain.exchange import Exchange
from tradingbot.settings import ExchangeSection, get_settings

log = logging.getLogger(__name__)

#: every call to the venue must fit in what is left; a ccxt call is bounded by its own timeout
DEFAULT_CALL_COST_S = 5.0


@dataclass(frozen=True)
class SyncPolicy:
    """How far a pass reads. ``overlap_s``: re-read before the cursor (trade lists lag);
    ``first_lookback_days``: a live account's first window; ``symbols_lookback_days``: orders and
    positions this recent name the symbols whose trades are read."""

    overlap_s: float = 600.0
    first_lookback_days: float = 7.0
    symbols_lookback_days: float = 90.0
    call_cost_s: float = DEFAULT_CALL_COST_S

    @classmethod
    def from_settings(cls, section: ExchangeSection | None = None) -> SyncPolicy:
        """``EXCHANGE_ACCOUNTING_OVERLAP_S`` / ``EXCHANGE_ACCOUNTING_FIRST_LOOKBACK_DAYS`` (the
        process's settings when ``section`` is None)."""
        cfg = section or get_settings().exchange
        return cls(overlap_s=cfg.accounting_overlap_s, first_lookback_days=cfg.accounting_first_lookback_days)


@dataclass
class AccountingReport:
    account_id: int
    window: tuple[str, str] | None = None
    symbols: list[str] = field(default_factory=list)
    trades_new: int = 0
    funding_new: int = 0
    fills_priced: int = 0
    fills_fee_unknown: int = 0
    positions_priced: int = 0
    equity: str | None = None
    cursor_advanced: bool = False
    skipped: str | None = None
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sync_account(
    session_factory: SessionFactory,
    exchange: Exchange,
    account_id: int,
    *,
    policy: SyncPolicy | None = None,
    time_left_s: Callable[[], float] | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> AccountingReport:
    """One accounting pass for one account (see the module docstring). Venue errors do not raise:
    they are in ``report.errors`` (and ``accounting_cursors.last_error``), the cursor stays, and the
    next pass reads the same window again. ``time_left_s``: each venue call starts only when
    ``policy.call_cost_s`` still fits (the Execute stage's Lambda time)."""
    policy = policy or SyncPolicy.from_settings()
    report = AccountingReport(account_id)
    if not isinstance(exchange, AccountLedger):
        report.skipped = f"{exchange.name} publishes no trade or funding ledger"
        return report
    started = now()
    with session_factory() as s:
        account = repo.account_by_id(s, account_id)
        if account is None:
            report.skipped = f"account {account_id} does not exist"
            return report
        stored = acc.cursor(s, account_id)
        if stored is not None:
            start = stored.synced_until - dt.timedelta(seconds=policy.overlap_s)
        elif account.exchange == "paper":
            start = account.created_at - dt.timedelta(seconds=1)
        else:
            start = max(account.created_at, started - dt.timedelta(days=policy.first_lookback_days))
        symbols = acc.traded_symbols(
            s, account_id, since=min(start, started - dt.timedelta(days=policy.symbols_lookback_days))
        )
    since_ms, until_ms = ms(start), ms(started)
    report.window, report.symbols = (start.isoformat(), started.isoformat()), symbols

    def out_of_time(what: str) -> bool:
        left = time_left_s() if time_left_s is not None else None
        if left is not None and left < policy.call_cost_s:
            report.errors.append(f"out of time: {what}: not started, {left:.1f} s left")
            return True
        return False

    trades: dict[str, list[VenueTrade]] = {}
    funding: list[FundingPayment] = []
    balance = None
    stopped = False
    for symbol in symbols:
        if stopped := out_of_time(f"trades {symbol}"):
            break
        try:
            trades[symbol] = exchange.fetch_account_trades(symbol, since_ms=since_ms, until_ms=until_ms)
        except errors.TradingBotError as exc:
            report.errors.append(f"trades {symbol}: {exc}")
    if not stopped and not (stopped := out_of_time("funding")):
        try:
            funding = exchange.fetch_funding_payments(since_ms=since_ms, until_ms=until_ms)
        except errors.TradingBotError as exc:
            report.errors.append(f"funding: {exc}")
    if not stopped and not out_of_time("balance"):
        try:
            balance = exchange.fetch_balance()
        except errors.TradingBotError as exc:
            report.errors.append(f"balance: {exc}")
    _store(session_factory, report, trades, funding, balance, started, start, symbols)
    return report


def _store(
    session_factory: SessionFactory,
    report: AccountingReport,
    trades: dict[str, list[VenueTrade]],
    funding: list[FundingPayment],
    balance: Any,
    started: dt.datetime,
    window_start: dt.datetime,
    symbols: list[str],
) -> None:
    account_id = report.account_id
    complete = not report.errors and set(trades) == set(symbols)
    with session_factory() as s:
        cursor = acc.lock_cursor(s, account_id, start=window_start)
        for symbol, fetched in trades.items():
            report.trades_new += acc.record_trades(
                s, account_id, _priced(acc.stored_trades(s, account_id, symbol), fetched)
            )
        report.funding_new = acc.record_funding(s, account_id, funding)
        report.fills_priced = acc.apply_fees_to_fills(s, account_id)
        report.fills_fee_unknown = acc.fills_with_unknown_fee(s, account_id)
        report.positions_priced = _price_positions(s, account_id, since=started - dt.timedelta(days=2))
        if balance is not None:
            acc.record_equity(s, account_id, at=started, equity=balance.total, free=balance.free,
                              currency=balance.currency)  # fmt: skip
            report.equity = str(balance.total)
        if complete and started > cursor.synced_until:
            cursor.synced_until = started
            report.cursor_advanced = True
        cursor.last_sync_at = started
        cursor.last_error = "; ".join(report.errors)[:2000] or None


def _priced(stored: list[VenueTrade], fetched: list[VenueTrade]) -> list[VenueTrade]:
    """The fetched trades not stored yet, with a realised PnL: the venue's, or (paper ledger) the
    replay of every trade of the symbol, stored ones first in time order."""
    known = {t.trade_id for t in stored}
    new = [t for t in fetched if t.trade_id not in known]
    if not new or all(t.realized_pnl is not None for t in new):
        return new
    merged = sorted([*stored, *new], key=lambda t: (t.ts_ms, t.trade_id.zfill(20)))
    wanted = {t.trade_id for t in new}
    return [t for t in realize(merged) if t.trade_id in wanted]


def _price_positions(session: Any, account_id: int, *, since: dt.datetime) -> int:
    """``positions.realized_pnl`` = realised PnL - fees of the position's trades + the funding while
    it was open, for the positions open or closed since ``since``; returns how many changed."""
    changed = 0
    cache: dict[str, tuple[list[Any], list[FundingPayment]]] = {}
    for pos in acc.positions_to_price(session, account_id, since=since):
        if pos.symbol not in cache:
            stored = acc.stored_trades(session, account_id, pos.symbol)
            cache[pos.symbol] = (
                episodes(stored) if stored else [],
                acc.stored_funding(session, account_id, pos.symbol),
            )
        found, payments = cache[pos.symbol]
        episode = episode_for(found, pos.side, ms(pos.opened_at))
        if episode is None:
            continue
        pnl = (
            episode.realized_pnl
            - episode.fees
            + funding_between(payments, pos.symbol, episode.start_ms, episode.end_ms)
        )
        if Decimal(pos.realized_pnl) != pnl:
            business_metrics.realized_pnl(pnl - Decimal(pos.realized_pnl))  # issue 17: RealizedPnlUsd (EMF)
            pos.realized_pnl = pnl
            changed += 1
    session.flush()
    return changed


def sync_after_execution(
    session_factory: SessionFactory,
    exchange: Exchange,
    account_id: int,
    *,
    time_left_s: Callable[[], float],
    reserve_s: float,
    policy: SyncPolicy | None = None,
) -> AccountingReport | None:
    """The Execute stage's pass: best effort, inside the Lambda's remaining time less ``reserve_s``;
    never raises (a failure is logged and the next reconcile pass repeats the window)."""
    try:
        return sync_account(
            session_factory, exchange, account_id, policy=policy, time_left_s=lambda: time_left_s() - reserve_s
        )
    except Exception as exc:
        log.warning("accounting sync after execution failed for account %s: %s", account_id, type(exc).__name__)
        return None


def monotonic_time_left(budget_s: float) -> Callable[[], float]:
    """A ``time_left_s`` that counts ``budget_s`` down from now (when no Lambda context is at hand)."""
    end = time.monotonic() + budget_s
    return lambda: end - time.monotonic()
