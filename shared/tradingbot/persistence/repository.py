"""Repository functions: the only SQL the product runs. Each takes a Session inside a transaction
(``session_scope``) and never commits itself, so a caller can group alert + decision + order into
one atomic unit.

Uniqueness is enforced with ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, not by catching
IntegrityError: the statement is race-free across processes, costs one round trip, and does not
abort the caller's transaction, so a duplicate becomes a clear domain error (or an "already
recorded" answer) while everything else in the transaction stays usable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from tradingbot.crypto import EnvelopeCipher, ExchangeCredentials, reencrypt_all
from tradingbot.persistence.errors import (
    DuplicateAccountName,
    DuplicateClientOrderId,
    InvalidLimits,
    InvalidOrderTransition,
    UnknownAccount,
    UnknownExchange,
)
from tradingbot.persistence.models import (
    ALERT_STATUSES,
    EXCHANGES,
    Account,
    Alert,
    ApiCredential,
    Decision,
    Fill,
    Order,
    OrderEvent,
)

TOKEN_PREFIX = "tbwh_"  # lets secret scanners (and people) recognise a leaked webhook token

# Which status an order may move to from each status; terminal states have no way out.
ORDER_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "pending": frozenset({"submitted", "rejected", "failed"}),
    "submitted": frozenset({"open", "partially_filled", "filled", "canceled", "rejected", "failed"}),
    "open": frozenset({"partially_filled", "filled", "canceled"}),
    "partially_filled": frozenset({"partially_filled", "filled", "canceled"}),
    "filled": frozenset(),
    "canceled": frozenset(),
    "rejected": frozenset(),
    "failed": frozenset(),
}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ------------------------------------------------------------------ accounts and tokens


def new_webhook_token() -> str:
    """256 random bits, URL-safe: what TradingView puts in the alert."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    """SHA-256 of the token. A slow hash (scrypt, argon2) protects guessable passwords; a 256-bit
    random token cannot be guessed, so it would only add ~50 ms to every webhook on a path that must
    answer in < 100 ms. A plain digest also makes the lookup one indexed equality."""
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class RiskLimits:
    max_position_usd: Decimal = Decimal(1000)
    max_leverage: int = 3
    max_daily_loss_usd: Decimal = Decimal(100)
    max_open_positions: int = 1
    risk_per_trade_pct: Decimal = Decimal(1)

    def validate(self) -> None:
        problems = []
        if self.max_position_usd <= 0:
            problems.append("max position must be > 0 USD")
        if not 1 <= self.max_leverage <= 125:
            problems.append("max leverage must be between 1 and 125")
        if self.max_daily_loss_usd <= 0:
            problems.append("max daily loss must be > 0 USD")
        if self.max_open_positions < 0:
            problems.append("max open positions must be >= 0")
        if not 0 < self.risk_per_trade_pct <= 100:
            problems.append("risk per trade must be in (0, 100] percent")
        if problems:
            raise InvalidLimits("; ".join(problems))

    @classmethod
    def of(cls, account: Account) -> RiskLimits:
        return cls(**{f.name: getattr(account, f.name) for f in fields(cls)})


def create_account(
    session: Session, *, name: str, exchange: str, testnet: bool, limits: RiskLimits | None = None
) -> tuple[Account, str]:
    """Create an account; returns it with its webhook token, which is never stored or shown again."""
    if exchange not in EXCHANGES:
        raise UnknownExchange(exchange, EXCHANGES)
    if not name.strip():
        raise InvalidLimits("an account needs a non-empty name")
    limits = limits or RiskLimits()
    limits.validate()
    token = new_webhook_token()
    values: dict[str, Any] = {f.name: getattr(limits, f.name) for f in fields(limits)}
    stmt = (
        insert(Account)
        .values(name=name, exchange=exchange, testnet=testnet, webhook_token_hash=hash_token(token), **values)
        .on_conflict_do_nothing(index_elements=[Account.name])
        .returning(Account)
    )
    account = session.scalars(stmt).one_or_none()
    if account is None:
        raise DuplicateAccountName(name)
    return account, token


def get_account(session: Session, name: str) -> Account:
    account = session.scalars(select(Account).where(Account.name == name)).one_or_none()
    if account is None:
        raise UnknownAccount(name)
    return account


def find_account_by_token(session: Session, token: str) -> Account | None:
    """The webhook's authentication: one unique-index lookup on the token's hash."""
    return session.scalars(select(Account).where(Account.webhook_token_hash == hash_token(token))).one_or_none()


def list_accounts(session: Session) -> Sequence[Account]:
    return session.scalars(select(Account).order_by(Account.name)).all()


def rotate_webhook_token(session: Session, name: str) -> str:
    """A new token for the account; the old one stops working when the transaction commits."""
    account = get_account(session, name)
    token = new_webhook_token()
    account.webhook_token_hash = hash_token(token)
    account.token_rotated_at = _utcnow()
    session.flush()
    return token


def set_limits(session: Session, name: str, **changes: Any) -> Account:
    """Change some risk limits; the others keep their values. Invalid combinations are refused."""
    account = get_account(session, name)
    unknown = set(changes) - {f.name for f in fields(RiskLimits)}
    if unknown:
        raise InvalidLimits(f"unknown limit(s): {', '.join(sorted(unknown))}")
    current = RiskLimits.of(account)
    updated = RiskLimits(**{**current.__dict__, **{k: v for k, v in changes.items() if v is not None}})
    updated.validate()
    for f in fields(updated):
        setattr(account, f.name, getattr(updated, f.name))
    session.flush()
    return account


# ------------------------------------------------------------------ exchange credentials


def _credential_context(account_id: int) -> bytes:
    return f"api_credentials:account={account_id}".encode()


def store_credentials(
    session: Session, account: Account, credentials: ExchangeCredentials, cipher: EnvelopeCipher
) -> ApiCredential:
    """Encrypt and store (or replace) an account's exchange keys."""
    envelope = cipher.encrypt(credentials.to_bytes(), _credential_context(account.id))
    values = {
        "envelope": envelope,
        "kek_id": cipher.provider.current().id,
        "api_key_hint": credentials.hint,
    }
    stmt = (
        insert(ApiCredential)
        .values(account_id=account.id, **values)
        .on_conflict_do_update(index_elements=[ApiCredential.account_id], set_={**values, "updated_at": func.now()})
        .returning(ApiCredential)
    )
    return session.scalars(stmt, execution_options={"populate_existing": True}).one()


