"""Accounts: webhook tokens (stored as SHA-256), risk limits, encrypted exchange credentials.

Conventions (one transaction per caller, never a commit here, ON CONFLICT for uniqueness) are in
the package docstring.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from tradingbot.adapters.crypto import EnvelopeCipher, ExchangeCredentials, reencrypt_all
from tradingbot.adapters.persistence.errors import (
    DuplicateAccountName,
    InvalidLimits,
    InvalidVenueUrl,
    UnknownAccount,
    UnknownExchange,
)
from tradingbot.adapters.persistence.models import (
    EXCHANGES,
    Account,
    ApiCredential,
)

TOKEN_PREFIX = "tbwh_"  # lets secret scanners (and people) recognise a leaked webhook token


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
    max_drawdown_pct: Decimal = Decimal(20)  # issue 15: peak-to-trough on the equity series, percent

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
        if not 0 < self.max_drawdown_pct <= 100:
            problems.append("max drawdown must be in (0, 100] percent")
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


@dataclass(frozen=True)
class TokenOwner:
    """What the webhook needs of the account a token belongs to."""

    id: int
    enabled: bool
    exchange: str
    token_hash: bytes


def token_owners(session: Session, token_hashes: Sequence[bytes]) -> dict[bytes, TokenOwner]:
    """The webhook's authentication for many alerts in one query: token hash -> its account (a hash
    that names no account is absent)."""
    if not token_hashes:
        return {}
    stmt = select(Account.id, Account.enabled, Account.exchange, Account.webhook_token_hash).where(
        Account.webhook_token_hash.in_(set(token_hashes))
    )
    return {bytes(h): TokenOwner(int(i), bool(e), str(x), bytes(h)) for i, e, x, h in session.execute(stmt).all()}


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


def account_by_id(session: Session, account_id: int) -> Account | None:
    """Primary-key lookup (the identity map answers a second call in the same transaction)."""
    return session.get(Account, account_id)


def find_account(session: Session, name: str) -> Account | None:
    """Like :func:`get_account`, but None instead of ``UnknownAccount``."""
    return session.scalars(select(Account).where(Account.name == name)).one_or_none()


@dataclass(frozen=True)
class AccountRef:
    id: int
    name: str


def account_refs(session: Session, name: str | None = None) -> list[AccountRef]:
    """Every enabled account by name, or the one named ``name`` whether enabled or not (an operator
    asking for one account by name means it); empty if there is none."""
    stmt = select(Account.id, Account.name).where(Account.enabled).order_by(Account.name)
    if name is not None:
        stmt = select(Account.id, Account.name).where(Account.name == name)
    return [AccountRef(int(i), str(n)) for i, n in session.execute(stmt).all()]


def credential_hints(session: Session) -> dict[int, str]:
    """Masked API key per account id (the hint is stored in clear; the keys never leave the envelope)."""
    stmt = select(ApiCredential.account_id, ApiCredential.api_key_hint)
    return {int(row.account_id): str(row.api_key_hint) for row in session.execute(stmt)}


def set_venue_urls(session: Session, name: str, *, rest_url: str | None, ws_url: str | None) -> Account:
    """Point the account at other venue hosts (``venue_urls``, issue 15): ``rest_url`` an http(s)
    base URL, ``ws_url`` a ws(s) one; ``""`` clears that override (back to the ``EXCHANGE_*``
    defaults), None keeps it. Refused with the field and the reason before anything is written."""
    from urllib.parse import urlsplit

    account = get_account(session, name)
    urls = dict(account.venue_urls or {})
    for key, value, schemes in (("rest", rest_url, ("http", "https")), ("ws", ws_url, ("ws", "wss"))):
        if value is None:
            continue
        if value == "":
            urls.pop(key, None)
            continue
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            raise InvalidVenueUrl(f"{key}_url: {value!r} is not a {'/'.join(schemes)} URL with a host")
        urls[key] = value.rstrip("/")
    account.venue_urls = urls or None
    session.flush()
    return account
