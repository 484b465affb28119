"""PostgreSQL to PostgreSQL end to end: tap-postgres, the pair and `dpone run` against psql.

    python bench/pg_to_pg.py [--rows 1000000] [--repeat 2] [--wait-quiet 600]
    python bench/pg_to_pg.py --profile      # py-spy of each process of the pair and of dpone run

One throwaway PostgreSQL 15 server (bench/pg_server.py, stock settings, wal_level=replica, but
autovacuum off: it would work on one tool's table during another's run) holds
the source, bench/tap_postgres_table.py's table (database ``bench``, filled server-side, VACUUM
FREEZE, CHECKPOINT), and the destination schema ``pg2pg``. Every load goes into a new table
``pg2pg.public_bench_records``, the name target-postgres gives the stream: before each run the
table is dropped and a CHECKPOINT taken, untimed. The tools, interleaved round by round:

- ``psql \\copy to stdout`` (the tap's floor): ``psql -c "\\copy (SELECT <the 10 columns> FROM
  ...) TO STDOUT"`` into /dev/null, as bench/tap_postgres.py's floor.
- ``psql pipe`` (the pair's floor): that psql piped into ``psql -c "\\copy <dst> (<columns>) FROM
  STDIN"``, the table created beforehand (untimed) with the columns, types and primary key
  target-postgres gives the stream (its own type map over the tap's catalog; checked against the
  table the target creates).
- ``psql pipe, table created in the loading transaction``: the second psql runs ``BEGIN; CREATE
  TABLE ...; \\copy ... FROM pstdin; COMMIT`` from a script. Only under wal_level=minimal does
  such a COPY skip writing WAL; the server line says which level ran.
- ``tap-postgres RECORD``: ``tap-postgres --config C --catalog K``, the table selected,
  FULL_TABLE, stdout to /dev/null.
- ``tap-postgres | target-postgres, add_record_metadata false``: the same without the five
  ``_sdc_*`` columns (a third more columns for the server to parse).
- ``tap-postgres | target-postgres``: the two started here and joined by a pipe; the target with
  its defaults (load_method upsert).
- ``dpone run tap-postgres target-postgres``: a project under bench/.work/ declaring both plugins
  as meltano.yml does (discovery is part of the run, as for a user), a new SQLite state store
  for each run.

Each process is timed alone: the processes of a pipe are started here, each under GNU time
(``%M``: its peak RSS) and reaped with wait4 (user + system CPU). Under ``dpone run`` the runner
starts tap and target through wrapper scripts that exec GNU time, one file per start; the
runner's own CPU is its process tree's less theirs, its peak RSS its VmHWM read from /proc while
it runs (GNU time's %M of the runner would be the largest of it and its children). "server CPU"
is the backends' (the postmaster's reaped children, as in bench/tap_postgres_bench.py), "other"
what the rest of the machine used meanwhile (noise; the server's own background processes too).
Before each timed run the script waits (--wait-quiet) for other processes to use under 0.2 CPUs.

Untimed checks: the two /dev/null tools' output once (rows and the sum of the ids; also warms
the caches), one warm-up run of each loading tool, then after every load the destination's row
count, sum(id) and the sum of a hash of every row's text, equal to the source's; every timed
tap run's logged record count. Figures go to bench/results/pg-to-pg.json (bench/evidence.py).

--profile runs the pair and dpone run once each, measured as above, with a ``py-spy record
--subprocesses --nonblocking`` attached to each process as it starts (py-spy talks on its stdout,
so it must not be the parent of a tap whose stdout is the pipe), and prints for each process
(runner, tap --discover, tap, target) the 15 functions with the most on-CPU samples as innermost
frame: own time. py-spy tells waiting threads from running ones by a heuristic, a better one when
it does not pause the process (--nonblocking), and counts a thread that waits for a free core as
running: on a busy machine the samples add up to more than the measured CPU, read the shares.
The raw samples stay in the logs directory.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (python bench/pg_to_pg.py): make the repo root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench import evidence
from bench.host import load_average, machine_line, server_line
from bench.measure import GNU_TIME, MB
from bench.paths import BIN, REPO, WORK_DIR, shown
from bench.pg_server import throwaway_server
from bench.pg_to_pg_runs import TIME_FORMAT, Runner, Stage, Tool, file_slug
from bench.pyspy import SAMPLE_RATE, ensure_py_spy, own_time
from bench.tap_postgres_bench import Bench
from bench.tap_postgres_checks import logged_count
from bench.tap_postgres_table import COLUMNS, DATABASE, SCHEMA, TABLE

LOGS_ROOT = WORK_DIR / "pg-to-pg-logs"  # one directory per run: runs may overlap
DEST_SCHEMA = "pg2pg"
DEST = f"{DEST_SCHEMA}.public_bench_records"  # target-postgres's table for stream public-bench_records
SOURCE = f"{SCHEMA}.{TABLE}"

TAP_FLOOR = "psql \\copy to stdout (the tap's floor)"
PIPE = "psql pipe (the pair's floor)"
PIPE_IN_TX = "psql pipe, table created in the loading transaction"
TAP = "tap-postgres RECORD"
PAIR = "tap-postgres | target-postgres"
PAIR_BARE = "tap-postgres | target-postgres, add_record_metadata false"
RUN = "dpone run tap-postgres target-postgres"

# Goals (issue 22).
GOAL_TAP_VS_COPY = 2.0
GOAL_PAIR_VS_PIPE = 1.8
AIM_PAIR_VS_PIPE = 1.5
GOAL_RSS_MB = 150.0

_CHECK_SQL = "SELECT count(*), sum(id), sum(hashtext(({columns})::text)) FROM {table}"
_COLUMNS_SQL = (
    "SELECT string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) "
    "FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attnum > 0 AND NOT attisdropped "
    "AND attname NOT LIKE '\\_sdc\\_%'"
)
_KEY_SQL = (
    "SELECT string_agg(a.attname, ', ') FROM pg_index i "
    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
    "WHERE i.indrelid = '{table}'::regclass AND i.indisprimary"
)


def _cell(text: str) -> str:
    """Text for a Markdown table cell: a pipe in a tool's name would end the cell."""
    return text.replace("|", "\\|")


