"""target-postgres benchmark: our target against psql's \\copy and two other Singer targets.

    python bench/target_postgres.py [--rows 1000000] [--repeat 1] [--skip-pipelinewise] [--skip-meltanolabs]
    python bench/target_postgres.py --rows-memory 10000000 [--memory-only]   # peak RSS on a piped 10M stream
    python bench/target_postgres.py --profile bench/.work/target-postgres.prof  # where our target's time goes
    python bench/target_postgres.py --batch-input   # also: our target reading the rows from BATCH files

One throwaway PostgreSQL 15 server (bench/pg_server.py, stock settings: fsync on, default
shared_buffers, max_wal_size, ...) is started for the run. Every tool loads the same rows, the
stream of bench/records.py (SCHEMA, N RECORDs of 10 columns, a STATE every 10,000 records), into
a fresh table in its own schema of database ``bench``. One untimed \\copy first creates the WAL
segment files a fresh cluster lacks and puts the inputs in the page cache; a CHECKPOINT before
each load keeps one tool's dirty pages from being written during the next one's run. After each
load the table is checked (row count, sums over five columns, equal across tools) and dropped.

- ``psql \\copy``: the same records written once as CSV (cached under bench/.work/), loaded with
  ``\\copy ... FROM file WITH (FORMAT csv)`` into a plain table with the same 10 columns and
  types as our target creates, no key. Only the \\copy counts (psql's ``\\timing``). This is the
  reference the goals are stated against.
- ``psql \\copy, table with primary key``: the same, into a table with ``PRIMARY KEY (id)``.
- ``psql staged``: what our target asks of the server, in one batch and without metadata
  columns: ``\\copy`` into a TEMP table, then ``INSERT INTO <keyed table> SELECT`` from it, in
  one transaction (``\\timing`` of the \\copy, INSERT and COMMIT).
- ``dpone target-postgres``: the ``target-postgres`` console script of this venv, stdin = the
  Singer file, default settings (upsert on key ``id``, batches of 50,000 rows, metadata columns).
- ``psql staged MERGE (re-load: every key matched)``: the keyed table first filled with the rows
  (untimed), then ``\\copy`` into a TEMP table and one ``MERGE`` (update every column when matched,
  insert otherwise) in one transaction: what a hand-written re-load costs.
- ``dpone target-postgres, re-load (every key matched)``: our target run twice on the same input
  into the same table; only the second run, where every batch merges, is timed.
- ``dpone target-postgres, BATCH jsonl.gz input`` (``--batch-input``): the same rows as SDK BATCH
  messages, gzip JSONL files of 200,000 rows each (written once under bench/.work/), a STATE after
  each; the time includes decompressing them.
- ``pipelinewise-target-postgres``: in its own Python 3.9 venv under bench/.work/, its defaults
  (batches of 100,000 rows, upsert on the key; no metadata columns unless asked, so it writes 10
  columns where ours writes 15).
- ``meltanolabs-target-postgres``: in its own Python 3.11 venv under bench/.work/, its defaults
  (record validation on, INSERT rather than COPY, batches of 10,000, metadata columns, merge on
  the key).

Wall-clock seconds from process start to exit (best of --repeat); peak RSS is GNU time's ``%M``
for the tool's process: its largest resident set, or that of its largest child.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (python bench/target_postgres.py): make the repo root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import evidence
from bench.host import machine_line, server_line
from bench.measure import MB
from bench.paths import BIN, REPO, WORK_DIR, tail
from bench.pg_server import PgServer, throwaway_server
from bench.records import DEFAULT_SEED
from bench.ref_venvs import install, old_python, version_of
from bench.runner_overhead import input_file
from bench.target_postgres_bench import (
    DATABASE,
    MELTANOLABS_VENV,
    PIPELINEWISE_VENV,
    TABLE,
    Bench,
    Measured,
    batch_input,
    csv_file,
    measure,
)
from bench.target_postgres_profile import profile

# Goals the target is held to (docs/performance.md).
GOAL_VS_PSQL = 2.0  # wall time at most this multiple of psql \copy's
GOAL_RELOAD_VS_MERGE = 1.3  # re-loading every key: at most this multiple of \copy to temp + MERGE (issue 22)
MERGE_REFERENCE = "psql staged MERGE (re-load: every key matched)"
RELOAD = "dpone target-postgres, re-load (every key matched)"
GOAL_VS_PIPELINEWISE = 7.0  # at least this many times faster than pipelinewise-target-postgres
GOAL_RSS_MB = 150.0


@dataclass(slots=True)
class Result:
    tool: str
    runs: list[float] = field(default_factory=list)
    rss_kb: int = 0

    @property
    def seconds(self) -> float:
        return min(self.runs)


# -- the comparison ----------------------------------------------------------------------------------
def compare(args: argparse.Namespace, server: PgServer) -> dict[str, Result]:
    singer = input_file(args.rows, args.seed, say_reused=True)
    csv_path = csv_file(args.rows, args.seed)
    bench = Bench(server, args.rows, singer, csv_path)

    tools: list[tuple[str, Callable[[], Measured]]] = [
        ("psql \\copy (plain table)", lambda: bench.psql_copy(primary_key=False)),
        ("psql \\copy (table with primary key)", lambda: bench.psql_copy(primary_key=True)),
        ("psql staged (\\copy to temp + INSERT, keyed table)", bench.psql_staged),
        ("dpone target-postgres", bench.dpone),
        (MERGE_REFERENCE, bench.psql_merge),
        (RELOAD, bench.dpone_reload),
    ]
    if args.batch_input:
        batches = batch_input(args.rows, args.seed)
        tools.append(("dpone target-postgres, BATCH jsonl.gz input", lambda: bench.dpone_batch(batches)))
    skipped: list[str] = []
    if args.skip_pipelinewise:
        skipped.append("pipelinewise-target-postgres: skipped (--skip-pipelinewise)")
    else:
        why = install(PIPELINEWISE_VENV, old_python(), "pipelinewise-target-postgres", "target-postgres")
        if why:
            skipped.append(f"pipelinewise-target-postgres: not installable here: {why}")
        else:
            name = f"pipelinewise-target-postgres {version_of(PIPELINEWISE_VENV, 'pipelinewise-target-postgres')}"
            tools.append((name, bench.pipelinewise))
    if args.skip_meltanolabs:
        skipped.append("meltanolabs-target-postgres: skipped (--skip-meltanolabs)")
    else:
        why = install(MELTANOLABS_VENV, Path(sys.executable), "meltanolabs-target-postgres", "target-postgres")
        if why:
            skipped.append(f"meltanolabs-target-postgres: not installable here: {why}")
        else:
            name = f"meltanolabs-target-postgres {version_of(MELTANOLABS_VENV, 'meltanolabs-target-postgres')}"
            if args.meltanolabs_copy:
                name += " (use_copy)"
            tools.append((name, lambda: bench.meltanolabs(args.meltanolabs_copy)))
    for line in skipped:
        print(line)

    # Untimed: creates the WAL segment files a fresh cluster lacks and puts both inputs in the page
    # cache, so the first tool timed does not pay for what later ones get for free.
    print("warm-up: one untimed psql \\copy, and reading the Singer file once ...", flush=True)
    bench.psql_copy(primary_key=False)
    with singer.open("rb") as fh:
        while fh.read(1 << 24):
            pass

    results = {name: Result(name) for name, _ in tools}
    for run in range(1, args.repeat + 1):  # interleaved: noise hits every tool alike
        for name, fn in tools:
            done = fn()
            result = results[name]
            result.runs.append(done.seconds)
            result.rss_kb = max(result.rss_kb, done.rss_kb)
            print(f"  run {run}: {name:<52} {done.seconds:8.2f}s  peak RSS {done.rss_kb / MB:6.0f} MB", flush=True)
    return results


def report(rows: int, repeat: int, results: dict[str, Result]) -> list[str]:
    """Print the table and the goal checks; return the goal lines."""
    names = list(results)
    psql = results[names[0]].seconds
    ours_name = next(n for n in names if n.startswith("dpone"))
    ours = results[ours_name]
    best = "best of " + str(repeat) if repeat > 1 else "one run"
    print(f"\n{rows:,} rows, wall time ({best}):\n")
    print("| tool | seconds | rows/s | peak RSS MB | time vs psql \\copy | dpone speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in names:
        r = results[name]
        speedup = "—" if name == ours_name else f"{r.seconds / ours.seconds:.2f}x"
        print(
            f"| {name} | {r.seconds:.2f} | {rows / r.seconds:,.0f} | {r.rss_kb / MB:.0f} | "
            f"{r.seconds / psql:.2f}x | {speedup} |"
        )
    goals: list[str] = []
    ratio = ours.seconds / psql
    goals.append(
        f"wall time <= {GOAL_VS_PSQL:g}x psql \\copy: {ratio:.2f}x -> {'MET' if ratio <= GOAL_VS_PSQL else 'NOT MET'}"
    )
    pw = next((n for n in names if n.startswith("pipelinewise")), None)
    if pw:
        times_faster = results[pw].seconds / ours.seconds
        verdict = "MET" if times_faster >= GOAL_VS_PIPELINEWISE else "NOT MET"
        goals.append(f">= {GOAL_VS_PIPELINEWISE:g}x faster than pipelinewise: {times_faster:.2f}x -> {verdict}")
    if RELOAD in results:
        reload = results[RELOAD].seconds / results[MERGE_REFERENCE].seconds
        verdict = "MET" if reload <= GOAL_RELOAD_VS_MERGE else "NOT MET"
        goals.append(f"re-load <= {GOAL_RELOAD_VS_MERGE:g}x psql staged MERGE: {reload:.2f}x -> {verdict}")
    rss = ours.rss_kb / MB
    goals.append(
        f"peak RSS < {GOAL_RSS_MB:g} MB at {rows:,} rows: {rss:.0f} MB -> {'MET' if rss < GOAL_RSS_MB else 'NOT MET'}"
    )
    print()
    for line in goals:
        print("goal: " + line)
    figures = {"rows": rows, "repeat": repeat, **{f"{name} s": result.seconds for name, result in results.items()}}
    evidence.record("target-postgres", "load against psql \\copy", {**figures, "goals": "; ".join(goals)})
    return goals


# -- 10M rows through a pipe: memory only ----------------------------------------------------------------
def memory_run(rows: int, seed: int, server: PgServer) -> None:
    bench = Bench(server, rows, Path(os.devnull), None)
    schema = "bench_dpone_memory"
    bench.fresh_schema(schema)
    config = bench.config_file("dpone-memory", {**server.config(DATABASE), "default_target_schema": schema})
    err = bench.logs / "dpone-memory.stderr"
    print(f"\nmemory run: {rows:,} records generated on the fly, piped into target-postgres ...", flush=True)
    start = time.perf_counter()
    generator = subprocess.Popen(
        [sys.executable, "-m", "bench.records", "--rows", str(rows), "--seed", str(seed), "--out", "-"],
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    assert generator.stdout is not None
    with err.open("wb") as fe:
        done = measure(
            [str(BIN / "target-postgres"), "--config", str(config)], generator.stdout, subprocess.DEVNULL, fe
        )
    generator.stdout.close()
    generator.wait()
    seconds = time.perf_counter() - start
    if done.returncode != 0 or generator.returncode != 0:
        raise SystemExit(
            f"error: memory run failed (target {done.returncode}, generator {generator.returncode}):\n{tail(err)}"
        )
    count = int(bench.sql(f"SELECT count(*) FROM {schema}.{TABLE}"))
    bench.sql(f"DROP SCHEMA {schema} CASCADE")
    if count != rows:
        raise SystemExit(f"error: memory run left {count:,} rows, expected {rows:,}")
    rss = done.rss_kb / MB
    verdict = "MET" if rss < GOAL_RSS_MB else "NOT MET"
    print(f"memory run: {count:,} rows loaded in {seconds:.0f}s (generator-bound; not a speed figure)")
    print(f"goal: peak RSS < {GOAL_RSS_MB:g} MB at {rows:,} rows: {rss:.0f} MB -> {verdict}")


# -- main ---------------------------------------------------------------------------------------------
_SERVER_SETTINGS = (
    "fsync",
    "synchronous_commit",
    "shared_buffers",
    "max_wal_size",
    "wal_level",
    "full_page_writes",
    "work_mem",
    "maintenance_work_mem",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/target_postgres.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="RECORD messages in the input (default 1000000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool; the best counts (default 1)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--skip-pipelinewise", action="store_true", help="leave out pipelinewise-target-postgres")
    parser.add_argument("--skip-meltanolabs", action="store_true", help="leave out meltanolabs-target-postgres")
    parser.add_argument(
        "--batch-input", action="store_true", help="also time our target reading the rows from BATCH files (jsonl.gz)"
    )
    parser.add_argument(
        "--meltanolabs-copy", action="store_true", help="run meltanolabs-target-postgres with use_copy: true"
    )
    parser.add_argument(
        "--rows-memory", type=int, default=0, help="also load this many rows piped from the generator; peak RSS only"
    )
    parser.add_argument("--memory-only", action="store_true", help="only the --rows-memory run")
    parser.add_argument("--profile", metavar="FILE", help="profile our target on --rows rows instead of comparing")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be >= 1")
    if args.memory_only and args.rows_memory < 1:
        parser.error("--memory-only needs --rows-memory N")

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    print(machine_line())
    with throwaway_server() as server:
        print(server_line(server, _SERVER_SETTINGS))
        server.psql(f"CREATE DATABASE {DATABASE}")
        if args.profile:
            profile(args, server)
            return 0
        if not args.memory_only:
            report(args.rows, args.repeat, compare(args, server))
        if args.rows_memory:
            memory_run(args.rows_memory, args.seed, server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
