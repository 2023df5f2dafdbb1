"""What the determinism guard costs on replay: ``python -m loadtests.guard_replay [N] [REPS]``.

Replays a workflow of N activities (default 1,000) from a complete history through the sans-IO
core, with the guard on and off, alternating (on, off, off, on, ...) over REPS rounds (default
15), and prints the median time of each and the difference per replayed step. No database and
no event loop: this is the replay itself, the part the guard slows down. Informational only.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from romancy_trio import WorkflowContext
from romancy_trio._replay import (
    ActivityCall,
    CompleteWorkflow,
    EventKind,
    HistoryEvent,
    WorkflowMachine,
)


async def many_steps(ctx: WorkflowContext, n: int) -> int:
    total = 0
    for i in range(n):
        total += await ActivityCall("step", (i,), {}, None, Any)
    return total


def replay_once(history: list[HistoryEvent], n: int, *, guard: bool) -> float:
    started = time.perf_counter()
    m = WorkflowMachine(history=history, started_at=0.0, determinism_guard=guard)
    m.start(many_steps(WorkflowContext(m, instance_id="bench", workflow_name="wf", run_no=1), n))
    command = m.advance()
    elapsed = time.perf_counter() - started
    assert command == CompleteWorkflow(sum(range(n))), command
    return elapsed


def main(n: int = 1000, reps: int = 15) -> None:
    history = [HistoryEvent(i, EventKind.ACTIVITY_COMPLETED, f"step:{i + 1}", i, float(i))
               for i in range(n)]
    times: dict[bool, list[float]] = {True: [], False: []}
    for r in range(reps):
        order = (True, False) if r % 2 == 0 else (False, True)
        for guard in order:
            times[guard].append(replay_once(history, n, guard=guard))
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"replay of {n} activities, median of {reps} alternating runs each:")
    print(f"  guard off: {off * 1e3:8.2f} ms  ({off / n * 1e6:6.2f} us per step)")
    print(f"  guard on:  {on * 1e3:8.2f} ms  ({on / n * 1e6:6.2f} us per step)")
    print(f"  cost:      {(on - off) / n * 1e6:+6.2f} us per step ({(on / off - 1) * 100:+.0f}%)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
