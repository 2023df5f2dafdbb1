"""Payloads of the work notification: what a worker woken by it should do.

- ``""``: something is claimable; every worker claims.
- ``"i:" + instance_id``: that instance became claimable; the worker chosen for it claims at
  once, the others only after a short delay (see ``romancy_trio._engine._peers``).
- ``"n:" + instance_id``: likewise, for an instance just created: no run of it has written
  history yet, so the chosen worker's claim reads none with it (issue #22). A worker of a
  version before this one reads it as ``""``.
- ``"w:" + len(worker) + ":" + worker + instance_id``: that instance was handed back by its
  worker for ``worker`` to run (placement); that worker claims at once, the others only after
  the short delay.
- ``"t:" + epoch seconds``: an instance now waits with this deadline; a worker only makes
  sure it looks again by then. Only deadlines nearer than ``WaitStore.deadline_hint_horizon``
  are announced: a worker claims again before a later one is due, and learns it then.

A hint, never the delivery: the claim query decides what is claimed. Anything else is read as
``""``. The PostgreSQL statements that notify themselves build the same payloads from these
prefixes.
"""

from __future__ import annotations

INSTANCE = "i:"
NEW = "n:"
DEADLINE = "t:"
PLACED = "w:"
NAMED_WAKEUPS = 8
"""Most woken instances one write names in its work notifications (one NOTIFY each); past
that it sends one ``""``: a burst is worth spreading over every worker."""


def instance_hint(instance_id: str) -> str:
    return INSTANCE + instance_id


def new_hint(instance_id: str) -> str:
    return NEW + instance_id


def woken_hints(woken: list[str]) -> list[str]:
    """The work notifications of a write that made ``woken`` claimable."""
    if len(woken) > NAMED_WAKEUPS:
        return [""]
    return [instance_hint(iid) for iid in woken]


def deadline_hint(at: float) -> str:
    return f"{DEADLINE}{at!r}"


def parse_deadline(payload: str) -> float | None:
    """The epoch seconds of a deadline hint; None if ``payload`` is not one."""
    if not payload.startswith(DEADLINE):
        return None
    try:
        return float(payload[len(DEADLINE):])
    except ValueError:
        return None


def placed_hint(instance_id: str, worker_id: str) -> str:
    return f"{PLACED}{len(worker_id)}:{worker_id}{instance_id}"


def parse_placed(payload: str) -> tuple[str, str] | None:
    """``(instance_id, worker_id)`` of a placement hint; None if ``payload`` is not one."""
    if not payload.startswith(PLACED):
        return None
    size, colon, rest = payload[len(PLACED):].partition(":")
    if not colon or not size.isdigit() or int(size) > len(rest):
        return None
    return rest[int(size):], rest[:int(size)]


# Payloads of the done notification besides an instance id (issue #22: a finished instance
# wakes the child sweep and queue admission only when it gives them work):
CHILD_HINT = "child"
"""An instance with a parent or live children ended: the child sweep has work (published in
the finishing process only; a sweep on the fallback timer covers a worker that died first)."""
QUEUE_HINT = "queue"
"""A queue slot may have freed (an instance holding one ended: in the finishing process), or
an entry was enqueued or a queue declared (to every process)."""
