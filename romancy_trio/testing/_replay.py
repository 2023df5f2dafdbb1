"""Golden histories: export an instance's recorded steps as JSON, replay them against the
current code of its workflow (no side effects), as a worker resuming it would."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import App, Workflow

FORMAT = 1
"""Version of the exported JSON (``{"format", "workflow", "input", "started_at",
"history": [{"seq", "kind", "key", "payload", "at", "compensation"?}, ...]}``)."""


async def export_history(app: App, instance_id: str) -> dict[str, Any]:
    """The current run of ``instance_id`` as JSON-ready data, to keep next to the tests
    (``json.dumps`` it) and `replay` after every change of the workflow's code."""
    info = await app.status(instance_id)
    runs = {r.run_no: r for r in await app.runs(instance_id)}
    run = runs.get(info.run_no)
    steps = []
    for e in await app.history(instance_id):
        step = {"seq": e.seq, "kind": str(e.kind), "key": e.key, "payload": e.payload,
                "at": e.at}
        if e.compensation is not None:
            step["compensation"] = e.compensation
        steps.append(step)
    return {"format": FORMAT, "workflow": info.workflow_name, "input": info.input,
            "started_at": run.started_at if run is not None else info.created_at.timestamp(),
            "history": steps}


def replay(workflow: Workflow[Any, Any], history: Mapping[str, Any] | str | Path) -> None:
    """Replay a history exported by `export_history` (the data, or a JSON file's path)
    against ``workflow``'s current code. Raises the `romancy_trio.NonDeterminismError` a
    worker would raise on resuming such an instance; returns None if the code still fits."""
    data: Any = json.loads(Path(history).read_text()) if isinstance(history, str | Path) \
        else history
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise ValueError(f"not a history exported by testing.export_history (format {FORMAT})")
    if data["workflow"] != workflow.name:
        raise ValueError(f"the history is of workflow {data['workflow']!r}, "
                         f"not {workflow.name!r}")
    workflow.replay(data["history"], input=data["input"], started_at=float(data["started_at"]))
