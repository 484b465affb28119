"""`dpone doctor` on projects that need no server: tap-csv into target-jsonl and target-duckdb,
missing executables, a connector that is not dpone's, bad settings, the runner's own disk and clock
checks, and which pipelines it looks at. Runs are in-process (`dpone_runner.cli.run`); the
connectors are real subprocesses, as in a run."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import orjson
import pytest

from dpone_protocol.disk_space import FAIL_FREE_BYTES, WARN_FREE_BYTES, free_space_check
from dpone_runner import cli
from dpone_runner.doctor.runner_checks import clock_check

EXIT_CONFIG = 78
GIB = 1 << 30
# A target that is not dpone's: it knows --config and nothing else, as most Singer targets.
FOREIGN_TARGET = """\
import argparse, sys
parser = argparse.ArgumentParser()
parser.add_argument("--config")
parser.parse_args()
for line in sys.stdin:
    pass
"""
# tap-csv, with each invocation's arguments noted: how often the doctor asks a connector.
LOGGING_TAP = '#!/bin/sh\necho "$@" >> "{log}"\nexec "{tap}" "$@"\n'


@dataclass
class Answer:
    rc: int
    out: str
    err: str

    @property
    def groups(self) -> list[dict[str, Any]]:
        found = orjson.loads(self.out)
        assert isinstance(found, list)
        return found

    def checks(self, connector: str, pipeline: str | None = "main") -> dict[str, dict[str, str]]:
        group = next(g for g in self.groups if g["connector"] == connector and g["pipeline"] == pipeline)
        return {c["name"]: c for c in group["checks"]}

    def statuses(self) -> set[str]:
        return {c["status"] for g in self.groups for c in g["checks"]}


@dataclass
class Project:
    root: Path
    extractors: list[dict[str, Any]] = field(default_factory=list)
    loaders: list[dict[str, Any]] = field(default_factory=list)
    pipelines: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        (self.root / "rows.csv").write_text("id,name\n1,a\n2,b\n")
        files = [{"entity": "rows", "path": "rows.csv", "keys": ["id"]}]
        self.extractors = [{"name": "tap-csv", "config": {"base_path": str(self.root), "files": files}}]
        self.loaders = [
            {"name": "target-jsonl", "config": {"destination_path": str(self.root / "jsonl")}},
            {"name": "target-duckdb", "config": {"filepath": str(self.root / "out.duckdb")}},
        ]
        self.pipelines = {"main": {"tap": "tap-csv", "targets": ["target-jsonl", "target-duckdb"]}}

    def script(self, name: str, text: str) -> str:
        path = self.root / name
        path.write_text(text)
        path.chmod(0o755)
        return str(path)

    def save(self) -> None:
        plugins = {"extractors": self.extractors, "loaders": self.loaders}
        (self.root / "meltano.yml").write_bytes(orjson.dumps({"plugins": plugins}))
        dpone_yml = self.root / "dpone.yml"
        if self.pipelines is None:
            dpone_yml.unlink(missing_ok=True)
        else:
            dpone_yml.write_bytes(orjson.dumps({"pipelines": self.pipelines}))

    def doctor(self, *args: str, fmt: str = "json") -> Answer:
        self.save()
        out, err = io.StringIO(), io.StringIO()
        rc = cli.run(["doctor", "--project", str(self.root), "--format", fmt, *args], stdout=out, stderr=err)
        return Answer(rc, out.getvalue(), err.getvalue())


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


class TestHealthy:
    def test_csv_into_jsonl_and_duckdb(self, project: Project) -> None:
        answer = project.doctor()
        assert answer.rc == 0, answer.out + answer.err
        assert answer.statuses() == {"ok"}
        assert [(g["pipeline"], g["connector"]) for g in answer.groups] == [
            (None, "dpone"),
            ("main", "dpone"),
            ("main", "tap-csv"),
            ("main", "target-jsonl"),
            ("main", "target-duckdb"),
        ]
        assert list(answer.checks("dpone", None)) == ["clock", "free disk (.dpone/)", "state store"]
        assert list(answer.checks("dpone")) == ["state", "lock"]
        assert list(answer.checks("tap-csv")) == ["executable", "discover", "connect"]
        assert answer.checks("tap-csv")["discover"]["detail"] == "1 of 1 stream(s) selected: rows"
        assert list(answer.checks("target-duckdb")) == [
            "executable",
            "driver duckdb",
            "database folder",
            "database file",
            "free disk",
            "keys for upsert",
        ]
        # Nothing was created: the database file is only looked at.
        assert not (project.root / "out.duckdb").exists()

    def test_text(self, project: Project) -> None:
        answer = project.doctor(fmt="text")
        assert answer.rc == 0
        lines = answer.out.splitlines()
        assert lines[:2] == ["project", "  dpone"]
        assert lines[2].split()[:2] == ["ok", "clock"]
        assert "pipeline main" in lines
        assert "  target-duckdb" in lines
        shown = [line for line in lines if line.startswith("    ok  ")]
        assert (
            lines[-1] == f"{len(shown)} checks: {len(shown)} ok, 0 warning(s), 0 failed, 0 skipped; nothing would fail"
        )

    def test_a_pipeline_named_tap_to_target(self, project: Project) -> None:
        project.pipelines = None
        answer = project.doctor("tap-csv-to-target-duckdb")
        assert answer.rc == 0, answer.err
        assert {g["pipeline"] for g in answer.groups} == {None, "tap-csv-to-target-duckdb"}

    def test_a_tap_in_two_pipelines_is_asked_once(self, project: Project) -> None:
        log = project.root / "calls.log"
        tap = project.script("tap-logged", LOGGING_TAP.format(log=log, tap=Path(sys.executable).parent / "tap-csv"))
        project.extractors[0]["executable"] = tap
        project.pipelines = {
            "a": {"tap": "tap-csv", "targets": ["target-jsonl"]},
            "b": {"tap": "tap-csv", "targets": ["target-duckdb"]},
        }
        answer = project.doctor()
        assert answer.rc == 0, answer.out
        calls = log.read_text().splitlines()
        assert [c.split()[-1] for c in calls if "--discover" in c] == ["--discover"]
        assert len([c for c in calls if "--ops" in c]) == 1
        assert answer.checks("tap-csv", "a") == answer.checks("tap-csv", "b")


class TestConnectors:
    def test_a_missing_executable(self, project: Project) -> None:
        project.extractors[0]["executable"] = "tap-nowhere-xyz"
        project.loaders[1]["executable"] = "bin/target-nowhere"
        answer = project.doctor()
        assert answer.rc == EXIT_CONFIG
        tap = answer.checks("tap-csv")
        assert list(tap) == ["executable"]
        assert tap["executable"]["status"] == "fail"
        assert "'tap-nowhere-xyz' not found" in tap["executable"]["detail"]
        assert "meltano install" in tap["executable"]["hint"]
        assert answer.checks("target-duckdb")["executable"]["status"] == "fail"
        # The other target is still checked, and the key check still knows nothing of the tap.
        assert answer.checks("target-jsonl")["executable"]["status"] == "ok"

    def test_a_connector_that_is_not_dpones_is_skipped(self, project: Project) -> None:
        script = project.script("foreign_target.py", FOREIGN_TARGET)
        runner = project.script("target-foreign", f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
        project.loaders.append({"name": "target-foreign", "executable": runner})
        project.pipelines = {"main": {"tap": "tap-csv", "targets": ["target-foreign"]}}
        answer = project.doctor()
        assert answer.rc == 0, answer.out
        checks = answer.checks("target-foreign")
        assert checks["executable"]["status"] == "ok"
        assert checks["doctor"] == {
            "name": "doctor",
            "status": "skip",
            "detail": "target-foreign is not a dpone connector (it has no --ops)",
            "hint": "",
        }
        assert "keys for upsert" not in checks  # its load method is unknown: nothing to say

    def test_an_invalid_setting(self, project: Project) -> None:
        project.loaders[1]["config"]["load_method"] = "sideways"
        answer = project.doctor()
        assert answer.rc == EXIT_CONFIG
        check = answer.checks("target-duckdb")["doctor"]
        assert check["status"] == "fail"
        assert "load_method" in check["detail"] and "sideways" in check["detail"]
        assert check["hint"].startswith("fix the setting the message names")

    def test_a_tap_whose_discovery_fails(self, project: Project) -> None:
        project.extractors[0]["config"]["files"] = [{"entity": "gone", "path": "gone-*.csv"}]
        answer = project.doctor()
        assert answer.rc == EXIT_CONFIG
        checks = answer.checks("tap-csv")
        assert checks["discover"]["status"] == "fail"
        assert "gone-*.csv" in checks["discover"]["detail"]
        assert checks["connect"]["status"] == "fail"  # the tap's own checks ran, without a catalog
        assert answer.checks("target-duckdb")["keys for upsert"]["status"] == "skip"

    def test_an_unknown_plugin(self, project: Project) -> None:
        project.pipelines = {"main": {"tap": "tap-csv", "targets": ["target-nowhere"]}}
        answer = project.doctor()
        assert answer.rc == EXIT_CONFIG
        check = answer.checks("target-nowhere")["plugin"]
        assert check["status"] == "fail"
        assert "unknown loader (target) 'target-nowhere'" in check["detail"]

    def test_upsert_by_default_on_a_stream_without_key_warns(self, project: Project) -> None:
        project.extractors[0]["config"]["files"][0].pop("keys")
        answer = project.doctor()
        assert answer.rc == 0
        check = answer.checks("target-duckdb")["keys for upsert"]
        assert check["status"] == "warn"
        assert "load_method is upsert (the target's default), but rows has no key properties" in check["detail"]
        assert "keys for upsert" not in answer.checks("target-jsonl")  # it only appends or overwrites

    def test_duckdb_folder_that_is_a_file(self, project: Project) -> None:
        (project.root / "plain").write_text("not a folder")
        project.loaders[1]["config"]["filepath"] = str(project.root / "plain" / "db.duckdb")
        answer = project.doctor()
        assert answer.rc == EXIT_CONFIG
        check = answer.checks("target-duckdb")["database folder"]
        assert (check["status"], check["detail"]) == ("fail", f"{project.root / 'plain'} is not a folder")

    def test_duckdb_file_held_by_another_process(self, project: Project) -> None:
        path = project.root / "out.duckdb"
        with duckdb.connect(str(path)) as holder:
            holder.execute("CREATE TABLE t (id INTEGER)")
            answer = project.doctor()
        assert answer.rc == EXIT_CONFIG
        check = answer.checks("target-duckdb")["database file"]
        assert check["status"] == "fail"
        assert "locked by another process" in check["detail"]
        assert project.doctor().checks("target-duckdb")["database file"]["detail"] == f"{path} opens"


class TestPipelines:
    def test_none_declared(self, project: Project) -> None:
        project.pipelines = None
        answer = project.doctor()
        assert answer.rc == EXIT_CONFIG
        assert answer.out == ""
        assert "no pipeline is declared in" in answer.err
        assert "declare one under `pipelines:`" in answer.err
        assert "dpone doctor tap-csv-to-target-duckdb" in answer.err

    def test_an_unknown_one(self, project: Project) -> None:
        answer = project.doctor("nope")
        assert answer.rc == EXIT_CONFIG
        assert "unknown pipeline 'nope'" in answer.err


class Disk(NamedTuple):
    total: int
    used: int
    free: int


@pytest.fixture
def free(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Free bytes every in-process disk_usage reports (connectors are subprocesses: untouched)."""
    amount = [10 * GIB]
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Disk(100 * GIB, 0, amount[0]))
    yield amount


