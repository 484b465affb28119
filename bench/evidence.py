"""Benchmark figures as evidence for `dpone certify`: a script ends with `record(connector, name, figures)`.

bench/results/<connector>.json keeps, for each benchmark name, its latest runs: the figures, when
(UTC) and on what machine (CPUs, CPU model, Python, commit). The files are committed, so a fresh
clone's `dpone certify` shows the last figures measured and where; the sizes a run used belong in
its figures (rows, repeat), since a small run's rate says little about a large one's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.host import commit
from bench.paths import REPO

RESULTS = REPO / "bench" / "results"
KEEP = 5  # runs kept per benchmark name: the newest counts, the few before it show the trend


def record(connector: str, name: str, figures: Mapping[str, Any], results: Path = RESULTS) -> Path:
    """Append this run to bench/results/<connector>.json and return the file's path."""
    path = results / f"{connector}.json"
    doc: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"connector": connector, "runs": []}
    run: dict[str, Any] = {
        "name": name,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "machine": machine(),
        "figures": {key: _rounded(value) for key, value in figures.items()},
    }
    same = [r for r in doc["runs"] if r["name"] == name]
    doc["runs"] = [r for r in doc["runs"] if r["name"] != name] + (same + [run])[-KEEP:]
    results.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    partial.replace(path)  # a reader never sees half a file
    print(f"figures recorded in {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return path


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "system": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "commit": commit(),
    }


def _rounded(value: Any) -> Any:
    # Three decimals are all a timing holds; more only makes the committed file churn.
    return round(value, 3) if isinstance(value, float) else value


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
