"""A dpone project for the metrics and lineage tests: real tap-csv and target-jsonl, plus the
misbehaving connectors a run meets (a target that dies, a tap that fails transiently, a tap that
runs until stopped) and connectors configured like database ones, with passwords in their configs.

`tap-pg` and `target-pg` are tap-csv and target-jsonl behind wrapper scripts named `tap-postgres`
and `target-postgres`: lineage names their datasets as PostgreSQL's (host, port, database from
their configs), and their configs hold a password and a DSN with one, which must show nowhere.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from dpone_runner import cli

BIN = Path(sys.executable).parent
DPONE = str(BIN / "dpone")
SECRET = "pw-Observe-7731"
ROWS = {"people": 7, "orders": 4}
PIPELINE = "tap-csv-to-target-jsonl"

TRANSIENT_TAP = """#!/bin/sh
echo '{"type":"SCHEMA","stream":"people","schema":{"type":"object","properties":{"id":{"type":"integer"}}}}'
echo "cannot reach the source: connection reset" >&2
exit 75
"""

SLOW_TAP = """import json, sys, time
out = sys.stdout
schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
out.write(json.dumps({"type": "SCHEMA", "stream": "ticks", "schema": schema, "key_properties": ["id"]}) + "\\n")
for i in range(1, 100000):
    out.write(json.dumps({"type": "RECORD", "stream": "ticks", "record": {"id": i}}) + "\\n")
    out.flush()
    if i == 3:
        open("slow-tap.running", "w").close()  # in the project directory, where connectors run
    time.sleep(0.05)
"""


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def report(self) -> dict[str, Any]:
        """The run report of `--format json`."""
        data: dict[str, Any] = orjson.loads(self.out)
        return data


class ObserveProject:
    def __init__(self, root: Path) -> None:
        self.root = root
        for stream, count in ROWS.items():
            with (root / f"{stream}.csv").open("w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["id", "name", "updated_at"])
                writer.writerows([n, f"{stream} {n}", f"2024-01-0{1 + n % 8}T00:00:00Z"] for n in range(1, count + 1))
        (root / "public-people.csv").write_bytes((root / "people.csv").read_bytes())
        bin_dir = root / "bin"
        bin_dir.mkdir()
        scripts = {
            "tap-postgres": f'#!/bin/sh\nexec "{BIN / "tap-csv"}" "$@"\n',
            "target-postgres": f'#!/bin/sh\nexec "{BIN / "target-jsonl"}" "$@"\n',
            "target-broken": '#!/bin/sh\necho "fatal error: cannot reach the warehouse" >&2\nexit 1\n',
            "tap-flaky": TRANSIENT_TAP,
            "tap-slow": f'#!/bin/sh\nexec "{sys.executable}" "{root / "slow_tap.py"}" "$@"\n',
        }
        (root / "slow_tap.py").write_text(SLOW_TAP)
        for name, text in scripts.items():
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        files = [{"entity": s, "path": f"{s}.csv", "keys": ["id"]} for s in ROWS]
        password = [{"name": "password", "kind": "password"}, {"name": "dsn", "kind": "password"}]
        pg = {"host": "db.example", "port": 5433, "database": "app", "user": "loader", "password": SECRET}
        project = {
            "plugins": {
                "extractors": [
                    {"name": "tap-csv", "executable": "tap-csv", "config": {"base_path": ".", "files": files}},
                    {
                        "name": "tap-pg",
                        "executable": "bin/tap-postgres",
                        "settings": password,
                        "config": {
                            **pg,
                            "dsn": f"postgresql://loader:{SECRET}@db.example:5433/app",
                            "base_path": ".",
                            "files": [{"entity": "public-people", "path": "public-people.csv", "keys": ["id"]}],
                        },
                    },
                    {"name": "tap-flaky", "executable": "bin/tap-flaky", "capabilities": ["state"]},
                    {"name": "tap-slow", "executable": "bin/tap-slow", "capabilities": ["state"]},
                ],
                "loaders": [
                    {"name": "target-jsonl", "executable": "target-jsonl", "config": {"destination_path": "out"}},
                    {"name": "target-jsonl-b", "executable": "target-jsonl", "config": {"destination_path": "out-b"}},
                    {"name": "target-broken", "executable": "bin/target-broken"},
                    {
                        "name": "target-pg",
                        "executable": "bin/target-postgres",
                        "settings": password,
                        "config": {
                            **pg,
                            "host": "warehouse.example",
                            "default_target_schema": "analytics",
                            "destination_path": "out-pg",
                        },
                    },
                ],
            }
        }
        (root / "meltano.yml").write_bytes(orjson.dumps(project, option=orjson.OPT_INDENT_2))

    def settings(self, settings: dict[str, Any]) -> None:
        (self.root / "dpone.yml").write_bytes(orjson.dumps(settings))  # JSON is YAML

    def replace_executable(self, plugin: str, script: str) -> None:
        """Point `plugin` at a script of its own (e.g. a target that now fails), keeping its name and config."""
        path = self.root / "bin" / f"{plugin}-replaced"
        path.write_text(script)
        path.chmod(0o755)
        project = orjson.loads((self.root / "meltano.yml").read_bytes())
        for kind in project["plugins"].values():
            for entry in kind:
                if entry["name"] == plugin:
                    entry["executable"] = f"bin/{path.name}"
        (self.root / "meltano.yml").write_bytes(orjson.dumps(project, option=orjson.OPT_INDENT_2))

    def argv(self, tap: str, *targets: str) -> list[str]:
        return ["run", tap, *targets, "--project", str(self.root), "--no-progress", "--format", "json"]

    def run(self, tap: str = "tap-csv", *targets: str) -> Result:
        """`dpone run` in-process (its stderr: the log and the one error line)."""
        out, err = io.StringIO(), io.StringIO()
        rc = cli.run(self.argv(tap, *(targets or ("target-jsonl",))), stdout=out, stderr=err)
        return Result(rc, out.getvalue(), err.getvalue())

    def subprocess(self, tap: str = "tap-csv", *targets: str, timeout: float = 60) -> Result:
        """The installed `dpone`, as a user runs it."""
        env = {**os.environ, "DPONE_LOG_LEVEL": "WARNING"}
        argv = [DPONE, *self.argv(tap, *(targets or ("target-jsonl",)))]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        return Result(proc.returncode, proc.stdout, proc.stderr)
