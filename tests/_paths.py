"""Where subprocesses of the tests import from: this checkout's three packages, first.

(A subprocess given only the repository root would find romancy_notify and romancy_channels
wherever the interpreter's site-packages point, e.g. another checkout's editable install.)"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHONPATH = os.pathsep.join(str(ROOT / sub) for sub in ("", "notify", "channels"))