# -- the tools -----------------------------------------------------------------------------------------
class Setup:
    """The tools of this benchmark over one filled server: configs, project and wrappers under `logs`."""

    def __init__(self, bench: Bench, runner: Runner) -> None:
        self.bench = bench
        self.runner = runner
        self.logs = bench.logs
        self.rows = bench.rows
        self.tap_tool = bench.ours(batch=False)
        self.tap_argv = self.tap_tool.argv
        self.ddl = self._target_ddl(Path(self.tap_argv[-1]))
        self.target_settings = {**bench.server.config(DATABASE), "default_target_schema": DEST_SCHEMA}
        self.target_config = self._json("target-config.json", self.target_settings)
        # The five _sdc_* columns are a third more for the server to parse: the same pair without them.
        self.bare_config = self._json("target-config-bare.json", {**self.target_settings, "add_record_metadata": False})
        self.source_check = self.sql(_CHECK_SQL.format(columns=", ".join(COLUMNS), table=SOURCE))
        self.sql(f"CREATE SCHEMA {DEST_SCHEMA}")
        # Autovacuum would analyze (or vacuum) each million-row table a tool loads, in whichever later
        # run happens to be going on: its CPU would land on another tool's figures.
        self.sql("ALTER SYSTEM SET autovacuum = off")
        self.sql("SELECT pg_reload_conf()")

    def sql(self, statement: str) -> str:
        return self.bench.sql(statement)

    def _json(self, name: str, doc: Any) -> Path:
        path = self.logs / name
        path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        return path

    def _target_ddl(self, catalog: Path) -> str:
        """CREATE TABLE for the destination: the columns, types and key target-postgres gives the stream."""
        from dpone.targets.postgres.type_map import pg_type
        from dpone_protocol.json_schema import stream_columns

        stream = next(
            s for s in orjson.loads(catalog.read_bytes())["streams"] if s["tap_stream_id"] in self.tap_tool.stream_ids
        )
        columns = stream_columns(stream["schema"], stream["tap_stream_id"])
        body = [f"{_ident(name)} {pg_type(column)}" for name, column in columns.items()]
        body.append(f"PRIMARY KEY ({', '.join(_ident(k) for k in stream['key_properties'])})")
        return f"CREATE TABLE {DEST} ({', '.join(body)})"

    # -- before and after each run -----------------------------------------------------------------
    def fresh(self, create: bool = False) -> None:
        self.sql(f"DROP TABLE IF EXISTS {DEST}")
        if create:
            self.sql(self.ddl)
        self.sql("CHECKPOINT")  # one load's dirty pages are not written during the next run

    def check_destination(self, tool: str) -> None:
        found = self.sql(_CHECK_SQL.format(columns=", ".join(COLUMNS), table=DEST))
        if found != self.source_check:
            raise SystemExit(
                f"error: {tool}: the destination's count|sum(id)|sum(row hash) is {found}, "
                f"the source's {self.source_check}"
            )

    def table_shape(self) -> str:
        return f"{self.sql(_COLUMNS_SQL.format(table=DEST))}; key {self.sql(_KEY_SQL.format(table=DEST))}"

    def check_tap_count(self, stderr: dict[str, Path]) -> None:
        count = logged_count(stderr["tap"])
        if count != self.rows:
            raise SystemExit(f"error: {TAP}: the tap logged {count} records, expected {self.rows:,}")

    # -- the tools ---------------------------------------------------------------------------------
    def tools(self) -> dict[str, Tool]:
        psql = self.bench.server.psql_command(DATABASE)
        out = Stage("psql out", [*psql, "-c", f"\\copy (SELECT {', '.join(COLUMNS)} FROM {SOURCE}) TO STDOUT"])
        into = f"\\copy {DEST} ({', '.join(COLUMNS)}) FROM"
        script = self.logs / "pipe-in-transaction.sql"
        script.write_text(f"BEGIN;\n{self.ddl};\n{into} pstdin\nCOMMIT;\n")
        tap = Stage("tap", self.tap_argv)
        target = Stage("target", [str(BIN / "target-postgres"), "--config", str(self.target_config)])

        def loader(name: str, stages: list[Stage], prepare: Callable[[], None] = self.fresh) -> Tool:
            return Tool(name, stages, PIPE if name != PIPE else None, prepare, lambda _: self.check_destination(name))

        return {
            TAP_FLOOR: Tool(TAP_FLOOR, [Stage("psql", out.argv)], None, self.fresh, lambda _: None, loads=False),
            PIPE: loader(PIPE, [out, Stage("psql in", [*psql, "-c", f"{into} STDIN"])], lambda: self.fresh(True)),
            PIPE_IN_TX: loader(PIPE_IN_TX, [out, Stage("psql in", [*psql, "-f", str(script)])]),
            TAP: Tool(TAP, [tap], TAP_FLOOR, self.fresh, self.check_tap_count, loads=False),
            PAIR: loader(PAIR, [tap, target]),
            PAIR_BARE: loader(
                PAIR_BARE, [tap, Stage("target", [str(BIN / "target-postgres"), "--config", str(self.bare_config)])]
            ),
            RUN: self._dpone_run(),
        }

    def _dpone_run(self) -> Tool:
        """`dpone run` over a project declaring tap and target as meltano.yml does, each behind a timing wrapper."""
        import yaml

        project = self.logs / "project"
        project.mkdir(exist_ok=True)
        declared = yaml.safe_load((REPO / "meltano.yml").read_text())["plugins"]
        tap = _plugin(declared["extractors"], "tap-postgres")
        target = _plugin(declared["loaders"], "target-postgres")
        tap.update(
            executable=self._wrapper("tap", BIN / "tap-postgres"),
            config={**self.bench.server.config(DATABASE), "include": [SOURCE]},
            select=[f"{sid}.*" for sid in sorted(self.tap_tool.stream_ids)],
            metadata={sid: {"replication-method": "FULL_TABLE"} for sid in self.tap_tool.stream_ids},
        )
        target.update(executable=self._wrapper("target", BIN / "target-postgres"), config=self.target_settings)
        doc = {"version": 1, "plugins": {"extractors": [tap], "loaders": [target]}}
        (project / "meltano.yml").write_bytes(orjson.dumps(doc))  # JSON is YAML
        state = project / "state.db"

        def prepare() -> None:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{state}{suffix}").unlink(missing_ok=True)
            self.fresh()

        argv = [str(BIN / "dpone"), "run", "tap-postgres", "target-postgres", "--project", str(project)]
        argv += ["--state-backend", f"sqlite:///{state}", "--no-progress"]
        return Tool(RUN, [Stage("runner", argv)], PIPE, prepare, lambda _: self.check_destination(RUN), runner=True)

    def _wrapper(self, process: str, exe: Path) -> str:
        """A script that execs GNU time around `exe`, one figures file per start, discovery apart."""
        path = self.logs / f"{process}-timed"
        path.write_text(
            "#!/bin/sh\n"
            f"# {exe.name} for `dpone run`, timed by GNU time: one file per start, discovery apart.\n"
            'case " $* " in *" --discover "*) kind=discover ;; *) kind=run ;; esac\n'
            f"exec {shlex.quote(str(GNU_TIME))} -f '{TIME_FORMAT}' "
            f'-o {shlex.quote(str(self.runner.children))}/{process}-"$kind"-$$.time {shlex.quote(str(exe))} "$@"\n'
        )
        path.chmod(0o755)
        return str(path)


