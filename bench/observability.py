"""Metrics and lineage overhead: `dpone run` with observability off against the same run with it on.

    python bench/observability.py [--rows 1000000] [--pairs 3] [--sink duckdb|jsonl]

Both runs move the same stream (bench/records.py: SCHEMA, N RECORDs of 10 columns, a STATE every
10,000) from `tap-replay` (a shell script that `cat`s the pre-generated file, as in
bench/runner_overhead.py) into target-duckdb (default; a fresh database file each run) or
target-jsonl. The two projects differ only in dpone.yml:

- off: no `metrics:` and no `lineage:` (no observer; none of their libraries imported);
- on:  `metrics:` with a Prometheus textfile and OTLP/HTTP to a collector (a local HTTP server in
  this process, which answers 200 and counts what it gets), and `lineage:` to a JSON-lines file.

The runs alternate, off then on, `--pairs` times. For each: wall seconds; CPU seconds of the
runner process alone (user + system, read from /proc/<pid>/stat once it has exited and before it
is reaped, so neither the tap nor the target is counted); CPU of every process of the pipeline.
After each run with observability on, the script checks that the collector got one export, the
textfile was written and the lineage file holds START and COMPLETE.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench.paths import BIN, WORK_DIR
from bench.records import DEFAULT_SEED, STREAM
from bench.runner_overhead import describe_input, input_file

ENV = {**os.environ, "DPONE_LOG_LEVEL": "WARNING"}
TICK = os.sysconf("SC_CLK_TCK")


class Collector:
    """An OTLP/HTTP endpoint that takes every POST (200, empty body) and counts them."""

    def __init__(self) -> None:
        self.received = 0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                collector.received += 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


class Project:
    """tap-replay into the sink under bench/.work/observe-<name>/, dpone.yml from `settings`."""

    def __init__(self, source: Path, name: str, sink: str, settings: dict[str, Any] | None) -> None:
        self.root = WORK_DIR / f"observe-{name}"
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        tap = self.root / "tap-replay"
        tap.write_text(f'#!/bin/sh\nexec cat "{source}"\n')
        tap.chmod(0o755)
        self.sink = sink
        self.out = self.root / ("out.duckdb" if sink == "duckdb" else "out")
        target = {"filepath": str(self.out)} if sink == "duckdb" else {"destination_path": str(self.out)}
        plugins = {
            "extractors": [{"name": "tap-replay", "executable": str(tap), "capabilities": ["state"]}],
            "loaders": [{"name": f"target-{sink}", "executable": f"target-{sink}", "config": target}],
        }
        (self.root / "meltano.yml").write_bytes(orjson.dumps({"version": 1, "plugins": plugins}))
        if settings is not None:
            (self.root / "dpone.yml").write_bytes(orjson.dumps(settings))  # JSON is YAML

    def clean(self) -> None:
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.unlink(missing_ok=True)
        shutil.rmtree(self.root / ".dpone", ignore_errors=True)
        shutil.rmtree(self.root / "metrics", ignore_errors=True)

    def argv(self) -> list[str]:
        return [
            str(BIN / "dpone"),
            *("run", "tap-replay", f"target-{self.sink}", "--project", str(self.root)),
            *("--no-progress", "--format", "json"),
        ]


@dataclass(frozen=True)
class Timed:
    wall: float
    runner_cpu: float  # the dpone process alone
    total_cpu: float  # dpone, the tap and the target


def run_once(project: Project, rows: int) -> Timed:
    project.clean()
    out_path, err_path = project.root / "run.out", project.root / "run.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(project.argv(), stdout=out, stderr=err, env=ENV)
        # Wait for the exit without reaping: /proc/<pid>/stat then holds the final CPU times.
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        wall = time.perf_counter() - start
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        proc.wait()
    own = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    children = (int(fields[13]) + int(fields[14])) / TICK  # cutime, cstime: the reaped tap and target
    if proc.returncode != 0:
        raise SystemExit(f"dpone run failed ({proc.returncode}): {err_path.read_text()[-2000:]}")
    report = orjson.loads(out_path.read_bytes())
    moved = sum(s["rows_out"] for s in report["streams"] if s["stream"] == STREAM)
    if moved != rows:
        raise SystemExit(f"the run moved {moved} records, expected {rows}")
    return Timed(wall, own, own + children)


def check_observed(project: Project, collector: Collector, runs: int) -> None:
    events = (project.root / ".dpone" / "lineage.jsonl").read_bytes().splitlines()
    kinds = [orjson.loads(e)["eventType"] for e in events]
    if kinds != ["START", "COMPLETE"]:
        raise SystemExit(f"lineage events {kinds}, expected START and COMPLETE")
    if not list((project.root / "metrics").glob("dpone_*.prom")):
        raise SystemExit("no Prometheus textfile written")
    if collector.received != runs:
        raise SystemExit(f"the collector got {collector.received} exports after {runs} runs")


def measure(rows: int, pairs: int, seed: int, sink: str) -> int:
    source = input_file(rows, seed)
    collector = Collector()
    settings = {
        "env": "bench",
        "metrics": {"prometheus_textfile_dir": "metrics", "otlp_endpoint": collector.url},
        "lineage": {"file": ".dpone/lineage.jsonl"},
    }
    off = Project(source, "off", sink, None)
    on = Project(source, "on", sink, settings)
    describe_input(source, rows)
    print(f"sink: target-{sink}; load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    found: dict[str, list[Timed]] = {"off": [], "on": []}
    for n in range(pairs):
        found["off"].append(run_once(off, rows))
        found["on"].append(run_once(on, rows))
        check_observed(on, collector, n + 1)
        print(f"pair {n + 1}: off {found['off'][-1].wall:.2f}s, on {found['on'][-1].wall:.2f}s", flush=True)
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print("| observability | runs, wall (s) | median wall (s) | runner CPU s (median) | all processes CPU s (median) |")
    print("|---|---|---:|---:|---:|")
    for name, runs in found.items():
        walls = ", ".join(f"{t.wall:.2f}" for t in runs)
        print(
            f"| {name} | {walls} | {statistics.median(t.wall for t in runs):.2f} "
            f"| {statistics.median(t.runner_cpu for t in runs):.2f} "
            f"| {statistics.median(t.total_cpu for t in runs):.2f} |"
        )
    base, ours = found["off"], found["on"]
    wall = statistics.median(t.wall for t in ours) / statistics.median(t.wall for t in base) - 1
    best = min(t.wall for t in ours) / min(t.wall for t in base) - 1
    cpu = statistics.median(t.runner_cpu for t in ours) - statistics.median(t.runner_cpu for t in base)
    total = statistics.median(t.total_cpu for t in base)
    pairs_diff = statistics.median(b.wall - a.wall for a, b in zip(base, ours, strict=True))
    print(f"\noverhead: {wall * 100:+.1f}% wall time, median against median ({best * 100:+.1f}% best against best)")
    print(
        f"          {pairs_diff:+.2f}s median of the pairs' differences "
        f"({pairs_diff / statistics.median(t.wall for t in base) * 100:+.1f}%)"
    )
    share = cpu / total * 100
    print(f"          {cpu:+.2f} CPU seconds in the runner process ({share:+.1f}% of the off run's CPU, all processes)")
    off.clean()
    on.clean()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/observability.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="RECORD messages in the stream (default 1000000)")
    parser.add_argument("--pairs", type=int, default=3, help="off/on pairs of runs (default 3)")
    parser.add_argument("--sink", choices=("duckdb", "jsonl"), default="duckdb")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    return measure(args.rows, args.pairs, args.seed, args.sink)


if __name__ == "__main__":
    sys.exit(main())
