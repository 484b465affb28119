"""`dpone schema-plan` end to end: a project with tap-csv and target-duckdb, a first `dpone run`, then
a CSV that gained a column and whose `qty` values turned from integers into text. The plan shows the
add and the stop, as text or JSON, per stream, as a CI gate (`--check`), with the project's filters
applied, and changes nothing in the DuckDB file.

`dpone` runs in-process (`dpone_runner.cli.run`); the tap and the target run as subprocesses.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from dpone_runner import cli

EXIT_DATA = 65
EXIT_CONFIG = 78
ADD_EXTRA = "+ add column 'extra' VARCHAR (nullable)"
STOP_QTY = (
    "! STOP on column 'qty': is BIGINT in the table but the stream now sends VARCHAR, which it cannot hold "
    "(on_type_change: new_column or cast may apply)"
)


@dataclass
class Result:
    rc: int
    out: str
    err: str


def write_csv(path: Path, rows: list[list[Any]]) -> None:
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)


class Project:
    """meltano.yml with tap-csv (streams `rows` and `other`), target-duckdb and target-jsonl."""

    def __init__(self, root: Path, filters: str | None = None) -> None:
        self.root = root
        self.db = root / "out.duckdb"
        write_csv(root / "rows.csv", [["id", "name", "qty", "note"], [1, "a", 10, "n1"], [2, "b", 20, "n2"]])
        write_csv(root / "other.csv", [["code", "label"], ["x", "X"], ["y", "Y"]])
        files = [
            {"entity": "rows", "path": "rows.csv", "keys": ["id"]},
            {"entity": "other", "path": "other.csv", "keys": ["code"]},
        ]
        project = {
            "version": 1,
            "plugins": {
                "extractors": [
                    {"name": "tap-csv", "executable": "tap-csv", "config": {"base_path": str(root), "files": files}}
                ],
                "loaders": [
                    {"name": "target-duckdb", "executable": "target-duckdb", "config": {"filepath": str(self.db)}},
                    {"name": "target-jsonl", "executable": "target-jsonl", "config": {"destination_path": "out"}},
                ],
            },
        }
        (root / "meltano.yml").write_bytes(orjson.dumps(project, option=orjson.OPT_INDENT_2))
        if filters is not None:
            (root / "dpone.yml").write_text(filters)

    def dpone(self, *argv: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        rc = cli.run([*argv, "--project", str(self.root)], stdout=out, stderr=err)
        return Result(rc, out.getvalue(), err.getvalue())

    def run(self) -> None:
        backend = f"sqlite:///{self.root / 'state.db'}"
        res = self.dpone("run", "tap-csv", "target-duckdb", "--state-backend", backend, "--no-progress")
        assert res.rc == 0, res.err

    def plan(self, *extra: str) -> Result:
        return self.dpone("schema-plan", "tap-csv", "target-duckdb", *extra)

    def plans(self, *extra: str) -> dict[str, dict[str, Any]]:
        res = self.plan("--format", "json", *extra)
        assert res.rc == 0, res.err
        docs = orjson.loads(res.out)
        assert [d["target"] for d in docs] == ["target-duckdb"]
        return {p["stream"]: p for p in docs[0]["plans"]}

    def drift(self) -> None:
        """The source gained a column, and qty is no longer a number."""
        rows = [["id", "name", "qty", "note", "extra"], [1, "a", "many", "n1", "e1"], [3, "c", "n/a", "n3", "e3"]]
        write_csv(self.root / "rows.csv", rows)

    def snapshot(self) -> dict[str, Any]:
        """Every table's columns and rows in the DuckDB file."""
        with duckdb.connect(str(self.db), read_only=True) as conn:
            tables = sorted(r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall())
            return {
                t: (
                    conn.execute(
                        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                        "WHERE table_name = ? ORDER BY ordinal_position",
                        [t],
                    ).fetchall(),
                    conn.execute(
                        f'SELECT * EXCLUDE (_sdc_received_at, _sdc_batched_at) FROM "{t}" ORDER BY 1'
                    ).fetchall(),
                )
                for t in tables
            }


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """Loaded once, then drifted: planning changes nothing, so the tests can share it."""
    project = Project(tmp_path_factory.mktemp("schema-plan"))
    project.run()
    project.drift()
    return project


def test_text_plan_shows_the_added_column_and_the_stop(drifted: Project) -> None:
    res = drifted.plan()
    assert res.rc == 0, res.err
    assert res.out.startswith("target-duckdb:\n")
    assert "  stream rows -> table rows (policy widening, on_type_change fail)\n" in res.out
    assert f"    {ADD_EXTRA}\n" in res.out
    assert f"    {STOP_QTY}\n" in res.out
    assert "    => the load would STOP\n" in res.out
    assert "  stream other -> table other (policy widening, on_type_change fail)\n" in res.out
    assert "    no changes: the table matches the stream\n" in res.out


