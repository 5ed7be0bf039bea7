"""Typed SQLAlchemy 2 ORM for the product's memory.

Conventions (they matter for the migrations and for the queries the product makes):

* Every table has a ``bigint`` identity primary key; rows are referenced by it, never by name.
* Timestamps are ``timestamptz`` set by the server (``now()``), so clocks on Lambdas never disagree.
* Money and quantities are ``numeric(38, 18)`` mapped to :class:`~decimal.Decimal`: exchange
  precision is applied by the exchange adapter, the database must never round.
* Free-form stage outputs are ``jsonb`` (queryable, compact); anything the product filters or
  sorts on is a real column with an index named below.
* Enumerations are ``text`` + ``CHECK`` constraints rather than PostgreSQL enum types: adding a
  value is then a one-line migration that does not need ``ALTER TYPE`` outside a transaction.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names: domain errors are recognised by them, and Alembic can drop them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

EXCHANGES = ("paper", "binanceusdm", "okx")
ALERT_STATUSES = ("received", "accepted", "rejected", "processed", "failed")
FINAL_ACTIONS = ("long", "short", "close", "hold", "rejected", "error")
ORDER_SIDES = ("buy", "sell")
ORDER_TYPES = ("market", "limit", "stop_market", "take_profit_market")
ORDER_STATUSES = ("pending", "submitted", "open", "partially_filled", "filled", "canceled", "rejected", "failed")
POSITION_SIDES = ("long", "short")
RUN_STATUSES = ("running", "succeeded", "failed")
SIZING_MODES = ("fixed_notional", "pct_equity", "risk_per_trade")
MARGIN_MODES = ("isolated", "cross")
EXECUTION_STATUSES = ("filled", "partially_filled", "rejected", "no_op", "pending")

Money = Numeric(38, 18, asdecimal=True)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def _now() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        dict[str, Any]: JSONB,
        Decimal: Money,
        dt.datetime: DateTime(timezone=True),
        str: Text,
    }


def _pk() -> Mapped[int]:
    return mapped_column(BigInteger, Identity(always=False), primary_key=True)


class Account(Base):
    """A trading account on one exchange. Risk limits are columns: the validator reads them on every
    decision, and a typed column is checked by the database, a JSON blob is not."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint(_in("exchange", EXCHANGES), name="exchange"),
        CheckConstraint("max_leverage BETWEEN 1 AND 125", name="max_leverage"),
        CheckConstraint("max_position_usd > 0", name="max_position_usd"),
        CheckConstraint("max_daily_loss_usd > 0", name="max_daily_loss_usd"),
        CheckConstraint("max_open_positions >= 0", name="max_open_positions"),
        CheckConstraint("risk_per_trade_pct > 0 AND risk_per_trade_pct <= 100", name="risk_per_trade_pct"),
        CheckConstraint(_in("sizing_mode", SIZING_MODES), name="sizing_mode"),
        CheckConstraint(_in("margin_mode", MARGIN_MODES), name="margin_mode"),
        CheckConstraint("fixed_notional_usd > 0", name="fixed_notional_usd"),
        CheckConstraint("equity_pct > 0 AND equity_pct <= 100", name="equity_pct"),
    )

    id: Mapped[int] = _pk()
    name: Mapped[str] = mapped_column(String(64), unique=True)
    exchange: Mapped[str] = mapped_column(String(32))
    testnet: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # sha256 of the webhook token (32 bytes); unique so the webhook finds the account in one lookup.
    webhook_token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    token_rotated_at: Mapped[dt.datetime] = _now()
    max_position_usd: Mapped[Decimal] = mapped_column(server_default=text("1000"))
    max_leverage: Mapped[int] = mapped_column(Integer, server_default=text("3"))
    max_daily_loss_usd: Mapped[Decimal] = mapped_column(server_default=text("100"))
    max_open_positions: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    risk_per_trade_pct: Mapped[Decimal] = mapped_column(server_default=text("1"))
    # Position sizing (tradingbot.domain.positions): fixed notional, % of equity as margin, or
    # risk_per_trade_pct of equity lost if the stop is hit. Added by migration 0002.
    sizing_mode: Mapped[str] = mapped_column(String(16), server_default=text("'risk_per_trade'"))
    fixed_notional_usd: Mapped[Decimal] = mapped_column(server_default=text("100"))
    equity_pct: Mapped[Decimal] = mapped_column(server_default=text("10"))
    margin_mode: Mapped[str] = mapped_column(String(8), server_default=text("'isolated'"))
    created_at: Mapped[dt.datetime] = _now()

    credentials: Mapped[ApiCredential | None] = relationship(back_populates="account", uselist=False)

    def __repr__(self) -> str:  # never the token hash
        mode = "testnet" if self.testnet else "live"
        return f"Account(id={self.id}, name={self.name!r}, exchange={self.exchange!r}, {mode})"