def load_credentials(session: Session, account: Account, cipher: EnvelopeCipher) -> ExchangeCredentials | None:
    row = session.scalars(select(ApiCredential).where(ApiCredential.account_id == account.id)).one_or_none()
    if row is None:
        return None
    return ExchangeCredentials.from_bytes(cipher.decrypt(row.envelope, _credential_context(account.id)))


def reencrypt_all_credentials(session: Session, cipher: EnvelopeCipher) -> tuple[int, int]:
    """Move every stored key under the cipher's current KEK (rows locked for the transaction)."""
    rows = session.scalars(select(ApiCredential).order_by(ApiCredential.id).with_for_update()).all()
    result = reencrypt_all(rows, cipher)
    session.flush()
    return result


# ------------------------------------------------------------------ alerts and decisions


@dataclass(frozen=True)
class RecordedAlert:
    id: int
    created: bool  # False: this idempotency key was already recorded (a TradingView retry)


def record_alert(
    session: Session,
    *,
    idempotency_key: str,
    raw_body: str,
    source_ip: str | None,
    account_id: int | None,
    status: str = "received",
    reason: str | None = None,
) -> RecordedAlert:
    """Record a webhook once per idempotency key, however many processes receive it at once."""
    if status not in ALERT_STATUSES:
        raise ValueError(f"unknown alert status {status!r}")
    stmt = (
        insert(Alert)
        .values(
            idempotency_key=idempotency_key,
            raw_body=raw_body,
            source_ip=source_ip,
            account_id=account_id,
            status=status,
            reason=reason,
        )
        .on_conflict_do_nothing(index_elements=[Alert.idempotency_key])
        .returning(Alert.id)
    )
    new_id = session.scalar(stmt)
    if new_id is not None:
        return RecordedAlert(new_id, created=True)
    # The competing insert has committed (ON CONFLICT waited for it), so a fresh statement sees it.
    existing = session.scalar(select(Alert.id).where(Alert.idempotency_key == idempotency_key))
    assert existing is not None
    return RecordedAlert(existing, created=False)


def set_alert_status(session: Session, alert_id: int, status: str, reason: str | None = None) -> None:
    if status not in ALERT_STATUSES:
        raise ValueError(f"unknown alert status {status!r}")
    session.execute(update(Alert).where(Alert.id == alert_id).values(status=status, reason=reason))