def _plugin(entries: list[dict[str, Any]], name: str) -> dict[str, Any]:
    entry = dict(next(e for e in entries if e["name"] == name))
    entry.pop("pip_url", None)
    return entry


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- the comparison ----------------------------------------------------------------------------------
def compare(setup: Setup, repeat: int) -> dict[str, Tool]:
    tools = setup.tools()
    runner = setup.runner
    print("checking the /dev/null tools' output (untimed; also warms the caches) ...", flush=True)
    for checked in (setup.bench.psql(TAP_FLOOR, f"SELECT {', '.join(COLUMNS)} FROM {SOURCE}"), setup.tap_tool):
        rows = setup.bench.check_run(checked).rows
        print(f"  {checked.name:<52} {rows:,} rows, ids add up", flush=True)
    print("warm-up: each loading tool once (untimed, destination checked) ...", flush=True)
    shapes = {}
    for name in (PIPE, PIPE_IN_TX, PAIR, RUN):
        warm = runner.run(tools[name], quiet_first=False)
        shapes[name] = setup.table_shape()
        print(f"  {name:<52} {warm.seconds:7.2f}s", flush=True)
    warm = runner.run(tools[PAIR_BARE], quiet_first=False)  # its table has no _sdc_* columns
    print(f"  {PAIR_BARE:<52} {warm.seconds:7.2f}s", flush=True)
    if len(set(shapes.values())) != 1:
        raise SystemExit(
            "error: the destination tables differ:\n" + "\n".join(f"  {k}: {v}" for k, v in shapes.items())
        )
    print(f"destination table (every tool): {shapes[PAIR]}")

    for n in range(1, repeat + 1):  # interleaved: noise hits every tool alike
        for tool in tools.values():
            done = runner.run(tool)
            tool.runs.append(done)
            each = ", ".join(f"{p} {u.cpu:.2f}s/{u.rss_kb / MB:.0f}MB" for p, u in done.processes.items())
            print(
                f"  run {n}: {tool.name:<44} {done.seconds:7.2f}s  server CPU {done.server_cpu:5.2f}s  "
                f"other {done.other_cpu:5.2f}s  ({each})",
                flush=True,
            )
    return tools


