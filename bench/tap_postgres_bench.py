"""The tap benchmark's runs: the tools (ours, psql, the references) and running them, checked or timed.

Bench owns one run's table, logs, configs and catalogs; a Tool is one command to run against it.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.measure import machine_busy, postmaster_children_cpu, run_measured
from bench.paths import BIN, REPO, WORK_DIR, tail
from bench.pg_server import PgServer
from bench.ref_venvs import reference_login, version_of
from bench.tap_postgres_checks import Checked, batch_files, check_batch, check_psql, check_singer, logged_count
from bench.tap_postgres_table import CREATE_SQL, DATABASE, FILL_SQL, SCHEMA, TABLE

LOGS_ROOT = WORK_DIR / "tap-postgres-logs"  # one directory per run: runs may overlap
PIPELINEWISE_VENV = WORK_DIR / "venv-pw-tap"
MELTANOLABS_VENV = WORK_DIR / "venv-ml-tap"
FLOOR = "psql \\copy (the floor)"
OURS_QUERY = "psql \\copy, our tap's query"
_KINDS = {"gzip": "gzip", "none": "plain"}
PLAIN_BATCH = "dpone tap-postgres BATCH (plain JSONL)"


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


def measure(server: PgServer, argv: list[str], stdout: Any, stderr: Any, env: dict[str, str] | None = None) -> Measured:
    """Run to completion: wall seconds, CPU of the tool and of the server, peak RSS (GNU time's %M)."""
    server_before = postmaster_children_cpu(server)
    machine_before = machine_busy()
    done = run_measured(argv, subprocess.DEVNULL, stdout, stderr, env)
    machine = machine_busy() - machine_before
    time.sleep(0.3)  # let the postmaster reap the tool's backends
    server_cpu = postmaster_children_cpu(server) - server_before
    other = max(0.0, machine - done.cpu - server_cpu)
    return Measured(done.seconds, done.cpu, server_cpu, done.rss_kb or 0, done.returncode, other)


@dataclass(slots=True)
class Tool:
    name: str
    kind: str  # "psql", "singer" or "batch"
    argv: list[str]
    env: dict[str, str] | None = None
    stream_ids: set[str] = field(default_factory=set)


class Bench:
    def __init__(self, server: PgServer, rows: int, logs: Path | None = None) -> None:
        """logs: where configs, catalogs and logs go (default a new directory under LOGS_ROOT)."""
        self.server = server
        self.rows = rows
        self.expected = Checked(rows, rows * (rows + 1) // 2)
        self.batch_root = Path(tempfile.mkdtemp(prefix="dpone-tap-batches-"))
        self.logs = logs or LOGS_ROOT / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
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
            raise SystemExit(f"error: {name} --discover failed ({done.returncode}):\n{tail(err)}")
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
            **reference_login(self.server),
            "dbname": DATABASE,
            "filter_schemas": SCHEMA,
        }
        exe = [
            str(PIPELINEWISE_VENV / "bin" / "tap-postgres"),
            "--config",
            str(self._write_json("pipelinewise-config.json", config)),
        ]
        catalog, ids = self.selected_catalog("pipelinewise", self.discover("pipelinewise", exe))
        name = f"pipelinewise-tap-postgres {version_of(PIPELINEWISE_VENV, 'pipelinewise-tap-postgres')}"
        return Tool(name, "singer", [*exe, "--properties", str(catalog)], None, ids)

    def meltanolabs(self) -> Tool:
        config = {
            **reference_login(self.server),
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
        name = f"meltanolabs-tap-postgres {version_of(MELTANOLABS_VENV, 'meltanolabs-tap-postgres')}"
        return Tool(name, "singer", [*exe, "--catalog", str(catalog)], env, ids)

    def psql(self, name: str, query: str, options: str = "") -> Tool:
        copy = f"\\copy ({query}) TO STDOUT{options}"
        return Tool(name, "psql", [*self.server.psql_command(DATABASE), "-c", copy])

    # -- running -----------------------------------------------------------------------------------
    def _slug(self, tool: Tool) -> str:
        return re.sub(r"[^a-z0-9]+", "-", tool.name.lower()).strip("-")[:40]

    def clear_batches(self) -> None:
        shutil.rmtree(self.batch_root, ignore_errors=True)
        self.batch_root.mkdir(parents=True)

    def check_run(self, tool: Tool, env: dict[str, str] | None = None) -> Checked:
        """Untimed: run the tool and check every row it wrote (count and sum of ids)."""
        slug = self._slug(tool)
        err = self.logs / f"{slug}-check.stderr"
        env = env or tool.env
        if tool.kind == "batch":
            self.clear_batches()
            out = self.logs / f"{slug}-check.stdout"
            with out.open("wb") as fo, err.open("wb") as fe:
                done = subprocess.run(tool.argv, stdout=fo, stderr=fe, env=env, cwd=REPO, check=False)
            if done.returncode != 0:
                raise SystemExit(f"error: {tool.name} failed ({done.returncode}):\n{tail(err)}")
            checked = check_batch(batch_files(out), with_ids=True)
            self.clear_batches()
        else:
            with err.open("wb") as fe:
                proc = subprocess.Popen(tool.argv, stdout=subprocess.PIPE, stderr=fe, env=env, cwd=REPO)
                assert proc.stdout is not None
                reader = io.BufferedReader(proc.stdout, 1 << 20)  # type: ignore[arg-type]
                lines = iter(reader.readline, b"")
                checked = check_psql(lines) if tool.kind == "psql" else check_singer(lines, tool.stream_ids)
                code = proc.wait()
            if code != 0:
                raise SystemExit(f"error: {tool.name} failed ({code}):\n{tail(err)}")
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
            self.clear_batches()
            out = self.logs / f"{slug}.stdout"
            with out.open("wb") as fo, err.open("wb") as fe:
                done = measure(self.server, tool.argv, fo, fe, tool.env)
        else:
            with open(os.devnull, "wb") as fo, err.open("wb") as fe:
                done = measure(self.server, tool.argv, fo, fe, tool.env)
        if done.returncode != 0:
            raise SystemExit(f"error: {tool.name} failed ({done.returncode}):\n{tail(err)}")
        if tool.kind == "batch":
            rows = check_batch(batch_files(out), with_ids=False).rows
            self.clear_batches()
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
            tail(self.server.log_file, 200_000),
            re.MULTILINE,
        )
        if not found:
            return None
        copy, options = found[-1]
        return copy[len("COPY (") : -1] + "\x00" + options
