"""A PNG of one run (``python -m loadtests --chart out.png``), or of a saved JSON result:

    python -m loadtests.chart loadtests/results/run-....json out.png

Needs matplotlib (``pip install 'romancy-trio[bench]'``); without it the run says so and skips
the chart. Left: p50/p95/p99 latency of each scenario as a multiple of the baseline INSERT+COMMIT
p50 measured around it (log scale) - the figure that travels between machines; the labels give
milliseconds. Right: throughput per second.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any


class ChartUnavailable(RuntimeError):
    pass


def _pyplot() -> tuple[Any, Any]:
    try:
        import matplotlib
    except ImportError:
        raise ChartUnavailable(
            "matplotlib is not installed: pip install 'romancy-trio[bench]' (or matplotlib) "
            "to get a PNG chart"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    return plt, ticker


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else math.nan


def render(rows: list[dict[str, Any]], path: Path, *, title: str = "") -> Path:
    """Draw ``rows`` (as printed in the table; the first is the baseline) into ``path``."""
    plt, ticker = _pyplot()
    timed = [r for r in rows
             if not math.isnan(_num(r.get("p50_ms"))) and _num(r.get("base_ms")) > 0]
    rated = [r for r in rows if not math.isnan(_num(r.get("per_s")))]
    height = max(4.0, 0.42 * max(len(timed), len(rated)) + 1.8)
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, height), constrained_layout=True)

    names = [str(r["scenario"]) for r in timed]
    ys = range(len(timed))
    for offset, (key, color) in enumerate(
        [("p50_ms", "#2b6cb0"), ("p95_ms", "#ed8936"), ("p99_ms", "#c53030")]
    ):
        values = [_num(r.get(key)) / _num(r["base_ms"]) for r in timed]
        left.barh([y + (offset - 1) * 0.27 for y in ys], values, height=0.27, color=color,
                  label=key.removesuffix("_ms"))
    for y, r in zip(ys, timed, strict=True):
        left.text(_num(r.get("p50_ms")) / _num(r["base_ms"]), y - 0.27,
                  f" {_num(r.get('p50_ms')):.2f} ms", va="center", fontsize=7)
    left.set_yticks(list(ys), names, fontsize=8)
    left.invert_yaxis()
    left.set_xscale("log")
    left.axvline(1.0, color="black", linewidth=0.8, linestyle="--")
    left.set_xlabel("latency / baseline INSERT+COMMIT p50 measured around the scenario (log)")
    left.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=3, fontsize=8, frameon=False)
    left.grid(axis="x", which="both", alpha=0.3)
    left.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
    left.xaxis.set_minor_formatter(ticker.NullFormatter())

    rnames = [str(r["scenario"]) for r in rated]
    rates = [_num(r.get("per_s")) for r in rated]
    right.barh(range(len(rated)), rates, color="#38a169")
    for y, v in enumerate(rates):
        right.text(v, y, f" {v:,.0f}/s", va="center", fontsize=7)
    right.set_yticks(list(range(len(rated))), rnames, fontsize=8)
    right.invert_yaxis()
    right.set_xscale("log")
    right.set_xlabel("throughput per second (log scale)")
    right.grid(axis="x", which="both", alpha=0.3)
    right.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    right.xaxis.set_minor_formatter(ticker.NullFormatter())

    fig.suptitle(title or "romancy_trio loadtests", fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m loadtests.chart RESULT.json OUT.png", file=sys.stderr)
        return 2
    data = json.loads(Path(argv[0]).read_text())
    meta = data.get("meta", {})
    try:
        out = render(data["rows"], Path(argv[1]), title=str(meta.get("title", "")))
    except ChartUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
