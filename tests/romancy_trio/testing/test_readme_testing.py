"""The docs' time-skipping example (docs/examples/testing_time_skipping.py) runs as written
(it needs Trio's MockClock, so tests/test_docs_examples.py leaves it here): in its own
process, twice."""

from __future__ import annotations

import subprocess
import sys
import time

from tests._paths import PYTHONPATH, ROOT


def test_the_readme_example_tests_a_month_of_invoices(tmp_path: object) -> None:
    code = (ROOT / "docs" / "examples" / "testing_time_skipping.py").read_text()
    assert "trio.run(test_invoice, clock=MockClock())" in code
    for _ in range(2):
        wall = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={"PYTHONPATH": PYTHONPATH}, timeout=120, check=False)
        print(f"\ndocs example: {time.perf_counter() - wall:.2f} s wall time "
              "(with interpreter start)")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "a month of invoices tested"
