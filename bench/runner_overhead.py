"""Runner overhead: `dpone run TAP TARGET` against the plain shell pipe `TAP | TARGET`.

    python bench/runner_overhead.py [--rows 1000000] [--repeat 3]
    python bench/runner_overhead.py --profile      # where the runner's pump spends its time

Both pipelines move the same stream (bench/records.py: SCHEMA, N RECORDs of 10 columns, a
STATE every 10,000) from the same source into the same sink:

- source: `tap-replay`, a two-line shell script that `cat`s the pre-generated Singer file
  (cached under bench/.work/). The cheapest honest tap there is, so it hides nothing.
- sink: `target-jsonl` writing to a fresh directory under bench/.work/ (decode, one JSON line
  per record, fsync per batch, STATEs echoed after commit).

The shell pipe is `bash -c 'tap-replay --config A | target-jsonl --config B > /dev/null'`.
The runner adds: discovery skipped (the plugin declares only the `state` capability), the
lock and state in a SQLite store, the pump (peeks at every line, counts records per stream,
numbers STATEs), the reader of echoed states and the run report. No filters are configured.
Wall-clock time, best of --repeat runs, the two pipelines interleaved.

--profile runs the pump in-process under cProfile over the same file, into a sink that
discards the bytes, and prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (python bench/runner_overhead.py): make the repo root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench.paths import BIN, WORK_DIR, shown
from bench.records import DEFAULT_SEED, write_stream

ENV = {**os.environ, "DPONE_LOG_LEVEL": "WARNING"}


def input_file(rows: int, seed: int, *, say_reused: bool = False) -> Path:
    """The Singer stream, generated once (same name as bench/codec.py's, so they share it)."""
    path = WORK_DIR / f"records-{rows}-seed{seed}.jsonl"
    if path.exists():
        if say_reused:
            print(f"reusing {shown(path)}")
    else:
        print(f"generating {rows:,} records into {shown(path)} ...", flush=True)
        write_stream(path, rows, seed)
    return path


class Setup:
    """The replay tap, target config and project, under bench/.work/<name>/ (dpone.yml from `settings`)."""

    def __init__(self, source: Path, name: str = "runner-overhead", settings: dict[str, Any] | None = None) -> None:
        self.root = WORK_DIR / name
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        self.source = source
        self.tap = self.root / "tap-replay"
        self.tap.write_text(f'#!/bin/sh\nexec cat "{source}"\n')
        self.tap.chmod(0o755)
        self.out = self.root / "out"
        self.tap_config = self.root / "tap.json"
        self.tap_config.write_text("{}")
        self.target_config = self.root / "target.json"
        self.target_config.write_bytes(orjson.dumps({"destination_path": str(self.out)}))
        project = {
            "version": 1,
            "plugins": {
                "extractors": [{"name": "tap-replay", "executable": str(self.tap), "capabilities": ["state"]}],
                "loaders": [
                    {
                        "name": "target-jsonl",
                        "executable": "target-jsonl",
                        "config": {"destination_path": str(self.out)},
                    }
                ],
            },
        }
        (self.root / "meltano.yml").write_bytes(orjson.dumps(project))
        if settings is not None:
            (self.root / "dpone.yml").write_bytes(orjson.dumps(settings))  # JSON is YAML
        self.state_db = self.root / "state.db"

    def clean(self) -> None:
        shutil.rmtree(self.out, ignore_errors=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.state_db}{suffix}").unlink(missing_ok=True)

    def pipe_argv(self) -> list[str]:
        target = BIN / "target-jsonl"
        line = f"'{self.tap}' --config '{self.tap_config}' | '{target}' --config '{self.target_config}' > /dev/null"
        return ["bash", "-c", f"set -o pipefail; {line}"]

    def dpone_argv(self) -> list[str]:
        return [
            str(BIN / "dpone"),
            "run",
            "tap-replay",
            "target-jsonl",
            "--project",
            str(self.root),
            "--state-backend",
            f"sqlite:///{self.state_db}",
            "--no-progress",
        ]

    def check(self, rows: int) -> None:
        written = self.out / "bench_records.jsonl"
        with written.open("rb") as fh:
            count = sum(1 for _ in fh)
        if count != rows:
            raise SystemExit(f"the sink holds {count} records, expected {rows}")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_once(argv: list[str], setup: Setup, rows: int) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of every process of the pipeline (user + system)."""
    setup.clean()
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    setup.check(rows)
    return elapsed, cpu


def interleaved(
    runs: dict[str, tuple[list[str], Setup]], rows: int, repeat: int
) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) of each pipeline, `repeat` times, one after the other so noise hits all alike."""
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, (argv, setup) in runs.items():
            found[name].append(time_once(argv, setup, rows))
    return found


def print_table(found: dict[str, list[tuple[float, float]]], rows: int) -> None:
    print()
    print("| pipeline | runs (s) | best (s) | records/s | CPU s (min) |")
    print("|---|---|---:|---:|---:|")
    for name, runs in found.items():
        best = min(wall for wall, _ in runs)
        runs_text = ", ".join(f"{wall:.2f}" for wall, _ in runs)
        print(f"| {name} | {runs_text} | {best:.2f} | {rows / best:,.0f} | {min(c for _, c in runs):.2f} |")


def print_overhead(label: str, base: list[tuple[float, float]], ours: list[tuple[float, float]]) -> None:
    best = min(w for w, _ in ours) / min(w for w, _ in base) - 1
    median = statistics.median(w for w, _ in ours) / statistics.median(w for w, _ in base) - 1
    base_cpu, ours_cpu = min(c for _, c in base), min(c for _, c in ours)
    print(f"\n{label}: {best * 100:+.1f}% wall time, best against best")
    print(f"{' ' * len(label)}  {median * 100:+.1f}% wall time, median against median")
    print(f"{' ' * len(label)}  {ours_cpu - base_cpu:+.2f} CPU seconds ({(ours_cpu / base_cpu - 1) * 100:+.0f}%)")


def describe_input(source: Path, rows: int) -> None:
    size_mb = source.stat().st_size / 1e6
    print(f"input: {rows:,} records, {size_mb:,.0f} MB; {os.cpu_count()} CPUs; Python {platform.python_version()}")


def measure(rows: int, repeat: int, seed: int) -> int:
    source = input_file(rows, seed)
    setup = Setup(source)
    describe_input(source, rows)
    found = interleaved(
        {"shell pipe": (setup.pipe_argv(), setup), "dpone run": (setup.dpone_argv(), setup)}, rows, repeat
    )
    print_table(found, rows)
    print_overhead("runner overhead", found["shell pipe"], found["dpone run"])
    setup.clean()
    return 0


# -- --profile: the pump alone, in-process ---------------------------------------------------
class _NullConnector:
    """Enough of processes.Connector for TargetChannel: a process that takes bytes and echoes nothing."""

    def __init__(self) -> None:
        self.name = "null"
        self.proc = _NullProc()


class _NullProc:
    def __init__(self) -> None:
        self.stdin = io.BufferedWriter(io.FileIO(os.devnull, "w"))
        read_end, write_end = os.pipe()
        os.close(write_end)
        self.stdout = os.fdopen(read_end, "rb")

    def poll(self) -> int | None:
        return None


def profile(rows: int, seed: int) -> int:
    from dpone_runner.pump import Pump, TargetChannel
    from dpone_runner.state_commit import StateLedger

    source = input_file(rows, seed)
    saved: list[Any] = []
    ledger = StateLedger(1, saved.append)
    channel = TargetChannel(_NullConnector(), 0, ledger)  # type: ignore[arg-type]
    with source.open("rb") as fh:
        pump = Pump(fh, [channel], ledger)
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.runcall(pump.run)
        channel.close()
        channel.join()
        elapsed = time.perf_counter() - start
    print(f"pump under cProfile: {rows:,} records in {elapsed:.2f}s ({rows / elapsed:,.0f} records/s)")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    # Without the profiler's own cost: the no-filter path of Pump.run rebuilt one step at a
    # time (each stage adds to the one before), then the real thing.
    print("pump cost by step, best of 3, no profiler:")
    previous = 0.0
    for name, fn in STAGES:
        best = min(fn(source) for _ in range(3))
        print(f"  {name:<58} {best:5.2f}s  (+{best - previous:4.2f}s)  {rows / best:>10,.0f} lines/s")
        previous = best
    return 0


_PREFIX = b'{"type":"RECORD","stream":"'
_CHUNK = 256 * 1024


def _stage_loop(source: Path) -> float:
    start = time.perf_counter()
    with source.open("rb") as fh:
        for _raw in fh:
            pass
    return time.perf_counter() - start


def _stage_count(source: Path) -> float:
    lines = size = 0
    start = time.perf_counter()
    with source.open("rb") as fh:
        for raw in fh:
            lines += 1
            size += len(raw)
            _line = raw if raw.endswith(b"\n") else raw + b"\n"
    return time.perf_counter() - start


def _stage_peek(source: Path) -> float:
    lines = size = 0
    by_bytes: dict[bytes, int] = {}
    start = time.perf_counter()
    with source.open("rb") as fh:
        for raw in fh:
            lines += 1
            size += len(raw)
            line = raw if raw.endswith(b"\n") else raw + b"\n"
            if line.startswith(_PREFIX) and b"\\" not in (name := line[27 : line.find(b'"', 27)]):
                by_bytes[name] = by_bytes.get(name, 0) + 1
    return time.perf_counter() - start


def _stage_buffer(source: Path) -> float:
    lines = size = 0
    by_bytes: dict[bytes, int] = {}
    buffer: list[bytes] = []
    held = 0

    def emit(line: bytes) -> None:
        nonlocal held
        buffer.append(line)
        held += len(line)
        if held >= _CHUNK:
            b"".join(buffer)
            buffer.clear()
            held = 0

    start = time.perf_counter()
    with source.open("rb") as fh:
        for raw in fh:
            lines += 1
            size += len(raw)
            line = raw if raw.endswith(b"\n") else raw + b"\n"
            if line.startswith(_PREFIX) and b"\\" not in (name := line[27 : line.find(b'"', 27)]):
                by_bytes[name] = by_bytes.get(name, 0) + 1
                emit(line)
    return time.perf_counter() - start


def _stage_checks(source: Path) -> float:
    lines = size = 0
    by_bytes: dict[bytes, int] = {}
    buffer: list[bytes] = []
    held = 0
    stopped = threading.Event()

    def emit(line: bytes) -> None:
        nonlocal held
        buffer.append(line)
        held += len(line)
        if held >= _CHUNK:
            b"".join(buffer)
            buffer.clear()
            held = 0

    start = time.perf_counter()
    with source.open("rb") as fh:
        for raw in fh:
            lines += 1
            size += len(raw)
            line = raw if raw.endswith(b"\n") else raw + b"\n"
            if line.startswith(_PREFIX) and b"\\" not in (name := line[27 : line.find(b'"', 27)]):
                by_bytes[name] = by_bytes.get(name, 0) + 1
                emit(line)
            if (not lines & 1023 and stopped.is_set()) or stopped.is_set():
                break
    return time.perf_counter() - start


def _pump_once(source: Path) -> float:
    from dpone_runner.pump import Pump, TargetChannel
    from dpone_runner.state_commit import StateLedger

    ledger = StateLedger(1, lambda value: None)
    channel = TargetChannel(_NullConnector(), 0, ledger)  # type: ignore[arg-type]
    start = time.perf_counter()
    with source.open("rb") as fh:
        Pump(fh, [channel], ledger).run()
    channel.close()
    channel.join()
    return time.perf_counter() - start


STAGES = (
    ("`for raw in file` (the floor)", _stage_loop),
    ("+ count lines and bytes, ensure the newline", _stage_count),
    ("+ RECORD prefix test, stream-name slice, count per stream", _stage_peek),
    ("+ _emit(): append to the chunk, add the size, join at 256 KB", _stage_buffer),
    ("+ per-line stop checks (stopped.is_set(), failure poll)", _stage_checks),
    ("Pump.run itself (+ queue to a writer thread to /dev/null)", _pump_once),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/runner_overhead.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="RECORD messages in the stream (default 1000000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per pipeline; the best counts (default 3)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--profile", action="store_true", help="profile the pump in-process instead")
    args = parser.parse_args(argv)
    if args.profile:
        return profile(args.rows, args.seed)
    return measure(args.rows, args.repeat, args.seed)


if __name__ == "__main__":
    sys.exit(main())
