"""``--compare-dbos``: run ``dbos_compare.py`` under an interpreter that has ``dbos`` and turn
its output into rows next to ours. Installs nothing: DBOS is never a dependency of the library.

Which interpreter: ``--dbos-python PATH``, else ``$ROMANCY_BENCH_DBOS_PYTHON``, else this one if
``dbos`` is importable here. A throwaway venv works well::

    python3 -m venv /tmp/dbosvenv && /tmp/dbosvenv/bin/pip install dbos
    python -m loadtests one-sequential one-concurrent --compare-dbos \
        --dbos-python /tmp/dbosvenv/bin/python
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ._common import CheckFailed, Result, Sizes

SCRIPT = Path(__file__).resolve().parent / "dbos_compare.py"


class DbosUnavailable(RuntimeError):
    pass


def find_python(explicit: str | None) -> str:
    candidate = explicit or os.environ.get("ROMANCY_BENCH_DBOS_PYTHON")
    if candidate:
        if not Path(candidate).exists():
            raise DbosUnavailable(f"--dbos-python {candidate!r} does not exist")
        return candidate
    if importlib.util.find_spec("dbos") is not None:
        return sys.executable
    raise DbosUnavailable(
        "dbos is not importable here and no --dbos-python was given; e.g. "
        "python3 -m venv /tmp/dbosvenv && /tmp/dbosvenv/bin/pip install dbos, then "
        "--dbos-python /tmp/dbosvenv/bin/python")


def run_dbos(python: str, dsn: str, sizes: Sizes, *, timeout: float) -> tuple[str, list[Result]]:
    """(DBOS version, results). A failed DBOS run (its own check included) raises CheckFailed."""
    cmd = [python, str(SCRIPT), "--dsn", dsn, "--sequential", str(sizes.sequential),
           "--concurrent", str(sizes.concurrent), "--concurrency", str(sizes.concurrency)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # its own packages only
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              check=False)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"DBOS comparison timed out after {timeout:.0f}s") from None
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise CheckFailed(f"DBOS comparison failed (exit {proc.returncode}):\n{tail}")
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    results = [Result(r["scenario"], r["count"], r["seconds"], r["latencies_ms"], r["extra"],
                      checked="all completed (DBOS)") for r in data["results"]]
    return str(data["version"]), results


def annotate(dbos: list[Result], ours: dict[int, Result]) -> list[str]:
    """Add ratio columns to the DBOS rows (matched by concurrency) and return summary lines."""
    lines = []
    for r in dbos:
        mine = ours.get(int(r.extra.get("concurrency", 0)))
        if mine is None:
            continue
        p50 = r.pct(50) / mine.pct(50)
        rate = mine.per_second / r.per_second
        r.extra["dbos_p50_over_ours"] = round(p50, 2)
        r.extra["our_rate_over_dbos"] = round(rate, 2)
        lines.append(f"{mine.scenario}: DBOS p50 {r.pct(50):.2f} ms vs ours {mine.pct(50):.2f} ms"
                     f" ({p50:.2f}x); throughput ours {mine.per_second:.0f}/s vs DBOS "
                     f"{r.per_second:.0f}/s ({rate:.2f}x)")
    return lines
