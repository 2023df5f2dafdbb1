"""The PostgreSQL source: one dedicated autocommit LISTEN connection feeding a hub.

- Start-up: connect (outside any pool), ``LISTEN`` every topic (names quoted with
  `psycopg.sql.Identifier`), then a *self-probe*: a second, short-lived connection to ``dsn``
  NOTIFYs a random token on a private channel, which the listener must receive within
  ``probe_timeout``. A connection that cannot LISTEN (a transaction-pooling proxy hands each
  statement to some server connection) or that reaches another database fails the probe with
  `ListenProbeFailed`; ``listener_dsn`` can point the listener at a direct connection.
- Receiving: ``conn.notifies(timeout=liveness_interval)``; a window with nothing received is
  followed by a liveness ``SELECT 1`` bounded by ``probe_timeout``. With ``NotifyConfig.link``
  the connection's keepalives also end it when the link dies silently (both ends).
- Losing the connection (`psycopg.OperationalError`, `psycopg.InterfaceError`, a liveness or
  probe timeout; a standby refusing LISTEN): log a warning, reconnect on a fresh connection,
  forever (a multi-host URL: to whichever host is the primary then): every
  ``reconnect_initial`` s (jittered) for the first ``reconnect_fast_for`` s of the outage, so
  a restarted server is found within about 50-100 ms of accepting connections, then with
  exponential backoff up to ``reconnect_max``;
  re-LISTEN and re-probe, and only then report a gap to every watch, so a waiter's rescan
  cannot miss a notification sent while the listener was away. Cancellation always propagates.
- `Hub.set_heard`: the listener task owns the connection, so it runs the UNLISTEN / LISTEN
  itself. A change sets a flag and cancels the scope of the listener's idle socket wait
  (`_Heard`); the listener then brings its LISTENs in line with the wanted state (a failure
  there is a lost connection like any other) and goes on waiting until the same liveness
  deadline. The per-notification path is untouched. A new connection LISTENs only the channels
  heard at that moment.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import psycopg
import trio
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from . import pg
from ._config import NotifyConfig
from ._hub import Hub, SourceLink
from ._registry import validate_payload, validate_topic

__all__ = ["ListenProbeFailed", "check_notification", "notify_tx", "open_pg_hub"]

logger = logging.getLogger("romancy_notify")

# What a lost or unusable listener connection raises; anything else is a bug and propagates.
# ReadOnlySqlTransaction: LISTEN (or the probe's NOTIFY) reached a standby, which refuses
# both during recovery (a URL without target_session_attrs=read-write, mid-failover).
_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError,
                      psycopg.errors.ReadOnlySqlTransaction, trio.TooSlowError)
_PROBE_PREFIX = "romancy_notify_probe_"


class ListenProbeFailed(RuntimeError):
    """The listener connection did not receive its own probe notification: it cannot LISTEN."""


def check_notification(topic: str, payload: str) -> None:
    """Raise `ValueError` now if ``(topic, payload)`` could not be sent by `notify_tx` (for
    callers that queue notifications and send them later, e.g. pipelined with COMMIT)."""
    validate_topic(topic)
    validate_payload(payload)


async def notify_tx(conn: psycopg.AsyncConnection[Any], topic: str, payload: str) -> None:
    """NOTIFY ``(topic, payload)`` inside the caller's transaction: it is sent on commit.

    PostgreSQL folds repeats of one ``(topic, payload)`` within a transaction; still, notify
    each distinct key once. The channel is a bound parameter of ``pg_notify``, never SQL text.
    """
    validate_topic(topic)
    validate_payload(payload)
    await conn.execute("SELECT pg_notify(%s, %s)", (topic, payload))


def _connect_timeout(dsn: str, default: float) -> float | None:
    """``default``, unless the DSN sets ``connect_timeout`` itself (None: then that applies,
    per host of a multi-host URL: a short one keeps a hung first host from delaying the
    others)."""
    return None if "connect_timeout" in conninfo_to_dict(dsn) else default


def _describe(exc: BaseException, default: str) -> str:
    """``exc`` on one line (psycopg's connection errors span several)."""
    return " ".join(str(exc).split()) or default


def _listen(topics: Collection[str]) -> sql.Composed:
    return sql.SQL("; ").join(sql.SQL("LISTEN {}").format(sql.Identifier(t)) for t in topics)


class _Heard:
    """The listener's side of `Hub.set_heard`: ``changed``, set when the wanted state changes,
    and ``wait``, the cancel scope of the listener's current idle wait, cancelled to wake it."""

    __slots__ = ("changed", "wait")

    def __init__(self) -> None:
        self.changed = False
        self.wait: trio.CancelScope | None = None

    def wake(self) -> None:
        self.changed = True
        if self.wait is not None:
            self.wait.cancel()  # no effect once that wait is over: `changed` is seen anyway


async def _apply_heard(conn: pg.TrioConnection[Any], sink: SourceLink, heard: _Heard,
                       timeout: float) -> bool:
    """UNLISTEN the topics newly unheard and LISTEN those heard again on ``conn``; only then
    report a gap to the watches of the latter. True if a statement ran."""
    heard.changed = False
    want, had = sink.unheard_wanted(), sink.unheard_applied
    stop, start = sorted(want - had), sorted(had - want)
    if not (stop or start):
        return False
    statements = [sql.SQL("UNLISTEN {}").format(sql.Identifier(t)) for t in stop]
    statements += [sql.SQL("LISTEN {}").format(sql.Identifier(t)) for t in start]
    with trio.move_on_after(timeout) as scope:
        await conn.execute(sql.SQL("; ").join(statements))
    if scope.cancelled_caught:  # a lost connection, like a failed liveness check
        raise trio.TooSlowError(f"UNLISTEN / LISTEN timed out after {timeout:g} s")
    sink.set_unheard_applied(want)
    sink.gap_topics(start)  # only now: a rescan after this cannot miss a notification
    return True


async def _probe(
    conn: pg.TrioConnection[Any],
    dsn: str,
    channel: str,
    routes: Mapping[str, str],
    config: NotifyConfig,
    sink: SourceLink,
) -> None:
    """NOTIFY a random token on ``channel`` (which ``conn`` LISTENs to) from a second
    connection and wait to receive it on ``conn``."""
    token = secrets.token_hex(16)
    with trio.fail_after(config.probe_timeout):
        sender = await pg.connect(dsn, autocommit=True,
                                  connect_timeout=_connect_timeout(dsn, config.probe_timeout),
                                  link=config.link)
        try:
            await sender.execute("SELECT pg_notify(%s, %s)", (channel, token))
        finally:
            await sender.close()
    if not await _await_token(conn, channel, token, routes, sink.deliver, config.probe_timeout):
        raise ListenProbeFailed(
            f"the notify listener connection did not receive its own probe notification "
            f"within {config.probe_timeout:g} s, so it cannot LISTEN: is it going through a "
            "transaction-pooling proxy (e.g. PgBouncer in transaction mode), or to another "
            "server or database than the DSN used to send? Pass listener_dsn= pointing at "
            "a direct connection to the same database."
        )


async def _await_token(
    conn: pg.TrioConnection[Any],
    channel: str,
    token: str,
    routes: Mapping[str, str],
    deliver: Callable[[str, str], None],
    timeout: float,
) -> bool:
    """Read notifications on ``conn`` until ``token`` arrives on ``channel`` (True) or
    ``timeout`` passes (False), handing every other one of ``routes`` to ``deliver``. Reads at
    libpq level, as `_receive` does, and always takes a whole batch: the notifications that
    arrived with the token (after it in the same read) are delivered, not dropped."""
    pgconn = conn.pgconn
    encoding = conn.info.encoding
    seen = False
    with trio.move_on_after(timeout):
        while True:
            while (n := pgconn.notifies()) is not None:  # what libpq already holds first
                name, payload = n.relname.decode(encoding), n.extra.decode(encoding)
                if name == channel and payload == token:
                    seen = True
                elif (topic := routes.get(name)) is not None:
                    deliver(topic, payload)
            if seen:
                break
            await trio.lowlevel.wait_readable(pgconn.socket)
            pgconn.consume_input()  # psycopg.OperationalError once the connection is lost
    return seen


async def _open_listener(
    dsn: str, listener_dsn: str, routes: Mapping[str, str], config: NotifyConfig,
    sink: SourceLink
) -> pg.TrioConnection[Any]:
    """A fresh autocommit connection that LISTENs to the channels of ``routes`` (channel ->
    the topic it is delivered as; not those of topics `Hub.set_heard` wants unheard) and
    passed the self-probe."""
    unheard = sink.unheard_wanted()
    conn = await pg.connect(listener_dsn, autocommit=True,
                            connect_timeout=_connect_timeout(listener_dsn, config.probe_timeout),
                            link=config.link)
    ok = False
    try:
        channel = _PROBE_PREFIX + secrets.token_hex(8)
        with trio.fail_after(config.probe_timeout):
            await conn.execute(_listen([*sorted(set(routes) - unheard), channel]))
        await _probe(conn, dsn, channel, routes, config, sink)

        def handler(n: psycopg.Notify) -> None:  # one received during a statement
            if (topic := routes.get(n.channel)) is not None:
                sink.deliver(topic, n.payload)

        conn.add_notify_handler(handler)  # only now: `_probe` reads notifications itself
        with trio.fail_after(config.probe_timeout):
            await conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(channel)))
        sink.set_unheard_applied(unheard)
        ok = True
        return conn
    finally:
        if not ok:
            await conn.close()


