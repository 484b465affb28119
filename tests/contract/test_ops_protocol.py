"""The `--ops` protocol between the runner and a connector (dpone_protocol/ops.py): every dpone tap
and target answers it through the framework; a foreign connector's refusal is an answer too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml

from dpone_protocol.config import Redactor
from dpone_protocol.errors import ErrorKind
from dpone_runner.ops_client import OpsFailed, ask
from dpone_runner.project import EXTRACTORS, LOADERS, load_project

BIN = Path(sys.executable).parent


def _write(path: Path, data: object) -> str:
    path.write_bytes(orjson.dumps(data))
    return str(path)


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    (tmp_path / "rows.csv").write_text("id,name\n1,a\n2,b\n")
    foreign = tmp_path / "target-foreign"
    script = 'import argparse\np = argparse.ArgumentParser()\np.add_argument("--config")\np.parse_args()\n'
    foreign.write_text(f"#!{sys.executable}\n{script}")
    foreign.chmod(0o755)
    meltano = {
        "plugins": {
            "extractors": [
                {
                    "name": "tap-csv",
                    "config": {"base_path": str(tmp_path), "files": [{"entity": "rows", "path": "rows.csv"}]},
                }
            ],
            "loaders": [
                {"name": "target-jsonl", "config": {"destination_path": str(tmp_path / "out")}},
                {"name": "target-foreign", "executable": str(foreign)},
            ],
        }
    }
    (tmp_path / "meltano.yml").write_text(yaml.safe_dump(meltano))
    return tmp_path


@pytest.mark.parametrize("command", ["tap-csv", "target-jsonl"])
def test_connectors_answer_doctor_as_one_json_line(project_dir: Path, command: str) -> None:
    config = {"base_path": str(project_dir), "files": [{"entity": "rows", "path": "rows.csv"}]}
    if command.startswith("target"):
        config = {"destination_path": str(project_dir / "out")}
    argv = [str(BIN / command), "--config", _write(project_dir / "c.json", config)]
    argv += ["--ops", _write(project_dir / "r.json", {"op": "doctor"})]
    proc = subprocess.run(argv, capture_output=True, check=True)
    answer = orjson.loads(proc.stdout)
    assert answer["op"] == "doctor" and answer["supported"] is True
    assert answer["checks"] and all(set(c) == {"name", "status", "detail", "hint"} for c in answer["checks"])


@pytest.mark.parametrize("request_body", [{"op": "dance"}, ["doctor"], {}])
def test_a_malformed_request_is_a_config_error(project_dir: Path, request_body: object) -> None:
    argv = [str(BIN / "target-jsonl"), "--config", _write(project_dir / "c.json", {"destination_path": "x"})]
    argv += ["--ops", _write(project_dir / "r.json", request_body)]
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 78
    assert "--ops request" in proc.stderr and "Traceback" not in proc.stderr


def test_operations_a_connector_lacks_answer_unsupported(project_dir: Path) -> None:
    project = load_project(project_dir)
    answer = ask(project, project.plugin("target-jsonl", LOADERS), {"op": "replay_plan", "to": "0"}, Redactor())
    assert answer == {"op": "replay_plan", "supported": False, "reason": "target-jsonl has no position to rewind"}
    answer = ask(project, project.plugin("tap-csv", EXTRACTORS), {"op": "estimate"}, Redactor())
    assert answer["supported"] is False


def test_a_foreign_connector_without_ops_is_unsupported_not_failed(project_dir: Path) -> None:
    project = load_project(project_dir)
    answer = ask(project, project.plugin("target-foreign", LOADERS), {"op": "doctor"}, Redactor())
    assert answer["supported"] is False
    assert "not a dpone connector" in answer["reason"]


def test_a_failing_connector_raises_its_error_kind(project_dir: Path) -> None:
    project = load_project(project_dir)
    plugin = project.plugin("tap-csv", EXTRACTORS)
    plugin.config["files"] = "not a list"
    with pytest.raises(OpsFailed) as failed:
        ask(project, plugin, {"op": "doctor"}, Redactor())
    assert failed.value.kind is ErrorKind.CONFIG and failed.value.code == 78
    assert "files" in str(failed.value)
