"""py-spy samples of a benchmarked process, sorted into categories (for the --profile modes).

py-spy lives in bench/.work/venv-tools. A run is recorded in raw format (one line per distinct stack,
outermost frame first, then the sample count); each stack counts for the first category whose test
matches it, so the last category should match everything.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.ref_venvs import TOOLS_VENV, install

SAMPLE_RATE = 250
Categories = tuple[tuple[str, Callable[[str], bool]], ...]


def ensure_py_spy(python: Path) -> Path | str:
    """py-spy, installed with `python` if it is not there yet; or why it is not there."""
    why = install(TOOLS_VENV, python, "py-spy", "py-spy")
    exe = TOOLS_VENV / "bin" / "py-spy"
    return exe if exe.exists() else why or "no py-spy"


def record_argv(py_spy: Path, raw: Path) -> list[str]:
    """The py-spy command that samples the command appended to it (waits included) into `raw`."""
    return [str(py_spy), "record", "--idle", "-r", str(SAMPLE_RATE), "-f", "raw", "-o", str(raw), "--"]


def sort_samples(raw: Path, categories: Categories) -> dict[str, int]:
    """Samples per category, in the categories' order."""
    counts = dict.fromkeys((name for name, _ in categories), 0)
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        for name, test in categories:
            if test(stack):
                counts[name] += int(n)
                break
    return counts


def print_samples(counts: dict[str, int]) -> None:
    """The table of seconds and shares per category."""
    total = sum(counts.values()) or 1
    print("| where | seconds | share |")
    print("|---|---:|---:|")
    for name, n in counts.items():
        print(f"| {name} | {n / SAMPLE_RATE:.2f} | {n / total:.0%} |")
