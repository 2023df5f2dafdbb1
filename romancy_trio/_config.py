"""Every interval, batch and bound of the runtime, in one place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from romancy_notify import LinkTimeouts

from ._replay import RetryPolicy
from ._versions import check_version


@dataclass(frozen=True, slots=True)
class AppConfig:
    lease_ttl: float = 5.0
    """Seconds a worker's claim on an instance lasts without a heartbeat; a crashed worker's
    instances are taken over after at most about this long. On PostgreSQL it also sets how soon
    a silently cut network link is noticed, at both ends of every connection: see
    `link_timeouts`."""
    heartbeat_interval: float = 1.5
    """How often a worker renews all its leases (one UPDATE for all of them)."""
    claim_batch: int = 4
    """Most instances claimed by one query."""
    max_concurrent: int = 200
    """Most instances one worker runs at once."""
    fallback_interval: float = 30.0
    """Slow re-check for waiters in case a notification was lost (jittered by the notify
    hub). An idle worker claims at least this often (times 1 + jitter) and learns the next
    deadline from the claim, so only deadlines nearer than twice that are announced by NOTIFY."""
    sqlite_poll_interval: float | None = 0.05
    """SQLite: how often a worker checks whether another process committed to the same file
    (``PRAGMA data_version``, cheap); if so, every waiter in this process re-checks at once.
    None: one process only (commits of other processes are then noticed by the fallback)."""
    mysql_signal_interval: float = 0.05
    """MySQL/MariaDB: how often a worker reads the signals other processes wrote (one indexed
    query, whatever the number of waiting instances): cross-process wake-ups take half of it
    on average; an idle worker spends 1/interval queries per second on it."""
    pool_size: int = 10
    """PostgreSQL: how many transactions a worker's activities hold open at once (more wait
    their turn, and the worker stops claiming meanwhile). Its pool has 2 more connections that
    only the library's own short statements use; with the worker's own session (lease renewal)
    and the listener, a worker opens at most ``pool_size + 4`` connections."""
    takeover_check_interval: float = 0.2
    """While other workers hold running leases: how often (s) the surviving workers together
    check whether one died (no session of it in two checks in a row), to claim its instances
    then instead of after ``lease_ttl``: each worker every this times the number of the other
    live workers, jittered. One short query (a join of running leases and ``pg_locks``)."""
    schema: str = "romancy"
    """PostgreSQL schema holding the tables (MySQL/MariaDB: not used; the tables live in the
    database the URL names)."""
    prepared_statements: bool | None = None
    """PostgreSQL: whether the pooled connections prepare server-side statements (psycopg
    prepares one after its 5th use). A transaction-pooling proxy (PgBouncer before 1.21, or
    without ``max_prepared_statements``; many managed poolers) hands each transaction to any
    server connection, where a statement prepared on another does not exist. None (default):
    on, unless ``open_app`` has a separate ``listener_url`` (the sign of such a proxy: it cannot
    LISTEN either). True: e.g. PgBouncer >= 1.21 with ``max_prepared_statements`` set. Off
    cost 8-13 % of throughput on short workflows (``python -m loadtests pgbouncer``)."""
    release_timeout: float = 2.0
    """On shutdown, how long to try to hand leases back before leaving them to expire."""
    default_retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Retry policy of activities that declare none (3 attempts, 1 s then 2 s apart)."""
    event_retention: float = 7 * 24 * 3600.0
    """Seconds events are kept (for idempotency of redelivered CloudEvents, and targeted
    events waiting in an instance's inbox); older ones are deleted in bounded batches."""
    channel_retention: float = 24 * 3600.0
    """Seconds a consumed channel message (competing: taken; broadcast: passed by every
    subscriber) is kept before cleanup deletes it."""
    instance_retention: float | None = None
    """Seconds a finished instance (completed, failed, cancelled) is kept after it ended, and
    an archived ``recur`` run after it ended; then maintenance deletes it with its history,
    runs, inbox and channel subscriptions. None (default): kept forever. Its id can then be
    used again, and ``status``/``result`` answer `InstanceNotFoundError`."""
    retention_batch: int = 500
    """Most instances (or archived runs) deleted in one transaction."""
    maintenance_interval: float = 600.0
    """How often a worker deletes expired events (and, with ``instance_retention``, old
    instances and runs)."""
    member_interval: float = 10.0
    """How often a worker announces itself to the other workers (one NOTIFY); a worker not
    heard from for three intervals no longer counts as live."""
    determinism_guard: bool = True
    """Workflow code that calls ``time.time()``, ``datetime.now()``, the ``random`` module's
    functions, ``uuid.uuid4()``, ``os.urandom`` or ``secrets`` itself (not through a library)
    fails with `WorkflowAPIError` naming ``ctx.now()``/``ctx.random()``/``ctx.uuid4()``.
    False turns the check off for every workflow (``@workflow(determinism_guard=False)``: one)."""
    peer_claim_delay: float = 0.1
    """A woken instance is claimed at once by one live worker, chosen by hashing its id; the
    others look this many seconds later (one look-up by primary key, at most one per delay)
    and claim only if it is still unclaimed then (the chosen worker died or is full)."""

    placement: Literal["spread", "pack"] = "spread"
    """How the workers of one group share the wake-ups. ``"spread"`` (default): each wake-up
    goes to the live worker that hashing its instance id picks, so the load spreads evenly, and
    every worker hears every work notification. ``"pack"``: every wake-up goes to one worker,
    the first (in an order all of them agree on) that is not full - every slot
    (`max_concurrent`) or pooled transaction taken, or its process using most of a core - and on
    PostgreSQL only that worker LISTENs to the work channel; the next one checks that it lives
    and takes its place when it dies. A moderate load then costs the CPU of one process, not of
    all of them (issue #22); the price is less spread: the next worker takes new work only once
    the first is full. Long-lived instances are not rebalanced (`rebalance_after` is ignored).
    Every worker of a group must use the same placement (others are not counted as peers)."""

    hook_timeout: float = 5.0
    """Seconds one hook notification may run before it is cancelled (counted and logged
    once per hook; see :mod:`romancy_trio.hooks`)."""
    hook_queue: int = 10_000
    """Notifications queued per hook at most; past that they are dropped (counted)."""

    activity_threads: int = 16
    """Most plain ``def`` activities running at once in worker threads (per worker). A thread
    abandoned by a timeout or cancellation keeps its slot until its function returns."""
    rebalance_after: float | None = 5.0
    """Placement of long-lived instances: one that has run on a worker for this long without
    suspending (e.g. a consumer that always finds a message) counts in that worker's load,
    which workers tell each other; a worker running more than its share of them (their number
    over the live workers, rounded up) hands the excess, at their next suspension point, to
    the least loaded peers, so a worker that joins takes its share and one that leaves gives
    its share back. None: instances stay where they were claimed."""
    clock: Callable[[], float] | None = None
    """The durable clock (seconds since the epoch, callable from any thread): every wake-up
    time, timeout, retry back-off and timestamp the runtime stores comes from it. None
    (default): real time, with due wake-ups compared against the database server's clock on
    PostgreSQL. `romancy_trio.testing` gives a virtual one (time skipping)."""

    code_version: str | None = None
    """The version of this worker's workflow code, recorded on every instance it starts; it
    resumes only instances of this version or of `compatible_versions` (and those from before
    versions were recorded), so during a rolling deploy old instances finish on old workers.
    ``"auto"``: derived per workflow from its source (any change to a workflow's code is a new
    version of it). None (default): no versions: instances record none and any worker without
    a version resumes them; a changed workflow meets its old histories on replay (use
    `WorkflowContext.patched`). Instances no running worker may resume stay visible, with
    their ``code_version``, in `App.status` and `App.list_instances`."""
    compatible_versions: tuple[str, ...] = ()
    """Other versions whose instances this worker resumes too (e.g. its code changed only in
    ways guarded by ``ctx.patched``)."""

    def link_timeouts(self) -> LinkTimeouts:
        """The keepalives and ``tcp_user_timeout`` given to every PostgreSQL connection (both
        ends) unless the URL sets them: a dead link is given up after about a lease
        (``LinkTimeouts.within(lease_ttl)``; at least 4 s), so an outage shorter than the lease
        breaks no connection, and a backend whose worker was cut off inside a transaction
        releases its locks about when that worker's leases lapse."""
        return LinkTimeouts.within(self.lease_ttl)

    def __post_init__(self) -> None:
        if self.code_version is not None:
            check_version(self.code_version, "code_version")
        if not isinstance(self.compatible_versions, tuple):
            raise ValueError("compatible_versions must be a tuple of version strings")
        for v in self.compatible_versions:
            check_version(v, "each of compatible_versions")
        if self.heartbeat_interval * 2 >= self.lease_ttl:
            raise ValueError("heartbeat_interval must be less than half of lease_ttl")
        if self.claim_batch < 1 or self.max_concurrent < 1 or self.retention_batch < 1:
            raise ValueError("claim_batch, max_concurrent and retention_batch must be at least 1")
        if self.instance_retention is not None and not self.instance_retention > 0:
            raise ValueError("instance_retention must be None (keep forever) or > 0 seconds")
        if self.sqlite_poll_interval is not None and not 0 < self.sqlite_poll_interval < 3600:
            raise ValueError("sqlite_poll_interval must be None or between 0 and 3600 seconds")
        if not 0 < self.mysql_signal_interval < 3600:
            raise ValueError("mysql_signal_interval must be between 0 and 3600 seconds")
        if self.rebalance_after is not None and not self.rebalance_after > 0:
            raise ValueError("rebalance_after must be None (never) or > 0 seconds")
        if not self.takeover_check_interval > 0:
            raise ValueError("takeover_check_interval must be > 0")
        if self.placement not in ("spread", "pack"):
            raise ValueError(f"placement must be 'spread' or 'pack', not {self.placement!r}")
        if not self.member_interval > 0 or not self.peer_claim_delay >= 0:
            raise ValueError("member_interval must be > 0 and peer_claim_delay >= 0")
        if isinstance(self.activity_threads, bool) or not isinstance(self.activity_threads, int) \
                or self.activity_threads < 1:
            raise ValueError(
                f"activity_threads must be an int of at least 1, not {self.activity_threads!r}")
