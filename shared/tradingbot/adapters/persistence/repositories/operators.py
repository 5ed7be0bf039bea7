# ruff: noqa: N818 - the errors read as domain facts, like adapters/persistence/errors.py
"""Operators (issue 17): who may see and steer which accounts, through which identity, and what
each of them did.

* an operator owns accounts (``account_owners``: one owner per account);
* an identity resolves to one operator: an API bearer token (only its SHA-256 is stored, it has an
  expiry and can be revoked), a Cognito user's ``sub`` (API Gateway verified the JWT), or a
  Telegram chat id (only mapped chats may command);
* every command, accepted or refused, is one ``operator_audit`` row; a Telegram update id is
  recorded once, so an update delivered twice runs once.

Conventions (one transaction per caller, never a commit here, ON CONFLICT for uniqueness) are in
the package docstring. The operator API's read queries (keyset pages of an account's decisions,
orders, fills ...) are here too, so all the SQL stays in this package.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from tradingbot.adapters.persistence.errors import PersistenceError
from tradingbot.adapters.persistence.models import (
    Account,
    AccountOwner,
    Alert,
    BacktestRun,
    Decision,
    Fill,
    Operator,
    OperatorAudit,
    OperatorConfirmation,
    OperatorToken,
    OptimizationRun,
    Order,
    PaperWallet,
    Position,
    TelegramChat,
)
from tradingbot.errors import PermanentError

OPERATOR_TOKEN_PREFIX = "tbop_"  # recognisable in a leak, like the webhook's tbwh_


class OperatorError(PersistenceError, PermanentError):
    """An operator-management request that cannot be done as asked (names the field and why)."""


class DuplicateOperator(OperatorError):
    def __init__(self, name: str) -> None:
        super().__init__(f"operator name: {name!r} already exists")


class UnknownOperator(OperatorError):
    def __init__(self, name: str) -> None:
        super().__init__(f"operator: no operator named {name!r} (see `tradingbot operators list`)")


@dataclass(frozen=True)
class OperatorRef:
    """The resolved identity: which operator, and how it was identified (for the audit)."""

    id: int
    name: str
    actor: str  # "token:<id>", "cognito:<sub>", "chat:<id>", "cli"


@dataclass(frozen=True)
class TokenCheck:
    """A bearer token's lookup: the operator, or why not (``unknown``, ``expired``, ``revoked``, ``disabled``)."""

    operator: OperatorRef | None
    problem: str | None


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def hash_operator_token(token: str) -> bytes:
    """SHA-256: a 256-bit random token cannot be guessed, so a slow hash would only add latency
    (same reasoning as the webhook token, repositories/accounts.py)."""
    return hashlib.sha256(token.encode()).digest()


# ------------------------------------------------------------------ management (CLI)


def create_operator(session: Session, *, name: str, cognito_sub: str | None = None) -> Operator:
    if not name.strip() or len(name) > 64:
        raise OperatorError("operator name: must be 1 to 64 characters")
    stmt = (
        insert(Operator).values(name=name, cognito_sub=cognito_sub or None).on_conflict_do_nothing().returning(Operator)
    )
    row = session.scalars(stmt).one_or_none()
    if row is None:
        if session.scalar(select(Operator.id).where(Operator.name == name)) is not None:
            raise DuplicateOperator(name)
        raise OperatorError(f"operator cognito_sub: {cognito_sub!r} already belongs to another operator")
    return row


def get_operator(session: Session, name: str) -> Operator:
    row = session.scalars(select(Operator).where(Operator.name == name)).one_or_none()
    if row is None:
        raise UnknownOperator(name)
    return row


def list_operators(session: Session) -> list[dict[str, Any]]:
    """Every operator with the names of its accounts and its chats (for ``operators list``)."""
    out = []
    for op in session.scalars(select(Operator).order_by(Operator.name)):
        accounts = session.scalars(
            select(Account.name).join(AccountOwner, AccountOwner.account_id == Account.id)
            .where(AccountOwner.operator_id == op.id).order_by(Account.name)
        ).all()  # fmt: skip
        chats = session.scalars(select(TelegramChat.chat_id).where(TelegramChat.operator_id == op.id)).all()
        live_tokens = session.scalar(
            select(func.count()).select_from(OperatorToken).where(
                OperatorToken.operator_id == op.id, OperatorToken.revoked_at.is_(None),
                OperatorToken.expires_at > _utcnow(),
            )
        )  # fmt: skip
        out.append({"id": op.id, "name": op.name, "enabled": op.enabled, "cognito_sub": op.cognito_sub,
                    "accounts": list(accounts), "telegram_chats": [int(c) for c in chats],
                    "live_tokens": int(live_tokens or 0)})  # fmt: skip
    return out


