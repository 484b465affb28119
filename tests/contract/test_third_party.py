"""Our targets read third-party taps; our taps feed a third-party target. Each tool in its own venv.

- tap-jsonl (a Meltano Singer SDK tap from PyPI, reading local files) and a singer-python tap
  (tests/tools/singer_python_tap.py) into target-jsonl and target-duckdb;
- tap-csv into meltanolabs-target-csv (an SDK target that validates every record against our SCHEMA).

target-postgres and tap-postgres: tests/service/test_third_party_postgres.py.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
import yaml

from dpone.targets.duckdb.target import DuckDBTarget
from dpone.targets.jsonl.target import JsonlTarget
from dpone_runner.cli import run as dpone
from tests.conftest import Run, write_config
from tests.tools import ROOT, tool_venv

pytestmark = pytest.mark.slow

SINGER_PYTHON_TAP = ROOT / "tests" / "tools" / "singer_python_tap.py"
PEOPLE = [
    {"id": 1, "name": "Ada", "score": 1.5, "tags": ["a"], "meta": {"k": 1}},
    {"id": 2, "name": None, "score": None, "tags": [], "meta": {}},
    {"id": 3, "name": "Grace", "score": 3.25, "tags": ["b", "c"], "meta": {"k": {"deep": True}}},
]


def run_tool(cmd: list[str], stdin: bytes | None = None, cwd: Path | None = None) -> bytes:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False, timeout=300, cwd=cwd)
    assert proc.returncode == 0, f"{cmd[0]} failed:\n{proc.stderr.decode(errors='replace')}"
    return proc.stdout


def messages(output: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in output.splitlines() if line.strip()]


# -- the third-party taps ---------------------------------------------------------------------------


def tap_jsonl(tmp: Path) -> bytes:
    """tap-jsonl's output for PEOPLE in a file of `tmp`."""
    (tmp / "people.jsonl").write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in PEOPLE))
    config = write_config(tmp, {"path": str(tmp / "*.jsonl"), "stream_name": "people", "primary_keys": ["id"]})
    return run_tool([str(tool_venv("tap-jsonl") / "bin" / "tap-jsonl"), "--config", config])


