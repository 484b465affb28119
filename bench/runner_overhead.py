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
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (python bench/runner_overhead.py): make the repo root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench.records import DEFAULT_SEED, write_stream

WORK_DIR = Path(__file__).resolve().parent / ".work"
BIN = Path(sys.executable).parent
ENV = {**os.environ, "DPONE_LOG_LEVEL": "WARNING"}


def input_file(rows: int, seed: int) -> Path:
    """The Singer stream, generated once (same name as bench/codec.py's, so they share it)."""
    path = WORK_DIR / f"records-{rows}-seed{seed}.jsonl"
    if not path.exists():
        print(f"generating {rows:,} records into {path} ...", flush=True)
        write_stream(path, rows, seed)
    return path


class Setup:
    """The replay tap, target config and project, under bench/.work/runner-overhead/."""

    def __init__(self, source: Path) -> None:
        self.root = WORK_DIR / "runner-overhead"
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


def time_once(argv: list[str], setup: Setup, rows: int) -> float:
    setup.clean()
    start = time.perf_counter()
    proc = subprocess.run(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    setup.check(rows)
    return elapsed


def measure(rows: int, repeat: int, seed: int) -> int:
    source = input_file(rows, seed)
    setup = Setup(source)
    size_mb = source.stat().st_size / 1e6
    print(f"input: {rows:,} records, {size_mb:,.0f} MB; {os.cpu_count()} CPUs; Python {platform.python_version()}")
    pipelines = {"shell pipe": setup.pipe_argv(), "dpone run": setup.dpone_argv()}
    times: dict[str, list[float]] = {name: [] for name in pipelines}
    for _ in range(repeat):  # interleaved: noise hits both alike
        for name, argv in pipelines.items():
            times[name].append(time_once(argv, setup, rows))
    print()
    print("| pipeline | runs (s) | best (s) | records/s |")
    print("|---|---|---:|---:|")
    for name, runs in times.items():
        best = min(runs)
        print(f"| {name} | {', '.join(f'{t:.2f}' for t in runs)} | {best:.2f} | {rows / best:,.0f} |")
    pipe, ours = (min(runs) for runs in times.values())
    print(f"\nrunner overhead: {(ours / pipe - 1) * 100:+.1f}% wall time (best against best)")
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
    # And without the profiler's own cost, the pump against a bare line loop over the same file:
    for name, fn in (("bare `for line in file`", _bare_loop), ("Pump.run", _pump_once)):
        best = min(fn(source) for _ in range(3))
        print(f"{name:>24}: {best:.2f}s ({rows / best:,.0f} lines/s)")
    return 0


def _bare_loop(source: Path) -> float:
    start = time.perf_counter()
    with source.open("rb") as fh:
        for _line in fh:
            pass
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
