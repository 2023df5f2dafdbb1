"""A private PostgreSQL cluster for fault tests: never restart the shared server.

Use the ``pg_cluster`` fixture (registered for every test by ``tests/conftest.py``)::

    @pytest.mark.slow
    def test_something(pg_cluster: PgCluster) -> None:
        url = pg_cluster.dsn                  # postgresql://postgres@127.0.0.1:<port>/postgres
        ...
        accepting = pg_cluster.restart(mode="immediate")   # time.time() it accepted again
        pg_cluster.stop()                     # an outage (mode "fast" by default)
        pg_cluster.start()                    # back; returns when it accepts connections

or, outside pytest (a load test), ``with private_cluster() as cluster: ...``.

A primary with a streaming standby (failover tests): the ``pg_standby_pair`` fixture, or
``with private_standby_pair(synchronous=True) as pair: ...``::

    url = pair.url        # postgresql://postgres@127.0.0.1:<p>,127.0.0.1:<s>/postgres
                          #     ?target_session_attrs=read-write
    promoted = pair.fail_over()   # primary stopped -m immediate, standby promoted;
                                  # returns the time.time() it first accepted a write

What it does:

- Finds the server binaries (``pg_config --bindir``, then ``/usr/lib/postgresql/<n>/bin``,
  newest first; ``ROMANCY_PG_BINDIR`` overrides). Missing: the test is skipped, except under
  CI (environment ``CI`` set), where it fails loudly.
- ``initdb`` (trust auth, superuser ``postgres``, database ``postgres``) in a fresh temp dir
  that the ``postgres`` OS user owns; as root (CI) every server command runs through
  ``runuser -u postgres --``, since PostgreSQL refuses to run as root.
- Starts it on a spare port with ``-c listen_addresses=127.0.0.1 -k <tmpdir>`` (no socket in
  /var/run), ``fsync=off`` (safe here: only a crash of the machine loses what the OS holds; a
  ``-m immediate`` stop keeps every commit, since ``synchronous_commit`` stays on) and
  ``max_connections=300``.
- ``start()``/``restart()`` return the wall-clock time (``time.time()``, comparable across
  processes on this machine) at which a new connection first succeeded: what "the server
  accepts connections" means in recovery measurements. They poll every 5 ms.
- At the end, always: ``pg_ctl -m immediate stop`` and the temp dir removed (also at
  interpreter exit if a test run is interrupted), so no server is left running.
- The standby pair: a primary as above, then ``pg_basebackup -R -X stream`` (as the
  ``postgres`` OS user, over TCP with the replication line ``initdb`` writes for trust auth)
  into a second temp dir, started on its own spare port: a hot standby streaming from the
  primary. ``synchronous=True`` then sets ``synchronous_standby_names = '*'`` on the primary
  only (``ALTER SYSTEM`` after the base backup, so the standby does not inherit it: once
  promoted it has no standby to wait for) and waits until ``pg_stat_replication`` reports the
  standby ``sync``: from then on a COMMIT returns only once the standby has flushed it.
  ``fail_over()`` stops the primary with ``-m immediate`` (a crash) and runs ``pg_ctl
  promote -w``; it returns when the new primary accepted a read-write transaction.
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

import psycopg
import pytest

from tests._prereq import missing

__all__ = [
    "PgCluster",
    "StandbyPair",
    "find_bindir",
    "pg_async_standby_pair",
    "pg_cluster",
    "pg_standby_pair",
    "private_cluster",
    "private_standby_pair",
]

StopMode = Literal["smart", "fast", "immediate"]


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None."""
    override = os.environ.get("ROMANCY_PG_BINDIR")
    candidates: list[Path] = [Path(override)] if override else []
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                             check=True)
        candidates.append(Path(out.stdout.strip()))
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                      reverse=True)
    candidates.extend(versions)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def _spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One private PostgreSQL server: its data directory, port and DSN."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = _spare_port()
        self._as_postgres = os.geteuid() == 0

    @property
    def dsn(self) -> str:
        """A URL for the ``postgres`` database as superuser ``postgres`` (trust auth)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}):\n"
                               f"{result.stdout}\n{result.stderr}\n{self.server_log()}")
        return result

    def server_log(self) -> str:
        """The tail of the server's log (for failure messages)."""
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def init(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self.root.chmod(0o700)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8", "--locale=C")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.root}'\nfsync = off\n"
                       "full_page_writes = off\n"
                       "max_connections = 300\nshared_buffers = 32MB\n")

    def start(self, timeout: float = 60.0) -> float:
        """Start the server; return the time.time() at which it first accepted a connection."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-W",
                  "-o", f"-c listen_addresses=127.0.0.1 -k {self.root} -p {self.port}", "start")
        return self.wait_accepting(timeout)

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server (``immediate``: like a crash; ``fast``: roll back and disconnect)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: StopMode = "immediate", timeout: float = 60.0) -> float:
        """Stop (``mode``) and start again; return the time.time() it accepted again."""
        self.stop(mode)
        return self.start(timeout)

    @property
    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def wait_accepting(self, timeout: float = 60.0, *, writable: bool = False) -> float:
        """Poll until a connection succeeds (``writable``: and is not in recovery); return
        the time.time() at which it did."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if not writable or row == (False,):
                    return time.time()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL on port {self.port} still in recovery "
                                       f"after {timeout} s\n{self.server_log()}")
                time.sleep(0.005)
                continue
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"private PostgreSQL on port {self.port} did not accept "
                                       f"connections within {timeout} s: {exc}\n"
                                       f"{self.server_log()}") from exc
                time.sleep(0.005)

    def query(self, sql: str) -> list[tuple[object, ...]]:
        """Run one statement (autocommit) as superuser; its rows (none for a command)."""
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description is not None else []

    def promote(self, timeout: float = 60.0) -> float:
        """Promote this standby (``pg_ctl promote -w``); return the time.time() at which it
        first accepted a read-write connection."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", str(int(timeout)), "promote")
        return self.wait_accepting(timeout, writable=True)

    def destroy(self) -> None:
        """Stop at once (if running) and remove every file. Idempotent."""
        if self.data.exists() and (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop",
                      check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _configure(cluster: PgCluster, **settings: object) -> None:
    with (cluster.data / "postgresql.conf").open("a") as conf:
        for name, value in settings.items():
            conf.write(f"{name} = {value!r}\n" if isinstance(value, str) else
                       f"{name} = {value}\n")


def _start_on_spare_port(cluster: PgCluster) -> None:
    for attempt in range(3):  # the spare port may have been taken meanwhile
        try:
            cluster.start()
            return
        except RuntimeError:
            if attempt == 2:
                raise
            cluster.port = _spare_port()
            _configure(cluster, port=cluster.port)


class StandbyPair:
    """A private primary and a hot standby streaming from it (see the module docstring)."""

    def __init__(self, primary: PgCluster, standby: PgCluster) -> None:
        self.primary = primary
        self.standby = standby

    @property
    def url(self) -> str:
        """A multi-host URL: both servers, connections only to the one accepting writes."""
        return (f"postgresql://postgres@127.0.0.1:{self.primary.port},"
                f"127.0.0.1:{self.standby.port}/postgres?target_session_attrs=read-write")

    def make_synchronous(self, timeout: float = 60.0) -> None:
        """Every COMMIT on the primary waits until the standby has flushed it."""
        self.primary.query("ALTER SYSTEM SET synchronous_standby_names = '*'")
        self.primary.query("SELECT pg_reload_conf()")
        deadline = time.monotonic() + timeout
        while self.primary.query("SELECT sync_state FROM pg_stat_replication") != [("sync",)]:
            if time.monotonic() > deadline:
                raise RuntimeError("the standby did not become synchronous\n"
                                   f"{self.primary.server_log()}\n{self.standby.server_log()}")
            time.sleep(0.01)

    def wait_replayed(self, timeout: float = 60.0) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        [(lsn,)] = self.primary.query("SELECT pg_current_wal_lsn()::text")
        deadline = time.monotonic() + timeout
        while self.standby.query(
                f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn") != [(True,)]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the standby did not replay up to {lsn}")
            time.sleep(0.01)

    def detach_standby(self, timeout: float = 60.0) -> None:
        """Stop the standby's replication (``primary_conninfo`` emptied and reloaded): what the
        primary commits from now on never reaches it - an asynchronous standby that lags."""
        self.standby.query("ALTER SYSTEM SET primary_conninfo = ''")
        self.standby.query("SELECT pg_reload_conf()")
        deadline = time.monotonic() + timeout
        while self.primary.query("SELECT count(*) FROM pg_stat_replication") != [(0,)]:
            if time.monotonic() > deadline:
                raise RuntimeError("the standby kept streaming")
            time.sleep(0.01)

    def fail_over(self, timeout: float = 60.0, *, promote_after: float = 0.0) -> float:
        """Crash the primary (``-m immediate``) and promote the standby (``promote_after`` s
        later: a failover manager confirming that the primary is gone); return the
        time.time() at which the new primary first accepted a read-write connection."""
        self.primary.stop("immediate")
        time.sleep(promote_after)
        return self.standby.promote(timeout)


def _new_cluster(bindir: Path, prefix: str) -> PgCluster:
    cluster = PgCluster(bindir, Path(tempfile.mkdtemp(prefix=prefix)))
    atexit.register(cluster.destroy)
    return cluster


def _bindir_or_error() -> Path:
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) not found: install "
                           "postgresql or set ROMANCY_PG_BINDIR")
    return bindir


@contextlib.contextmanager
def private_standby_pair(*, synchronous: bool = True) -> Iterator[StandbyPair]:
    """A started primary and hot standby for the block; both stopped and removed afterwards."""
    bindir = _bindir_or_error()
    primary = _new_cluster(bindir, "romancy_pg_primary_")
    standby = _new_cluster(bindir, "romancy_pg_standby_")
    try:
        primary.init()
        _configure(primary, wal_level="replica", max_wal_senders=5, hot_standby="on",
                   wal_keep_size="256MB")
        _start_on_spare_port(primary)
        if standby._as_postgres:
            shutil.chown(standby.root, "postgres", "postgres")
        standby.root.chmod(0o700)
        standby._run("pg_basebackup", "-D", str(standby.data), "-h", "127.0.0.1",
                     "-p", str(primary.port), "-U", "postgres", "-R", "-X", "stream",
                     "--no-sync", "-c", "fast")
        # the copied postgresql.conf names the primary's port and socket directory
        _configure(standby, port=standby.port, unix_socket_directories=str(standby.root))
        _start_on_spare_port(standby)
        pair = StandbyPair(primary, standby)
        if synchronous:
            pair.make_synchronous()
        yield pair
    finally:
        for cluster in (standby, primary):
            cluster.destroy()
            atexit.unregister(cluster.destroy)


@contextlib.contextmanager
def private_cluster() -> Iterator[PgCluster]:
    """A started private cluster for the block; stopped and removed afterwards."""
    cluster = _new_cluster(_bindir_or_error(), "romancy_pg_")
    try:
        cluster.init()
        _start_on_spare_port(cluster)
        yield cluster
    finally:
        cluster.destroy()
        atexit.unregister(cluster.destroy)


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """A private PostgreSQL server for one test (see the module docstring)."""
    if find_bindir() is None:
        missing("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql "
                 "(e.g. apt-get install postgresql) or set ROMANCY_PG_BINDIR")
    with private_cluster() as cluster:
        yield cluster


def _pair(synchronous: bool) -> Iterator[StandbyPair]:
    if find_bindir() is None:
        missing("PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) not found: install "
                 "postgresql (e.g. apt-get install postgresql) or set ROMANCY_PG_BINDIR")
    with private_standby_pair(synchronous=synchronous) as pair:
        yield pair


@pytest.fixture
def pg_standby_pair() -> Iterator[StandbyPair]:
    """A private primary with a synchronous streaming standby for one test (see the module
    docstring)."""
    yield from _pair(synchronous=True)


@pytest.fixture
def pg_async_standby_pair() -> Iterator[StandbyPair]:
    """A private primary with an asynchronous streaming standby for one test."""
    yield from _pair(synchronous=False)
