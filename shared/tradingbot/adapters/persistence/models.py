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
    Double,
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
        # issue 15 accounting (migration 0004): peak-to-trough limit on the equity series, percent
        CheckConstraint("max_drawdown_pct > 0 AND max_drawdown_pct <= 100", name="max_drawdown_pct"),
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
    # issue 15 accounting (migration 0004): the max drawdown rule's limit, percent below the equity peak
    max_drawdown_pct: Mapped[Decimal] = mapped_column(server_default=text("20"))
    risk_per_trade_pct: Mapped[Decimal] = mapped_column(server_default=text("1"))
    # Position sizing (tradingbot.domain.positions): fixed notional, % of equity as margin, or
    # risk_per_trade_pct of equity lost if the stop is hit. Added by migration 0002.
    sizing_mode: Mapped[str] = mapped_column(String(16), server_default=text("'risk_per_trade'"))
    fixed_notional_usd: Mapped[Decimal] = mapped_column(server_default=text("100"))
    equity_pct: Mapped[Decimal] = mapped_column(server_default=text("10"))
    margin_mode: Mapped[str] = mapped_column(String(8), server_default=text("'isolated'"))
    # issue 15 (venue endpoints per account, migration 0004): {"rest": url, "ws": url}, each optional;
    # unset = the EXCHANGE_* defaults (tradingbot.settings.ExchangeSection), e.g. https://my.okx.com
    venue_urls: Mapped[dict[str, str] | None] = mapped_column(JSONB)
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
    # NULL = not known yet (Binance publishes the commission only in userTrades): never a made-up 0;
    # the accounting sync (pipeline/accounting.py) writes the venue's figure (issue 15, migration 0004)
    fee: Mapped[Decimal | None] = mapped_column(server_default=text("0"))
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
    # issue 18 (migration 0005): what was searched, how, on which data, and the walk-forward's summary;
    # a run is written once, finished, with its folds and candidates (tradingbot.pipeline.optimise)
    exchange: Mapped[str | None] = mapped_column(String(32))
    method: Mapped[str | None] = mapped_column(String(16))
    walk_forward: Mapped[dict[str, Any] | None]
    data_label: Mapped[str | None]
    bars: Mapped[int | None] = mapped_column(Integer)
    evaluations: Mapped[int | None] = mapped_column(Integer)
    summary: Mapped[dict[str, Any] | None]


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


# --- issue 17: operators ---

AUDIT_CHANNELS = ("api", "telegram", "cli")
AUDIT_OUTCOMES = ("ok", "refused", "error")


class Operator(Base):
    """A person who steers accounts. An identity (an operator token locally, a Cognito user's ``sub``
    on AWS, a Telegram chat) resolves to one operator, who sees and steers only the accounts it owns."""

    __tablename__ = "operators"

    id: Mapped[int] = _pk()
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # the Cognito user pool's ``sub`` claim (API Gateway's authorizer verified the JWT)
    cognito_sub: Mapped[str | None] = mapped_column(String(64), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[dt.datetime] = _now()


class OperatorToken(Base):
    """A bearer token for the operator API (``tradingbot operators token``): only its SHA-256 is
    stored; it stops working at ``expires_at`` or when revoked."""

    __tablename__ = "operator_tokens"

    id: Mapped[int] = _pk()
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    label: Mapped[str] = mapped_column(String(64), server_default=text("''"))
    created_at: Mapped[dt.datetime] = _now()
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]


class AccountOwner(Base):
    """Who owns an account: one operator per account (the primary key). An account nobody owns is
    steered by nobody through the API or Telegram (the CLI, on a machine with database access, still can)."""

    __tablename__ = "account_owners"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = _now()


class TelegramChat(Base):
    """A Telegram chat allowed to command: the chat id maps to one operator (only configured chats may command)."""

    __tablename__ = "telegram_chats"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = _now()