def report(rows: int, repeat: int, wal_level: str, tools: dict[str, Tool]) -> None:
    per_m = 1_000_000 / rows
    best = f"best of {repeat}" if repeat > 1 else "one run"
    print(f"\n{rows:,} rows, wall time ({best}); server wal_level={wal_level}:\n")
    print(
        "| tool | runs (s) | seconds | rows/s | vs its floor | CPU s, all processes + server | other processes' CPU s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    figures: dict[str, Any] = {"rows": rows, "repeat": repeat, "wal_level": wal_level}
    for tool in tools.values():
        b = tool.best
        vs = f"{b.seconds / tools[tool.floor].best.seconds:.2f}x" if tool.floor else "1.00x (floor)"
        runs = ", ".join(f"{r.seconds:.2f}" for r in tool.runs)
        print(
            f"| {_cell(tool.name)} | {runs} | {b.seconds:.2f} | {rows / b.seconds:,.0f} | {vs} | {b.cpu:.2f} "
            f"| {b.other_cpu:.2f} |"
        )
        figures[f"{tool.name} s"] = b.seconds
        figures[f"{tool.name} rows/s"] = round(rows / b.seconds)

    print(f"\nEach process: CPU of the best run, peak RSS the largest of the {repeat} runs:\n")
    print("| tool | process | CPU s | CPU s per million rows | peak RSS MB |")
    print("|---|---|---:|---:|---:|")
    largest = ("", "", 0)
    for tool in tools.values():
        b = tool.best
        for process, use in b.processes.items():
            rss = tool.peak_rss_kb(process)
            print(f"| {_cell(tool.name)} | {process} | {use.cpu:.2f} | {use.cpu * per_m:.2f} | {rss / MB:.0f} |")
            figures[f"{tool.name}: {process} CPU s per M rows"] = use.cpu * per_m
            figures[f"{tool.name}: {process} peak RSS MB"] = round(rss / MB)
            if rss > largest[2]:
                largest = (tool.name, process, rss)
        print(f"| {_cell(tool.name)} | server backends | {b.server_cpu:.2f} | {b.server_cpu * per_m:.2f} | — |")
        figures[f"{tool.name}: server CPU s per M rows"] = b.server_cpu * per_m

    def ratio(name: str) -> float:
        floor = tools[name].floor
        assert floor is not None
        return tools[name].best.seconds / tools[floor].best.seconds

    goals = [(f"{TAP} <= {GOAL_TAP_VS_COPY:g}x {TAP_FLOOR}", f"{ratio(TAP):.2f}x", ratio(TAP) <= GOAL_TAP_VS_COPY)]
    for name in (PAIR, RUN):
        aim = "met" if ratio(name) <= AIM_PAIR_VS_PIPE else "not met"
        goal = f"{name} <= {GOAL_PAIR_VS_PIPE:g}x {PIPE} (aim {AIM_PAIR_VS_PIPE:g}x)"
        goals.append((goal, f"{ratio(name):.2f}x (aim {aim})", ratio(name) <= GOAL_PAIR_VS_PIPE))
    tool_name, process, rss = largest
    value = f"largest {rss / MB:.0f} MB ({process} of {tool_name})"
    goals.append((f"peak RSS of each process < {GOAL_RSS_MB:g} MB", value, rss / MB < GOAL_RSS_MB))
    print()
    for goal, value, met in goals:
        print(f"goal: {goal}: {value} -> {'MET' if met else 'NOT MET'}")
        figures[f"goal: {goal}"] = f"{value} {'MET' if met else 'NOT MET'}"
    # Under target-postgres, so `dpone certify` finds it (bench/results/<connector>.json).
    evidence.record(
        "target-postgres",
        "pg-to-pg: tap-postgres, the pair and dpone run against psql \\copy and the psql pipe",
        figures,
    )


# -- --profile ---------------------------------------------------------------------------------------
_PROCESSES = {  # the processes py-spy finds, by script, in the order they are shown
    "dpone": "runner",
    "tap-postgres --discover": "tap --discover",
    "tap-postgres": "tap",
    "target-postgres": "target",
}


class _Spies:
    """A py-spy attached to each process of a tool as it starts, one raw file each.

    --subprocesses: the process is GNU time, or the runner with the connectors below it. --nonblocking:
    a process py-spy pauses to sample has its waiting threads (select, sleep) taken for running ones."""

    def __init__(self, py_spy: Path, tool: Tool, logs: Path) -> None:
        self.argv = [str(py_spy), "record", "--subprocesses", "--nonblocking", "-r", str(SAMPLE_RATE), "-f", "raw"]
        self.tool = tool
        self.prefix = logs / f"pyspy-{file_slug(tool.name)}"
        self.raws: dict[str, Path] = {}
        self.procs: list[subprocess.Popen[bytes]] = []

    def attach(self, pid: int) -> None:
        stage = self.tool.stages[len(self.procs)].process
        self.raws[stage] = Path(f"{self.prefix}-{file_slug(stage)}.raw")
        with Path(f"{self.prefix}.log").open("ab") as log:  # py-spy talks on stdout: never into the pipe
            argv = [*self.argv, "-o", str(self.raws[stage]), "--pid", str(pid)]
            self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))

    def wait(self) -> None:
        for proc in self.procs:
            proc.wait()


