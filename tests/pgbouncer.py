"""A private PgBouncer in front of the shared test PostgreSQL: never reconfigure the shared one.

Fixtures (registered for every test by ``tests/conftest.py``)::

    def test_something(pgbouncer_transaction: PgBouncer, pg_dsn: str, pg_schema: str) -> None:
        url = pgbouncer_transaction.url(schema=pg_schema)   # through PgBouncer
        listener = pg_dsn                                     # straight to PostgreSQL

``pgbouncer_transaction`` (``pool_mode = transaction``) and ``pgbouncer_session``
(``pool_mode = session``) are started once per test session, each on a spare port of 127.0.0.1.

What it does:

- Finds ``pgbouncer`` on PATH or in /usr/sbin (Debian's package; ``ROMANCY_PGBOUNCER``
  overrides; ``.ci/pgbouncer.sh`` installs it). Missing: the test is skipped, except under CI
  (environment ``CI`` set), where it fails loudly.
- Writes a config into a fresh temp dir: ``auth_type = trust`` (the user must only be listed
  in the auth file, which names the test DSN's user), every database name passed through to
  the test server (``* = host=... port=...``), no Unix socket, ``admin_users`` = that user.
  In transaction mode server connections are capped (``max_user_connections``, the shared
  server has few to spare) and closed after 5 s idle.
- PgBouncer refuses to run as root: as root it runs as the ``postgres`` user.
- ``url(schema=...)``: a URL whose server connections start with ``search_path`` = that schema.
  A transaction pooler hands one server connection to many clients, so a client's startup
  options cannot set it (PgBouncer 1.18 ignores ``options``); instead each schema gets a
  database alias whose ``connect_query`` sets it on every server connection of that alias's
  pool, added with the admin console's ``RELOAD`` (synchronous). In session mode the reset
  between clients therefore keeps settings (`_RESET`). The library itself needs no
  search_path (it names its schema); the tests' own SQL does.
- At the end, always: SIGTERM (then SIGKILL) and the temp dir removed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import psycopg
import pytest

from tests._prereq import missing
from tests.romancy_trio._procs import stop

__all__ = ["PgBouncer", "find_pgbouncer", "pgbouncer_session", "pgbouncer_transaction",
           "private_pgbouncer"]

PoolMode = Literal["transaction", "session"]


def find_pgbouncer() -> Path | None:
    override = os.environ.get("ROMANCY_PGBOUNCER")
    found = override or shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    return Path(found) if Path(found).is_file() else None


def _spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_RESET = ("CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; DEALLOCATE ALL; UNLISTEN *; "
          "SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES")
"""Session mode's reset between clients: ``DISCARD ALL`` but for its ``RESET ALL``, which
would undo the alias's ``search_path`` (``connect_query`` runs on new server connections only)."""


