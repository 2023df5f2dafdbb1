"""Shared benchmark pieces: results, the baseline, percentiles, checks, schemas, the table,
JSON output and a tiny progress bar on stderr."""

from __future__ import annotations

import json
import math
import os
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import psycopg
from psycopg import sql

DEFAULT_DSN = os.environ.get(
    "ROMANCY_BENCH_PG_DSN",
    os.environ.get("ROMANCY_TEST_PG_DSN", "postgresql://root@127.0.0.1:5432/test"),
)
ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "")


def check_local(dsn: str) -> None:
    """Benchmarks only ever target this machine: 127.0.0.1, localhost or a unix socket."""
    if dsn.startswith(("mysql://", "mariadb://")):
        from romancy_trio.storage._mysql_url import parse_url

        if parse_url(dsn).host not in LOCAL_HOSTS:
            raise SystemExit(f"refusing to benchmark against non-local host in {dsn!r}")
        return
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise SystemExit(f"not a PostgreSQL DSN: {dsn!r} ({exc})") from None
    for host in str(info.get("host", "localhost")).split(","):
        if host not in LOCAL_HOSTS and not host.startswith("/"):
            raise SystemExit(f"refusing to benchmark against non-local host {host!r}")
    if info.get("hostaddr") not in (None, "127.0.0.1", "::1"):
        raise SystemExit(f"refusing to benchmark against hostaddr {info['hostaddr']!r}")


class CheckFailed(Exception):
    """A scenario's correctness check was violated (lost, duplicated or unfinished work)."""


def require(ok: bool, message: str) -> None:
    if not ok:
        raise CheckFailed(message)


@dataclass
class Result:
    scenario: str
    count: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    extra: dict[str, Any] = field(default_factory=dict)
    checked: str = ""
    """What the scenario verified (shown in the table); failures raise :class:`CheckFailed`."""
    rate: bool = True
    """False when count/seconds is no throughput (timers spread over time, an idle window)."""

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        return percentile(self.latencies_ms, p)

    def row(self, baseline: Result | None) -> dict[str, Any]:
        """The table row: figures, ratios to ``baseline`` (p50 round trip; commits per second
        of one connection), what was checked, then the scenario's own extras."""
        p50 = self.pct(50)
        base_ms = baseline.pct(50) if baseline is not None else math.nan
        base_rate = baseline.per_second if baseline is not None else math.nan
        rate = self.rate and self.seconds > 0
        return {
            "scenario": self.scenario,
            "count": self.count,
            "per_s": _round(self.per_second, 1) if rate else None,
            "p50_ms": _round(p50, 3),
            "p95_ms": _round(self.pct(95), 3),
            "p99_ms": _round(self.pct(99), 3),
            "base_ms": _round(base_ms, 3),
            "p50_x_base": _round(p50 / base_ms, 1),
            "p99_x_base": _round(self.pct(99) / base_ms, 1),
            "per_s_x_base": _round(self.per_second / base_rate, 3) if rate else None,
            "check": self.checked or "-",
            **self.extra,
        }


CORE_COLUMNS = ["scenario", "count", "per_s", "p50_ms", "p95_ms", "p99_ms", "base_ms",
                "p50_x_base", "p99_x_base", "per_s_x_base", "check"]


def _round(value: float, digits: int) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else round(value, digits)


def percentile(values: Iterable[float], p: float) -> float:
    """Nearest-rank percentile; NaN for no data."""
    data = sorted(values)
    if not data:
        return math.nan
    return data[min(len(data) - 1, round(p / 100 * (len(data) - 1)))]


def baseline_insert_commit(dsn: str, n: int = 1000, *, label: str = "") -> Result:
    """A raw INSERT + COMMIT round trip with psycopg: the yardstick for every other figure."""
    table = sql.Identifier(f"bench_baseline_{uuid.uuid4().hex[:8]}")
    lat = []
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.SQL("CREATE TEMP TABLE {} (id serial PRIMARY KEY, v text)").format(table))
        conn.commit()
        insert = sql.SQL("INSERT INTO {} (v) VALUES (%s)").format(table)
        for i in range(50):  # warm up
            conn.execute(insert, (str(i),))
            conn.commit()
        t0 = time.perf_counter()
        for i in range(n):
            s = time.perf_counter()
            conn.execute(insert, (str(i),))
            conn.commit()
            lat.append((time.perf_counter() - s) * 1000)
        total = time.perf_counter() - t0
    name = "baseline INSERT+COMMIT" + (f" ({label})" if label else "")
    return Result(name, n, total, lat, checked="-")