def test_json_plan_has_a_status_per_stream(drifted: Project) -> None:
    plans = drifted.plans()
    assert set(plans) == {"rows", "other"}
    assert plans["other"]["status"] == "unchanged" and plans["other"]["changes"] == []
    rows = plans["rows"]
    assert (rows["table"], rows["status"], rows["policy"], rows["on_type_change"]) == (
        "rows",
        "stop",
        "widening",
        "fail",
    )
    by_column = {c["column"]: c for c in rows["changes"]}
    assert set(by_column) == {"extra", "qty"}
    extra, qty = by_column["extra"], by_column["qty"]
    assert (extra["action"], extra["effect"], extra["wanted"], extra["description"]) == (
        "add_column",
        "ddl",
        "VARCHAR",
        ADD_EXTRA[2:],
    )
    assert (qty["action"], qty["effect"], qty["current"], qty["wanted"]) == ("stop", "stop", "BIGINT", "VARCHAR")
    assert rows["columns"]["extra"] == "VARCHAR" and rows["columns"]["qty"] == "BIGINT"


def test_stream_option_limits_the_plan_to_matching_streams(drifted: Project) -> None:
    assert set(drifted.plans("--stream", "rows")) == {"rows"}
    assert set(drifted.plans("--stream", "oth*")) == {"other"}
    assert set(drifted.plans("--stream", "rows", "--stream", "other")) == {"rows", "other"}
    text = drifted.plan("--stream", "other")
    assert text.rc == 0 and "stream rows" not in text.out and "stream other" in text.out
    none = drifted.plan("--stream", "nope*")
    assert none.rc == EXIT_CONFIG
    assert "tap-csv has no selected stream matching nope* to plan" in none.err


def test_check_exits_65_when_a_plan_stops_and_0_when_none_does(drifted: Project) -> None:
    stop = drifted.plan("--check")
    assert stop.rc == EXIT_DATA
    assert STOP_QTY in stop.out  # the plan is printed before the verdict
    assert stop.err.strip().splitlines()[-1] == (
        "dpone: data error: schema drift would stop the load of target-duckdb/rows"
    )
    fine = drifted.plan("--check", "--stream", "other")
    assert fine.rc == 0, fine.err
    assert drifted.plan("--check", "--format", "json").rc == EXIT_DATA


def test_planning_changes_nothing_in_the_duckdb_file(drifted: Project) -> None:
    before = drifted.snapshot()
    assert set(before) == {"rows", "other"}
    assert [c[0] for c in before["rows"][0]][:4] == ["id", "name", "qty", "note"]
    for extra in ((), ("--format", "json"), ("--check",), ("--stream", "rows")):
        drifted.plan(*extra)
    assert drifted.snapshot() == before


def test_a_target_without_tables_cannot_plan(drifted: Project) -> None:
    res = drifted.dpone("schema-plan", "tap-csv", "target-jsonl")
    assert res.rc == EXIT_CONFIG
    assert "target-jsonl --schema-plan failed (exit 78)" in res.err
    assert "--schema-plan is for database targets" in res.err


FILTERS = """\
filters:
  - {type: rename, stream: other, to: labels}
  - {type: drop, stream: rows, properties: [note]}
"""


def test_project_filters_rename_and_drop_are_reflected_in_the_plan(tmp_path: Path) -> None:
    project = Project(tmp_path, FILTERS)
    project.run()
    snapshot = project.snapshot()
    assert set(snapshot) == {"rows", "labels"}
    assert "note" not in [c[0] for c in snapshot["rows"][0]]

    # The run and the plan see the same filtered streams: nothing to change.
    plans = project.plans()
    assert {s: p["status"] for s, p in plans.items()} == {"rows": "unchanged", "labels": "unchanged"}
    assert plans["labels"]["table"] == "labels"
    assert "note" not in plans["rows"]["columns"]

    project.drift()
    plans = project.plans()
    assert plans["rows"]["status"] == "stop"
    assert {c["column"] for c in plans["rows"]["changes"]} == {"extra", "qty"}  # never 'note'
    assert plans["labels"]["status"] == "unchanged"
    assert project.snapshot() == snapshot


def test_plan_before_the_first_run_would_create_the_filtered_tables(tmp_path: Path) -> None:
    project = Project(tmp_path, FILTERS)
    plans = project.plans()
    assert set(plans) == {"rows", "labels"}
    for plan in plans.values():
        assert plan["status"] == "change"
        assert [c["action"] for c in plan["changes"]] == ["create_table"]
    assert list(plans["rows"]["columns"])[:3] == ["id", "name", "qty"]
    assert "note" not in plans["rows"]["columns"]
    assert list(plans["labels"]["columns"])[:2] == ["code", "label"]
    if project.db.exists():
        assert project.snapshot() == {}  # no table; the file itself: see the next test


def test_plan_before_the_first_run_does_not_create_the_duckdb_file(tmp_path: Path) -> None:
    project = Project(tmp_path)
    assert project.plan().rc == 0
    assert not project.db.exists()
