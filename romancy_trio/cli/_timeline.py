"""A run's history as a timeline: one step per activity (with its attempts), wait, message,
event and compensation. Shared by the command line and the web viewer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

_ATTEMPT = "#attempt-"
_KINDS = {
    "activity_completed": "activity", "activity_failed": "activity",
    "compensation_completed": "compensation", "compensation_failed": "compensation",
    "event_received": "event", "message_received": "message", "timer_fired": "wait",
    "wait_timed_out": "wait", "wait_failed": "wait",
}


@dataclass(frozen=True, slots=True)
class Step:
    """``kind``: activity, compensation, event, message or wait. ``start``/``end``: seconds
    since the run started (a step starts when the one before it was recorded); ``attempts``:
    the end times of failed attempts; ``ok``: whether it succeeded."""

    kind: str
    key: str
    start: float
    end: float
    ok: bool
    attempts: tuple[float, ...] = ()
    error: str | None = None

    def json(self) -> dict[str, Any]:
        return asdict(self)


def row(event: Any) -> dict[str, Any]:
    """A history event (from ``App.history``) as an exportable JSON row."""
    return {"seq": event.seq, "kind": str(event.kind), "key": event.key,
            "payload": event.payload, "at": event.at, "compensation": event.compensation}


def timeline(rows: Iterable[dict[str, Any]], started_at: float) -> list[Step]:
    steps: list[Step] = []
    attempts: dict[str, list[float]] = {}
    last = started_at
    for r in rows:
        kind, key, at = str(r["kind"]), str(r["key"]), float(r["at"])
        if kind == "attempt_failed":
            attempts.setdefault(key.split(_ATTEMPT)[0], []).append(at - started_at)
            continue
        tries = attempts.pop(key, [])
        start = last - started_at
        failed = kind.endswith("_failed") or kind == "wait_timed_out"
        payload = r.get("payload")
        error = None
        if failed and isinstance(payload, dict):
            error = f"{payload.get('type', '')}: {payload.get('message', '')}"
        steps.append(Step(_KINDS.get(kind, kind), key, start, at - started_at, not failed,
                          tuple(tries), error))
        last = at
    return steps
