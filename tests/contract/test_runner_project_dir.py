"""`--project DIR` from another directory: the state store, the connectors' working directory (so
relative paths in the project's configs) and project-relative executables are all DIR's."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import orjson
import pytest

from dpone_runner import cli

ROWS = 5


def make_project(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    with (root / "data" / "people.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "name"])
        writer.writerows([[n, f"p{n}"] for n in range(1, ROWS + 1)])
    (root / "bin").mkdir()
    wrapper = root / "bin" / "tap-local"
    wrapper.write_text(f'#!/bin/sh\nexec "{Path(sys.executable).parent / "tap-csv"}" "$@"\n')
    wrapper.chmod(0o755)
    people = {"entity": "people", "path": "people.csv", "keys": ["id"]}
    # Every path relative, as a project written to be moved around has them.
    tap = {"base_path": "data", "files": [people]}
    project = {
        "plugins": {
            "extractors": [
                {"name": "tap-csv", "executable": "tap-csv", "config": tap},
                {"name": "tap-local", "executable": "bin/tap-local", "capabilities": ["state"], "config": tap},
            ],
            "loaders": [
                {
                    "name": "target-jsonl",
                    "executable": "target-jsonl",
                    "config": {"destination_path": "out", "add_record_metadata": False},
                }
            ],
        }
    }
    (root / "meltano.yml").write_bytes(orjson.dumps(project))
    return root


def dpone(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = cli.run(list(argv), stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("DPONE_STATE_BACKEND", raising=False)
    return cwd


@pytest.mark.parametrize("tap", ["tap-csv", "tap-local"])
def test_run_and_state_from_another_directory_use_the_project(tmp_path: Path, elsewhere: Path, tap: str) -> None:
    root = make_project(tmp_path / "project")
    rc, _, err = dpone("run", tap, "target-jsonl", "--project", str(root), "--no-progress")
    assert rc == 0, err
    # The connectors ran in DIR: `base_path: data` and `destination_path: out` resolved there.
    lines = (root / "out" / "people.jsonl").read_bytes().splitlines()
    assert [orjson.loads(x)["id"] for x in lines] == list(range(1, ROWS + 1))
    assert (root / ".dpone" / "state.db").exists()
    pipeline = f"{tap}-to-target-jsonl"
    rc, out, err = dpone("state", "get", pipeline, "--project", str(root))
    assert rc == 0, err
    assert isinstance(orjson.loads(out), dict)
    rc, out, _ = dpone("state", "list", "--project", str(root))
    assert out.split("\t")[0] == pipeline
    assert list(elsewhere.iterdir()) == []  # nothing created in the current directory


def test_relative_state_backend_in_dpone_yml_is_the_projects(tmp_path: Path, elsewhere: Path) -> None:
    root = make_project(tmp_path / "project")
    (root / "dpone.yml").write_text("state_backend: sqlite:///state/pipelines.db\n")
    rc, _, err = dpone("run", "tap-csv", "target-jsonl", "--project", str(root), "--no-progress")
    assert rc == 0, err
    assert (root / "state" / "pipelines.db").exists()
    rc, _, err = dpone("state", "get", "tap-csv-to-target-jsonl", "--project", str(root))
    assert rc == 0, err
    assert list(elsewhere.iterdir()) == []


def test_state_backend_on_the_command_line_is_relative_to_the_current_directory(
    tmp_path: Path, elsewhere: Path
) -> None:
    root = make_project(tmp_path / "project")
    argv = ["--project", str(root), "--state-backend", "sqlite:///mine.db"]
    rc, _, err = dpone("run", "tap-csv", "target-jsonl", *argv, "--no-progress")
    assert rc == 0, err
    assert (elsewhere / "mine.db").exists()
    assert not (root / ".dpone" / "state.db").exists()
    rc, _, err = dpone("state", "get", "tap-csv-to-target-jsonl", *argv)
    assert rc == 0, err


def test_state_get_with_project_finds_no_state_in_an_empty_project_without_creating_files_here(
    tmp_path: Path, elsewhere: Path
) -> None:
    root = make_project(tmp_path / "project")
    rc, _, err = dpone("state", "get", "nothing", "--project", str(root))
    assert rc == 78
    assert "no saved state for pipeline 'nothing'" in err
    assert not (elsewhere / ".dpone").exists()
