"""The statements a dialect provides. Each dialect module fills in one ``Queries``.

Every operation is one statement where the dialect allows it, so most store calls cost one round
trip. Statements marked *announces* also NOTIFY other processes themselves on dialects that have
cross-process notification (PostgreSQL: ``pg_notify`` in a CTE, so it fires on that statement's
commit); the store then only publishes in-process. Statements that change a row return one row per
changed instance, so "rows returned" means "rows changed" on every dialect.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Queries:
    # instances -----------------------------------------------------------------------------
    create: str
    """named: iid, name, status, input, now, owner, epoch, ttl, topic. Insert unless the id
    exists; announces new work (topic) when status is pending. -> (iid, NULL, ...) if
    created; where the dialect can, else what ``existing`` answers (PostgreSQL: unless the
    id was inserted by a transaction that committed meanwhile: no row)."""
    existing: str
    """named: iid -> (iid, workflow_name, input of its first run, NULL) of an instance."""
    select_instance: str  # (iid) -> INSTANCE_COLUMNS
    target_status: str
    """named: target -> (status,) of that instance (no row: none has that id). Read in the
    transaction that sends it a message, before the message's insert."""
    list_instances: str  # (status, status, name, name, limit) -> INSTANCE_COLUMNS
    claim: str
    """named: limit, owner, ttl -> (iid, name, input, run_no, epoch, run_started_at,
    cancel_requested, previous owner, attributes). Pending instances, expired leases, and waiting
    instances now due. The previous owner is set when the claim took over another worker's
    expired lease (PostgreSQL; NULL on SQLite, whose RETURNING sees only new values)."""
    renew: str  # (ttl, owner) -> (iid, epoch) of every lease the owner still holds
    release: str
    """named: now, iid, owner, epoch, topic. Hand a leased instance back; announces work."""
    finish: str
    """named: status, result, error, now, iid, owner, epoch, topic. Fenced final status;
    announces done. -> (iid, tell, slot): ``ended_flags`` (issue #22: which sweeps the end
    gives work to, known from the finishing statement itself)."""
    next_expiry: str
    """named: owner, versions, now, names -> seconds until the earliest lease not held by
    owner expires or the earliest waiting instance falls due (NULL: nothing scheduled); 0
    where an instance of ``names`` is claimable now (a claim that skipped it, locked by
    another transaction, must look again: its notification came already). SQLite, whose
    claim skips nothing, may leave that out."""
    claim_and_expiry: str | None
    """``claim``'s params -> ``claim``'s rows, each with a 10th column NULL, then one row of
    NULLs whose 10th column is what ``next_expiry`` answers (seen before this claim): both in
    one round trip, so an idle worker woken for work another one took pays one query. None:
    the scheduler asks ``next_expiry`` separately."""
    any_unclaimed: str
    """named: ids (a JSON array of instance ids) -> a row if one of them is claimable as
    pending work now (pending, or its lease expired), none if every one is leased or ended.
    A worker that left a wake-up to the peer chosen for it asks this after the delay: one
    primary-key look-up instead of a claim when that peer took them (issue #22)."""
    worker_lock: str | None
    """named: ns (schema name), owner. Takes the worker's session-level lock on its own
    connection (None: the dialect has no sessions other workers can see)."""
    take_over_dead: str | None
    """named: owner, ns, grace, topic, suspects, timeline -> (running leases held by other
    workers, how many were just expired, 1 if work was announced, the owners among them
    holding no session lock now, the server's timeline). Only leases of ``suspects`` (the
    owners the previous check found without a lock) are expired: a worker whose connection
    dropped and came straight back keeps its leases. Nothing is taken while the server started
    less than ``grace`` s ago, nor unless its timeline is ``timeline`` (NULL: none): a standby
    promoted since the caller last looked, whose workers are still reconnecting, is not
    trusted yet. None: not available (the lease TTL is the only way)."""
    # history -------------------------------------------------------------------------------
    record: str
    """named: iid, run_no, seq, kind, key, payload, owner, epoch, at, compensation. Fenced insert
    of one history event: inserts nothing unless owner still holds the lease at epoch for
    run_no (and on PostgreSQL share-locks the instance row until commit, which blocks a
    takeover)."""
    select_history: str  # (iid, run_no) -> (seq, kind, key, payload, created_at, compensation)
    select_history_since: str
    """(iid, run_no, seq) -> ``select_history``'s columns of the rows from ``seq`` on (a
    resident state's resume reads only what it has not seen)."""
    select_current_history: str
    """(iid,) -> (run_no, seq, kind, key, payload, created_at, compensation) of the
    instance's current run, in order."""
    # continue-as-new (several statements in one transaction) ------------------------------
    fence: str  # (iid, owner, epoch) -> (run_no, input, run_started_at); locks against takeover
    archive_history: str  # (iid, run_no)
    delete_history: str  # (iid, run_no)
    close_run: str  # (iid, run_no, continued_from, input, started_at, ended_at): upsert
    open_run: str  # (iid, run_no, continued_from, input, started_at)
    start_next_run: str  # (input, started_at, now, iid, owner, epoch)
    select_runs: str  # (iid) -> (run_no, continued_from, started_at, ended_at)
    run_one: str  # (iid) -> the current run as (run_no, input, run_started_at) for lineage
    # counters and the last error of a running instance -----------------------------------
    add_counter: str
    """named: iid, name, value. Add ``value`` to the instance's counter ``name`` (upsert),
    in the transaction that records the activity that counted it."""
    select_counters: str  # (iid) -> (name, value) of every counter of the instance
    note_error: str
    """named: error, iid, owner, epoch. Fenced: set (or clear, NULL) the error column of the
    running instance: what an activity retried without limit last failed with."""
    worker_alive: str | None = None
    """named: ns, worker -> one row, true if a session of ``worker`` holds its worker lock
    (`worker_lock`) now. None: the dialect cannot tell (packing's standby then hears the work
    channel itself, see ``_engine._packing``)."""
    finish_recording: str | None = None
    """``finish`` that also inserts one history event (``record``'s params, for the lease's
    run): one statement. None: ``record`` then ``finish`` in one transaction."""
    mark_watcher: str | None = None
    """named: iid, me. Mark that the worker ``me`` waits for the instance's end (the
    ``watcher`` column: ``me``, or ``'*'`` once another worker waits too), so its finish on
    another worker sends the done notification (``finish`` sends one only to a watcher other
    than the finishing worker). Its own transaction, committed before the waiter reads the
    status again. The finish's UPDATE sees a mark committed before it (and waits for one in
    progress); a mark committed after it is followed by that status read, which sees the end.
    Where it returns a row (PostgreSQL: ``RETURNING status``; MySQL's UPDATE
    returns none), that status is the newest (read under the row lock): a live one needs no
    second read. None: the dialect's
    notifications never leave the process (SQLite)."""