def alerts_by_status(session: Session, status: str, limit: int = 100) -> Sequence[Alert]:
    stmt = select(Alert).where(Alert.status == status).order_by(Alert.received_at.desc()).limit(limit)
    return session.scalars(stmt).all()


def record_decision(
    session: Session,
    *,
    execution_name: str,
    account_id: int,
    symbol: str,
    inputs: dict[str, Any],
    alert_id: int | None = None,
    stages: dict[str, Any] | None = None,
    final_action: str | None = None,
    rejection_reason: str | None = None,
) -> Decision:
    """One row per pipeline execution; a replayed execution (same name) updates its row."""
    values: dict[str, Any] = {
        "account_id": account_id,
        "symbol": symbol,
        "inputs": inputs,
        "alert_id": alert_id,
        "stages": stages or {},
        "final_action": final_action,
        "rejection_reason": rejection_reason,
    }
    finished = func.now() if final_action is not None else None
    stmt = (
        insert(Decision)
        .values(execution_name=execution_name, finished_at=finished, **values)
        .on_conflict_do_update(index_elements=[Decision.execution_name], set_={**values, "finished_at": finished})
        .returning(Decision)
    )
    return session.scalars(stmt, execution_options={"populate_existing": True}).one()


# ------------------------------------------------------------------ orders and fills


def create_order(
    session: Session,
    *,
    account_id: int,
    client_order_id: str,
    symbol: str,
    side: str,
    quantity: Decimal,
    type: str = "market",
    price: Decimal | None = None,
    reduce_only: bool = False,
    decision_id: int | None = None,
) -> Order:
    """Record an order before it is sent, so a crash after sending leaves a row to reconcile."""
    stmt = (
        insert(Order)
        .values(
            account_id=account_id,
            decision_id=decision_id,
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            type=type,
            quantity=quantity,
            price=price,
            reduce_only=reduce_only,
            status="pending",
        )
        .on_conflict_do_nothing(index_elements=[Order.client_order_id])
        .returning(Order)
    )
    order = session.scalars(stmt).one_or_none()
    if order is None:
        raise DuplicateClientOrderId(client_order_id)
    session.add(OrderEvent(order_id=order.id, from_status=None, to_status="pending", detail={}))
    return order


def transition_order(
    session: Session,
    client_order_id: str,
    to_status: str,
    *,
    exchange_order_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> Order:
    """Move an order to ``to_status`` and append the transition to its history.

    The row is locked (FOR UPDATE) so a fill notification and a cancel racing each other are
    applied one after the other, each checked against the status the other left."""
    order = session.scalars(
        select(Order).where(Order.client_order_id == client_order_id).with_for_update()
    ).one_or_none()
    if order is None:
        raise LookupError(f"no order with client order id {client_order_id!r}")
    if to_status not in ORDER_TRANSITIONS.get(order.status, frozenset()):
        raise InvalidOrderTransition(client_order_id, order.status, to_status)
    session.add(OrderEvent(order_id=order.id, from_status=order.status, to_status=to_status, detail=detail or {}))
    order.status = to_status
    order.updated_at = _utcnow()
    if exchange_order_id is not None:
        order.exchange_order_id = exchange_order_id
    session.flush()
    return order


def record_fill(
    session: Session,
    *,
    order_id: int,
    exchange_fill_id: str,
    price: Decimal,
    quantity: Decimal,
    fee: Decimal = Decimal(0),
    fee_currency: str = "USDT",
) -> bool:
    """Record a fill once (exchanges resend trades on reconnect); True if it was new."""
    stmt = (
        insert(Fill)
        .values(
            order_id=order_id,
            exchange_fill_id=exchange_fill_id,
            price=price,
            quantity=quantity,
            fee=fee,
            fee_currency=fee_currency,
        )
        .on_conflict_do_nothing(index_elements=[Fill.order_id, Fill.exchange_fill_id])
        .returning(Fill.id)
    )
    return session.scalar(stmt) is not None


def recent_orders(session: Session, account_id: int, limit: int = 1000) -> Sequence[Order]:
    """An account's newest orders first (served by ix_orders_account_id_created_at, read backwards)."""
    stmt = (
        select(Order)
        .where(Order.account_id == account_id)
        .order_by(Order.created_at.desc(), Order.id.desc())
        .limit(limit)
    )
    return session.scalars(stmt).all()