class ApiCredential(Base):
    """Exchange API key, secret and passphrase as one AES-256-GCM envelope (see tradingbot.adapters.crypto).
    ``kek_id`` says which key-encryption key wrapped the data key, so rotation can find stale rows;
    ``api_key_hint`` is the masked key shown by ``accounts list``."""

    __tablename__ = "api_credentials"

    id: Mapped[int] = _pk()
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), unique=True)
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    kek_id: Mapped[str] = mapped_column(String(32), index=True)
    api_key_hint: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _now()

    account: Mapped[Account] = relationship(back_populates="credentials")

    def __repr__(self) -> str:  # the envelope is ciphertext, but it is still nobody's business
        return f"ApiCredential(account_id={self.account_id}, api_key={self.api_key_hint!r}, kek={self.kek_id})"


class Alert(Base):
    """Every webhook received, accepted or not: the raw body is evidence when a trade is disputed."""

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(_in("status", ALERT_STATUSES), name="status"),
        Index("ix_alerts_status_received_at", "status", "received_at"),
        Index("ix_alerts_account_id_received_at", "account_id", "received_at"),
    )

    id: Mapped[int] = _pk()
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    raw_body: Mapped[str]
    source_ip: Mapped[str | None] = mapped_column(INET)
    received_at: Mapped[dt.datetime] = _now()
    status: Mapped[str] = mapped_column(String(16), server_default=text("'received'"))
    reason: Mapped[str | None]


class Decision(Base):
    """One pipeline execution: what went in, what each stage said, and what was decided."""

    __tablename__ = "decisions"
    __table_args__ = (
        CheckConstraint(_in("final_action", FINAL_ACTIONS), name="final_action"),
        Index("ix_decisions_account_id_started_at", "account_id", "started_at"),
    )

    id: Mapped[int] = _pk()
    # Step Functions execution name (= the alert's idempotency key): a replayed execution finds its row.
    execution_name: Mapped[str] = mapped_column(String(128), unique=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(32))
    inputs: Mapped[dict[str, Any]]
    stages: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    final_action: Mapped[str | None] = mapped_column(String(16))
    rejection_reason: Mapped[str | None]
    started_at: Mapped[dt.datetime] = _now()
    finished_at: Mapped[dt.datetime | None]


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(_in("side", ORDER_SIDES), name="side"),
        CheckConstraint(_in("type", ORDER_TYPES), name="type"),
        CheckConstraint(_in("status", ORDER_STATUSES), name="status"),
        CheckConstraint("quantity > 0", name="quantity"),
        # "an account's last N orders" is the dashboard's and the risk check's query; with id in the
        # key the ORDER BY created_at DESC, id DESC is a backward index scan, no sort.
        Index("ix_orders_account_id_created_at", "account_id", "created_at", "id"),
        # the reconciler polls what is still live on the exchange
        Index(
            "ix_orders_open",
            "account_id",
            "status",
            postgresql_where=text("status IN ('pending', 'submitted', 'open', 'partially_filled')"),
        ),
        UniqueConstraint("account_id", "exchange_order_id"),
    )

    id: Mapped[int] = _pk()
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id", ondelete="SET NULL"), index=True)
    # Sent to the exchange as clientOrderId / clOrdId: a retried submit cannot create a second order.
    client_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    exchange_order_id: Mapped[str | None] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(24))
    quantity: Mapped[Decimal]
    price: Mapped[Decimal | None]
    reduce_only: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    status: Mapped[str] = mapped_column(String(24), server_default=text("'pending'"))
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _now()

    events: Mapped[list[OrderEvent]] = relationship(back_populates="order", order_by="OrderEvent.id")


