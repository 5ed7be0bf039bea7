# ruff: noqa: N818 - the issue names these errors (DuplicateClientOrderId, ...); they read as domain facts
"""Domain errors raised by the persistence layer. Callers (handlers, CLI) show ``str(error)`` as is:
each message names what is wrong and never contains a secret or a password.

:class:`DatabaseUnavailable` is transient (the state machine retries it); every other error here is
permanent: a duplicate, an unknown name, a value the product refuses.
"""

from __future__ import annotations

from tradingbot.errors import DependencyUnavailable, PermanentError, TradingBotError


class PersistenceError(TradingBotError):
    """The family of everything this package raises on purpose, never raised itself: its leaves are
    permanent, except :class:`DatabaseUnavailable`."""


class DatabaseUnavailable(PersistenceError, DependencyUnavailable):
    """The database could not be reached, or dropped or cancelled the transaction (server restart,
    too many connections, statement timeout); the message names the URL with its password hidden."""


class DuplicateClientOrderId(PersistenceError, PermanentError):
    def __init__(self, client_order_id: str) -> None:
        super().__init__(f"an order with client order id {client_order_id!r} already exists")
        self.client_order_id = client_order_id


class DuplicateAccountName(PersistenceError, PermanentError):
    def __init__(self, name: str) -> None:
        super().__init__(f"an account named {name!r} already exists")
        self.name = name


class UnknownExchange(PersistenceError, PermanentError):
    def __init__(self, exchange: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown exchange {exchange!r}; expected one of: {', '.join(known)}")
        self.exchange = exchange


class UnknownAccount(PersistenceError, PermanentError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no account named {name!r}")
        self.name = name


class InvalidLimits(PersistenceError, PermanentError):
    """Risk limits outside what the product accepts (checked before the database's CHECKs)."""


class InvalidVenueUrl(PersistenceError, PermanentError):
    """An account's venue URL override is not an http(s) / ws(s) URL (the field is named)."""


class InvalidOrderTransition(PersistenceError, PermanentError):
    def __init__(self, client_order_id: str, current: str, target: str) -> None:
        super().__init__(f"order {client_order_id!r}: cannot go from {current!r} to {target!r}")
