"""Shared benchmark pieces: the baseline, percentiles, a results table, JSON output."""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

DEFAULT_DSN = os.environ.get(
    "ROMANCY_BENCH_PG_DSN",
    os.environ.get("ROMANCY_TEST_PG_DSN", "postgresql://root@127.0.0.1:5432/test"),
)


def check_local(dsn: str) -> None:
    """Benchmarks only ever target this machine."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    host = str(info.get("host", "localhost"))
    if host not in ("127.0.0.1", "localhost", "::1", "") and not host.startswith("/"):
        raise SystemExit(f"refusing to benchmark against non-local host {host!r}")


@dataclass
class Result:
    scenario: str
    count: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, round(p / 100 * (len(data) - 1)))]

    def row(self, baseline_ms: float | None) -> dict[str, Any]:
        p50 = self.pct(50)
        return {
            "scenario": self.scenario,
            "count": self.count,
            "per_s": round(self.per_second, 1),
            "p50_ms": round(p50, 3),
            "p95_ms": round(self.pct(95), 3),
            "p99_ms": round(self.pct(99), 3),
            "p50_x_baseline": round(p50 / baseline_ms, 2) if baseline_ms else None,
            **self.extra,
        }


def baseline_insert_commit(dsn: str, n: int = 1000) -> Result:
    """A raw INSERT + COMMIT round trip with psycopg: the yardstick for every other figure."""
    table = f"bench_baseline_{uuid.uuid4().hex[:8]}"
    lat = []
    with psycopg.connect(dsn) as conn:
        conn.execute(f"CREATE TEMP TABLE {table} (id serial PRIMARY KEY, v text)")
        conn.commit()
        t0 = time.perf_counter()
        for i in range(n):
            s = time.perf_counter()
            conn.execute(f"INSERT INTO {table} (v) VALUES (%s)", (str(i),))
            conn.commit()
            lat.append((time.perf_counter() - s) * 1000)
        total = time.perf_counter() - t0
    return Result("baseline INSERT+COMMIT", n, total, lat)


def print_table(rows: list[dict[str, Any]]) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols))


def write_json(rows: list[dict[str, Any]], results: list[Result]) -> Path:
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"run-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"rows": rows, "raw": [asdict(r) for r in results]}, indent=1))
    return path


def summary(values: list[float]) -> str:
    return f"mean {statistics.mean(values):.3f}" if values else "-"