class OrderEvent(Base):
    """Status history of an order: one row per transition, never updated."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order_id_at", "order_id", "at"),)

    id: Mapped[int] = _pk()
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    at: Mapped[dt.datetime] = _now()

    order: Mapped[Order] = relationship(back_populates="events")


class Fill(Base):
    __tablename__ = "fills"
    __table_args__ = (
        UniqueConstraint("order_id", "exchange_fill_id"),
        CheckConstraint("quantity > 0", name="quantity"),
    )

    id: Mapped[int] = _pk()
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    exchange_fill_id: Mapped[str] = mapped_column(String(64))
    price: Mapped[Decimal]
    quantity: Mapped[Decimal]
    fee: Mapped[Decimal] = mapped_column(server_default=text("0"))
    fee_currency: Mapped[str] = mapped_column(String(16), server_default=text("'USDT'"))
    filled_at: Mapped[dt.datetime] = _now()


class Position(Base):
    __tablename__ = "positions"
    __table_args__ = (
        CheckConstraint(_in("side", POSITION_SIDES), name="side"),
        # at most one open position per account and symbol (one-way mode on both exchanges)
        Index(
            "uq_positions_open_account_symbol",
            "account_id",
            "symbol",
            unique=True,
            postgresql_where=text("closed_at IS NULL"),
        ),
    )

    id: Mapped[int] = _pk()
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal]
    entry_price: Mapped[Decimal]
    leverage: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    realized_pnl: Mapped[Decimal] = mapped_column(server_default=text("0"))
    opened_at: Mapped[dt.datetime] = _now()
    closed_at: Mapped[dt.datetime | None]


class OptimizationRun(Base):
    __tablename__ = "optimization_runs"
    __table_args__ = (
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        Index("ix_optimization_runs_strategy_started_at", "strategy", "started_at"),
    )

    id: Mapped[int] = _pk()
    strategy: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(8))
    search_space: Mapped[dict[str, Any]]
    objective: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'running'"))
    best_params: Mapped[dict[str, Any] | None]
    best_score: Mapped[float | None]
    started_at: Mapped[dt.datetime] = _now()
    finished_at: Mapped[dt.datetime | None]


class BacktestRun(Base):
    __tablename__ = "backtest_runs"
    __table_args__ = (
        CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        Index("ix_backtest_runs_strategy_started_at", "strategy", "started_at"),
    )

    id: Mapped[int] = _pk()
    optimization_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("optimization_runs.id", ondelete="CASCADE"), index=True
    )
    strategy: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(8))
    params: Mapped[dict[str, Any]]
    data_from: Mapped[dt.datetime | None]
    data_to: Mapped[dt.datetime | None]
    metrics: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(16), server_default=text("'running'"))
    started_at: Mapped[dt.datetime] = _now()
    finished_at: Mapped[dt.datetime | None]


class ModelVersion(Base):
    """An exported ONNX model; the predictor loads the one active version per model name."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        Index("uq_model_versions_active_name", "name", unique=True, postgresql_where=text("is_active")),
    )

    id: Mapped[int] = _pk()
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    artifact_uri: Mapped[str]
    sha256: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[dt.datetime] = _now()


class Execution(Base):
    """One Execute-stage outcome per (account, decision): what was done or why nothing was, so a
    rejection's reason is stored even when no order row exists (unknown symbol, kill switch ...)."""

    __tablename__ = "executions"
    __table_args__ = (
        CheckConstraint(_in("status", EXECUTION_STATUSES), name="status"),
        UniqueConstraint("account_id", "decision_key"),
    )

    id: Mapped[int] = _pk()
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    decision_key: Mapped[str] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None]
    report: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _now()


class PaperWallet(Base):
    """The paper exchange's USDT wallet per account (realised PnL, fees and funding land here)."""

    __tablename__ = "paper_wallets"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    balance: Mapped[Decimal]
    updated_at: Mapped[dt.datetime] = _now()


class PaperSymbolSetting(Base):
    __tablename__ = "paper_symbol_settings"
    __table_args__ = (CheckConstraint(_in("margin_mode", MARGIN_MODES), name="margin_mode"),)

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    leverage: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    margin_mode: Mapped[str] = mapped_column(String(8), server_default=text("'isolated'"))


class PaperPosition(Base):
    """A paper position in one-way mode: one row per (account, symbol); quantity 0 = flat."""

    __tablename__ = "paper_positions"
    __table_args__ = (CheckConstraint(_in("side", POSITION_SIDES), name="side"),)

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    side: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal]
    entry_price: Mapped[Decimal]
    leverage: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    funding_paid: Mapped[Decimal] = mapped_column(server_default=text("0"))
    updated_at: Mapped[dt.datetime] = _now()


class PaperOrder(Base):
    """The paper exchange's order book: what ccxt would return from the venue."""

    __tablename__ = "paper_orders"
    __table_args__ = (
        CheckConstraint(_in("side", ORDER_SIDES), name="side"),
        CheckConstraint(_in("type", ORDER_TYPES), name="type"),
        UniqueConstraint("account_id", "client_order_id"),
        Index("ix_paper_orders_live", "account_id", "symbol", postgresql_where=text("status = 'open'")),
    )

    id: Mapped[int] = _pk()
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    client_order_id: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(24))
    quantity: Mapped[Decimal]
    price: Mapped[Decimal | None]
    trigger_price: Mapped[Decimal | None]
    reduce_only: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    status: Mapped[str] = mapped_column(String(24))
    filled: Mapped[Decimal] = mapped_column(server_default=text("0"))
    average_price: Mapped[Decimal | None]
    fee: Mapped[Decimal] = mapped_column(server_default=text("0"))
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _now()


class PaperFundingPayment(Base):
    """One funding settlement of one paper position: the primary key (account, symbol, funding time)
    is what makes it happen exactly once, whichever matcher (or restart) gets there first.
    ``amount`` > 0: the account paid; < 0: it received."""

    __tablename__ = "paper_funding_payments"
    __table_args__ = (CheckConstraint(_in("side", POSITION_SIDES), name="side"),)

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    funding_time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    side: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal]
    mark_price: Mapped[Decimal]
    rate: Mapped[Decimal]
    amount: Mapped[Decimal]
    created_at: Mapped[dt.datetime] = _now()


TABLES = tuple(Base.metadata.sorted_tables)
