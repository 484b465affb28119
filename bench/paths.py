"""Where the benchmarks run and keep their files, and how they show them.

Tools run from the repository root; inputs, reference venvs and logs live under bench/.work/;
this venv's console scripts (tap-postgres, target-postgres, dpone, ...) sit next to its python.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK_DIR = Path(__file__).resolve().parent / ".work"
BIN = Path(sys.executable).parent


def shown(path: Path) -> str:
    """The path relative to the current directory when it is below it, else as it is."""
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def tail(path: Path, chars: int = 3000) -> str:
    """The last `chars` characters of a log file ("" when there is none)."""
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""
