# ruff: noqa: N818 - the issue names these errors (DuplicateClientOrderId, ...); they read as domain facts
"""Domain errors raised by the persistence layer. Callers (handlers, CLI) show ``str(error)`` as is:
each message names what is wrong and never contains a secret or a password."""

from __future__ import annotations


class PersistenceError(Exception):
    """Base class for everything this package raises on purpose."""


class DatabaseUnavailable(PersistenceError):
    """The database could not be reached; the message names the URL with its password hidden."""


class DuplicateClientOrderId(PersistenceError):
    def __init__(self, client_order_id: str) -> None:
        super().__init__(f"an order with client order id {client_order_id!r} already exists")
        self.client_order_id = client_order_id


class DuplicateAccountName(PersistenceError):
    def __init__(self, name: str) -> None:
        super().__init__(f"an account named {name!r} already exists")
        self.name = name


class UnknownExchange(PersistenceError):
    def __init__(self, exchange: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown exchange {exchange!r}; expected one of: {', '.join(known)}")
        self.exchange = exchange


class UnknownAccount(PersistenceError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no account named {name!r}")
        self.name = name


class InvalidLimits(PersistenceError):
    """Risk limits outside what the product accepts (checked before the database's CHECKs)."""


class InvalidOrderTransition(PersistenceError):
    def __init__(self, client_order_id: str, current: str, target: str) -> None:
        super().__init__(f"order {client_order_id!r}: cannot go from {current!r} to {target!r}")