async def _receive(
    conn: pg.TrioConnection[Any], routes: Mapping[str, str], config: NotifyConfig,
    sink: SourceLink, heard: _Heard
) -> NoReturn:
    """Feed notifications to ``sink`` until the connection fails.

    Idle, it reads the socket itself at psycopg's libpq level (``conn.pgconn``): one wake-up
    takes every notification that has arrived, without the lock, generator and two objects per
    notification of ``conn.notifies()`` - every process hears every notification of its
    topics, so this is paid per workflow per process (issue #22: about a third less CPU per
    notification in the listening process, e.g. 104 -> 68 us). One arriving during a
    statement on the connection (the liveness ``SELECT 1``, a `Hub.set_heard` change) comes
    through the handler `_open_listener` added. A change wakes the idle wait (``heard``), is
    applied, and the wait goes on until the same liveness deadline."""
    pgconn = conn.pgconn
    encoding = conn.info.encoding
    while True:
        received = False  # or a statement ran: the connection is alive
        deadline = trio.current_time() + config.liveness_interval
        while True:
            while heard.changed:  # (again if it changed while the last change was applied)
                received |= await _apply_heard(conn, sink, heard, config.probe_timeout)
            with trio.move_on_at(deadline) as heard.wait:
                while True:
                    await trio.lowlevel.wait_readable(pgconn.socket)
                    pgconn.consume_input()  # psycopg.OperationalError once connection lost
                    while (n := pgconn.notifies()) is not None:
                        received = True
                        if (topic := routes.get(n.relname.decode(encoding))) is not None:
                            sink.deliver(topic, n.extra.decode(encoding))
            if not heard.changed:
                break  # the deadline passed
        if not received:
            with trio.fail_after(config.probe_timeout):
                await conn.execute("SELECT 1")


