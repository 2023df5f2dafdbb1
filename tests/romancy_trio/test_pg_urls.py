"""Multi-host PostgreSQL URLs (failover, issue #30): a bad one is refused before anything
connects, with a ConfigurationError that names the problem - by open_app (url and
listener_url), the ``migrate`` command and ``serve`` (app_from_env); an unreachable good one is
a StorageUnavailableError naming every host. No server is needed: nothing listens on the
ports used here, so a URL that got as far as connecting would fail differently."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest

from romancy_notify import open_pg_hub
from romancy_trio import ConfigurationError, StorageUnavailableError, open_app
from romancy_trio.__main__ import main as romancy_main
from romancy_trio.storage._pg_url import check_postgres_url, server_address
from romancy_trio.storage._postgres import PostgresDatabase
from tests._paths import PYTHONPATH

from ._procs import ROOT


def _closed_port() -> int:
    with socket.socket() as s:  # bound, then released: nothing listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


P1, P2 = _closed_port(), _closed_port()
GOOD = f"postgresql://u@127.0.0.1:{P1},127.0.0.1:{P2}/db?target_session_attrs=read-write"

BAD = [
    (f"postgresql://u@127.0.0.1:{P1},127.0.0.1:{P2}/db", "add ?target_session_attrs=read-write"),
    (f"postgresql://u@127.0.0.1:{P1},127.0.0.1:{P2}/db?target_session_attrs=any",
     "target_session_attrs=any"),
    (f"postgresql://u@127.0.0.1:{P1}/db?target_session_attrs=standby", "read-only server"),
    (f"postgresql://u@127.0.0.1:{P1},127.0.0.1:{P2}/db?target_session_attrs=prefer-standby",
     "read-only server"),
    (f"postgresql://u@127.0.0.1:{P1}/db?target_session_attrs=read_write", "is not one of"),
    ("postgresql://u@h1,h2,h3/db?port=1,2&target_session_attrs=read-write",
     "3 host(s) but 2 port values"),
    ("postgresql://u@h1:5432,,h2:5432/db?target_session_attrs=read-write", "empty entry"),
    ("postgresql://u@h1:54x2/db", "'54x2' is not a port number"),
    ("postgresql://u@h1:99999,h2/db?target_session_attrs=primary", "'99999' is not a port"),
    ("postgresql://u@h1/db?nosuchparam=1", "cannot be parsed"),
]


@pytest.mark.parametrize(("url", "says"), BAD)
async def test_open_app_refuses_a_bad_url_before_connecting(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        async with open_app(url):
            pytest.fail("open_app entered with a bad URL")
    assert says in str(info.value)
    assert "database URL" in str(info.value)


async def test_open_app_refuses_a_bad_listener_url() -> None:
    listener = f"postgresql://u@127.0.0.1:{P1},127.0.0.1:{P2}/db"
    with pytest.raises(ConfigurationError, match=r"listener_url .* add \?target_session_attrs"):
        async with open_app(GOOD, listener_url=listener):
            pytest.fail("open_app entered with a bad listener URL")


def test_the_password_is_not_repeated_in_the_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        check_postgres_url("postgresql://alice:s3cret@h1:5432,h2:5432/db")
    assert "s3cret" not in str(info.value)
    assert "postgresql://alice:***@h1:5432,h2:5432/db" in str(info.value)


def test_good_urls_pass() -> None:
    for url in (GOOD, "postgresql://u@h1/db", "postgres://u@h1:5433/db?sslmode=disable",
                "postgresql://u@h1,h2:5433/db?target_session_attrs=primary",  # h1: 5432
                "postgresql:///db?host=/run/a,/run/b&target_session_attrs=read-write",
                "postgresql://u@[::1]:5432,h2/db?target_session_attrs=read-write"):
        check_postgres_url(url)


def test_server_address_names_every_host() -> None:
    assert server_address("postgresql://u@h1:5,h2:6/db") == "h1:5, h2:6"
    assert server_address("postgresql://u@h1,h2:6/db") == "h1:5432, h2:6"
    assert server_address("postgresql://u@h1,h2/db?port=7") == "h1:7, h2:7"
    assert server_address("postgresql://u@h1/db") == "h1:5432"


async def test_unreachable_multi_host_url_names_both_servers() -> None:
    with pytest.raises(StorageUnavailableError) as info:
        async with open_app(GOOD):
            pytest.fail("open_app entered without a server")
    message = str(info.value)
    assert f"127.0.0.1:{P1}, 127.0.0.1:{P2}" in message
    assert message.lower().count("refused") >= 2, message  # each host was tried


def test_migrate_command_refuses_a_bad_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert romancy_main(["migrate", BAD[0][0]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "target_session_attrs=read-write" in err


def test_migrate_command_names_both_servers_when_unreachable(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert romancy_main(["migrate", GOOD]) == 1
    assert f"127.0.0.1:{P1}, 127.0.0.1:{P2}" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_refuses_a_bad_multi_host_url() -> None:
    """``python -m romancy_trio serve`` (app_from_env, as the docker ``http`` service runs it)."""
    proc = subprocess.run(
        [sys.executable, "-m", "romancy_trio", "serve", "--bind", "127.0.0.1:0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": PYTHONPATH, "ROMANCY_TRIO_URL": BAD[0][0]})
    assert proc.returncode == 3, proc.stderr
    assert "target_session_attrs=read-write" in proc.stderr


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A port where the kernel completes TCP handshakes but nobody ever answers: like a
    primary whose machine froze or vanished without resetting connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


@pytest.mark.slow
async def test_the_urls_connect_timeout_bounds_each_host_everywhere(hung_port: int) -> None:
    """``connect_timeout`` in the URL is what each connection attempt waits for a host (per
    host: a short one keeps a hung first host from delaying the next) - for the pool, the
    worker's session and the notify listener alike, instead of their own defaults (10 s,
    the heartbeat interval, the probe timeout)."""
    url = (f"postgresql://u@127.0.0.1:{hung_port},127.0.0.1:{hung_port}/db"
           "?target_session_attrs=read-write&connect_timeout=2")
    db = PostgresDatabase(url, schema="romancy")
    try:
        with pytest.raises(StorageUnavailableError) as pooled:
            await db.fetchone("SELECT 1")
        session = db.worker_session(on_connect=None, connect_timeout=0.5)
        with pytest.raises(StorageUnavailableError) as own:
            await session.ensure()
    finally:
        await db.aclose()
    with pytest.raises(psycopg.errors.ConnectionTimeout) as listener:
        async with open_pg_hub(url, ["t"]):
            pytest.fail("the listener connected to nothing")
    for info in (pooled, own, listener):
        waits = re.findall(r"hostaddr: '127.0.0.1': connection timeout expired after (\S+) s",
                           str(info.value))
        assert waits == ["2", "2"], info.value  # each host was tried, for 2 s
