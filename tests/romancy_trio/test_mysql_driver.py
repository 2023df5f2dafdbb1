"""The MySQL/MariaDB driver against the real server: start-up checks, cancellation, deadlocks."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import trio

from romancy_trio import ConfigurationError, StorageUnavailableError
from romancy_trio.storage import _mysql_conn
from romancy_trio.storage._mysql import MysqlDatabase, check_server
from romancy_trio.storage._mysql_conn import check_version, parse_url

from ..conftest import _mysql_connect


def _url(dsn: str, **changes: str) -> str:
    p = parse_url(dsn)
    user = changes.get("user", p.user)
    password = changes.get("password", p.password)
    host = changes.get("host", p.host)
    port = changes.get("port", str(p.port))
    auth = f"{user}:{password}" if password else user
    return f"mysql://{auth}@{host}:{port}/{changes.get('database', p.database)}"


def _databases(dsn: str, name: str) -> list[str]:
    conn = _mysql_connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE %s", (name,))
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


async def test_wrong_password_is_a_configuration_error(mysql_dsn: str) -> None:
    url = _url(mysql_dsn, password="certainly-wrong")
    with pytest.raises(ConfigurationError, match=r"access denied \(user or password\)"):
        await check_server(parse_url(url))


async def test_unknown_database_is_a_configuration_error(mysql_dsn: str) -> None:
    url = _url(mysql_dsn, database="no_such_database_here")
    with pytest.raises(ConfigurationError, match="unknown database"):
        await check_server(parse_url(url))
    assert _databases(mysql_dsn, "no_such_database_here") == []


async def test_unreachable_host_names_host_and_port(mysql_dsn: str) -> None:
    with trio.socket.socket() as probe:  # a port nobody listens on
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = _url(mysql_dsn, host="127.0.0.1", port=str(port))
    with pytest.raises(StorageUnavailableError, match=f"MySQL at 127.0.0.1:{port} is unavailable"):
        await check_server(parse_url(url))


def test_old_server_versions_are_refused_naming_both_versions() -> None:
    with pytest.raises(ConfigurationError, match=r"MariaDB .* version 10\.5\.9-MariaDB.*>= 10\.6"):
        check_version("10.5.9-MariaDB-1:10.5.9+maria~focal", "h:1")
    with pytest.raises(ConfigurationError, match=r"MySQL .* version 5\.7\.44.*>= 8\.0"):
        check_version("5.7.44-log", "h:1")
    check_version("8.0.36", "h:1")
    check_version("5.5.5-10.11.6-MariaDB", "h:1")  # MariaDB's old replication prefix
    check_version("10.6.0-MariaDB", "h:1")


def test_bad_urls_name_the_problem() -> None:
    with pytest.raises(ConfigurationError, match="names no database"):
        parse_url("mysql://root@127.0.0.1:3306/")
    with pytest.raises(ConfigurationError, match="unknown parameter"):
        parse_url("mysql://root@127.0.0.1:3306/db?sslmode=x")
    assert parse_url("mariadb://u:p%40ss@h:3307/d").password == "p@ss"


async def _open(mysql_dsn: str, mysql_db: str, size: int = 2) -> MysqlDatabase:
    await check_server(parse_url(mysql_dsn))
    return MysqlDatabase(parse_url(_url(mysql_dsn, database=mysql_db)), schema=mysql_db,
                         max_size=size)


async def test_the_real_server_passes_the_version_check(mysql_dsn: str) -> None:
    version = await check_server(parse_url(mysql_dsn))
    check_version(version, "here")
    assert version  # e.g. 10.11.x-MariaDB


async def test_a_cancelled_query_discards_its_connection(mysql_dsn: str, mysql_db: str) -> None:
    db = await _open(mysql_dsn, mysql_db, size=1)
    try:
        await db.execute("CREATE TABLE t (id int PRIMARY KEY)")
        with trio.move_on_after(0.3) as scope:
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (1)")
                await tx.fetchall("SELECT SLEEP(30)")
        assert scope.cancelled_caught
        # nothing of the cancelled transaction committed, and the next statement gets a
        # fresh session (the pool never hands out the one cut off mid-statement)
        connects = db.pool.connects
        with trio.fail_after(10):
            assert await db.fetchall("SELECT count(*) FROM t") == [(0,)]
        assert db.pool.connects == connects + 1
    finally:
        await db.aclose()


async def test_closing_waits_for_a_connect_that_a_cancellation_abandoned(
        mysql_dsn: str, mysql_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task cancelled while its session was being opened leaves the connect running in its
    thread. Closing the database waits for that thread - one still inside the driver (in
    OpenSSL: PyMySQL builds a TLS context for every connect) when the process exits can crash
    it - and the session the connect opened anyway is closed, not leaked."""
    release = threading.Event()
    made: list[Any] = []
    real = _mysql_conn.connect_blocking

    def held_connect(p: _mysql_conn.MysqlParams, database: str | None) -> Any:
        release.wait(30)
        made.append(real(p, database))
        return made[-1]

    db = await _open(mysql_dsn, mysql_db, size=1)
    monkeypatch.setattr(_mysql_conn, "connect_blocking", held_connect)
    try:
        with trio.move_on_after(0.2) as scope:
            await db.fetchall("SELECT 1")
        assert scope.cancelled_caught and not made  # the connect is still held
    finally:
        release.set()
        with trio.fail_after(30):
            await db.aclose()
    [raw] = made
    assert not raw.open


async def test_deadlocked_statements_are_retried_and_counted(
        mysql_dsn: str, mysql_db: str) -> None:
    """Two tasks update two rows in opposite orders until InnoDB has rolled one side of a
    deadlock back at least once: the driver ran it again each time, so every increment
    landed exactly once."""
    db = await _open(mysql_dsn, mysql_db, size=4)
    try:
        await db.execute("CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL)")
        await db.execute("INSERT INTO t VALUES (1, 0), (2, 0)")
        done = [0, 0]

        async def bump(side: int, first: int, second: int) -> None:
            while db.retries == 0:
                await db.fetch_batch([
                    ("UPDATE t SET n = n + 1 WHERE id = %s", (first,)),
                    ("SELECT SLEEP(0.005)", ()),
                    ("UPDATE t SET n = n + 1 WHERE id = %s", (second,))])
                done[side] += 1

        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(bump, 0, 1, 2)
                nursery.start_soon(bump, 1, 2, 1)
        assert db.retries > 0
        total = done[0] + done[1]
        assert await db.fetchall("SELECT id, n FROM t ORDER BY id") == [(1, total), (2, total)]
    finally:
        await db.aclose()