def assign_account(session: Session, *, operator_id: int, account_id: int) -> None:
    """Make the operator the account's owner (an account has one owner: this replaces the previous one)."""
    stmt = insert(AccountOwner).values(account_id=account_id, operator_id=operator_id)
    session.execute(
        stmt.on_conflict_do_update(index_elements=[AccountOwner.account_id], set_={"operator_id": operator_id})
    )


def link_chat(session: Session, *, operator_id: int, chat_id: int) -> None:
    """Allow a Telegram chat to command as the operator (a chat maps to one operator)."""
    stmt = insert(TelegramChat).values(chat_id=chat_id, operator_id=operator_id)
    session.execute(
        stmt.on_conflict_do_update(index_elements=[TelegramChat.chat_id], set_={"operator_id": operator_id})
    )


def issue_token(session: Session, *, operator_id: int, ttl: dt.timedelta, label: str = "") -> str:
    """A new bearer token (returned once, stored as its SHA-256), valid for ``ttl``."""
    if ttl <= dt.timedelta(0):
        raise OperatorError("token ttl: must be positive")
    token = OPERATOR_TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(OperatorToken(operator_id=operator_id, token_hash=hash_operator_token(token), label=label[:64],
                              expires_at=_utcnow() + ttl))  # fmt: skip
    session.flush()
    return token


