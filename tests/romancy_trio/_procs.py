"""Start and kill real worker subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests._paths import PYTHONPATH

ROOT = Path(__file__).resolve().parents[2]
"""This checkout's packages (not whichever copy the environment has installed)."""


def start_worker(url: str, schema: str, worker_id: str, *,
                 module: str = "tests.romancy_trio.worker_proc",
                 **env: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", module, url, schema, worker_id],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": PYTHONPATH, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise RuntimeError(f"worker {worker_id} did not start: {line!r}\n{err}")
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
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
