"""Engine and session handling fit for Lambda.

* One engine per URL per process (a Lambda cold start), reused by every invocation of the container.
* A tiny pool (1 + 1 overflow): a Lambda handles one event at a time, and RDS Proxy multiplexes the
  containers; a big pool would only hold idle server connections.
* ``pool_pre_ping`` and ``pool_recycle`` below the proxy's/NAT's idle cut-off, because a frozen
  container wakes up with sockets the server closed minutes ago. A long-running process on a hot
  path (the paper matcher) turns the ping off (``pre_ping=False``: one round trip less per
  transaction) and retries a transaction once when its connection turns out to be gone
  (:func:`run_once_more_if_dropped`).
* Short timeouts: pg8000's socket timeout bounds connecting and every wait on the socket, and
  ``statement_timeout`` (sent as a startup parameter rather than a ``SET``, so RDS Proxy does not pin
  the session) makes the server cancel first so the connection stays usable.
* Errors name the URL with its password hidden: ``postgresql+pg8000://app:***@host/db``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import ssl
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any

from pg8000.converters import timestamptz_in  # type: ignore[import-untyped]
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from tradingbot.adapters.persistence.errors import DatabaseUnavailable

log = logging.getLogger(__name__)
_DRIVER = "postgresql+pg8000"
_POOL_RECYCLE_S = 280  # RDS Proxy and NAT gateways drop idle connections after 350 s
_engines: dict[str, Engine] = {}
# What services take instead of an engine: a no-argument callable opening one transaction, e.g.
# ``lambda: session_scope(engine)``; tests pass one that counts or fails.
SessionFactory = Callable[[], AbstractContextManager[Session]]
_lock = threading.Lock()


def normalize_url(url: str | URL) -> URL:
    """Accept ``postgres://``, ``postgresql://`` or ``postgresql+pg8000://``; always use pg8000
    (pure Python: no libpq in the Lambda layer)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername=_DRIVER)
    return parsed


def redact(url: str | URL) -> str:
    """The URL as a string with its password replaced by ``***`` (safe for logs and errors)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


_TIMESTAMPTZ_OID = 1184


def _fast_timestamptz(data: str) -> Any:
    """pg8000 parses timestamptz with ``strptime`` (~60 us a value: 60 ms for 1,000 orders);
    ``fromisoformat`` is C and reads PostgreSQL's ``2024-01-01 12:00:00.5+00`` directly. Anything
    it cannot read (infinity, years beyond 9999) goes to pg8000's own parser."""
    try:
        return dt.datetime.fromisoformat(data)
    except ValueError:
        return timestamptz_in(data)


