"""LinkTimeouts: keepalives and tcp_user_timeout at both ends of a connection, the URL's own
values winning - checked on the real sockets (client) and in the server's settings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from romancy_notify import LinkTimeouts
from romancy_notify.pg import TrioConnection, connect
from romancy_notify.pool import ConnectionPool
from tests._paths import PYTHONPATH
from tests.netns import Partition, partition
from tests.romancy_notify.link_proc import LINK

__all__ = ["partition"]  # the fixture, imported for the test that cuts a link

_SERVER = ("SELECT current_setting('tcp_keepalives_idle'), "
           "current_setting('tcp_keepalives_interval'), current_setting('tcp_keepalives_count'), "
           "current_setting('tcp_user_timeout'), "
           "current_setting('client_connection_check_interval')")


def _client_side(conn: TrioConnection[tuple[object, ...]]) -> tuple[int, int, int, int, int]:
    """(SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT) of its socket."""
    sock = socket.socket(fileno=conn.pgconn.socket)
    try:
        return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT))
    finally:
        sock.detach()  # the fd stays libpq's


def _with(dsn: str, query: str) -> str:
    return dsn + ("&" if "?" in dsn else "?") + query


def test_within_derives_a_window_of_about_the_given_seconds() -> None:
    assert LinkTimeouts.within(5.0) == LinkTimeouts(2, 1, 3, 5000)
    assert LinkTimeouts.within(5.0).window == 5.0
    assert LinkTimeouts.within(60.0) == LinkTimeouts(30, 10, 3, 60000)
    assert LinkTimeouts.within(1.0) == LinkTimeouts(1, 1, 3, 1000)  # whole seconds: 4 s
    with pytest.raises(ValueError, match="seconds must be > 0"):
        LinkTimeouts.within(0)
    with pytest.raises(ValueError, match="keepalives_count must be an int >= 1"):
        LinkTimeouts(1, 1, 0, 1000)


def test_the_conninfo_wins() -> None:
    link = LinkTimeouts(2, 1, 3, 5000)
    assert link.connect_params("postgresql://h/db") == {
        "keepalives": "1", "keepalives_idle": "2", "keepalives_interval": "1",
        "keepalives_count": "3", "tcp_user_timeout": "5000"}
    assert link.connect_params("postgresql://h/db?keepalives_idle=30&tcp_user_timeout=0") == {
        "keepalives": "1", "keepalives_interval": "1", "keepalives_count": "3"}
    assert link.connect_params("host=h keepalives=0") == {"tcp_user_timeout": "5000"}
    statement = link.server_statement("host=h keepalives=0")
    assert statement is not None and "('tcp_user_timeout', '5000')" in statement
    assert "keepalives" not in statement and "check" not in statement
    statement = link.server_statement(
        "postgresql://h/db?keepalives_idle=30&options=-c%20tcp_user_timeout%3D9")
    assert statement is not None
    assert "('tcp_keepalives_idle', '30')" in statement and "tcp_user_timeout" not in statement


def test_the_readme_example_runs() -> None:
    """The docs' *Network partitions* example, in this process (tests/test_docs_examples.py
    also runs it as a program)."""
    path = Path(__file__).resolve().parents[2] / "docs" / "examples" / "link_timeouts.py"
    exec(compile(path.read_text(), str(path), "exec"), {})


async def test_both_ends_of_a_connection_get_them(pg_dsn: str) -> None:
    link = LinkTimeouts(2, 1, 3, 5000)
    async with await connect(pg_dsn, autocommit=False, link=link) as conn:
        assert _client_side(conn) == (1, 2, 1, 3, 5000)
        cur = await conn.execute(_SERVER)
        assert await cur.fetchone() == ("2", "1", "3", "5000", "1s")
        assert not conn.autocommit  # as asked, although the settings ran outside a transaction
    dsn = _with(pg_dsn, "keepalives_idle=7&options=-c%20tcp_user_timeout%3D1234")
    async with await connect(dsn, autocommit=True, link=link) as conn:
        assert _client_side(conn)[1:4] == (7, 1, 3)
        cur = await conn.execute(_SERVER)
        assert await cur.fetchone() == ("7", "1", "3", "1234", "1s")


async def test_pooled_connections_get_them(pg_dsn: str) -> None:
    pool = ConnectionPool(pg_dsn, max_size=2, autocommit=True, link=LinkTimeouts(3, 2, 4, 9000))
    try:
        async with pool.connection() as conn:
            assert _client_side(conn) == (1, 3, 2, 4, 9000)
            cur = await conn.execute(_SERVER)
            assert await cur.fetchone() == ("3", "2", "4", "9000", "2s")
    finally:
        await pool.aclose()


def _start_link_proc(partition: Partition) -> subprocess.Popen[str]:
    return subprocess.Popen(
        partition.exec_argv([sys.executable, "-m", "tests.romancy_notify.link_proc",
                             partition.dsn_from_namespace]),
        cwd=Path(__file__).resolve().parents[2], env={**os.environ, "PYTHONPATH": PYTHONPATH},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


@pytest.mark.slow
async def test_a_cut_link_is_noticed_in_bounded_time_at_both_ends(
        partition: Partition) -> None:
    """A process in a network namespace holds three connections (``link_proc``) with a 3 s
    keepalive window and a 2 s ``tcp_user_timeout``; the link is cut silently. A statement
    sent into the cut, one waiting for its answer and - at the server - the backend idle in a
    transaction (rolled back, locks released) all end within about 2-3 s, instead of the
    kernel's 15 minutes (unacknowledged data) or 2 hours (an idle connection)."""
    proc = _start_link_proc(partition)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        ready = proc.stdout.readline().split()
        assert ready[:1] == ["ready"], ready
        idle_pid = int(ready[1])
        partition.cut()
        started = trio.current_time()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        async with await connect(partition.cluster.dsn, autocommit=True) as conn:
            with trio.fail_after(60):
                while (await (await conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                        (idle_pid,))).fetchone()) != (0,):
                    await trio.sleep(0.1)
        server_ended = trio.current_time() - started
        out, _ = await trio.to_thread.run_sync(lambda: proc.communicate(timeout=120))
    finally:
        if partition.netns.is_cut:
            partition.restore()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    print(f"\nsent into the cut: {lines['sending']}; waiting for an answer: {lines['waiting']};"
          f" server ended the idle-in-transaction backend after {server_ended:.2f} s")
    for name in ("sending", "waiting"):
        seconds, error = lines[name].split()
        assert error == "OperationalError"
        # not at once (a cut sends nothing), and within the window (3 s; the kernel also ends
        # a probed connection once tcp_user_timeout passes) plus slack for a loaded machine
        assert 1.0 <= float(seconds) <= LINK.window + 10
    assert server_ended <= LINK.window + 10