class TestRunnerChecks:
    @pytest.mark.parametrize(
        ("free_bytes", "status"),
        [
            (FAIL_FREE_BYTES - 1, "fail"),
            (FAIL_FREE_BYTES, "warn"),
            (WARN_FREE_BYTES - 1, "warn"),
            (WARN_FREE_BYTES, "ok"),
        ],
    )
    def test_free_disk_thresholds(self, free_bytes: int, status: str, free: list[int], tmp_path: Path) -> None:
        free[0] = free_bytes
        check = free_space_check("free disk", tmp_path / "not" / "yet")
        assert check.status == status
        assert f"free at {tmp_path}" in check.detail
        assert check.hint == ("" if status == "ok" else "free space there, or point the setting at a larger disk")

    @pytest.mark.parametrize(("free_bytes", "status", "rc"), [(50 << 20, "fail", EXIT_CONFIG), (500 << 20, "warn", 0)])
    def test_run_files_and_batch_folder(
        self, free_bytes: int, status: str, rc: int, free: list[int], project: Project
    ) -> None:
        free[0] = free_bytes
        project.extractors[0]["config"]["batch_config"] = {
            "encoding": {"format": "jsonl"},
            "storage": {"root": "batches"},
        }
        answer = project.doctor()
        assert answer.rc == rc, answer.out
        assert answer.checks("dpone", None)["free disk (.dpone/)"]["status"] == status
        tap = answer.checks("tap-csv")
        assert tap["free disk (BATCH)"]["status"] == status
        assert (
            tap["BATCH folder"]["detail"]
            == f"{project.root / 'batches'} writable (it will be created under {project.root})"
        )

    def test_a_batch_root_in_object_storage_is_not_looked_at(self, project: Project) -> None:
        project.extractors[0]["config"]["batch_config"] = {"storage": {"root": "s3://bucket/dpone"}}
        assert "BATCH folder" not in project.doctor().checks("tap-csv")

    def test_the_clock_names_the_time_zone(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TZ", "Europe/Berlin")
        time.tzset()
        try:
            check = clock_check(dt.datetime(2024, 1, 15, 12, 0, tzinfo=dt.UTC))
        finally:
            monkeypatch.undo()
            time.tzset()
        assert (check.status, check.detail) == (
            "ok",
            "2024-01-15 12:00:00 UTC; time zone Europe/Berlin (CET, UTC+01:00)",
        )

    def test_an_unknown_time_zone_warns(self) -> None:
        check = clock_check(environ={"TZ": "Mars/Olympus_Mons"})
        assert check.status == "warn"
        assert "'Mars/Olympus_Mons' is no known time zone" in check.detail
