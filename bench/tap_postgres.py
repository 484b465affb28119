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
import gzip
import io
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (python bench/tap_postgres.py): make the repo root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench.pg_server import PgServer, throwaway_server

REPO = Path(__file__).resolve().parent.parent
WORK_DIR = Path(__file__).resolve().parent / ".work"
LOGS_ROOT = WORK_DIR / "tap-postgres-logs"  # one directory per run: runs may overlap
BIN = Path(sys.executable).parent
PYENV = Path.home() / ".pyenv" / "versions"
PIPELINEWISE_VENV = WORK_DIR / "venv-pw-tap"
MELTANOLABS_VENV = WORK_DIR / "venv-ml-tap"
TOOLS_VENV = WORK_DIR / "venv-tools"  # py-spy, for --profile
DATABASE = "bench"
SCHEMA = "public"
TABLE = "bench_records"
COLUMNS = ("id", "name", "email", "country", "score", "amount", "active", "updated_at", "birth_date", "parent_id")
GNU_TIME = Path("/usr/bin/time")
_ROW = "_dpone_row"  # the alias our tap's query gives the rendered row
MB = 1024  # GNU time's %M is in KiB

# Goals (docs/performance.md).
GOAL_RECORD_VS_PSQL = 5.0  # RECORD mode: wall time at most this multiple of psql \copy's
GOAL_RECORD_SPEEDUP = 5.0  # RECORD mode: at least this many times faster than each reference tap
GOAL_BATCH_VS_PSQL = 2.5  # BATCH mode: wall time at most this multiple of psql \copy's
_KINDS = {"gzip": "gzip", "none": "plain"}
PLAIN_BATCH = "dpone tap-postgres BATCH (plain JSONL)"

_FIRST = (
    "Ada", "Alan", "Barbara", "Claude", "Donald", "Edsger", "Frances", "Grace", "Hedy", "Ivan",
    "John", "Katherine", "Leslie", "Margaret", "Niklaus", "Radia", "Sophie", "Tim", "Vint", "Zoë",
)  # fmt: skip
_LAST = (
    "Lovelace", "Turing", "Liskov", "Shannon", "Knuth", "Dijkstra", "Allen", "Hopper", "Lamarr",
    "Sutherland", "Backus", "Johnson", "Lamport", "Hamilton", "Wirth", "Perlman", "Wilson", "Cerf",
)  # fmt: skip
_COUNTRIES = ("US", "DE", "FR", "GB", "JP", "BR", "IN", "CA", "ES", "NL", "SE", "PL")


def _array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


CREATE_SQL = f"""
CREATE TABLE {SCHEMA}.{TABLE} (
    id bigint PRIMARY KEY,
    name text,
    email text,
    country varchar(2),
    score double precision,
    amount numeric(12,2),
    active boolean,
    updated_at timestamptz,
    birth_date date,
    parent_id bigint
)
"""

# Same shapes as bench/records.py: "First Last", first.last<id>@example.com, amounts with cents,
# 70% true, a timestamp 7 s apart per id with milliseconds, 20% NULL parents pointing below the id.
# Names come from hashes of the id, the rest from random() after setseed(): the same table every run.
FILL_SQL = f"""
SELECT setseed(0.2024);
INSERT INTO {SCHEMA}.{TABLE}
SELECT i, f || ' ' || l, lower(f) || '.' || lower(l) || i || '@example.com', country, score, amount,
       active, updated_at, birth_date, parent_id
FROM (
    SELECT g.i,
           ({_array(_FIRST)})[1 + (hashint8(g.i) & 2147483647) % {len(_FIRST)}] AS f,
           ({_array(_LAST)})[1 + (hashint8(-g.i) & 2147483647) % {len(_LAST)}] AS l,
           ({_array(_COUNTRIES)})[1 + floor(random() * {len(_COUNTRIES)})::int] AS country,
           random() * 2000 - 1000 AS score,
           round((random() * 100000)::numeric, 2) AS amount,
           random() < 0.7 AS active,
           timestamptz '2024-01-01 00:00:00+00' + g.i * interval '7 seconds'
               + floor(random() * 1000) * interval '1 millisecond' AS updated_at,
           date '1950-01-01' + floor(random() * 20000)::int AS birth_date,
           CASE WHEN random() < 0.2 THEN NULL ELSE 1 + floor(random() * g.i)::bigint END AS parent_id
    FROM generate_series(1, {{rows}}) AS g(i)
) AS s;
"""


# -- results -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Measured:
    seconds: float
    tool_cpu: float  # user + system of the tool's process tree
    server_cpu: float  # user + system of the server backends reaped meanwhile
    rss_kb: int
    returncode: int
    other_cpu: float = 0.0  # CPU the rest of the machine used meanwhile (other processes): noise


