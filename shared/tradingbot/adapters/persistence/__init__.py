"""The product's memory: PostgreSQL schema (models), migrations, engine/session handling (db) and
the repository functions every handler uses. Domain errors live in ``errors``."""

from tradingbot.adapters.persistence.db import check_connection, get_engine, redact, session_scope
from tradingbot.adapters.persistence.errors import (
    DatabaseUnavailable,
    DuplicateAccountName,
    DuplicateClientOrderId,
    InvalidLimits,
    InvalidOrderTransition,
    PersistenceError,
    UnknownAccount,
    UnknownExchange,
)

__all__ = [
    "DatabaseUnavailable",
    "DuplicateAccountName",
    "DuplicateClientOrderId",
    "InvalidLimits",
    "InvalidOrderTransition",
    "PersistenceError",
    "UnknownAccount",
    "UnknownExchange",
    "check_connection",
    "get_engine",
    "redact",
    "session_scope",
]
