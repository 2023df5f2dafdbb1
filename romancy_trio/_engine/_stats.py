"""What a scheduler counts (`Scheduler.statistics`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    running: int
    """Runs holding one of this worker's ``max_concurrent`` slots. A run's task ends a moment
    after its last commit, so its new status (a result, a wait) is visible before it stops
    counting here: wait for ``running`` itself, not for the status, to see it fall."""
    reserved: int
    started: int
    finished: int
    leases_lost: int
    claims: int
    deferred: int
    """Wake-ups this worker left to the peer chosen for them (looked at again after the
    delay: claimed if still unclaimed)."""
    peers: int
    """Live workers running the same workflows, this one included."""
    storage_outages: int = 0
    """Database outages this worker's loops rode out (or are riding out): the child sweep,
    queue admission, schedules and housekeeping waited for the database and went on."""
    storage_retries: int = 0
    """Statements and transactions the database driver ran again after the database rolled
    them back (MySQL: InnoDB deadlocks 1213 and lock-wait timeouts 1205, retried where safe);
    0 elsewhere."""
    storage_rolled_back: int = 0
    """Transactions the database rolled back that the driver could not run again (MySQL:
    one whose code had already acted on what it read, e.g. an activity's own transaction):
    each interrupted what was running and was recovered by replaying it; 0 elsewhere."""
    peer_claimed: int = 0
    """Of the wake-ups left to peers, the times all of them were found claimed by the chosen
    peers when the delay was up (one primary-key look-up instead of a claim)."""
    role: str = ""
    """With ``AppConfig(placement="pack")``, this worker's part in its view: ``"taker"`` (new
    work comes here), ``"standby"`` (takes over if the taker dies), ``"idle"``, or ``"full"``
    (it said it takes no new work for now); empty when spreading."""


@dataclass(slots=True)
class _Counters:
    started: int = 0
    finished: int = 0
    leases_lost: int = 0
    claims: int = 0
    deferred: int = 0
    peer_claimed: int = 0
