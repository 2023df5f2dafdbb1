"""The README's time-skipping example runs as written (it needs Trio's MockClock, so
tests/test_readme.py does not pick it up): in its own process, twice."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from tests._paths import PYTHONPATH, ROOT


def test_the_readme_example_tests_a_month_of_invoices(tmp_path: object) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Testing workflows and changing them safely"):]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    assert "trio.run(test_invoice, clock=MockClock())" in code
    for _ in range(2):
        wall = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={"PYTHONPATH": PYTHONPATH}, timeout=120, check=False)
        print(f"\nREADME example: {time.perf_counter() - wall:.2f} s wall time "
              "(with interpreter start)")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "a month of invoices tested"
