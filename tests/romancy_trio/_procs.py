"""Start and kill real worker subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests._paths import PYTHONPATH

ROOT = Path(__file__).resolve().parents[2]
"""This checkout's packages (not whichever copy the environment has installed)."""


def start_proc(module: str, *args: str, quiet: bool = False,
               env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """``python -m module args...`` with this checkout's packages; returns once it printed
    ``ready``. ``quiet``: its stderr is discarded (a long-lived worker that logs a lot would
    otherwise block on a pipe nobody reads)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": PYTHONPATH, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if quiet else subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise RuntimeError(f"{module} {' '.join(args)} did not start: {line!r}\n{err or ''}")
    return proc


def start_worker(url: str, schema: str, worker_id: str, *,
                 module: str = "tests.romancy_trio.worker_proc",
                 **env: str) -> subprocess.Popen[str]:
    return start_proc(module, url, schema, worker_id, env=env)


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()