@dataclass(slots=True)
class Result:
    name: str
    runs: list[Measured] = field(default_factory=list)

    @property
    def best(self) -> Measured:
        return min(self.runs, key=lambda m: m.seconds)

    @property
    def seconds(self) -> float:
        return self.best.seconds


@dataclass(frozen=True, slots=True)
class Checked:
    rows: int
    id_sum: int


def _shown(path: Path) -> str:
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def _postmaster_children_cpu(server: PgServer) -> float:
    """CPU seconds of every child the postmaster has reaped (cutime + cstime of /proc/<pid>/stat)."""
    pid = (server.data_dir / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of stat(5)); cutime and cstime are fields 16 and 17.
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat: all but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(limit: float, cores: float = 0.2, window: float = 3.0) -> float:
    """Wait (up to `limit` seconds) until other processes use under `cores` CPUs; return what they used."""
    deadline = time.monotonic() + limit
    said = False
    while True:
        before = _machine_busy()
        time.sleep(window)
        busy = (_machine_busy() - before) / window
        if busy < cores or time.monotonic() >= deadline:
            if said or busy >= cores:
                print(f"  (other processes use {busy:.2f} CPUs; going on)", flush=True)
            return busy
        if not said:
            print(f"  waiting for the machine to quiet down (other processes use {busy:.2f} CPUs) ...", flush=True)
            said = True
        time.sleep(10)


def measure(server: PgServer, argv: list[str], stdout: Any, stderr: Any, env: dict[str, str] | None = None) -> Measured:
    """Run to completion: wall seconds, CPU of the tool and of the server, peak RSS (GNU time's %M)."""
    rss_file = WORK_DIR / f".rss-{os.getpid()}"
    wrapped = [str(GNU_TIME), "-f", "%M", "-o", str(rss_file), *argv] if GNU_TIME.exists() else argv
    server_before = _postmaster_children_cpu(server)
    machine_before = _machine_busy()
    start = time.perf_counter()
    proc = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    machine = _machine_busy() - machine_before
    proc.returncode = os.waitstatus_to_exitcode(status)
    time.sleep(0.3)  # let the postmaster reap the tool's backends
    server_cpu = _postmaster_children_cpu(server) - server_before
    rss_kb = 0
    if rss_file.exists():
        numbers = [line for line in rss_file.read_text().splitlines() if line.strip().isdigit()]
        rss_kb = int(numbers[-1]) if numbers else 0
        rss_file.unlink()
    tool_cpu = usage.ru_utime + usage.ru_stime
    other = max(0.0, machine - tool_cpu - server_cpu)
    return Measured(seconds, tool_cpu, server_cpu, rss_kb, proc.returncode, other)


# -- reading what the tools wrote ----------------------------------------------------------------------
def check_singer(lines: Iterator[bytes], stream_ids: set[str]) -> Checked:
    """Count RECORD messages of the table's stream and add up their ids."""
    rows = id_sum = 0
    loads = orjson.loads
    for line in lines:
        if b"RECORD" not in line:
            continue
        message = loads(line)
        if message.get("type") != "RECORD":
            continue
        if message.get("stream") not in stream_ids:
            raise SystemExit(f"error: a RECORD of unexpected stream {message.get('stream')!r}")
        rows += 1
        id_sum += int(message["record"]["id"])
    return Checked(rows, id_sum)


def check_psql(lines: Iterator[bytes]) -> Checked:
    """Rows of psql's output: text format (id first), or our tap's CSV (a JSON object first)."""
    rows = id_sum = 0
    for line in lines:
        rows += 1
        if b"\x1f" in line:
            id_sum += int(orjson.loads(line.split(b"\x1f", 1)[0])["id"])
        else:
            id_sum += int(line.split(b"\t", 1)[0])
    return Checked(rows, id_sum)


def batch_files(stdout_file: Path) -> list[Path]:
    """The files named by the BATCH messages of a tap's output."""
    from dpone_protocol.batch_files import uri_to_path

    files: list[Path] = []
    for line in stdout_file.read_bytes().splitlines():
        message = orjson.loads(line)
        if message.get("type") == "RECORD":
            raise SystemExit("error: the tap in BATCH mode wrote RECORD messages")
        if message.get("type") == "BATCH":
            files.extend(uri_to_path(uri) for uri in message["manifest"])
    return files


def check_batch(files: list[Path], with_ids: bool) -> Checked:
    rows = id_sum = 0
    for path in files:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as fh:
            if not with_ids:
                while chunk := fh.read(1 << 20):
                    rows += chunk.count(b"\n")
                continue
            for line in fh:
                rows += 1
                id_sum += int(orjson.loads(line)["id"])
    return Checked(rows, id_sum)


