"""What the Validate stage's risk rules read about an account, in one statement.

The rules need the account's limits, its open positions, the equity series' peak and last point,
when the accounting sync last ran, today's net PnL and the durable kill switch. Read one query each
that was nine statements in two transactions, each statement three round trips with pg8000 (parse,
describe, execute): a fifth of an execution's CPU in `tradingbot serve`'s workers
(``benchmarks/profile_workers.py``). Here they are scalar subqueries of one ``SELECT`` on the
account's row, each on the same index as before; the answers are those of
:mod:`~tradingbot.adapters.persistence.repositories.accounting`'s ``equity_peak_and_last``,
``net_pnl_since`` and ``cursor``, :func:`~tradingbot.adapters.persistence.repositories.positions.open_positions`
and :func:`~tradingbot.adapters.persistence.repositories.kill_switches.kill_switch_reasons`
(``tests/integration/test_risk_snapshot.py`` checks that they agree).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import ScalarSelect, func, select
from sqlalchemy.orm import Session

from tradingbot.adapters.persistence.models import (
    Account,
    AccountingCursor,
    AccountTrade,
    EquitySnapshot,
    FundingPaymentRow,
    KillSwitch,
    Position,
)
from tradingbot.domain.accounting import SETTLEMENT

_ZERO = Decimal(0)


@dataclass(frozen=True)
class RiskSnapshot:
    """One account's risk inputs at one moment (one statement, so one snapshot of the database)."""

    max_position_usd: Decimal
    max_leverage: int
    max_daily_loss_usd: Decimal
    max_open_positions: int
    max_drawdown_pct: Decimal
    open_positions: int
    has_position_in_symbol: bool
    equity_peak: Decimal | None  # None: no equity snapshot yet
    equity_now: Decimal | None
    accounting_synced_at: dt.datetime | None  # None: never synced
    net_pnl_since: Decimal  # realised PnL - settlement-currency fees + funding since ``since``
    kill_switches: dict[str, str]  # engaged scope -> reason, among the scopes asked for


def _sum_since(column: object, *where: object) -> ScalarSelect[Decimal]:
    return select(func.coalesce(func.sum(column), 0)).where(*where).scalar_subquery()  # type: ignore[arg-type]


def risk_snapshot(
    session: Session, account_id: int, *, symbol: str, since: dt.datetime, kill_switch_scopes: Sequence[str]
) -> RiskSnapshot | None:
    """The risk inputs of ``account_id`` (None when no such account): positions open in any symbol and
    in ``symbol``, PnL since ``since``, the engaged kill switches among ``kill_switch_scopes``."""
    open_rows = (Position.account_id == account_id, Position.closed_at.is_(None))
    equity = EquitySnapshot.account_id == account_id
    pnl_trades = (AccountTrade.account_id == account_id, AccountTrade.traded_at >= since)
    stmt = select(
        Account.max_position_usd, Account.max_leverage, Account.max_daily_loss_usd, Account.max_open_positions,
        Account.max_drawdown_pct,
        select(func.count()).where(*open_rows).scalar_subquery().label("open_positions"),
        select(func.count()).where(*open_rows, Position.symbol == symbol).scalar_subquery().label("in_symbol"),
        select(func.max(EquitySnapshot.equity)).where(equity).scalar_subquery().label("equity_peak"),
        select(EquitySnapshot.equity).where(equity).order_by(EquitySnapshot.at.desc(), EquitySnapshot.id.desc())
        .limit(1).scalar_subquery().label("equity_now"),
        select(AccountingCursor.last_sync_at).where(AccountingCursor.account_id == account_id)
        .scalar_subquery().label("synced_at"),
        _sum_since(AccountTrade.realized_pnl, *pnl_trades).label("realized"),
        _sum_since(AccountTrade.fee, *pnl_trades, AccountTrade.fee_currency == SETTLEMENT).label("fees"),
        _sum_since(FundingPaymentRow.amount, FundingPaymentRow.account_id == account_id,
                   FundingPaymentRow.paid_at >= since, FundingPaymentRow.currency == SETTLEMENT).label("funding"),
        select(func.json_object_agg(KillSwitch.scope, KillSwitch.reason))
        .where(KillSwitch.scope.in_(list(kill_switch_scopes))).scalar_subquery().label("kill_switches"),
    ).where(Account.id == account_id)  # fmt: skip
    row = session.execute(stmt).first()
    if row is None:
        return None
    return RiskSnapshot(
        max_position_usd=Decimal(row.max_position_usd), max_leverage=int(row.max_leverage),
        max_daily_loss_usd=Decimal(row.max_daily_loss_usd), max_open_positions=int(row.max_open_positions),
        max_drawdown_pct=Decimal(row.max_drawdown_pct), open_positions=int(row.open_positions),
        has_position_in_symbol=int(row.in_symbol) > 0,
        equity_peak=None if row.equity_now is None else Decimal(row.equity_peak or 0),
        equity_now=None if row.equity_now is None else Decimal(row.equity_now),
        accounting_synced_at=row.synced_at,
        net_pnl_since=Decimal(row.realized or 0) - Decimal(row.fees or 0) + Decimal(row.funding or 0),
        kill_switches=dict(row.kill_switches or {}),
    )  # fmt: skip
