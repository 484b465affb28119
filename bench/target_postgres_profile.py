"""--profile of bench/target_postgres.py: where our target's time goes.

Our target in-process with a stopwatch around each loader step (no profiler overhead), then as a
process under py-spy (sampling, waits included), then in-process under cProfile (stats to a file).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.paths import BIN, WORK_DIR
from bench.pg_server import PgServer
from bench.pyspy import SAMPLE_RATE, Categories, ensure_py_spy, print_samples, record_argv, sort_samples
from bench.runner_overhead import input_file
from bench.target_postgres_bench import DATABASE, Bench, measure

_PHASES = ("describe_table", "prepare_staging", "bulk_load", "bulk_load_encoded", "finalize", "cleanup")


def _in_process(config: Path, singer: Path) -> None:
    from dpone.targets.framework.target_cli import run
    from dpone.targets.postgres.target import PostgresTarget

    code = run(PostgresTarget, ["--config", str(config), "--input", str(singer)], stdout=io.BytesIO())
    if code != 0:
        raise SystemExit(f"error: target-postgres exited {code}")


def _timed_phases(config: Path, singer: Path) -> tuple[float, dict[str, float]]:
    """One run in-process with a stopwatch around each loader step; no profiler overhead."""
    from dpone.targets.postgres.loader import PostgresLoader

    spent = dict.fromkeys(_PHASES, 0.0)
    originals = {name: getattr(PostgresLoader, name) for name in _PHASES}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start

        return timed

    for name, fn in originals.items():
        setattr(PostgresLoader, name, wrap(name, fn))
    try:
        start = time.perf_counter()
        _in_process(config, singer)
        total = time.perf_counter() - start
    finally:
        for name, fn in originals.items():
            setattr(PostgresLoader, name, fn)
    return total, spent


# Where a py-spy sample is spent: the first category whose test matches its stack (outermost to leaf).
_DECODED = ("decode_line", "from_dict", "add_record")
_SAMPLE_CATEGORIES: Categories = (
    # Load-lane threads (committer.py): each batch's staging, COPY, turn and finalize.
    ("lanes: waiting for the batch before to commit", lambda s: "_write_with_retries" in s and "turn" in s),
    ("lanes: finalize (INSERT or MERGE, commit)", lambda s: "_write_with_retries" in s and "finalize" in s),
    ("lanes: COPY into staging", lambda s: "_write_with_retries" in s and "bulk_load" in s),
    ("lanes: staging DDL, connect", lambda s: "_write_with_retries" in s),
    ("lanes: idle (no batch to load)", lambda s: "committer" in s.lower() and "Target.run" not in s),
    ("start-up: imports, connect, CREATE SCHEMA/TABLE", lambda s: "Target.run" not in s),
    # The main thread.
    ("main: waiting for a free lane", lambda s: "Committer.submit" in s),
    ("main: waiting for the last batches (end of input)", lambda s: "settle" in s or "Committer.wait" in s),
    ("main: server work of the decoded path", lambda s: "PostgresLoader" in s),
    ("batch: dedupe last per key (decoded path)", lambda s: "_dedupe_last" in s),
    ("batch: taking the encoded batch, stamping", lambda s: "Sink.drain" in s or "LoaderSink.drain" in s),
    (
        "input: decoded path (orjson, messages, Sink.add)",
        lambda s: any(k in s for k in ("decode_line", "from_dict", "add_record")),
    ),
    ("input: the loop, with the C encoder's feed()", lambda s: True),
)


def pyspy_breakdown(config: Path, singer: Path, py_spy: Path) -> None:
    """Our target as a subprocess under py-spy (sampling, so no per-call overhead), waits included."""
    raw = WORK_DIR / "target-postgres-pyspy.txt"
    env = {**os.environ, "DPONE_LOG_LEVEL": "WARNING"}
    argv = [*record_argv(py_spy, raw), sys.executable, str(BIN / "target-postgres"), "--config", str(config)]
    with singer.open("rb") as src:
        done = measure(argv, src, subprocess.DEVNULL, subprocess.DEVNULL, env)
    if done.returncode != 0:
        raise SystemExit(f"error: py-spy run failed ({done.returncode})")
    counts = sort_samples(raw, _SAMPLE_CATEGORIES)
    total = sum(counts.values())
    print(f"\npy-spy, {total:,} samples at {SAMPLE_RATE}/s ({total / SAMPLE_RATE:.1f}s, run took {done.seconds:.1f}s):")
    print_samples(counts)


def profile(args: argparse.Namespace, server: PgServer) -> None:
    singer = input_file(args.rows, args.seed, say_reused=True)
    bench = Bench(server, args.rows, singer, None)
    schema = "bench_dpone_profile"
    config = bench.config_file("dpone-profile", {**server.config(DATABASE), "default_target_schema": schema})
    os.environ.setdefault("DPONE_LOG_LEVEL", "WARNING")

    bench.fresh_schema(schema)
    total, spent = _timed_phases(config, singer)
    bench.verify("dpone (timed)", schema)
    rest = total - sum(spent.values())
    print(f"\nphases, {args.rows:,} rows in-process, no profiler: {total:.2f}s in all")
    print("(loader steps are summed over the load lanes, which run side by side with each other and")
    print("with the main thread: their sum can exceed the run)")
    print("| phase | seconds | share |")
    print("|---|---:|---:|")
    if rest >= 0:
        print(f"| read + decode + Sink.add + batching (outside the loader) | {rest:.2f} | {rest / total:.0%} |")
    for name in _PHASES:
        print(f"| loader.{name} | {spent[name]:.2f} | {spent[name] / total:.0%} |")

    found = ensure_py_spy(Path(sys.executable))
    if isinstance(found, str):
        print(f"py-spy breakdown skipped: {found}")
    else:
        bench.fresh_schema(schema)
        pyspy_breakdown(config, singer, found)
        bench.verify("dpone (py-spy)", schema)

    bench.fresh_schema(schema)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(_in_process, config, singer)
    elapsed = time.perf_counter() - start
    bench.verify("dpone (profiled)", schema)
    profiler.dump_stats(args.profile)
    print(f"\nunder cProfile: {elapsed:.2f}s; stats in {args.profile}")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(30)