_OUR_COUNT = re.compile(rb"stream \S+: (\d+) records")
_METRIC_COUNT = re.compile(rb'"metric":\s*"record_count",\s*"value":\s*(\d+)')


def logged_count(stderr_file: Path) -> int | None:
    """The record count a tool logged: our final log line, or the sum of singer record_count counters."""
    text = stderr_file.read_bytes()
    ours = _OUR_COUNT.findall(text)
    if ours:
        return int(ours[-1])
    metrics = _METRIC_COUNT.findall(text)
    return sum(int(n) for n in metrics) if metrics else None


# -- the tools ----------------------------------------------------------------------------------------
@dataclass(slots=True)
class Tool:
    name: str
    kind: str  # "psql", "singer" or "batch"
    argv: list[str]
    env: dict[str, str] | None = None
    stream_ids: set[str] = field(default_factory=set)


class Bench:
    def __init__(self, server: PgServer, rows: int) -> None:
        self.server = server
        self.rows = rows
        self.expected = Checked(rows, rows * (rows + 1) // 2)
        self.batch_root = Path(tempfile.mkdtemp(prefix="dpone-tap-batches-"))
        self.logs = LOGS_ROOT / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        self.logs.mkdir(parents=True, exist_ok=True)

    def sql(self, statement: str) -> str:
        return self.server.psql(statement, DATABASE)

    def _write_json(self, name: str, doc: Any) -> Path:
        path = self.logs / name
        path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        return path

    # -- the table ---------------------------------------------------------------------------------
    def fill(self) -> None:
        self.server.psql(f"CREATE DATABASE {DATABASE}")
        start = time.perf_counter()
        self.sql(CREATE_SQL)
        self.sql(FILL_SQL.format(rows=self.rows))
        self.sql(f"VACUUM (FREEZE, ANALYZE) {SCHEMA}.{TABLE}")
        self.sql("CHECKPOINT")
        size = self.sql(f"SELECT pg_size_pretty(pg_table_size('{SCHEMA}.{TABLE}'))")
        print(f"filled {SCHEMA}.{TABLE}: {self.rows:,} rows, {size}, in {time.perf_counter() - start:.1f}s")

    # -- catalogs ----------------------------------------------------------------------------------
    def discover(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
        err = self.logs / f"{name}-discover.stderr"
        with err.open("wb") as fe:
            done = subprocess.run([*argv, "--discover"], stdout=subprocess.PIPE, stderr=fe, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"error: {name} --discover failed ({done.returncode}):\n{_tail(err)}")
        return orjson.loads(done.stdout)

    def selected_catalog(self, name: str, catalog: dict[str, Any]) -> tuple[Path, set[str]]:
        """Select only the benchmark table, every column, FULL_TABLE."""
        chosen = []
        for stream in catalog.get("streams", []):
            ids = {stream.get("tap_stream_id"), stream.get("stream"), stream.get("table_name")}
            root = next((m for m in stream.get("metadata", []) if not m.get("breadcrumb")), None)
            if root is not None:
                ids.add(root.get("metadata", {}).get("table-name"))
            mine = any(isinstance(i, str) and re.split(r"[.-]", i)[-1] == TABLE for i in ids)
            for entry in stream.get("metadata", []):
                md = entry.setdefault("metadata", {})
                if not entry.get("breadcrumb"):
                    md["selected"] = mine
                    if mine:
                        md["replication-method"] = "FULL_TABLE"
                elif mine:
                    md["selected"] = True
            if mine:
                stream["replication_method"] = "FULL_TABLE"
                chosen.append(stream)
        if len(chosen) != 1:
            raise SystemExit(f"error: {name}'s catalog has {len(chosen)} streams for {TABLE}, expected 1")
        stream = chosen[0]
        ids = {stream["tap_stream_id"], stream.get("stream") or stream["tap_stream_id"]}
        return self._write_json(f"{name}-catalog.json", catalog), ids

    def ours(self, batch: bool, compression: str = "gzip") -> Tool:
        config: dict[str, Any] = {
            **self.server.config(DATABASE),
            "include": [f"{SCHEMA}.{TABLE}"],
        }
        if batch:
            config["batch_config"] = {
                "encoding": {"format": "jsonl", "compression": compression},
                "storage": {"root": self.batch_root.as_uri()},
            }
        name = f"dpone-batch-{compression}" if batch else "dpone-record"
        exe = [str(BIN / "tap-postgres"), "--config", str(self._write_json(f"{name}-config.json", config))]
        catalog, ids = self.selected_catalog(name, self.discover(name, exe))
        label = f"dpone tap-postgres BATCH ({_KINDS[compression]} JSONL)" if batch else "dpone tap-postgres RECORD"
        return Tool(label, "batch" if batch else "singer", [*exe, "--catalog", str(catalog)], None, ids)

    def pipelinewise(self) -> Tool:
        config = {
            "host": self.server.host,
            "port": self.server.port,
            "user": self.server.user,
            "password": "unused",  # required by its config check; the server trusts local connections
            "dbname": DATABASE,
            "filter_schemas": SCHEMA,
        }
        exe = [
            str(PIPELINEWISE_VENV / "bin" / "tap-postgres"),
            "--config",
            str(self._write_json("pipelinewise-config.json", config)),
        ]
        catalog, ids = self.selected_catalog("pipelinewise", self.discover("pipelinewise", exe))
        name = f"pipelinewise-tap-postgres {_version_of(PIPELINEWISE_VENV, 'pipelinewise-tap-postgres')}"
        return Tool(name, "singer", [*exe, "--properties", str(catalog)], None, ids)

    def meltanolabs(self) -> Tool:
        config = {
            "host": self.server.host,
            "port": self.server.port,
            "user": self.server.user,
            "password": "unused",
            "database": DATABASE,
            "filter_schemas": [SCHEMA],
        }
        exe = [
            str(MELTANOLABS_VENV / "bin" / "tap-postgres"),
            "--config",
            str(self._write_json("meltanolabs-config.json", config)),
        ]
        env = {**os.environ, "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"}
        catalog, ids = self.selected_catalog("meltanolabs", self.discover("meltanolabs", exe, env))
        name = f"meltanolabs-tap-postgres {_version_of(MELTANOLABS_VENV, 'meltanolabs-tap-postgres')}"
        return Tool(name, "singer", [*exe, "--catalog", str(catalog)], env, ids)

    def psql(self, name: str, query: str, options: str = "") -> Tool:
        copy = f"\\copy ({query}) TO STDOUT{options}"
        return Tool(name, "psql", [*self.server.psql_command(DATABASE), "-c", copy])

    # -- running -----------------------------------------------------------------------------------
    def _slug(self, tool: Tool) -> str:
        return re.sub(r"[^a-z0-9]+", "-", tool.name.lower()).strip("-")[:40]

    def _clear_batches(self) -> None:
        shutil.rmtree(self.batch_root, ignore_errors=True)
        self.batch_root.mkdir(parents=True)

    def check_run(self, tool: Tool, env: dict[str, str] | None = None) -> Checked:
        """Untimed: run the tool and check every row it wrote (count and sum of ids)."""
        slug = self._slug(tool)
        err = self.logs / f"{slug}-check.stderr"
        env = env or tool.env
        if tool.kind == "batch":
            self._clear_batches()
            out = self.logs / f"{slug}-check.stdout"
            with out.open("wb") as fo, err.open("wb") as fe:
                done = subprocess.run(tool.argv, stdout=fo, stderr=fe, env=env, cwd=REPO, check=False)
            if done.returncode != 0:
                raise SystemExit(f"error: {tool.name} failed ({done.returncode}):\n{_tail(err)}")
            checked = check_batch(batch_files(out), with_ids=True)
            self._clear_batches()
        else:
            with err.open("wb") as fe:
                proc = subprocess.Popen(tool.argv, stdout=subprocess.PIPE, stderr=fe, env=env, cwd=REPO)
                assert proc.stdout is not None
                reader = io.BufferedReader(proc.stdout, 1 << 20)  # type: ignore[arg-type]
                lines = iter(reader.readline, b"")
                checked = check_psql(lines) if tool.kind == "psql" else check_singer(lines, tool.stream_ids)
                code = proc.wait()
            if code != 0:
                raise SystemExit(f"error: {tool.name} failed ({code}):\n{_tail(err)}")
        if checked != self.expected:
            raise SystemExit(
                f"error: {tool.name} wrote {checked.rows:,} rows (id sum {checked.id_sum}); "
                f"expected {self.expected.rows:,} (id sum {self.expected.id_sum})"
            )
        return checked

    def timed_run(self, tool: Tool) -> Measured:
        slug = self._slug(tool)
        err = self.logs / f"{slug}.stderr"
        if tool.kind == "batch":
            self._clear_batches()
            out = self.logs / f"{slug}.stdout"
            with out.open("wb") as fo, err.open("wb") as fe:
                done = measure(self.server, tool.argv, fo, fe, tool.env)
        else:
            with open(os.devnull, "wb") as fo, err.open("wb") as fe:
                done = measure(self.server, tool.argv, fo, fe, tool.env)
        if done.returncode != 0:
            raise SystemExit(f"error: {tool.name} failed ({done.returncode}):\n{_tail(err)}")
        if tool.kind == "batch":
            rows = check_batch(batch_files(out), with_ids=False).rows
            self._clear_batches()
        elif tool.kind == "singer":
            rows = logged_count(err)  # type: ignore[assignment]
        else:
            rows = None  # type: ignore[assignment]
        if rows is not None and rows != self.rows:
            raise SystemExit(f"error: {tool.name}'s timed run wrote {rows:,} records, expected {self.rows:,}")
        return done

    def our_copy_sql(self, record_tool: Tool) -> str | None:
        """The COPY our tap sends, from the server log of a checked run with statement logging."""
        env = {**os.environ, "PGOPTIONS": "-c log_min_duration_statement=0"}
        self.check_run(record_tool, env)
        found = re.findall(
            r"statement: (COPY \(SELECT .*? FROM .*) TO STDOUT (\(.*\))\s*$",
            _tail(self.server.log_file, 200_000),
            re.MULTILINE,
        )
        if not found:
            return None
        copy, options = found[-1]
        return copy[len("COPY (") : -1] + "\x00" + options


# -- reference installs ---------------------------------------------------------------------------------
def install(venv: Path, python: Path, package: str, executable: str = "tap-postgres") -> str | None:
    """Create the venv and pip install the package unless `executable` is there already; None on success."""
    exe = venv / "bin" / executable
    if exe.exists():
        return None
    if not python.exists():
        return f"no interpreter at {python}"
    log = WORK_DIR / f"install-{venv.name}.log"
    print(f"installing {package} into {_shown(venv)} (log: {_shown(log)}) ...", flush=True)
    with log.open("w") as fh:
        for argv in (
            [str(python), "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--upgrade", "pip"],
            [str(venv / "bin" / "python"), "-m", "pip", "install", package],
        ):
            if subprocess.run(argv, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                return f"`{' '.join(argv[-3:])}` failed; see {log}"
    return None if exe.exists() else f"{package} installed no {executable} executable"


def _version_of(venv: Path, dist: str) -> str:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "?"


# -- the comparison ------------------------------------------------------------------------------------
FLOOR = "psql \\copy (the floor)"
OURS_QUERY = "psql \\copy, our tap's query"


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
        python = PYENV / "3.9.18" / "bin" / "python"  # on 3.11 pip picks the old 1.8.4
        why = install(PIPELINEWISE_VENV, python, "pipelinewise-tap-postgres")
        if why:
            print(f"pipelinewise-tap-postgres: not installable here: {why}")
        else:
            tools.append(bench.pipelinewise())
    if args.skip_meltanolabs:
        print("meltanolabs-tap-postgres: skipped (--skip-meltanolabs)")
    else:
        why = install(MELTANOLABS_VENV, PYENV / "3.11.7" / "bin" / "python", "meltanolabs-tap-postgres")
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


# -- --profile: where our tap's time goes --------------------------------------------------------------
_TRANSLATED = f"translate(row_to_json({_ROW})::text, E'\\n\\r', '  ')"
_NO_TRANSLATE = f"row_to_json({_ROW})::text"
_REPLACE = f"replace(replace(row_to_json({_ROW})::text, E'\\n', ' '), E'\\r', ' ')"


def _copy_blocks(server: PgServer, sql: str) -> Iterator[Any]:
    import psycopg

    with (
        psycopg.connect(server.dsn(DATABASE), autocommit=True) as conn,
        conn.cursor() as cur,
        cur.copy(sql) as copy,
    ):
        yield from copy


def _staircase_step(step: str, server: PgServer, sql: str, rows: int) -> tuple[float, float]:
    """One in-process read of a COPY doing what the tap does per row, up to `step`: (wall, client CPU)."""
    head = b'{"type":"RECORD","stream":"public-bench_records","record":'
    tail = b',"version":1717171717171,"time_extracted":"2024-06-01T00:00:00+00:00"}\n'
    n = 0
    start, cpu = time.perf_counter(), time.process_time()
    if step == "read":
        for _ in _copy_blocks(server, sql):
            n += 1
    elif step == "frame":
        for block in _copy_blocks(server, sql):
            data = bytes(block)
            sep = data.index(b"\x1f")
            key = data[sep + 1 :].rstrip(b"\n")
            record = data[:sep]
            n += 1
        del key, record
    elif step == "stdout":
        with open(os.devnull, "wb", buffering=1 << 20) as out:
            for block in _copy_blocks(server, sql):
                data = bytes(block)
                sep = data.index(b"\x1f")
                key = data[sep + 1 :].rstrip(b"\n")
                out.write(head + data[:sep] + tail)
                n += 1
        del key
    elif step in ("gzip", "gzip-buffered"):
        with (
            tempfile.TemporaryDirectory(prefix="dpone-tap-gzip-") as tmp,
            gzip.open(Path(tmp) / "b.jsonl.gz", "wb", compresslevel=1) as raw,
        ):
            fh: Any = io.BufferedWriter(raw, 1 << 20) if step == "gzip-buffered" else raw  # type: ignore[arg-type]
            for block in _copy_blocks(server, sql):
                data = bytes(block)
                sep = data.index(b"\x1f")
                key = data[sep + 1 :].rstrip(b"\n")
                fh.write(data[:sep] + b"\n")
                n += 1
            if fh is not raw:
                fh.flush()
                fh.detach()
        del key
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if n != rows:
        raise SystemExit(f"error: staircase step {step} read {n:,} rows, expected {rows:,}")
    return seconds, cpu


def _server_only(bench: Bench, query: str) -> float:
    """The server renders every row (the tap's SELECT) but sends nothing: SELECT sum(length(...))."""
    sql = f"\\timing on\nSELECT sum(length(j)) FROM ({query}) AS t(j, k);\n"
    script = bench.logs / "server-only.sql"
    script.write_text(sql)
    done = subprocess.run(
        [*bench.server.psql_command(DATABASE), "-f", str(script)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"error: server-only query failed: {done.stderr}")
    time.sleep(0.3)  # its backend is reaped before the next measured run reads the server's CPU
    found = re.findall(r"Time: ([0-9.]+) ms", done.stdout)
    return float(found[-1]) / 1000


@contextmanager
def _what_if(rewrite: str | None, buffered_gzip: bool) -> Iterator[None]:
    """Our tap, in-process, with its COPY's translate() rewritten and/or its gzip writes buffered.

    Monkeypatches for an experiment only: psycopg's Cursor.copy and JsonlBatchWriter._open.
    """
    import psycopg

    import dpone_protocol.batch_files as batch_files_module

    copy, open_ = psycopg.Cursor.copy, batch_files_module.JsonlBatchWriter._open

    def rewritten_copy(self: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if rewrite is not None and isinstance(statement, str) and _TRANSLATED in statement:
            statement = statement.replace(_TRANSLATED, rewrite)
        return copy(self, statement, *args, **kwargs)

    def buffered_open(self: Any) -> Any:
        fh = open_(self)
        return io.BufferedWriter(fh, 1 << 20) if buffered_gzip else fh

    psycopg.Cursor.copy = rewritten_copy  # type: ignore[method-assign]
    batch_files_module.JsonlBatchWriter._open = buffered_open  # type: ignore[method-assign]
    try:
        yield
    finally:
        psycopg.Cursor.copy = copy  # type: ignore[method-assign]
        batch_files_module.JsonlBatchWriter._open = open_  # type: ignore[method-assign]


def _in_process(bench: Bench, tool: Tool, rewrite: str | None, buffered_gzip: bool) -> tuple[float, float]:
    from taps.framework.tap_cli import run
    from taps.postgres.tap import PostgresTap

    bench._clear_batches()
    os.environ["DPONE_LOG_LEVEL"] = "WARNING"
    with _what_if(rewrite, buffered_gzip), open(os.devnull, "wb", buffering=1 << 20) as out:
        start, cpu = time.perf_counter(), time.process_time()
        code = run(PostgresTap, tool.argv[1:], stdout=out)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if code != 0:
        raise SystemExit(f"error: in-process {tool.name} exited {code}")
    if tool.kind == "batch":
        rows = check_batch(sorted(bench.batch_root.iterdir()), with_ids=False).rows
        bench._clear_batches()
        if rows != bench.rows:
            raise SystemExit(f"error: in-process {tool.name} wrote {rows:,} rows, expected {bench.rows:,}")
    return seconds, cpu


_SAMPLE_CATEGORIES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("start-up: imports, config, discovery, connect", lambda s: "_StreamSync.run" not in s),
    ("psycopg: waiting for / reading COPY data (Copy.__iter__)", lambda s: "copy.py" in s or "Copy." in s),
    ("gzip: compressing batch files", lambda s: "gzip" in s),
    ("stdout: writing RECORD lines", lambda s: "write (" in s.rsplit(";", 1)[-1] and "gzip" not in s),
    ("STATE checkpoints", lambda s: "_checkpoint" in s),
    ("framing: the stream's _copy loop (bytes, index, slices)", lambda s: "_copy (" in s.rsplit(";", 1)[-1]),
    ("framing: the tap loop (_StreamSync.run) and generators", lambda s: True),
)
SAMPLE_RATE = 250


def pyspy_breakdown(tool: Tool, py_spy: Path, logs: Path) -> None:
    raw = logs / f"pyspy-{tool.kind}.txt"
    argv = [str(py_spy), "record", "--idle", "-r", str(SAMPLE_RATE), "-f", "raw", "-o", str(raw), "--"]
    out = logs / "pyspy.stdout"
    with out.open("wb") as fo:
        done = subprocess.run([*argv, *tool.argv], stdout=fo, stderr=subprocess.DEVNULL, cwd=REPO, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: py-spy run of {tool.name} failed ({done.returncode})")
    counts = dict.fromkeys((name for name, _ in _SAMPLE_CATEGORIES), 0)
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        for name, test in _SAMPLE_CATEGORIES:
            if test(stack):
                counts[name] += int(n)
                break
    total = sum(counts.values()) or 1
    print(f"\npy-spy of {tool.name}, {total:,} samples at {SAMPLE_RATE}/s ({total / SAMPLE_RATE:.1f}s):")
    print("| where | seconds | share |")
    print("|---|---:|---:|")
    for name, n in counts.items():
        print(f"| {name} | {n / SAMPLE_RATE:.2f} | {n / total:.0%} |")


def _table(title: str, header: str, rows: list[tuple[str, ...]]) -> None:
    print(f"\n{title}\n")
    print(header)
    print("|---" + "|---:" * (header.count("|") - 2) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def profile(args: argparse.Namespace, bench: Bench) -> None:
    columns = ", ".join(COLUMNS)
    record, batch = bench.ours(batch=False), bench.ours(batch=True)
    captured = bench.our_copy_sql(record)
    if not captured:
        raise SystemExit("error: our tap's COPY was not found in the server log")
    query, options = captured.split("\x00")
    print(f"\nour tap's COPY:\n  COPY ({query}) TO STDOUT {options}")
    translated = _TRANSLATED in query  # the tap's line-break fix over the whole row (before 2026-11-25)
    if not translated:
        print("(the tap's query has no translate() over the row: its variants are left out)")
    floor = bench.psql(FLOOR, f"SELECT {columns} FROM {SCHEMA}.{TABLE}")
    ours_psql = bench.psql(OURS_QUERY, query, " " + options)
    for tool in (floor, ours_psql, batch):
        bench.check_run(tool)
    rows = args.rows

    def quiet(fn: Callable[[], Any]) -> Any:
        wait_for_quiet(args.wait_quiet)
        return fn()

    def best(fn: Callable[[], tuple[float, float]]) -> tuple[float, float]:
        return min((quiet(fn) for _ in range(args.repeat)), key=lambda r: r[0])

    def best_run(tool: Tool) -> Measured:
        return min((quiet(lambda: bench.timed_run(tool)) for _ in range(args.repeat)), key=lambda m: m.seconds)

    def rate(seconds: float) -> str:
        return f"{rows / seconds:,.0f}"

    # 1. The server's share: our query and variants of it, each through psql \copy to /dev/null.
    no_translate = query.replace(_TRANSLATED, _NO_TRANSLATE)
    key_text = re.sub(r"json_build_array\(([^()]*)\)::text", r"\1::text", no_translate)
    without = " without translate()" if translated else ""
    unordered = query.rsplit(" ORDER BY ", 1)[0]
    no_jit = bench.psql("no-jit", query, " " + options)
    no_jit.env = {**os.environ, "PGOPTIONS": "-c jit=off"}
    variants = [
        ("psql \\copy of the 10 plain columns (the floor)", floor),
        ("psql \\copy of our tap's query", ours_psql),
        ("  without ORDER BY the key", bench.psql("unordered", unordered, " " + options)),
        ("  with jit=off", no_jit),
    ]
    if translated:
        variants += [
            (
                "  replace(replace(...)) instead of translate()",
                bench.psql("replace", query.replace(_TRANSLATED, _REPLACE), " " + options),
            ),
            ("  without translate()", bench.psql("no-translate", no_translate, " " + options)),
        ]
    key_label = "  without translate(), key as plain text" if translated else "  key as plain text"
    variants.append((key_label, bench.psql("key-text", key_text, " " + options)))
    seconds = best(lambda: (_server_only(bench, query), 0.0))[0]
    lines = [
        (
            "our query rendered by the server, nothing sent (SELECT sum(length(json)))",
            f"{seconds:.2f}",
            rate(seconds),
            "",
            "",
        )
    ]
    for what, tool in variants:
        m = best_run(tool)
        lines.append((what, f"{m.seconds:.2f}", rate(m.seconds), f"{m.tool_cpu:.2f}", f"{m.server_cpu:.2f}"))
    _table(
        f"The server's share, {rows:,} rows (best of {args.repeat}):",
        "| query | seconds | rows/s | psql CPU s | server CPU s |",
        lines,
    )

    # 2. The tap's share: what the tap does per row, step by step, in-process, reading the COPY without
    #    translate() (the server's part is then small enough for the client's to show).
    copy_sql = f"COPY ({no_translate}) TO STDOUT {options}"
    lines = []
    for step, what in (
        ("read", "psycopg: iterate the COPY rows, nothing else"),
        ("frame", "+ frame each row (bytes, find the separator, slice record and key)"),
        ("stdout", "+ write RECORD lines to /dev/null (1 MB buffer)"),
        ("gzip", "instead: write each record line into a gzip (level 1) file, as the tap does"),
        ("gzip-buffered", "instead: the same through a 1 MB io.BufferedWriter"),
    ):
        wall, cpu = best(lambda step=step: _staircase_step(step, bench.server, copy_sql, rows))
        lines.append((what, f"{wall:.2f}", rate(wall), f"{cpu:.2f}"))
    _table(
        f"The tap's share, in-process, our COPY{without}:",
        "| step | seconds | rows/s | client CPU s |",
        lines,
    )

    # 3. What would help: our tap itself, in-process, with its COPY rewritten and its gzip writes buffered.
    lines = []
    experiments: list[tuple[str, Tool, str | None, bool]] = [("RECORD, as it is", record, None, False)]
    if translated:
        experiments += [
            ("RECORD, replace(replace(...)) instead of translate()", record, _REPLACE, False),
            ("RECORD, without translate()", record, _NO_TRANSLATE, False),
        ]
    experiments.append(("BATCH, as it is", batch, None, False))
    if translated:
        experiments.append(("BATCH, without translate()", batch, _NO_TRANSLATE, False))
    experiments.append((f"BATCH,{without} gzip writes through a 1 MB buffer", batch, _NO_TRANSLATE, True))
    for what, tool, rewrite, buffered in experiments:
        wall, cpu = best(
            lambda tool=tool, rewrite=rewrite, buffered=buffered: _in_process(bench, tool, rewrite, buffered)
        )
        lines.append((what, f"{wall:.2f}", rate(wall), f"{cpu:.2f}"))
    _table(
        "What would help: tap-postgres in-process (no interpreter start-up), patched for the experiment:",
        "| our tap | seconds | rows/s | tap CPU s |",
        lines,
    )

    # 4. The real thing, and its start-up alone.
    lines = []
    for what, tool in (("tap-postgres RECORD, to /dev/null", record), ("tap-postgres BATCH", batch)):
        m = best_run(tool)
        lines.append((what, f"{m.seconds:.2f}", rate(m.seconds), f"{m.tool_cpu:.2f}", f"{m.server_cpu:.2f}"))
    start = time.perf_counter()
    bench.discover("dpone-record", record.argv[:3])
    seconds = time.perf_counter() - start
    lines.append(
        ("tap-postgres --discover (interpreter, imports, connect, one discovery)", f"{seconds:.2f}", "", "", "")
    )
    _table("Our tap as a process:", "| run | seconds | rows/s | tap CPU s | server CPU s |", lines)

    why = install(TOOLS_VENV, PYENV / "3.11.7" / "bin" / "python", "py-spy", "py-spy")
    py_spy = TOOLS_VENV / "bin" / "py-spy"
    if not py_spy.exists():
        print(f"py-spy breakdown skipped: {why or 'no py-spy'}")
        return
    pyspy_breakdown(record, py_spy, bench.logs)
    bench._clear_batches()
    pyspy_breakdown(batch, py_spy, bench.logs)
    bench._clear_batches()


def _commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown commit"


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
    import psycopg

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"Python {platform.python_version()}, psycopg {psycopg.__version__} ({psycopg.pq.__impl__}), "
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, dpone at {_commit()}, load {load}"
    )
    with throwaway_server() as server:
        version = server.psql("SHOW server_version")
        settings = server.psql(
            "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings "
            "WHERE name IN ('shared_buffers', 'work_mem', 'jit')"
        )
        print(f"PostgreSQL {version} on port {server.port} (defaults: {settings})")
        bench = Bench(server, args.rows)
        print(f"logs, configs and catalogs in {_shown(bench.logs)}")
        try:
            bench.fill()
            if args.profile:
                profile(args, bench)
            else:
                report(args.rows, args.repeat, compare(args, bench))
        finally:
            shutil.rmtree(bench.batch_root, ignore_errors=True)
    print(f"load at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
