"""Resume a failed instance from its last failed activity (``App.resume``).

One transaction: the instance must be ``failed`` because an activity failed, with nothing
recorded after that failure (no compensation ran). The failure's rows - the activity's
``activity_failed`` and its ``attempt_failed`` rows - stay in ``workflow_history`` as the record
of what happened, retired: kind ``retired:<kind>``, key ``retired:<seq>:<key>`` and a negative
``seq`` (``-(seq + 1)``), so the run's next steps reuse no seq or key; no replay reads them.
The instance becomes ``pending`` with no error, and a worker claims it: the activity runs
again with fresh attempts. Portable SQL (``:name`` placeholders through `translate`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from romancy_channels import quote_schema

from .._errors import InstanceFinishedError, InstanceNotFoundError
from ._db import Database
from ._placeholders import translate
from ._schema import SCHEMA_TOKEN

_INSTANCE = "SELECT status, run_no FROM {schema}.workflow_instances WHERE instance_id = :iid"
_LAST = """SELECT seq, kind, key FROM {schema}.workflow_history
           WHERE instance_id = :iid AND run_no = :run AND seq >= 0
           ORDER BY seq DESC LIMIT 1"""
_RETIRE = """UPDATE {schema}.workflow_history
             SET kind = :retired || kind, seq = -(seq + 1),
                 key = :retired || CAST(seq AS text) || ':' || key
             WHERE instance_id = :iid AND run_no = :run AND seq >= 0
               AND (seq = :seq OR (kind = 'attempt_failed'
                                   AND substr(key, 1, :n) = :prefix))"""
_REOPEN = """UPDATE {schema}.workflow_instances
             SET status = 'pending', error = NULL, result = NULL, lease_owner = NULL,
                 lease_expires_at = NULL, wake_at = NULL, cancel_requested = :no,
                 updated_at = :now
             WHERE instance_id = :iid AND status = 'failed' AND run_no = :run"""


_RETIRE_MYSQL = """UPDATE {schema}.workflow_history
             SET kind = CONCAT(:retired, kind), seq = -(seq + 1),
                 `key` = CONCAT(:retired, CAST(seq AS CHAR), ':', `key`)
             WHERE instance_id = :iid AND run_no = :run AND seq >= 0
               AND (seq = :seq OR (kind = 'attempt_failed'
                                   AND substr(`key`, 1, :n) = :prefix))"""
"""MySQL: ``||`` is OR there, and a column named ``key`` must be quoted."""


_LAST_MYSQL = _LAST.replace(" key FROM", " `key` FROM")
_OWN_WORDS = {"mysql": {_RETIRE: _RETIRE_MYSQL, _LAST: _LAST_MYSQL}}
"""Per dialect, the statements it needs in its own words (by the portable statement they
replace); the portable one everywhere else."""


def _q(db: Database, sql: str, params: Mapping[str, Any]
       ) -> tuple[str, Sequence[Any] | Mapping[str, Any]]:
    sql = _OWN_WORDS.get(db.dialect, {}).get(sql, sql)
    return translate(sql.replace(SCHEMA_TOKEN, quote_schema(db.schema, db.dialect)), params,
                     db.dialect)


async def resume_failed(db: Database, work_topic: str, instance_id: str, *, now: float
                        ) -> str:
    """Reopen a failed instance at its last failed activity; returns that activity's id."""
    async with db.transaction() as tx:
        row = await tx.fetchone(*_q(db, _INSTANCE, {"iid": instance_id}))
        if row is None:
            raise InstanceNotFoundError(instance_id)
        status, run = str(row[0]), int(row[1])
        if status != "failed":
            raise InstanceFinishedError(
                f"workflow {instance_id!r} is {status}, not failed: nothing to resume")
        last = await tx.fetchone(*_q(db, _LAST, {"iid": instance_id, "run": run}))
        if last is None or last[1] != "activity_failed":
            what = "nothing recorded" if last is None else f"{last[1]} {last[2]!r}"
            raise InstanceFinishedError(
                f"workflow {instance_id!r} cannot resume: its history ends with {what}, not "
                "with a failed activity (e.g. its compensations already ran)")
        seq, key = int(last[0]), str(last[2])
        prefix = key + "#attempt-"
        await tx.execute(*_q(db, _RETIRE, {"iid": instance_id, "run": run, "seq": seq,
                                           "n": len(prefix), "prefix": prefix,
                                           "retired": "retired:"}))
        if await tx.execute(*_q(db, _REOPEN, {"iid": instance_id, "run": run, "now": now,
                                            "no": False})) != 1:
            raise InstanceFinishedError(f"workflow {instance_id!r} changed meanwhile")
        await tx.notify(work_topic, "")
    return key