async def _reconnect(
    dsn: str,
    listener_dsn: str,
    routes: Mapping[str, str],
    config: NotifyConfig,
    sink: SourceLink,
) -> pg.TrioConnection[Any]:
    """Open a new listener, retrying (see `NotifyConfig.reconnect_delays`) until it works."""
    started = trio.current_time()
    for attempt, delay in enumerate(config.reconnect_delays(sink.rng), start=1):
        await trio.sleep(delay)
        try:
            return await _open_listener(dsn, listener_dsn, routes, config, sink)
        except (*_CONNECTION_ERRORS, ListenProbeFailed) as exc:
            # one line for the first failure, then one per doubling: not 20 lines a second
            if attempt == 1 or attempt & (attempt - 1) == 0:
                logger.warning(
                    "notify listener: reconnect attempt %d failed after %.1f s (%s: %s); "
                    "retrying",
                    attempt,
                    trio.current_time() - started,
                    type(exc).__name__,
                    _describe(exc, "timed out"),
                )
    raise AssertionError("unreachable: reconnect_delays never ends")


async def _listen_forever(
    sink: SourceLink,
    conn: pg.TrioConnection[Any],
    dsn: str,
    listener_dsn: str,
    routes: Mapping[str, str],
    config: NotifyConfig,
    heard: _Heard,
) -> NoReturn:
    """Feed ``sink`` from ``conn`` (LISTENing; this task owns it), reconnecting forever."""
    try:
        while True:
            try:
                await _receive(conn, routes, config, sink, heard)
            except _CONNECTION_ERRORS as exc:
                logger.warning(
                    "notify listener lost its connection (%s: %s); reconnecting",
                    type(exc).__name__,
                    _describe(exc, "liveness check timed out"),
                )
            sink.set_listening(False)
            await conn.close()
            conn = await _reconnect(dsn, listener_dsn, routes, config, sink)
            sink.note_reconnect()
            sink.set_listening(True, conn.info.backend_pid)
            sink.gap_all()  # only now: a rescan after this cannot miss a notification
    finally:
        sink.set_listening(False)
        await conn.close()