def ended_flags(instances: str, entries: str, row: str) -> str:
    """Two columns a finishing statement returns for the instance ``row`` (an alias or table
    name) that just ended: *tell* - it has a parent, or live children (the child sweep has
    work: tell the parent, cancel orphans); *slot* - it held a queue slot (admission has
    work). ``instances``/``entries``: the (qualified) instance and queue-entry tables. Two
    index probes; an instance with neither costs no sweep (``Store.finish``)."""
    return f"""
        {row}.parent_instance_id IS NOT NULL OR EXISTS (
            SELECT 1 FROM {instances} c WHERE c.parent_instance_id = {row}.instance_id
              AND c.status IN ('pending', 'running', 'waiting')),
        EXISTS (SELECT 1 FROM {entries} e WHERE e.instance_id = {row}.instance_id
              AND e.released_at IS NULL)"""


INSTANCE_COLUMNS = (
    "instance_id, workflow_name, status, input, result, error, run_no, lease_owner, "
    "lease_epoch, created_at, updated_at, parent_instance_id, code_version"
)


@dataclass(frozen=True, slots=True)
class WaitQueries:
    """Statements for waits (events, channels, timers) and event intake. All named params."""

    lock_fenced: str
    """iid, owner, epoch -> (run_no, cancel_requested); row-locks the instance (serialises a
    suspending worker with a concurrent targeted delivery)."""
    inbox_first: str  # iid, type -> (source, event_id) of the oldest unconsumed targeted event
    inbox_insert: str  # iid, source, event_id, type, now
    inbox_delete: str  # iid, source, event_id
    event_body: str  # source, event_id -> (body,)
    waits_delete: str  # iid
    resolve_raises_when_fenced: bool
    """Whether ``resolve``, fenced out, raises (`LeaseLostError`, through the driver) rather
    than return no row: then COMMIT may travel with it, since a failure skips it."""
    resolve: tuple[str, ...]
    """Run in order with the record params (iid, owner, epoch, run_no, seq, kind, key, payload,
    at, compensation): the fenced history insert of a wait's outcome (the first statement
    returns (seq,), or no row if the lease is lost) and the removal of the instance's wait
    rows. One statement on PostgreSQL."""
    suspend: tuple[str, ...]
    """Run in order with iid, owner, epoch, run_no, wait_id, kind, key, deadline, wake_at, now,
    topic, hint_before; the last returns (status,), or no row if the lease (or run) is lost.
    Fenced: the instance's wait rows replaced by this one, the instance waiting (or pending if
    a cancel arrived meanwhile), its lease dropped; announces work if a cancel arrived, and
    its deadline if that is before hint_before. One statement on PostgreSQL."""
    append_history: str
    """iid, kind, key, payload, worker, at: unfenced append at the next seq of the current run
    (only for instances that no worker holds: a waiting instance being woken)."""
    event_insert: str  # source, event_id, type, body, target, now -> (event_id,) if new
    event_broadcast: str | None
    """source, event_id, type, body, now, kind, worker, topic -> (new, [iid, ...]): one statement
    that records an untargeted event and delivers it to every waiting instance (history row,
    wait removed, made pending, work announced on commit). None where the dialect can't do
    that in one statement: the store then runs the same steps in a transaction."""
    lock_instance: str  # iid -> (status,); row lock
    event_waiters: str  # type -> (iid, wait_id) of waiting instances, locked, by instance id
    instance_wait: str  # iid, kind, key -> (wait_id,)
    wake: str  # iid, now: waiting -> pending (rowcount)
    cancel: str
    """iid, now -> (status,): cancel_requested set; an instance no worker holds and with nothing
    to compensate becomes cancelled at once, one with compensations becomes pending (claimed,
    replayed, compensated); a running one keeps running until its worker stops it."""
    unqueue: str
    """iid: removes the instance's queue entry if the queue has not admitted it (a cancel of
    a ``queued`` instance; run before ``cancel``: the entry is locked before the instance, in
    the order admission locks them)."""
    wake_waiters: str
    """kind, key, target, limit, now, topic -> (iid,) of waiting instances made
    pending: those waiting on (kind, key), only ``target`` if given, at most ``limit`` (NULL:
    all), oldest first. Waits for row locks rather than skipping them: a row briefly locked by
    an unrelated statement (a heartbeat re-checking a just-suspended instance) must still be
    woken. With ``wake_notifies``, -> (iid, hint, ...): it also sends their work
    notifications on ``topic``, on commit (`hints.woken_hints`)."""
    wake_if_ready: str
    """iid, wait_id, now, topic, and the parameters of ``{ready}``: a one-row, one-column
    SELECT put in its place, true if what the instance waits for is there (no row: true).
    Makes the instance pending if it is still waiting on ``wait_id`` and ``{ready}`` says
    so; rows as ``wake_waiters``'."""
    woken_receivers: str
    """An SQL expression with channel, subscriber: how many other instances were woken from
    a receive on that channel and have not yet taken (pending, or running with that wait
    still there): each of them is about to take a message."""
    wake_notifies: bool
    """Whether ``wake_waiters`` and ``wake_if_ready`` send their work notifications
    themselves (then this process only hands them to its own waiters); otherwise the store
    queues them."""
    stale_channel_waiters: str
    """since, limit -> (iid, channel) of instances waiting on a channel that had a publish at
    or after ``since``: the candidates of the fallback sweep."""
    events_cleanup: str  # before, limit: delete old events (and their inbox rows) in a batch
    inbox_cleanup: str  # before
