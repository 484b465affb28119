"""Third-party tools the interoperability tests drive, each in its own venv under .venv-tools/.

`make test` builds them (target `tool-venvs`); a test run without them builds the missing one
on first use, so running one test file by hand works too.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = ROOT / ".venv-tools"

# name -> requirements. Keep in step with the Makefile's tool-venvs target.
TOOL_REQUIREMENTS: dict[str, list[str]] = {
    "airbyte": ["airbyte-protocol-models==0.18.0"],
    "meltano": ["meltano==4.4.1"],
    "singer-python": ["singer-python==6.8.0"],  # runs tests/tools/singer_python_tap.py
    "tap-jsonl": ["tap-jsonl==0.3.1"],  # a Meltano Singer SDK tap that reads local files
    "target-csv": ["meltanolabs-target-csv==0.5.0"],
}


def tool_venv(name: str) -> Path:
    """The venv of a tool, built if missing; its bin/ holds the tool's executables."""
    venv = TOOLS_DIR / name
    subprocess.run(
        [str(ROOT / "scripts" / "make-tool-venv.sh"), str(venv), _python(), *TOOL_REQUIREMENTS[name]],
        check=True,
    )
    return venv


def _python() -> str:
    return "python3.11" if sys.version_info[:2] == (3, 11) else sys.executable
