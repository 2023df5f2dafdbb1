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


def alternate(pairs: int, ours: Any, dbos: Any) -> tuple[list[str], dict[str, Any]]:
    """``pairs`` repetitions, the two sides alternating (A B, B A, A B, ...: the order swaps
    each pair, so a drifting machine favours neither); ``ours()`` and ``dbos()`` each return
    {concurrency: Result}. The ratios are taken within a pair; printed as the median and
    range over the pairs (issue #22)."""
    rate: dict[int, list[float]] = {}
    p50: dict[int, list[float]] = {}
    for i in range(pairs):
        sides = (ours, dbos) if i % 2 == 0 else (dbos, ours)
        got = [side() for side in sides]
        mine, theirs = got if i % 2 == 0 else got[::-1]
        for c, r in mine.items():
            if c in theirs:
                rate.setdefault(c, []).append(r.per_second / theirs[c].per_second)
                p50.setdefault(c, []).append(theirs[c].pct(50) / r.pct(50))
    lines, extra = [], {}
    for c in sorted(rate):
        what = "sequential" if c == 1 else f"{c} concurrent"
        rs, ps = sorted(rate[c]), sorted(p50[c])
        med_r, med_p = rs[len(rs) // 2] if len(rs) % 2 else sum(rs[len(rs) // 2 - 1:][:2]) / 2, \
            ps[len(ps) // 2] if len(ps) % 2 else sum(ps[len(ps) // 2 - 1:][:2]) / 2
        lines.append(f"1-activity wf, {what}, {len(rs)} alternating pairs: throughput ours/DBOS "
                     f"median {med_r:.2f}x (range {rs[0]:.2f}-{rs[-1]:.2f}); p50 DBOS/ours "
                     f"median {med_p:.2f}x (range {ps[0]:.2f}-{ps[-1]:.2f})")
        extra[f"rate_ratio_c{c}"] = {"median": round(med_r, 2),
                                     "range": [round(rs[0], 2), round(rs[-1], 2)],
                                     "pairs": [round(x, 2) for x in rate[c]]}
    return lines, extra
