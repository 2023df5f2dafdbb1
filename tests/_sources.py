"""The PYTHONPATH of the processes tests start: this checkout's packages, never installed ones."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHONPATH = os.pathsep.join(str(p) for p in (ROOT, ROOT / "notify", ROOT / "channels"))
"""romancy_trio, romancy_notify and romancy_channels of this checkout. With ROOT alone, a child
process imports the last two from wherever the virtualenv's editable install points (another
checkout, which may be mid-merge), so it would not run the code under test."""