def revoke_tokens(session: Session, *, operator_id: int) -> int:
    """Revoke every live token of the operator; returns how many."""
    result = session.execute(
        update(OperatorToken)
        .where(OperatorToken.operator_id == operator_id, OperatorToken.revoked_at.is_(None))
        .values(revoked_at=_utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


# ------------------------------------------------------------------ identities


def operator_by_token(session: Session, token: str, *, now: dt.datetime | None = None) -> TokenCheck:
    """One unique-index lookup on the token's hash, then expiry, revocation and the operator's state."""
    row = session.execute(
        select(OperatorToken, Operator)
        .join(Operator, Operator.id == OperatorToken.operator_id)
        .where(OperatorToken.token_hash == hash_operator_token(token))
    ).one_or_none()
    if row is None:
        return TokenCheck(None, "unknown")
    tok, op = row
    if tok.revoked_at is not None:
        return TokenCheck(None, "revoked")
    if tok.expires_at <= (now or _utcnow()):
        return TokenCheck(None, "expired")
    if not op.enabled:
        return TokenCheck(None, "disabled")
    return TokenCheck(OperatorRef(op.id, op.name, f"token:{tok.id}"), None)


def operator_by_cognito_sub(session: Session, sub: str) -> OperatorRef | None:
    op = session.scalars(select(Operator).where(Operator.cognito_sub == sub, Operator.enabled)).one_or_none()
    return None if op is None else OperatorRef(op.id, op.name, f"cognito:{sub}")


def operator_by_chat(session: Session, chat_id: int) -> OperatorRef | None:
    op = session.scalars(
        select(Operator).join(TelegramChat, TelegramChat.operator_id == Operator.id)
        .where(TelegramChat.chat_id == chat_id, Operator.enabled)
    ).one_or_none()  # fmt: skip
    return None if op is None else OperatorRef(op.id, op.name, f"chat:{chat_id}")


def chats_for_account(session: Session, account_id: int) -> list[int]:
    """The Telegram chats of the account's owner (where its notifications go)."""
    stmt = (
        select(TelegramChat.chat_id)
        .join(AccountOwner, AccountOwner.operator_id == TelegramChat.operator_id)
        .where(AccountOwner.account_id == account_id)
        .order_by(TelegramChat.chat_id)
    )
    return [int(c) for c in session.scalars(stmt)]


# ------------------------------------------------------------------ ownership


def owned_accounts(session: Session, operator_id: int) -> Sequence[Account]:
    stmt = (
        select(Account)
        .join(AccountOwner, AccountOwner.account_id == Account.id)
        .where(AccountOwner.operator_id == operator_id)
        .order_by(Account.name)
    )
    return session.scalars(stmt).all()


def owned_account(session: Session, operator_id: int, name: str) -> Account | None:
    """The account named ``name`` if, and only if, the operator owns it (else None: another
    operator's account and a missing one look the same from outside)."""
    stmt = (
        select(Account)
        .join(AccountOwner, AccountOwner.account_id == Account.id)
        .where(AccountOwner.operator_id == operator_id, Account.name == name)
    )
    return session.scalars(stmt).one_or_none()


# ------------------------------------------------------------------ audit and confirmations


def audit(
    session: Session,
    *,
    channel: str,
    actor: str,
    command: str,
    outcome: str,
    operator_id: int | None = None,
    args: dict[str, Any] | None = None,
    reason: str | None = None,
    telegram_update_id: int | None = None,
) -> bool:
    """Record one command; False when ``telegram_update_id`` was recorded before (a redelivery)."""
    stmt = insert(OperatorAudit).values(
        channel=channel, actor=actor[:128], command=command[:64], outcome=outcome, operator_id=operator_id,
        args=args or {}, reason=reason, telegram_update_id=telegram_update_id,
    )  # fmt: skip
    if telegram_update_id is None:
        session.execute(stmt)
        return True
    inserted = session.scalar(
        stmt.on_conflict_do_nothing(index_elements=["telegram_update_id"]).returning(OperatorAudit.id)
    )
    return inserted is not None


def audit_rows(session: Session, *, operator_id: int | None = None, limit: int = 50) -> Sequence[OperatorAudit]:
    stmt = select(OperatorAudit).order_by(OperatorAudit.id.desc()).limit(limit)
    if operator_id is not None:
        stmt = stmt.where(OperatorAudit.operator_id == operator_id)
    return session.scalars(stmt).all()


def create_confirmation(
    session: Session, *, operator_id: int, chat_id: int, command: dict[str, Any], ttl: dt.timedelta
) -> str:
    """A short code the chat must send back (``/confirm CODE``) before ``ttl`` runs out."""
    code = f"{secrets.randbelow(10**6):06d}"
    session.add(OperatorConfirmation(operator_id=operator_id, chat_id=chat_id, code=code, command=command,
                                     expires_at=_utcnow() + ttl))  # fmt: skip
    session.flush()
    return code


def take_confirmation(session: Session, *, chat_id: int, code: str) -> dict[str, Any] | None:
    """The pending command for (chat, code), marked used in the same statement; None if unknown,
    expired or already used (a confirmation works once)."""
    stmt = (
        update(OperatorConfirmation)
        .where(
            OperatorConfirmation.chat_id == chat_id,
            OperatorConfirmation.code == code,
            OperatorConfirmation.used_at.is_(None),
            OperatorConfirmation.expires_at > _utcnow(),
        )
        .values(used_at=_utcnow())
        .returning(OperatorConfirmation.command)
    )
    doc = session.scalar(stmt)
    return dict(doc) if doc is not None else None


# ------------------------------------------------------------------ the operator API's reads


def decisions_page(
    session: Session, account_id: int, *, limit: int, before_id: int | None = None, since: dt.datetime | None = None
) -> Sequence[Decision]:
    """Newest first, ``limit`` rows with ids below ``before_id`` (the keyset cursor), and with
    ``since`` only those started since then: a bounded backward scan of ``ix_decisions_account_id_id``,
    the same cost on page 1 and page 1,000.

    The keyset is the row value ``(account_id, id) < (account, before)``, which only that index can
    take as its scan's bound. With ``account_id = :a ... ORDER BY id DESC`` alone PostgreSQL costs a
    backward walk of the primary key as cheaper (it assumes the account's rows are spread evenly
    over the ids), and when another account holds the newest ids it filters all of them before the
    first match: page 1 of 100,000 took 215 ms against 78 ms for page 900, whose ``id < cursor``
    happened to start the walk inside this account (EXPLAIN: ``Index Scan Backward using
    pk_decisions ... Rows Removed by Filter: 100000``). With ``since`` the scan's lower bound is
    the account's first id started since then (``ix_decisions_account_id_started_at``), so a quiet
    day does not walk the whole history to find fewer than ``limit`` rows (``benchmarks/
    bench_operator_api.py`` measures page 1, page 900 and today's page)."""
    upper = tuple_(account_id, before_id if before_id is not None else _MAX_ID)
    stmt = select(Decision).where(Decision.account_id == account_id, tuple_(Decision.account_id, Decision.id) < upper)
    if since is not None:
        # OFFSET 0 keeps min() from becoming a forward walk of the primary key (the same misjudgement
        # as above): the account's rows since then come from the started_at index, then their min
        today = (
            select(Decision.id).where(Decision.account_id == account_id, Decision.started_at >= since).offset(0)
        ).subquery()
        first = select(func.min(today.c.id)).scalar_subquery()
        stmt = stmt.where(
            Decision.started_at >= since, tuple_(Decision.account_id, Decision.id) >= tuple_(account_id, first)
        )
    return session.scalars(stmt.order_by(Decision.account_id.desc(), Decision.id.desc()).limit(limit)).all()


#: the keyset's upper bound on page 1 (above any BIGINT id the sequence will hand out)
_MAX_ID = 2**63 - 1


def orders_page(session: Session, account_id: int, *, limit: int, before_id: int | None = None) -> Sequence[Order]:
    """Newest first below ``before_id``: the row-value keyset on ``ix_orders_account_id_id`` (see
    :func:`decisions_page` for why not ``id < cursor`` alone)."""
    upper = tuple_(account_id, before_id if before_id is not None else _MAX_ID)
    stmt = select(Order).where(Order.account_id == account_id, tuple_(Order.account_id, Order.id) < upper)
    return session.scalars(stmt.order_by(Order.account_id.desc(), Order.id.desc()).limit(limit)).all()


@dataclass(frozen=True)
class FillRow:
    id: int
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_currency: str
    filled_at: dt.datetime


def fills_page(
    session: Session, account_id: int, *, limit: int, before_id: int | None = None, ascending: bool = False
) -> list[FillRow]:
    """The account's fills with their order's symbol and side; newest first (or oldest first, for
    replaying them into PnL)."""
    stmt = (
        select(Fill.id, Fill.order_id, Order.client_order_id, Order.symbol, Order.side, Fill.price, Fill.quantity,
               Fill.fee, Fill.fee_currency, Fill.filled_at)
        .join(Order, Order.id == Fill.order_id)
        .where(Order.account_id == account_id)
    )  # fmt: skip
    if before_id is not None:
        stmt = stmt.where(Fill.id < before_id)
    stmt = stmt.order_by(Fill.filled_at.asc(), Fill.id.asc()) if ascending else stmt.order_by(Fill.id.desc())
    return [
        FillRow(id=r[0], order_id=r[1], client_order_id=r[2], symbol=r[3], side=r[4], price=Decimal(r[5]),
                quantity=Decimal(r[6]), fee=Decimal(r[7] or 0), fee_currency=r[8], filled_at=r[9])
        for r in session.execute(stmt.limit(limit)).all()
    ]  # fmt: skip


def protective_orders(session: Session, account_id: int) -> list[tuple[str, str, Decimal | None]]:
    """Live stop / target orders: (symbol, type, trigger price)."""
    stmt = select(Order.symbol, Order.type, Order.price).where(
        Order.account_id == account_id,
        Order.type.in_(("stop_market", "take_profit_market")),
        Order.status.in_(("pending", "submitted", "open", "partially_filled")),
    )
    return [(str(s), str(t), p) for s, t, p in session.execute(stmt).all()]


def open_positions_of(session: Session, account_id: int) -> Sequence[Position]:
    stmt = select(Position).where(Position.account_id == account_id, Position.closed_at.is_(None))
    return session.scalars(stmt.order_by(Position.symbol)).all()


def alerts_page(session: Session, account_id: int, *, limit: int, before_id: int | None = None) -> Sequence[Alert]:
    """Newest first below ``before_id``: the row-value keyset on ``ix_alerts_account_id_id`` (see
    :func:`decisions_page`)."""
    upper = tuple_(account_id, before_id if before_id is not None else _MAX_ID)
    stmt = select(Alert).where(Alert.account_id == account_id, tuple_(Alert.account_id, Alert.id) < upper)
    return session.scalars(stmt.order_by(Alert.account_id.desc(), Alert.id.desc()).limit(limit)).all()


def paper_balance(session: Session, account_id: int) -> Decimal | None:
    value = session.scalar(select(PaperWallet.balance).where(PaperWallet.account_id == account_id))
    return None if value is None else Decimal(value)


def backtest_runs_page(session: Session, *, limit: int, before_id: int | None = None) -> Sequence[BacktestRun]:
    stmt = select(BacktestRun)
    if before_id is not None:
        stmt = stmt.where(BacktestRun.id < before_id)
    return session.scalars(stmt.order_by(BacktestRun.id.desc()).limit(limit)).all()


def optimization_runs_page(session: Session, *, limit: int, before_id: int | None = None) -> Sequence[OptimizationRun]:
    stmt = select(OptimizationRun)
    if before_id is not None:
        stmt = stmt.where(OptimizationRun.id < before_id)
    return session.scalars(stmt.order_by(OptimizationRun.id.desc()).limit(limit)).all()


def strategies_of_orders(session: Session, order_ids: Sequence[int]) -> dict[int, str]:
    """order id -> the strategy of the alert whose decision placed it (orders without a decision,
    e.g. an operator's close, are absent)."""
    if not order_ids:
        return {}
    stmt = (
        select(Order.id, Decision.inputs["alert"]["strategy"].astext)
        .join(Decision, Decision.id == Order.decision_id)
        .where(Order.id.in_(list(set(order_ids))))
    )
    return {int(i): str(name) for i, name in session.execute(stmt).all() if name}


def set_audit_outcome(session: Session, *, telegram_update_id: int, outcome: str, reason: str | None) -> None:
    """The outcome of the command an update carried (its row was written when it was claimed)."""
    session.execute(
        update(OperatorAudit)
        .where(OperatorAudit.telegram_update_id == telegram_update_id)
        .values(outcome=outcome, reason=reason)
    )


def release_update_claim(session: Session, *, telegram_update_id: int) -> None:
    """Forget an update's claim (its command failed on a dependency): its redelivery runs again."""
    session.execute(delete(OperatorAudit).where(OperatorAudit.telegram_update_id == telegram_update_id))


def last_notified_fill(session: Session) -> int:
    """The highest fill id already notified (the ``notify_fills`` audit rows' watermark), 0 at first."""
    stmt = (
        select(OperatorAudit.args["last_fill_id"].as_integer())
        .where(OperatorAudit.command == "notify_fills")
        .order_by(OperatorAudit.id.desc())
        .limit(1)
    )
    return int(session.scalar(stmt) or 0)


def protective_fills_after(session: Session, after_id: int, *, limit: int = 100) -> list[dict[str, Any]]:
    """Fills of stop and target orders with ids above ``after_id``, oldest first."""
    stmt = (
        select(Fill.id, Order.account_id, Account.name, Order.symbol, Order.side, Order.type, Fill.price, Fill.quantity)
        .join(Order, Order.id == Fill.order_id)
        .join(Account, Account.id == Order.account_id)
        .where(Fill.id > after_id, Order.type.in_(("stop_market", "take_profit_market")))
        .order_by(Fill.id)
        .limit(limit)
    )
    keys = ("fill_id", "account_id", "account", "symbol", "side", "type", "price", "quantity")
    return [dict(zip(keys, row, strict=True)) for row in session.execute(stmt).all()]


def decision_counts(session: Session, account_id: int, day: dt.date) -> list[tuple[str | None, int]]:
    """(final_action, count) of the account's decisions started on ``day`` (UTC)."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    stmt = (
        select(Decision.final_action, func.count())
        .where(Decision.account_id == account_id, Decision.started_at >= start,
               Decision.started_at < start + dt.timedelta(days=1))
        .group_by(Decision.final_action)
    )  # fmt: skip
    return [(a, int(n)) for a, n in session.execute(stmt).all()]