_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def lower_backend_priority(engine: Engine, niceness: int) -> None:
    """Give the PostgreSQL backend of each new connection of ``engine`` at least ``niceness``, when
    the server runs on this machine (loopback URL, a local ``postgres`` process with that pid).

    ``tradingbot serve``'s execution workers run at nice 10 (WORKER_NICENESS) so that the HTTP server's
    acknowledgements come first; their queries run in PostgreSQL's processes, which would otherwise
    compete with the acknowledgements' queries at full priority. Raising the niceness of one's own
    processes needs no privilege (``setpriority(2)``); where it is not allowed, nothing changes."""
    if engine.url.host not in _LOOPBACK:
        return

    def renice(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT pg_backend_pid()")
            pid = int(cursor.fetchone()[0])
        finally:
            cursor.close()
        with suppress(OSError):
            with open(f"/proc/{pid}/comm", encoding="ascii", errors="replace") as comm:
                if not comm.read().startswith("postgres"):
                    return  # the pid is not ours to touch (a server in another namespace)
            if os.getpriority(os.PRIO_PROCESS, pid) < niceness:
                os.setpriority(os.PRIO_PROCESS, pid, niceness)

    event.listen(engine, "connect", renice)


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.register_in_adapter(_TIMESTAMPTZ_OID, _fast_timestamptz)


def create_db_engine(
    url: str | URL,
    *,
    connect_timeout_s: float = 5.0,
    statement_timeout_ms: int = 4_000,
    pool_size: int = 1,
    pre_ping: bool = True,
) -> Engine:
    """A new engine; most code wants :func:`get_engine`, which caches one per URL.

    ``pool_size`` 1 fits Lambda (one request per container; RDS Proxy multiplexes). A local server
    that handles many requests in threads (``tradingbot serve``) asks for more.
    ``pre_ping`` (``SELECT 1`` on every checkout) suits a Lambda that wakes up with dead sockets;
    a process that uses its connection all the time and retries a dropped one
    (:func:`run_once_more_if_dropped`) can skip it. A connection the driver finds broken is
    invalidated either way, so the pool never hands it out again.
    """
    parsed = normalize_url(url)
    # libpq's sslmode spelling in the URL; pg8000 takes an SSLContext instead
    sslmode = parsed.query.get("sslmode")
    parsed = parsed.difference_update_query(["sslmode"])
    ssl_args: dict[str, object] = {}
    if sslmode in ("require", "verify-ca", "verify-full"):
        ssl_args["ssl_context"] = ssl.create_default_context()
    elif sslmode == "disable" or (sslmode is None and parsed.host in _LOOPBACK):
        # pg8000's default (None) asks every new connection for TLS and builds a fresh SSLContext to
        # do it (loading the system CA store: ~10 ms of CPU per connect); over loopback TLS protects
        # nothing, and an embedded server refuses it anyway
        ssl_args["ssl_context"] = False
    startup: dict[str, str] = {}
    if statement_timeout_ms > 0:
        startup["statement_timeout"] = str(statement_timeout_ms)
    socket_timeout = max(connect_timeout_s, statement_timeout_ms / 1000 + 1) if statement_timeout_ms else None
    engine = create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=1,
        pool_pre_ping=pre_ping,
        pool_recycle=_POOL_RECYCLE_S,
        pool_timeout=connect_timeout_s,
        connect_args={
            "timeout": socket_timeout if socket_timeout is not None else connect_timeout_s,
            "startup_params": startup,
            "application_name": "tradingbot",
            **ssl_args,
        },
    )
    event.listen(engine, "connect", _on_connect)
    return engine


def get_engine(
    url: str | URL,
    *,
    connect_timeout_s: float = 5.0,
    statement_timeout_ms: int = 4_000,
    pool_size: int = 1,
    pre_ping: bool = True,
) -> Engine:
    """The process-wide engine for ``url`` (one per cold start; one per ``pre_ping`` choice)."""
    url_text = normalize_url(url).render_as_string(hide_password=False)
    key = url_text if pre_ping else f"{url_text}#no-pre-ping"
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = create_db_engine(
                url_text, connect_timeout_s=connect_timeout_s, statement_timeout_ms=statement_timeout_ms,
                pool_size=pool_size, pre_ping=pre_ping,
            )  # fmt: skip
            _engines[key] = engine
        return engine


def dispose_engines() -> None:
    """Close every cached engine (tests, and before a fork: children must not share sockets)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


# SQLSTATEs after which the same transaction may succeed if run again (PostgreSQL's "Appendix A.
# Error Codes", https://www.postgresql.org/docs/current/errcodes-appendix.html): class 08 connection
# exception; 53300 too_many_connections; 57014 query_canceled (our statement_timeout), 57P01
# admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now (starting up or failing over),
# 57P05 idle_session_timeout. Not 57P04 database_dropped: that one does not come back.
_TRANSIENT_SQLSTATES = frozenset({"53300", "57014", "57P01", "57P02", "57P03", "57P05"})


def _server_error(error: BaseException) -> dict[str, str]:
    """pg8000 raises a server's ErrorResponse with its fields as ``args[0]`` ({"C": SQLSTATE, "M": ...})."""
    orig = getattr(error, "orig", None) or error
    fields = orig.args[0] if orig.args else None
    return {str(k): str(v) for k, v in fields.items()} if isinstance(fields, dict) else {}