class PgBouncer:
    """One private PgBouncer process in front of ``target`` (a URL of the test server)."""

    def __init__(self, binary: Path, root: Path, target: str, mode: PoolMode) -> None:
        parts = urlsplit(target)
        if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
            raise ValueError(f"PgBouncer fixture: {target!r} must be a postgresql:// URL "
                             "naming host, port and database")
        self.binary = binary
        self.root = root
        self.mode: PoolMode = mode
        self.host = parts.hostname or "127.0.0.1"
        self.server_port = parts.port or 5432
        self.user = parts.username or "postgres"
        self.dbname = parts.path.strip("/")
        self.port = _spare_port()
        self.aliases: dict[str, str] = {}  # alias -> schema
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_postgres = os.geteuid() == 0

    def url(self, dbname: str | None = None, *, schema: str | None = None) -> str:
        """A URL through this PgBouncer: to ``dbname`` (the target's by default), or, with
        ``schema``, to an alias of the target database whose connections use that schema."""
        if schema is not None:
            dbname = self.alias(schema)
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname or self.dbname}"

    def alias(self, schema: str) -> str:
        for alias, known in self.aliases.items():
            if known == schema:
                return alias
        if not schema.replace("_", "").isalnum() or not schema.isascii():
            raise ValueError(f"PgBouncer fixture: schema {schema!r} must be a plain name")
        alias = f"rt_sp_{len(self.aliases)}_{schema}"[:63]
        self.aliases[alias] = schema
        self._write_config()
        self.admin("RELOAD")
        return alias

    def server_pids(self) -> set[int]:
        """The backend pids of every server connection PgBouncer holds now."""
        return {int(row["remote_pid"] or 0) for row in self.admin("SHOW SERVERS")} - {0}

    def _write_config(self) -> None:
        server = f"host={self.host} port={self.server_port}"
        dbs = [f"{alias} = {server} dbname={self.dbname} "
               f"connect_query='SET search_path TO {schema}'"
               for alias, schema in self.aliases.items()]
        capped = (["max_user_connections = 40", "default_pool_size = 20"]
                  if self.mode == "transaction" else ["default_pool_size = 100",
                                                      f"server_reset_query = {_RESET}"])
        lines = [
            "[databases]", *dbs, f"* = {server}", "",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1", f"listen_port = {self.port}", "unix_socket_dir =",
            f"pool_mode = {self.mode}", "auth_type = trust",
            f"auth_file = {self.root / 'users.txt'}", f"admin_users = {self.user}",
            f"logfile = {self.root / 'pgbouncer.log'}",
            f"pidfile = {self.root / 'pgbouncer.pid'}",
            "max_client_conn = 2000", *capped, "server_idle_timeout = 5",
            "ignore_startup_parameters = extra_float_digits,options",
            "server_login_retry = 1",
        ]
        (self.root / "users.txt").write_text(f'"{self.user}" ""\n')
        (self.root / "pgbouncer.ini").write_text("\n".join(lines) + "\n")
        if self._as_postgres:
            for name in ("users.txt", "pgbouncer.ini"):
                shutil.chown(self.root / name, "postgres", "postgres")

    def start(self, timeout: float = 30.0) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._write_config()
        # as the postgres user, but the process itself (no runuser in between, which would
        # not pass SIGTERM on): stopping it stops PgBouncer
        self.proc = subprocess.Popen([str(self.binary), str(self.root / "pgbouncer.ini")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     cwd=self.root, user="postgres" if self._as_postgres else None,
                                     group="postgres" if self._as_postgres else None)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited ({self.proc.returncode}):\n{self.log()}")
            try:
                with psycopg.connect(self.url(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer on port {self.port} did not accept "
                                       f"connections within {timeout} s: {exc}\n"
                                       f"{self.log()}") from exc
                time.sleep(0.02)

    def admin(self, command: str) -> list[dict[str, str | None]]:
        """One command on the admin console (simple query protocol, as it requires); its rows
        (``SHOW SERVERS``: one per server connection, ``remote_pid`` its backend's pid)."""
        conn = psycopg.connect(f"postgresql://{self.user}@127.0.0.1:{self.port}/pgbouncer",
                               autocommit=True, connect_timeout=5)
        try:
            result = conn.pgconn.exec_(command.encode())
            if result.status not in (psycopg.pq.ExecStatus.COMMAND_OK,
                                     psycopg.pq.ExecStatus.TUPLES_OK):
                message = (result.error_message or b"").decode(errors="replace")
                raise RuntimeError(f"pgbouncer admin {command!r} failed: {message}")
            names = [(result.fname(j) or b"").decode() for j in range(result.nfields)]
            return [{name: None if (v := result.get_value(i, j)) is None else v.decode()
                     for j, name in enumerate(names)} for i in range(result.ntuples)]
        finally:
            conn.close()

    def log(self) -> str:
        try:
            return (self.root / "pgbouncer.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def destroy(self) -> None:
        """Stop (SIGTERM, then SIGKILL) and remove every file. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop(proc)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_pgbouncer(target: str, mode: PoolMode) -> Iterator[PgBouncer]:
    """A started PgBouncer in front of ``target`` for the block; stopped afterwards."""
    binary = find_pgbouncer()
    if binary is None:
        raise RuntimeError("pgbouncer not found: run .ci/pgbouncer.sh (apt-get install "
                           "pgbouncer) or set ROMANCY_PGBOUNCER")
    bouncer = PgBouncer(binary, Path(tempfile.mkdtemp(prefix="romancy_pgbouncer_")), target,
                        mode)
    atexit.register(bouncer.destroy)
    try:
        for attempt in range(3):  # the spare port may have been taken meanwhile
            try:
                bouncer.start()
                break
            except RuntimeError:
                if bouncer.proc is not None and bouncer.proc.poll() is None:
                    bouncer.proc.kill()
                    bouncer.proc.wait(timeout=10)
                bouncer.proc = None
                if attempt == 2:
                    raise
                bouncer.port = _spare_port()
        yield bouncer
    finally:
        bouncer.destroy()
        atexit.unregister(bouncer.destroy)


def _fixture(mode: PoolMode, request: pytest.FixtureRequest) -> Iterator[PgBouncer]:
    if find_pgbouncer() is None:
        missing("pgbouncer not found: run .ci/pgbouncer.sh (apt-get install pgbouncer) "
                "or set ROMANCY_PGBOUNCER")
    target: str = request.getfixturevalue("pg_dsn")
    with private_pgbouncer(target, mode) as bouncer:
        yield bouncer


@pytest.fixture(scope="session")
def pgbouncer_transaction(request: pytest.FixtureRequest) -> Iterator[PgBouncer]:
    """A PgBouncer in transaction mode in front of the test database (one per session)."""
    yield from _fixture("transaction", request)


@pytest.fixture(scope="session")
def pgbouncer_session(request: pytest.FixtureRequest) -> Iterator[PgBouncer]:
    """A PgBouncer in session mode in front of the test database (one per session)."""
    yield from _fixture("session", request)