def profile(setup: Setup, py_spy: Path) -> None:
    """The pair and dpone run once each, every process sampled by a py-spy attached as it starts."""
    tools = setup.tools()
    setup.bench.check_run(setup.tap_tool)  # warms the caches
    scripts = [s.split()[0] for s in _PROCESSES]
    for name in (PAIR, RUN):
        spies = _Spies(py_spy, tools[name], setup.logs)
        done = setup.runner.run(tools[name], attach=spies.attach)
        spies.wait()
        each = ", ".join(f"{p} {u.cpu:.2f}s" for p, u in done.processes.items())
        print(f"\n{name} under py-spy: {done.seconds:.2f}s; CPU {each}, server {done.server_cpu:.2f}s")
        found: dict[str, Counter[str]] = {}
        for stage, raw in spies.raws.items():
            for script, functions in own_time(raw, stage, scripts).items():
                found.setdefault(_PROCESSES.get(script, script), Counter()).update(functions)
        order = list(_PROCESSES.values())
        for process in sorted(found, key=lambda p: order.index(p) if p in order else len(order)):
            functions = found[process]
            total = sum(functions.values())
            print(
                f"\n{name}, {process}: {total:,} on-CPU samples at {SAMPLE_RATE}/s ({total / SAMPLE_RATE:.2f}s), "
                f"top 15 functions by own time:\n"
            )
            print("| function (file) | own s | share |")
            print("|---|---:|---:|")
            for function, n in functions.most_common(15):
                print(f"| {_cell(function)} | {n / SAMPLE_RATE:.2f} | {n / total:.0%} |")
        print(f"\nraw samples: {', '.join(shown(raw) for raw in spies.raws.values())}")