class OperatorAudit(Base):
    """Every operator command, accepted or refused, with who, where from, and why (never a token).
    ``telegram_update_id`` is unique: an update Telegram delivers twice is executed once."""

    __tablename__ = "operator_audit"
    __table_args__ = (
        CheckConstraint(_in("channel", AUDIT_CHANNELS), name="channel"),
        CheckConstraint(_in("outcome", AUDIT_OUTCOMES), name="outcome"),
        Index("ix_operator_audit_operator_id_at", "operator_id", "at"),
    )

    id: Mapped[int] = _pk()
    at: Mapped[dt.datetime] = _now()
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))  # "token:<id>", "cognito:<sub>", "chat:<id>", "anonymous"
    command: Mapped[str] = mapped_column(String(64))
    args: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None]
    telegram_update_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)


class OperatorConfirmation(Base):
    """A dangerous command waiting for its confirmation (``/close``): the chat must answer with the
    code before ``expires_at``; used once."""

    __tablename__ = "operator_confirmations"

    id: Mapped[int] = _pk()
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"))
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    code: Mapped[str] = mapped_column(String(16))
    command: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime] = _now()
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None]


# The operator API pages an account's decisions newest first by id (a keyset cursor): with the id in
# the key that is a backward index scan of (account_id, id), whatever the account's history size.
Index("ix_decisions_account_id_id", Decision.account_id, Decision.id)


# ---------------------------------------------------------------- issue 16: durability (re-drive, local executions)

LOCAL_EXECUTION_STATUSES = ("QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


class PipelineStart(Base):
    """The StartExecution outbox: written in the accepted alert's own transaction with the exact
    execution input, so a re-drive (TradingView's resend, the sweeper, a restart of ``serve``)
    starts the same execution by the same name and the same input (Step Functions treats that as
    the same request). ``started_at`` is set once StartExecution answered; ``attempts`` and
    ``last_error`` say what went wrong until then; ``note`` is the sweeper's reason when it did not
    re-drive."""

    __tablename__ = "pipeline_starts"
    __table_args__ = (Index("ix_pipeline_starts_started_at_created_at", "started_at", "created_at"),)

    id: Mapped[int] = _pk()
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), unique=True)
    execution_name: Mapped[str] = mapped_column(String(128), unique=True)
    input: Mapped[str]  # text, not jsonb: the byte-exact input StartExecution was (and will be) given
    created_at: Mapped[dt.datetime] = _now()
    started_at: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_attempt_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None]
    note: Mapped[str | None]


class LocalExecution(Base):
    """One execution of ``tradingbot serve``'s local Step Functions (tradingbot.entrypoints.local):
    durable, so an execution survives ``kill -9`` of the process that ran it; a worker holds it
    under a lease (``owner``, ``lease_until``) and another takes it over when the lease lapses."""

    __tablename__ = "local_executions"
    __table_args__ = (
        CheckConstraint(_in("status", LOCAL_EXECUTION_STATUSES), name="status"),
        UniqueConstraint("state_machine", "name"),
        Index("ix_local_executions_status_created_at", "status", "created_at"),
    )

    id: Mapped[int] = _pk()
    state_machine: Mapped[str] = mapped_column(String(256))
    name: Mapped[str] = mapped_column(String(128))
    input: Mapped[str]
    status: Mapped[str] = mapped_column(String(16), server_default=text("'QUEUED'"))
    owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None]
    runs: Mapped[int] = mapped_column(Integer, server_default=text("0"))  # times a worker took it up
    current_state: Mapped[str | None] = mapped_column(String(128))
    # after each top-level state: {"next": state, "data": its input}; a re-claimed execution resumes there
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = _now()
    stopped_at: Mapped[dt.datetime | None]
    output: Mapped[str | None]
    error: Mapped[str | None] = mapped_column(String(256))
    cause: Mapped[str | None]
    history: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))


# --- issue 16: ingress ---


class IngressRefusal(Base):
    """Refused webhook attempts, counted per minute, reason and source: never a row per request.

    A flood adds to ``count`` of one row; sources past the per-minute cap of a reason are folded into
    the source ``*other*``, so the rows per minute are bounded whatever the number of senders.
    """

    __tablename__ = "ingress_refusals"
    __table_args__ = (
        UniqueConstraint("minute", "reason", "source"),
        Index("ix_ingress_refusals_reason_minute", "reason", "minute"),
    )

    id: Mapped[int] = _pk()
    minute: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(64))  # the source IP as text, "unknown" or "*other*"
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    count: Mapped[int] = mapped_column(BigInteger)
    first_at: Mapped[dt.datetime] = _now()
    last_at: Mapped[dt.datetime] = _now()


