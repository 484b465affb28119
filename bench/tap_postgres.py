"""tap-postgres benchmark: our tap against psql's \\copy and two other Singer taps.

    python bench/tap_postgres.py [--rows 1000000] [--repeat 1] [--skip-pipelinewise] [--skip-meltanolabs]
    python bench/tap_postgres.py --profile          # where our tap's time goes (no references)

One throwaway PostgreSQL 15 server (bench/pg_server.py, stock settings) is started for the run.
A table ``public.bench_records`` in database ``bench`` is filled server-side with
generate_series: the ten columns of bench/records.py (bigint id primary key, text name and
email, varchar(2) country, double precision score, numeric(12,2) amount, boolean active,
timestamptz updated_at, date birth_date, nullable bigint parent_id), then VACUUM (FREEZE,
ANALYZE) and CHECKPOINT, so no reader pays for hint bits or statistics. The table then fits in
the page cache (not in the default 128 MB of shared_buffers) and every tool reads it from there.

Every tool reads the whole table once, untimed, with its output checked (count of RECORD lines
or of rows in the batch files, and the sum of the ids), which also warms the caches. Then the
timed runs, interleaved across tools:

- ``psql \\copy`` (the floor): ``psql -c "\\copy (SELECT <the 10 columns> FROM ...) TO STDOUT"``
  into /dev/null; text format, no ordering.
- ``psql \\copy, our tap's query`` (diagnostic): the exact COPY our tap sends (row_to_json of
  lossless expressions, ORDER BY the key), captured from the server log of the checked run: what
  the server alone costs us.
- ``dpone tap-postgres RECORD``: this venv's ``tap-postgres``, FULL_TABLE, stdout to /dev/null.
- ``dpone tap-postgres BATCH``: the same with ``batch_config`` (gzip JSONL files under a temp dir,
  BATCH messages on stdout); the time runs until the tap exits, files closed. Twice: gzip (level 1,
  the default) and plain (``"compression": "none"``).
- ``pipelinewise-tap-postgres``: in its own Python 3.9 venv under bench/.work/, FULL_TABLE
  (it orders by ``xmin::text``, its resume column), stdout to /dev/null.
- ``meltanolabs-tap-postgres``: in its own Python 3.11 venv under bench/.work/ (singer-sdk,
  SQLAlchemy), FULL_TABLE, stdout to /dev/null.

Each tap gets a catalog from its own ``--discover`` (untimed) with only this table selected, all
columns. Timed runs check the exit code and, where the tool logs one, its own record count
(our "N records" log line; the record_count METRIC counters of the two references); BATCH runs
count the rows of their files. Wall-clock seconds from process start to exit, best of --repeat.
"tool CPU" is user + system time of the tool's process tree; "server CPU" that of the server
backends that served it (the postmaster's reaped-children CPU, read before and after); "other
processes' CPU" is what the rest of the machine used meanwhile (/proc/stat), the noise. Before each
timed run the script waits (--wait-quiet, up to 600 s) until other processes use under 0.2 CPUs.

--profile splits our tap's time: variants of its query through psql (what each part costs the
server), the tap's per-row steps rebuilt in-process with psycopg (client CPU of each), our tap
in-process with its COPY rewritten or its gzip writes buffered (monkeypatched, to size a fix
before making it), and py-spy samples of the real processes (py-spy from bench/.work/venv-tools).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (python bench/tap_postgres.py): make the repo root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import evidence
from bench.host import load_average, machine_line, server_line
from bench.measure import MB, wait_for_quiet
from bench.paths import WORK_DIR, shown
from bench.pg_server import throwaway_server
from bench.ref_venvs import install, pyenv_python
from bench.tap_postgres_bench import (
    FLOOR,
    MELTANOLABS_VENV,
    OURS_QUERY,
    PIPELINEWISE_VENV,
    PLAIN_BATCH,
    Bench,
    Result,
    Tool,
)
from bench.tap_postgres_profile import profile
from bench.tap_postgres_table import COLUMNS, SCHEMA, TABLE

# Goals (docs/performance.md).
GOAL_RECORD_VS_PSQL = 2.0  # RECORD mode: wall time at most this multiple of psql \copy's (issue 22)
GOAL_RECORD_SPEEDUP = 5.0  # RECORD mode: at least this many times faster than each reference tap
GOAL_BATCH_VS_PSQL = 2.5  # BATCH mode: wall time at most this multiple of psql \copy's


# -- the comparison ------------------------------------------------------------------------------------
def compare(args: argparse.Namespace, bench: Bench) -> dict[str, Result]:
    columns = ", ".join(COLUMNS)
    record = bench.ours(batch=False)
    tools: list[Tool] = [bench.psql(FLOOR, f"SELECT {columns} FROM {SCHEMA}.{TABLE}")]
    captured = bench.our_copy_sql(record)
    if captured:
        query, options = captured.split("\x00")
        tools.append(bench.psql(OURS_QUERY, query, " " + options))
    else:
        print("note: our tap's COPY was not found in the server log; its psql row is left out")
    tools += [record, bench.ours(batch=True), bench.ours(batch=True, compression="none")]
    if args.skip_pipelinewise:
        print("pipelinewise-tap-postgres: skipped (--skip-pipelinewise)")
    else:
        python = pyenv_python("3.9.18")  # on 3.11 pip picks the old 1.8.4
        why = install(PIPELINEWISE_VENV, python, "pipelinewise-tap-postgres", "tap-postgres")
        if why:
            print(f"pipelinewise-tap-postgres: not installable here: {why}")
        else:
            tools.append(bench.pipelinewise())
    if args.skip_meltanolabs:
        print("meltanolabs-tap-postgres: skipped (--skip-meltanolabs)")
    else:
        why = install(MELTANOLABS_VENV, pyenv_python("3.11.7"), "meltanolabs-tap-postgres", "tap-postgres")
        if why:
            print(f"meltanolabs-tap-postgres: not installable here: {why}")
        else:
            tools.append(bench.meltanolabs())

    print("checking every tool's output (untimed; also warms the caches) ...", flush=True)
    for tool in tools:
        start = time.perf_counter()
        checked = bench.check_run(tool)
        print(f"  {tool.name:<48} {checked.rows:,} rows, ids add up ({time.perf_counter() - start:.1f}s)", flush=True)

    results = {tool.name: Result(tool.name) for tool in tools}
    for run in range(1, args.repeat + 1):  # interleaved: noise hits every tool alike
        for tool in tools:
            wait_for_quiet(args.wait_quiet)
            done = bench.timed_run(tool)
            results[tool.name].runs.append(done)
            print(
                f"  run {run}: {tool.name:<48} {done.seconds:7.2f}s  tool CPU {done.tool_cpu:6.2f}s  "
                f"server CPU {done.server_cpu:6.2f}s  other CPU {done.other_cpu:5.2f}s  "
                f"peak RSS {done.rss_kb / MB:5.0f} MB",
                flush=True,
            )
    return results


def report(rows: int, repeat: int, results: dict[str, Result]) -> None:
    floor = results[FLOOR].seconds
    record = results["dpone tap-postgres RECORD"]
    batch = results["dpone tap-postgres BATCH (gzip JSONL)"]
    references = [name for name in results if name.startswith(("pipelinewise", "meltanolabs"))]
    best = f"best of {repeat}" if repeat > 1 else "one run"
    print(f"\n{rows:,} rows, wall time ({best}):\n")
    print(
        "| tool | seconds | rows/s | time vs psql | dpone RECORD speed-up | dpone BATCH speed-up "
        "| tool CPU s | server CPU s | peak RSS MB | other processes' CPU s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        m = result.best
        ours = (FLOOR, OURS_QUERY, record.name, batch.name, PLAIN_BATCH)
        ups = ["—" if name in ours else f"{m.seconds / o.seconds:.1f}x" for o in (record, batch)]
        print(
            f"| {name} | {m.seconds:.2f} | {rows / m.seconds:,.0f} | {m.seconds / floor:.2f}x | {ups[0]} | {ups[1]} "
            f"| {m.tool_cpu:.2f} | {m.server_cpu:.2f} | {m.rss_kb / MB:.0f} | {m.other_cpu:.2f} |"
        )
    goals = []
    ratio = record.seconds / floor
    goals.append(
        (f"RECORD mode <= {GOAL_RECORD_VS_PSQL:g}x psql's time", f"{ratio:.2f}x", ratio <= GOAL_RECORD_VS_PSQL)
    )
    for name in references:
        speedup = results[name].seconds / record.seconds
        goals.append((f"RECORD mode >= {GOAL_RECORD_SPEEDUP:g}x faster than {name}", f"{speedup:.1f}x", speedup >= 5.0))
    for name in (batch.name, PLAIN_BATCH):
        ratio = results[name].seconds / floor
        goal = f"BATCH mode ({name.split('(')[1].rstrip(')')}) <= {GOAL_BATCH_VS_PSQL:g}x psql's time"
        goals.append((goal, f"{ratio:.2f}x", ratio <= GOAL_BATCH_VS_PSQL))
    print()
    for goal, value, met in goals:
        print(f"goal: {goal}: {value} -> {'MET' if met else 'NOT MET'}")
    figures = {"rows": rows, "repeat": repeat, **{f"{name} s": result.seconds for name, result in results.items()}}
    goal_figures = {f"goal: {goal}": f"{value} {'MET' if met else 'NOT MET'}" for goal, value, met in goals}
    evidence.record("tap-postgres", "FULL_TABLE read against psql \\copy", {**figures, **goal_figures})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/tap_postgres.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the table (default 1000000)")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per tool; the best counts (default 1)")
    parser.add_argument("--skip-pipelinewise", action="store_true", help="leave out pipelinewise-tap-postgres")
    parser.add_argument("--skip-meltanolabs", action="store_true", help="leave out meltanolabs-tap-postgres")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=600,
        metavar="SECONDS",
        help="before each timed run, wait up to this long for other processes to go quiet (default 600)",
    )
    parser.add_argument("--profile", action="store_true", help="break our tap's time down instead of comparing")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be >= 1")

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    load = load_average()
    print(f"{machine_line()}, load {load}")
    with throwaway_server() as server:
        print(server_line(server, ("shared_buffers", "work_mem", "jit")))
        bench = Bench(server, args.rows)
        print(f"logs, configs and catalogs in {shown(bench.logs)}")
        try:
            bench.fill()
            if args.profile:
                profile(args, bench)
            else:
                report(args.rows, args.repeat, compare(args, bench))
        finally:
            shutil.rmtree(bench.batch_root, ignore_errors=True)
    print(f"load at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
