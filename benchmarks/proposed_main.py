"""main.py with benchmarks.proposed applied: the recommended changes, for side-by-side rows."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import proposed

proposed.apply()

from main import receive, send, sweep  # noqa: E402

__all__ = ["receive", "send", "sweep"]