class IngressRefusalSample(Base):
    """A bounded sample of refused bodies (at most a few per reason and hour, truncated, token
    masked): enough to see what a sender got wrong, never a copy of a flood."""

    __tablename__ = "ingress_refusal_samples"
    __table_args__ = (Index("ix_ingress_refusal_samples_reason_at", "reason", "at"),)

    id: Mapped[int] = _pk()
    at: Mapped[dt.datetime] = _now()
    reason: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(String(1024))
    body_bytes: Mapped[int] = mapped_column(Integer)  # the size that arrived, before truncation


# --- issue 15: accounting ---


class AccountTrade(Base):
    """One execution as the venue recorded it (Binance userTrades, OKX fills, the paper ledger), stored
    once per (account, symbol, venue trade id). ``fee`` > 0 = paid, in ``fee_currency``;
    ``realized_pnl`` is the venue's (Binance ``realizedPnl``, OKX ``fillPnl``), gross of fees."""

    __tablename__ = "account_trades"
    __table_args__ = (
        UniqueConstraint("account_id", "symbol", "venue_trade_id"),
        Index("ix_account_trades_account_id_traded_at", "account_id", "traded_at"),
        Index("ix_account_trades_account_id_exchange_order_id", "account_id", "exchange_order_id"),
        CheckConstraint(_in("side", ORDER_SIDES), name="side"),
        CheckConstraint("quantity > 0", name="quantity"),
    )

    id: Mapped[int] = _pk()
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    venue_trade_id: Mapped[str] = mapped_column(String(64))
    exchange_order_id: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    price: Mapped[Decimal]
    quantity: Mapped[Decimal]
    fee: Mapped[Decimal]
    fee_currency: Mapped[str] = mapped_column(String(16))
    realized_pnl: Mapped[Decimal]
    traded_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime] = _now()


class FundingPaymentRow(Base):
    """One funding settlement of a live or paper position, stored once per (account, venue id):
    Binance income ``tranId``, OKX bill ``billId``, paper "symbol@time". ``amount`` > 0 received."""

    __tablename__ = "funding_payments"
    __table_args__ = (
        UniqueConstraint("account_id", "payment_id"),
        Index("ix_funding_payments_account_id_paid_at", "account_id", "paid_at"),
    )

    id: Mapped[int] = _pk()
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    payment_id: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(16))
    paid_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime] = _now()


class EquitySnapshot(Base):
    """The account's equity (wallet + unrealised PnL, the venue's balance read) at one sync: the
    series the max drawdown rule measures peak-to-trough."""

    __tablename__ = "equity_snapshots"
    __table_args__ = (Index("ix_equity_snapshots_account_id_at", "account_id", "at"),)

    id: Mapped[int] = _pk()
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime]
    equity: Mapped[Decimal]
    free: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(16), server_default=text("'USDT'"))


class AccountingCursor(Base):
    """Per account: how far the venue's trades and funding have been read (the next sync re-reads
    an overlap before it), when the last sync ran and what went wrong in it, if anything."""

    __tablename__ = "accounting_cursors"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    synced_until: Mapped[dt.datetime]
    last_sync_at: Mapped[dt.datetime] = _now()
    last_error: Mapped[str | None]


# --- issue 18: optimisation ---

FOLD_STATUSES = ("ok", "no_trades_in_sample", "no_trades_out_of_sample")
PROMOTION_ACTIONS = ("promote", "manual", "rollback")