@pytest.fixture(scope="session")
def tap_jsonl_output(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return tap_jsonl(tmp_path_factory.mktemp("tap-jsonl"))


def singer_python_tap(tmp: Path, state: dict[str, Any] | None = None) -> bytes:
    cmd = [str(tool_venv("singer-python") / "bin" / "python"), str(SINGER_PYTHON_TAP)]
    cmd += ["--config", write_config(tmp, {"rows": 5}, "singer-python.json")]
    if state is not None:
        cmd += ["--state", write_config(tmp, state, "singer-python-state.json")]
    return run_tool(cmd)


TARGETS: dict[str, tuple[type[Any], Callable[[Path], dict[str, Any]]]] = {
    "target-jsonl": (JsonlTarget, lambda tmp: {"destination_path": str(tmp / "out")}),
    "target-duckdb": (DuckDBTarget, lambda tmp: {"filepath": str(tmp / "db.duckdb")}),
}


def loaded(target: str, tmp: Path, stream: str, order_by: str = "id") -> list[dict[str, Any]]:
    if target == "target-jsonl":
        return [orjson.loads(line) for line in (tmp / "out" / f"{stream}.jsonl").read_bytes().splitlines()]
    with duckdb.connect(str(tmp / "db.duckdb"), read_only=True) as conn:
        cursor = conn.execute(f'SELECT * FROM "{stream}" ORDER BY "{order_by}"')
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_an_sdk_tap_loads(run_target, tmp_path, tap_jsonl_output, target):
    cls, config = TARGETS[target]
    result: Run = run_target(cls, config(tmp_path), tap_jsonl_output)
    assert result.rc == 0, result.stderr
    tap_states = [m["value"] for m in messages(tap_jsonl_output) if m["type"] == "STATE"]
    assert result.states[-1] == tap_states[-1]
    rows = loaded(target, tmp_path, "people")
    assert [r["id"] for r in rows] == [1, 2, 3]
    assert [r["name"] for r in rows] == ["Ada", None, "Grace"]
    # target-duckdb: a plain number is a DOUBLE holding each value exactly (unbounded_numbers: double).
    assert [r["score"] for r in rows] == [1.5, None, 3.25]
    meta = [r["meta"] if target == "target-jsonl" else orjson.loads(r["meta"]) for r in rows]
    assert meta == [p["meta"] for p in PEOPLE]
    assert all(r["_sdc_filename"].endswith("people.jsonl") for r in rows)  # the SDK tap's own columns


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_a_singer_python_tap_loads_and_resumes_from_the_echoed_state(run_target, tmp_path, target):
    cls, config = TARGETS[target]
    first = run_target(cls, config(tmp_path), singer_python_tap(tmp_path))
    assert first.rc == 0, first.stderr
    echoed = first.states[-1]
    assert echoed == {"bookmarks": {"people": {"updated_at": "2024-01-01T05:00:00.000000Z"}}}
    people = loaded(target, tmp_path, "people")
    assert [p["id"] for p in people] == [1, 2, 3, 4, 5]
    address = people[0]["address"] if target == "target-jsonl" else orjson.loads(people[0]["address"])
    assert address == {"city": "city 1", "zip": "10001"}
    assert people[2]["name"] is None and people[3]["score"] is None

    # The state the target echoed, given back to the tap: nothing new for `people`.
    second = run_target(cls, config(tmp_path), singer_python_tap(tmp_path, echoed))
    assert second.rc == 0, second.stderr
    assert second.states[-1] == echoed
    assert [p["id"] for p in loaded(target, tmp_path, "people")] == [1, 2, 3, 4, 5]
    assert len(loaded(target, tmp_path, "events", order_by="at")) == 2  # no key: appended


# -- our taps into a third-party target -------------------------------------------------------------

CSV_ROWS = [
    {"id": "1", "name": "Ada", "amount": "10.5", "active": "true", "updated_at": "2024-01-01T00:00:00+00:00"},
    {"id": "2", "name": "Grace, Hopper", "amount": "", "active": "false", "updated_at": "2024-01-02T00:00:00+00:00"},
    {"id": "3", "name": 'say "hi"', "amount": "7", "active": "true", "updated_at": "2024-01-03T00:00:00+00:00"},
]


def tap_csv_output(tmp: Path, **extra: Any) -> bytes:
    src = tmp / "src"
    src.mkdir(exist_ok=True)
    with (src / "people.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CSV_ROWS[0]))
        writer.writeheader()
        writer.writerows(CSV_ROWS)
    config = {
        "base_path": str(src),
        "files": [{"entity": "people", "path": "people.csv", "keys": ["id"], "replication_key": "updated_at"}],
        **extra,
    }
    tap = Path(sys.executable).parent / "tap-csv"
    return run_tool([str(tap), "--config", write_config(tmp, config, "tap-csv.json")])


def target_csv(tmp: Path, data: bytes) -> tuple[Path, bytes]:
    out = tmp / "csv-out"
    config = write_config(tmp, {"output_path": str(out), "validate_records": True}, "target-csv.json")
    stdout = run_tool([str(tool_venv("target-csv") / "bin" / "target-csv"), "--config", config], stdin=data)
    return out, stdout


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_tap_csv_loads_into_meltanolabs_target_csv(tmp_path):
    data = tap_csv_output(tmp_path)
    out, stdout = target_csv(tmp_path, data)
    rows = read_csv(out / "people.csv")
    assert [r["id"] for r in rows] == ["1", "2", "3"]
    assert [r["name"] for r in rows] == ["Ada", "Grace, Hopper", 'say "hi"']
    assert [r["updated_at"][:10] for r in rows] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert rows[1]["amount"] == ""  # an empty CSV cell is null, and null is an empty cell again
    # An SDK target echoes the state value it received from us.
    assert orjson.loads(stdout.splitlines()[-1])["bookmarks"]["people"]["replication_key"] == "updated_at"


def test_tap_csv_stream_maps_reach_a_third_party_target(tmp_path):
    maps = {"people": {"__alias__": "clients", "amount": None, "label": "name"}}
    data = tap_csv_output(tmp_path, stream_maps=maps)
    out, _ = target_csv(tmp_path, data)
    assert not (out / "people.csv").exists()
    rows = read_csv(out / "clients.csv")
    assert set(rows[0]) == {"id", "name", "active", "updated_at", "label"}
    assert [r["label"] for r in rows] == ["Ada", "Grace, Hopper", 'say "hi"']


def test_dpone_run_saves_the_state_a_third_party_target_echoes(tmp_path):
    """SDK targets print the bare state value (as ours do): the runner takes it as the echo."""
    tap_csv_output(tmp_path)  # writes src/people.csv
    project = tmp_path / "project"
    project.mkdir()
    files = [{"entity": "people", "path": "people.csv", "keys": ["id"], "replication_key": "updated_at"}]
    plugins = {
        "extractors": [
            {
                "name": "tap-csv",
                "executable": str(Path(sys.executable).parent / "tap-csv"),
                "capabilities": ["catalog", "discover", "state"],
                "config": {"base_path": str(tmp_path / "src"), "files": files},
            }
        ],
        "loaders": [
            {
                "name": "target-csv",
                "executable": str(tool_venv("target-csv") / "bin" / "target-csv"),
                "config": {"output_path": str(tmp_path / "csv-out")},
            }
        ],
    }
    (project / "meltano.yml").write_text(yaml.safe_dump({"plugins": plugins}))
    backend = ["--project", str(project), "--state-backend", f"sqlite:///{tmp_path / 'state.db'}"]
    out = io.StringIO()
    assert dpone(["run", "tap-csv", "target-csv", *backend], stdout=out) == 0, out.getvalue()
    saved = io.StringIO()
    assert dpone(["state", "get", "tap-csv-to-target-csv", *backend], stdout=saved) == 0
    bookmark = orjson.loads(saved.getvalue())["bookmarks"]["people"]
    assert bookmark["replication_key_value"].startswith("2024-01-03")
    assert [r["id"] for r in read_csv(tmp_path / "csv-out" / "people.csv")] == ["1", "2", "3"]