def is_unavailable(error: BaseException) -> bool:
    """True for the driver errors that mean "the database is (briefly) not there": the connection
    was refused, dropped or invalidated, the pool had none to give, or the server cancelled or
    refused the work for a reason that passes (see ``_TRANSIENT_SQLSTATES``)."""
    if isinstance(error, InterfaceError | PoolTimeout):  # pg8000: refused, reset, "network error"
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    code = _server_error(error).get("C", "")
    return code.startswith("08") or code in _TRANSIENT_SQLSTATES


def unavailable(url: str | URL, error: BaseException) -> DatabaseUnavailable:
    """A :class:`DatabaseUnavailable` naming the redacted URL and the driver's (or server's) reason."""
    fields = _server_error(error)
    if fields:  # the server answered, and cancelled or refused the work
        what = "the database at {} did not complete the transaction"
        reason = f"{fields.get('M', 'server error')} (SQLSTATE {fields.get('C', '?')})"
    else:
        what = "cannot reach the database at {}"
        reason = (str(getattr(error, "orig", None) or error).splitlines() or [type(error).__name__])[0]
    password = make_url(url).password
    if password:  # a driver could echo its connect arguments; never let the password through
        reason = reason.replace(str(password), "***")
    return DatabaseUnavailable(f"{what.format(redact(url))}: {reason}")


def check_connection(engine: Engine) -> None:
    """Fail fast at start with a clear message instead of at the first query."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (DBAPIError, PoolTimeout) as exc:
        if is_unavailable(exc):
            raise unavailable(engine.url, exc) from None
        raise


def run_once_more_if_dropped[T](op: Callable[[], T]) -> T:
    """``op()`` (one transaction, e.g. through :func:`session_scope`), run a second time when the first
    attempt found the database unavailable (a connection dropped while idle, which an engine
    without ``pre_ping`` only learns on use; the pool has invalidated it, so the retry connects
    afresh). Only for transactions that are safe to run again: they re-read what they change
    under their locks, so a commit that did land is not applied twice."""
    try:
        return op()
    except DatabaseUnavailable as exc:
        # visible: a retry whose first attempt did commit (the answer was lost) finds nothing to do
        log.warning("database unavailable (%s); running the transaction once more", exc)
        return op()


_factories: weakref.WeakKeyDictionary[Engine, sessionmaker[Session]] = weakref.WeakKeyDictionary()


def _session_factory(engine: Engine) -> sessionmaker[Session]:
    # one sessionmaker per engine, kept as long as the engine: making one defines a Session subclass
    # and copies its event dispatch, CPU that every transaction paid (py-spy under bench_burst)
    factory = _factories.get(engine)
    if factory is None:
        factory = _factories.setdefault(engine, sessionmaker(engine, expire_on_commit=False))
    return factory


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: commit if the block returns, roll back if it raises (nothing half-written).

    The boundary for the driver's errors: whatever in the block (or the commit) finds the database
    unreachable, dropped mid-transaction or cancelling a statement leaves as
    :class:`DatabaseUnavailable` (transient); any other driver error (a constraint the repositories
    did not expect, a bug in SQL) propagates as is."""
    session = _session_factory(engine)()
    try:
        yield session
        session.commit()
    except (DBAPIError, PoolTimeout) as exc:
        with suppress(DBAPIError, PoolTimeout):  # the connection is gone; the server rolls back on its own
            session.rollback()
        if is_unavailable(exc):
            raise unavailable(engine.url, exc) from None
        raise
    except ConnectionError as exc:
        # pg8000 wraps a failed socket write as InterfaceError("network error") but lets a reset seen
        # while reading the answer through as is (ConnectionResetError): the same dropped connection
        session.invalidate()  # never back to the pool: the next checkout connects afresh
        raise unavailable(engine.url, exc) from None
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