class OptimisationFold(Base):
    """One walk-forward fold of a run: its windows, the parameters chosen in sample and how they did
    out of sample (``status`` says when nothing was chosen or nothing traded, ``reason`` why)."""

    __tablename__ = "optimisation_folds"
    __table_args__ = (
        CheckConstraint(_in("status", FOLD_STATUSES), name="status"),
        UniqueConstraint("run_id", "fold"),
    )

    id: Mapped[int] = _pk()
    run_id: Mapped[int] = mapped_column(ForeignKey("optimization_runs.id", ondelete="CASCADE"))
    fold: Mapped[int] = mapped_column(Integer)
    in_sample_start: Mapped[dt.datetime]
    in_sample_end: Mapped[dt.datetime]
    out_of_sample_start: Mapped[dt.datetime]
    out_of_sample_end: Mapped[dt.datetime]
    params: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str]
    in_sample: Mapped[dict[str, Any] | None]
    out_of_sample: Mapped[dict[str, Any] | None]
    baseline_return: Mapped[float] = mapped_column(Double)
    buy_hold_return: Mapped[float] = mapped_column(Double)
    deflated_sharpe: Mapped[float | None] = mapped_column(Double)
    evaluations: Mapped[int] = mapped_column(Integer)


class OptimisationCandidate(Base):
    """One combination backtested on one in-sample window (``fold`` NULL: the latest window, whose
    best is the run's recommendation). The headline statistics are columns, for heatmaps and sorting."""

    __tablename__ = "optimisation_candidates"
    __table_args__ = (Index("ix_optimisation_candidates_run_id_fold", "run_id", "fold"),)

    id: Mapped[int] = _pk()
    run_id: Mapped[int] = mapped_column(ForeignKey("optimization_runs.id", ondelete="CASCADE"))
    fold: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict[str, Any]]
    total_return: Mapped[float] = mapped_column(Double)
    max_drawdown: Mapped[float] = mapped_column(Double)
    sharpe: Mapped[float] = mapped_column(Double)
    win_rate: Mapped[float] = mapped_column(Double)
    trades: Mapped[int] = mapped_column(Integer)


class ParameterPromotion(Base):
    """Every promotion decision, with its evidence: ``promoted`` false rows are the refusals and say
    why. ``action``: ``promote`` (from a run's out-of-sample evidence), ``manual`` (an operator's
    ``params promote``, still judged on a run) or ``rollback`` (back to the previous parameters)."""

    __tablename__ = "parameter_promotions"
    __table_args__ = (
        CheckConstraint(_in("action", PROMOTION_ACTIONS), name="action"),
        Index("ix_parameter_promotions_account_id_strategy", "account_id", "strategy", "symbol", "timeframe", "id"),
    )

    id: Mapped[int] = _pk()
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    strategy: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(8))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("optimization_runs.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(16))
    promoted: Mapped[bool] = mapped_column(Boolean)
    params: Mapped[dict[str, Any] | None]
    previous_params: Mapped[dict[str, Any] | None]
    reason: Mapped[str]
    evidence: Mapped[dict[str, Any]]
    created_at: Mapped[dt.datetime] = _now()


class LiveParameters(Base):
    """The parameters the Strategies stage and the win-rate rule use for one account, strategy,
    symbol and timeframe (no row: the strategy's defaults); ``promotion_id`` is the decision that set them."""

    __tablename__ = "live_parameters"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(8), primary_key=True)
    params: Mapped[dict[str, Any]]
    promotion_id: Mapped[int] = mapped_column(ForeignKey("parameter_promotions.id", ondelete="RESTRICT"))
    updated_at: Mapped[dt.datetime] = _now()


# ---------------------------------------------------------------- issue 15 fault matrix: a durable kill switch


class KillSwitch(Base):
    """An engaged kill switch, durably (Redis keeps nothing across a restart): ``scope`` "global"
    or "account:<id>"; no row = released. Redis's key is the fast path, re-seeded from here
    (tradingbot.pipeline.kill_switch)."""

    __tablename__ = "kill_switches"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str]
    engaged_at: Mapped[dt.datetime] = _now()


# ---------------------------------------------------------------- issue 17 round 3: keyset pages of orders and alerts

# The operator API pages an account's orders and alerts newest first by id, as its decisions
# (ix_decisions_account_id_id): the row-value keyset (account_id, id) < (account, cursor) is a bounded
# backward scan of these, instead of a walk of the primary key through other accounts' newer rows.
Index("ix_orders_account_id_id", Order.account_id, Order.id)
Index("ix_alerts_account_id_id", Alert.account_id, Alert.id)


TABLES = tuple(Base.metadata.sorted_tables)