# -- main --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/pg_to_pg.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the source table (default 1000000)")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per tool, interleaved; the best counts")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=600,
        metavar="SECONDS",
        help="before each timed run, wait up to this long for other processes to go quiet (default 600)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy the pair and dpone run instead of comparing")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be >= 1")
    if not GNU_TIME.exists():
        parser.error(f"GNU time is needed at {GNU_TIME} (apt-get install time)")

    py_spy: Path | None = None
    if args.profile:
        found = ensure_py_spy(Path(sys.executable))
        if isinstance(found, str):
            print(f"error: no py-spy: {found}", file=sys.stderr)
            return 1
        py_spy = found

    logs = LOGS_ROOT / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    logs.mkdir(parents=True)
    print(f"{machine_line()}, load {load_average()}")
    settings = ("wal_level", "synchronous_commit", "shared_buffers", "max_wal_size", "jit")
    with throwaway_server() as server:
        print(server_line(server, settings))
        print(f"logs, configs, catalogs and profiles in {shown(logs)}")
        bench = Bench(server, args.rows, logs)
        try:
            bench.fill()
            setup = Setup(bench, Runner(server, logs, args.wait_quiet))
            if py_spy:
                profile(setup, py_spy)
            else:
                report(args.rows, args.repeat, server.psql("SHOW wal_level"), compare(setup, args.repeat))
        finally:
            shutil.rmtree(bench.batch_root, ignore_errors=True)
    print(f"load at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
