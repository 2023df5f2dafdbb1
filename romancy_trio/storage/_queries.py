"""The set of statements a dialect provides. Each dialect module fills in one ``Queries``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Queries:
    # instances -----------------------------------------------------------------------------
    insert_instance: str  # (iid, name, status, input, run_started_at, owner, epoch, ttl, created, updated)
    insert_run: str  # (iid, run_no, continued_from, input, started_at)
    select_instance: str  # (iid) -> INSTANCE_COLUMNS
    list_instances: str  # (status, status, name, name, limit)
    claim: str  # named: limit, owner, ttl; never reclaims the owner's own leases -> (iid, name, input, run_no, epoch, run_started_at)
    fence: str  # (iid, owner, epoch) -> (run_no,) ; locks against takeover until commit
    finish: str  # (status, result, error, updated, iid, owner, epoch)
    renew: str  # (ttl, owner) -> (iid, epoch)
    release: str  # (updated, iid, owner, epoch)
    cancel: str  # (updated, iid)
    next_expiry: str  # (owner) -> seconds until the earliest lease not held by owner expires; (seconds until the earliest running lease expires | NULL)
    # history -------------------------------------------------------------------------------
    insert_event: str  # (iid, run_no, seq, kind, key, payload, worker, epoch, created)
    select_history: str  # (iid, run_no) -> (seq, kind, key, payload, created)
    archive_history: str  # (iid, run_no)
    delete_history: str  # (iid, run_no)
    end_run: str  # (ended_at, iid, run_no)
    start_next_run: str  # (input, run_started_at, updated, iid, owner, epoch)
    select_runs: str  # (iid) -> (run_no, continued_from, started_at, ended_at)


INSTANCE_COLUMNS = (
    "instance_id, workflow_name, status, input, result, error, run_no, lease_owner, "
    "lease_epoch, created_at, updated_at"
)