def merged_baseline(parts: list[Result], name: str = "baseline INSERT+COMMIT") -> Result:
    """Baseline samples pooled: a scenario is compared with the samples taken just before and
    just after it (other load on the machine drifts), the run as a whole with all of them."""
    lat = [x for r in parts for x in r.latencies_ms]
    p50s = sorted(r.pct(50) for r in parts)
    extra = ({"samples": len(parts), "sample_p50_range_ms": f"{p50s[0]:.3f}-{p50s[-1]:.3f}"}
             if len(parts) > 1 else {})
    return Result(name, sum(r.count for r in parts), sum(r.seconds for r in parts), lat, extra,
                  checked="-")


def new_schema(prefix: str = "bench") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def with_search_path(dsn: str, schema: str) -> str:
    """``dsn`` whose connections start with ``search_path`` = ``schema``: the benchmark's own
    SQL (its tables, its reads of the library's) resolves there; the library names its schema
    itself and sets no session state."""
    from urllib.parse import quote

    return f"{dsn}{'&' if '?' in dsn else '?'}options={quote(f'-csearch_path={schema}', safe='')}"


def drop_schema(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def schema_rows(dsn: str, schema: str, query: str,
                params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """``query``'s rows in ``schema``, on a connection of its own (blocking: run it in a
    thread from async code)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        return conn.execute(query, params).fetchall()


def format_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    cols = columns or list(dict.fromkeys(k for r in rows for k in r))
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    for row in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def format_details(rows: list[dict[str, Any]]) -> str:
    """The scenario-specific figures that do not fit the table, one line per scenario."""
    out = []
    for r in rows:
        rest = {k: v for k, v in r.items() if k not in CORE_COLUMNS and v is not None}
        if rest:
            out.append(f"  {r['scenario']}: " + ", ".join(f"{k}={v}" for k, v in rest.items()))
    return "\n".join(out)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def print_table(rows: list[dict[str, Any]]) -> None:
    print(format_table(rows, CORE_COLUMNS))
    if details := format_details(rows):
        print(details)


def write_json(rows: list[dict[str, Any]], results: list[Result], *, path: Path | None = None,
               meta: dict[str, Any] | None = None) -> Path:
    if path is None:
        RESULTS_DIR.mkdir(exist_ok=True)
        path = RESULTS_DIR / f"run-{time.strftime('%Y%m%d-%H%M%S')}.json"
    payload = {"meta": meta or {}, "rows": rows, "raw": [asdict(r) for r in results]}
    path.write_text(json.dumps(payload, indent=1, default=str))
    return path


class Progress:
    """A one-line progress bar on stderr: redrawn in place on a terminal (at most 10 times a
    second), a line per quarter otherwise (logs, CI)."""

    def __init__(self, label: str, total: float, *, stream: TextIO | None = None,
                 width: int = 28, enabled: bool = True) -> None:
        self.enabled = enabled
        self.label = label
        self.total = max(float(total), 1e-9)
        self.done = 0.0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.width = width
        self.t0 = time.perf_counter()
        self._drawn = 0.0
        self._quarter = -1
        self.closed = False
        self._draw(force=True)

    def advance(self, n: float = 1) -> None:
        self.update(self.done + n)

    def update(self, done: float) -> None:
        self.done = min(float(done), self.total)
        self._draw()

    def close(self, note: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        if not self.tty and self._quarter == 4 and not note:
            return  # the 100% line is already out
        self._draw(force=True, note=note, end=True)

    def _draw(self, *, force: bool = False, note: str = "", end: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        frac = self.done / self.total
        if self.tty:
            if not force and now - self._drawn < 0.1:
                return
            filled = round(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            text = (f"\r{self.label[:40]:<40} [{bar}] {frac * 100:5.1f}% "
                    f"{now - self.t0:6.1f}s {note}")
            self.stream.write(text + ("\n" if end else ""))
        else:
            quarter = int(frac * 4)
            if not end and quarter == self._quarter:
                return
            self._quarter = quarter
            self.stream.write(f"  {self.label}: {frac * 100:3.0f}% after "
                              f"{now - self.t0:.1f}s {note}\n")
        self._drawn = now
        self.stream.flush()


@dataclass(frozen=True, slots=True)
class Sizes:
    """Every count, bound and window of a run, in one place. ``scaled`` multiplies the counts
    (not the concurrency, the number of processes or the measuring windows)."""

    sequential: int = 1000
    """one-activity workflows run one after another"""
    concurrent: int = 2000
    """one-activity workflows run by ``concurrency`` clients at once"""
    concurrency: int = 50
    ten: int = 250
    """ten-activity workflows, sequential"""
    wakeups: int = 1000
    """event wake-ups, one at a time"""
    timers: int = 500
    """sleeping workflows whose wake-up lateness is measured"""
    timer_min: float = 1.0
    timer_max: float = 5.0
    """their sleeps are spread evenly over [timer_min, timer_max] seconds"""
    timer_load: int = 20
    """clients running one-activity workflows in a loop while the timers are due"""
    workers: int = 4
    """worker processes for the channel scenarios"""
    takeover_kills: int = 100
    """takeover: SIGKILLs of a worker mid-activity (each followed by the takeover)"""
    worker_pool: int = 6
    """PostgreSQL connections per worker process"""
    messages: int = 8000
    """competing channel: messages published (enough for a steady state: a 2,000-message run
    spends much of its ~1 s starting up)"""
    consumers: int = 8
    """competing channel: consumer workflows (spread over the worker processes)"""
    publish_batch: int = 25
    """competing channel: messages per publishing transaction (``App.publish_many``): each
    transaction is a round trip and a COMMIT, so a fast producer batches"""

    latency_messages: int = 2000
    """competing publish -> receive latency: messages per rate, published one by one"""
    latency_rates: tuple[float, ...] = (100.0, 250.0)
    """competing publish -> receive latency: messages per second, each started on schedule
    (open loop). Each message wakes a consumer (claim, replay, take, suspend), which cost the
    2-core machines this was measured on 5-10 ms of CPU in all (publisher, workers,
    PostgreSQL): 100/s is moderate load (a quarter to half busy), 250/s heavy (two thirds busy
    to saturated)."""

    subscribers: int = 100
    """broadcast: subscriber workflows"""
    broadcasts: int = 20
    """broadcast: messages, each delivered to every subscriber"""
    http_seconds: float = 5.0
    """per HTTP sub-scenario"""
    http_clients: int = 50
    http_max_requests: int = 100_000
    http_resumes: int = 1000
    """POST -> workflow resumed: waiting workflows, one targeted event each"""
    http_resume_rate: float = 250.0
    """POST -> workflow resumed: events per second (moderate: well below intake capacity)"""
    idle_workflows: int = 10_000
    idle_window: float = 20.0
    db_restarts: int = 5
    """db-restart: restarts of the private server (``-m immediate``), one measurement each"""
    pgbouncer_workflows: int = 600
    """pgbouncer: one-activity workflows per set-up and repetition (``concurrency`` clients)"""
    pgbouncer_repetitions: int = 5
    """pgbouncer: repetitions, each running every set-up once (alternating)"""
    failovers: int = 5
    """failover: rounds, each on a fresh private primary + synchronous standby"""

    def scaled(self, factor: float) -> Sizes:
        from dataclasses import replace

        def n(value: int, least: int = 1) -> int:
            return max(least, round(value * factor))

        return replace(
            self, sequential=n(self.sequential), concurrent=n(self.concurrent), ten=n(self.ten),
            wakeups=n(self.wakeups), timers=n(self.timers), messages=n(self.messages),
            latency_messages=n(self.latency_messages, 10),
            subscribers=n(self.subscribers), broadcasts=n(self.broadcasts),
            idle_workflows=n(self.idle_workflows), http_resumes=n(self.http_resumes, 10),
            db_restarts=n(self.db_restarts, 3),
            pgbouncer_workflows=n(self.pgbouncer_workflows, 10),
            failovers=n(self.failovers, 3),
        )


@dataclass(frozen=True, slots=True)
class Run:
    """What a scenario gets: where, how much, and a way to show progress."""

    dsn: str
    sizes: Sizes = field(default_factory=Sizes)
    show_progress: bool = True

    def progress(self, label: str, total: float) -> Progress:
        return Progress(label, total, enabled=self.show_progress)