@asynccontextmanager
async def open_pg_hub(
    dsn: str,
    topics: Collection[str],
    config: NotifyConfig | None = None,
    *,
    listener_dsn: str | None = None,
    aliases: Mapping[str, str] | None = None,
) -> AsyncIterator[Hub]:
    """A `Hub` fed by PostgreSQL LISTEN (and `Hub.publish_local`); enters once listening.

    ``listener_dsn``: where the dedicated LISTEN connection goes, if not to ``dsn`` (e.g. a
    direct connection when ``dsn`` is a transaction-pooling proxy); the self-probe is sent
    through ``dsn``. Start-up errors (cannot connect, `ListenProbeFailed`) propagate as they
    are; later losses of the connection are retried forever. Leaving the block cancels the
    listener task and closes the hub (its waiters get `HubClosed`).

    ``aliases``: channels LISTENed besides the topics, each delivered as the topic it maps to
    (e.g. a channel private to this process for notifications meant for it alone, such as the
    end of an instance only it waits for: no other process is woken by those).
    """
    link = SourceLink(Hub(topics, config))
    hub = link.hub
    heard = _Heard()
    link.on_heard_change(heard.wake)
    routes = {t: t for t in hub.topics}
    for channel, topic in (aliases or {}).items():
        validate_topic(channel)
        if topic not in routes or channel in hub.topics:
            raise ValueError(f"notify alias {channel!r} -> {topic!r}: the alias must not be a "
                             "topic, and must map to one")
        routes[channel] = topic
    listener_dsn = dsn if listener_dsn is None else listener_dsn
    body_exc: BaseException | None = None
    try:
        conn = await _open_listener(dsn, listener_dsn, routes, hub.config, link)
        try:
            link.set_listening(True, conn.info.backend_pid)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    _listen_forever, link, conn, dsn, listener_dsn, routes, hub.config, heard
                )
                try:
                    yield hub
                except GeneratorExit:
                    raise
                except BaseException as exc:  # noqa: BLE001 - re-raised below, outside
                    body_exc = exc  # the nursery, so that it is not wrapped in a group
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            await conn.close()  # the task's job, unless it never ran
    finally:
        link.close()
    if body_exc is not None:
        raise body_exc
