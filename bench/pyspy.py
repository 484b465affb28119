"""py-spy samples of a benchmarked process, sorted into categories (for the --profile modes).

py-spy lives in bench/.work/venv-tools. A run is recorded in raw format (one line per distinct stack,
outermost frame first, then the sample count); each stack counts for the first category whose test
matches it, so the last category should match everything. own_time() instead splits a run recorded
with --subprocesses by process, and each process's samples by the function they were in.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Collection
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


def _process_name(frame: str, root: str, scripts: Collection[str]) -> str:
    """The script a py-spy `process PID:"command line"` frame runs: the first of `scripts` its command line
    names, with " --discover" when it discovers. A process caught between fork and exec still shows its
    parent's command line (GNU time's, which names the script too); one py-spy read none of is `root`."""
    argv = frame.split(':"', 1)[1].rstrip('"').split()
    script = next((Path(a).name for a in argv if Path(a).name in scripts), None)
    if script is None:
        return Path(argv[0]).name if argv else root
    return f"{script} --discover" if "--discover" in argv else script


def own_time(raw: Path, root: str, scripts: Collection[str]) -> dict[str, Counter[str]]:
    """Samples per process and function, the function being the innermost frame (own time).

    With --subprocesses py-spy starts each stack with a `process ...` frame for the process and each of
    its parents: the last of them is the process sampled; a stack without one is `root`'s."""
    found: dict[str, Counter[str]] = {}
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        processes = [f for f in frames if f.startswith("process ") and ':"' in f]
        process = _process_name(processes[-1], root, scripts) if processes else root
        leaf = frames[-1] if not frames[-1].startswith("process ") else "(start-up, before any Python frame)"
        function = re.sub(r":\d+\)$", ")", leaf)  # a function, whatever its line
        found.setdefault(process, Counter())[function] += int(n)
    return found
