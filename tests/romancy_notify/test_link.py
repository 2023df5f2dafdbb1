"""LinkTimeouts: keepalives and tcp_user_timeout at both ends of a connection, the URL's own
values winning - checked on the real sockets (client) and in the server's settings."""

from __future__ import annotations

import socket

import pytest

from romancy_notify import LinkTimeouts
from romancy_notify.pg import TrioConnection, connect
from romancy_notify.pool import ConnectionPool

_SERVER = ("SELECT current_setting('tcp_keepalives_idle'), "
           "current_setting('tcp_keepalives_interval'), current_setting('tcp_keepalives_count'), "
           "current_setting('tcp_user_timeout')")


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
    assert link.server_statement("host=h keepalives=0") == (
        "SELECT set_config('tcp_user_timeout', '5000', false)")
    statement = link.server_statement(
        "postgresql://h/db?keepalives_idle=30&options=-c%20tcp_user_timeout%3D9")
    assert statement is not None
    assert "'tcp_keepalives_idle', '30'" in statement and "tcp_user_timeout" not in statement


async def test_both_ends_of_a_connection_get_them(pg_dsn: str) -> None:
    link = LinkTimeouts(2, 1, 3, 5000)
    async with await connect(pg_dsn, autocommit=False, link=link) as conn:
        assert _client_side(conn) == (1, 2, 1, 3, 5000)
        cur = await conn.execute(_SERVER)
        assert await cur.fetchone() == ("2", "1", "3", "5000")
        assert not conn.autocommit  # as asked, although the settings ran outside a transaction
    dsn = _with(pg_dsn, "keepalives_idle=7&options=-c%20tcp_user_timeout%3D1234")
    async with await connect(dsn, autocommit=True, link=link) as conn:
        assert _client_side(conn)[1:4] == (7, 1, 3)
        cur = await conn.execute(_SERVER)
        assert await cur.fetchone() == ("7", "1", "3", "1234")


async def test_pooled_connections_get_them(pg_dsn: str) -> None:
    pool = ConnectionPool(pg_dsn, max_size=2, autocommit=True, link=LinkTimeouts(3, 2, 4, 9000))
    try:
        async with pool.connection() as conn:
            assert _client_side(conn) == (1, 3, 2, 4, 9000)
            cur = await conn.execute(_SERVER)
            assert await cur.fetchone() == ("3", "2", "4", "9000")
    finally:
        await pool.aclose()
