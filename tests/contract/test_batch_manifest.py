"""BATCH files with their manifest: written by a tap under <root>/<pipeline>/<run id>/, checked by a
target before any of their rows load, and deleted (cleanup: delete_on_success) only once committed.

Local files here; the same paths against S3, GCS and Azure servers are in
tests/service/test_batch_object_storage.py.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from dpone.taps.csv.tap import CsvTap
from dpone.targets.duckdb.target import DuckDBTarget
from dpone_protocol import batch_manifest
from dpone_protocol.object_store import file_digests, local_path
from tests.conftest import lines, state

ROWS = 7


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    body = "".join(f"{i},name {i},{i}.25\n" for i in range(1, ROWS + 1))
    (d / "people.csv").write_text("id,name,score\n" + body)
    return d


def tap_config(csv_dir: Path, root: str, **storage: Any) -> dict[str, Any]:
    return {
        "base_path": str(csv_dir),
        "files": [{"entity": "people", "path": "people.csv", "keys": ["id"]}],
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": root, **storage},
            "batch_size": 3,
        },
    }


def batches(run_tap: Any, csv_dir: Path, root: str, monkeypatch: pytest.MonkeyPatch, **storage: Any) -> list[Any]:
    monkeypatch.setenv("DPONE_PIPELINE", "csv-to-duckdb")
    monkeypatch.setenv("DPONE_RUN_ID", "run-1")
    result = run_tap(CsvTap, tap_config(csv_dir, root, **storage))
    assert result.rc == 0, result.stderr
    return [m for m in result.messages if m["type"] in ("SCHEMA", "BATCH", "STATE")]


def load(run_target: Any, db: Path, messages: list[Any]) -> Any:
    return run_target(DuckDBTarget, {"filepath": str(db)}, lines(*messages))


def table(db: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db)) as con:
        return con.execute("SELECT id, name, score FROM people ORDER BY id").fetchall()


def files_of(messages: list[Any]) -> list[Path]:
    return [local_path(f["uri"]) for m in messages if m["type"] == "BATCH" for f in m["dpone_manifest"]["files"]]


def test_tap_writes_files_and_manifest_under_pipeline_and_run(run_tap, csv_dir, tmp_path, monkeypatch):
    messages = batches(run_tap, csv_dir, (tmp_path / "b").as_uri(), monkeypatch)
    sent = [m for m in messages if m["type"] == "BATCH"]
    assert len(sent) == 3  # 3 + 3 + 1 rows
    for batch in sent:
        manifest = batch["dpone_manifest"]
        assert batch["manifest"] == [f["uri"] for f in manifest["files"]]  # what SDK targets read
        assert manifest["format"] == "jsonl" and manifest["compression"] == "gzip"
        assert manifest["cleanup"] == "retain"
        for entry in manifest["files"]:
            path = local_path(entry["uri"])
            assert path.parent == (tmp_path / "b" / "csv-to-duckdb" / "run-1").resolve()
            size, sha, md5 = file_digests(path)
            assert (entry["size"], entry["sha256"], entry["md5"]) == (size, sha, md5)
            with gzip.open(path) as fh:
                assert len(fh.read().splitlines()) == entry["rows"]
        # The manifest is also an object beside its files.
        assert orjson.loads(local_path(manifest["uri"]).read_bytes()) == manifest
    assert sum(b["dpone_manifest"]["rows"] for b in sent) == ROWS


def test_target_loads_checked_files(run_tap, run_target, csv_dir, tmp_path, monkeypatch):
    messages = batches(run_tap, csv_dir, (tmp_path / "b").as_uri(), monkeypatch)
    result = load(run_target, tmp_path / "t.duckdb", messages)
    assert result.rc == 0, result.stderr
    assert [r[0] for r in table(tmp_path / "t.duckdb")] == list(range(1, ROWS + 1))
    assert all(f.exists() for f in files_of(messages))  # retain: the default


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-12] ^= 0x01  # inside the gzip trailer's CRC: same size, other bytes
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (_tamper, "does not match its manifest's SHA-256"),
        (lambda p: p.write_bytes(p.read_bytes() + b"\n"), "its manifest says"),
        (lambda p: p.unlink(), "file not found"),
    ],
    ids=["checksum", "size", "missing"],
)
def test_a_damaged_batch_loads_nothing_and_echoes_only_committed_state(
    run_tap, run_target, csv_dir, tmp_path, monkeypatch, damage, error
):
    messages = batches(run_tap, csv_dir, (tmp_path / "b").as_uri(), monkeypatch)
    damage(files_of(messages)[1])  # the second batch
    db = tmp_path / "t.duckdb"
    result = load(run_target, db, messages)
    assert result.rc == 65, result.stderr
    assert error in result.stderr
    assert [r[0] for r in table(db)] == [1, 2, 3]  # the first batch only, none of the damaged one
    states = result.states
    assert states and states[-1] == next(m for m in messages if m["type"] == "STATE")["value"]


def test_manifest_row_count_is_checked(run_tap, run_target, csv_dir, tmp_path, monkeypatch):
    messages = batches(run_tap, csv_dir, (tmp_path / "b").as_uri(), monkeypatch)
    first = next(m for m in messages if m["type"] == "BATCH")
    first["dpone_manifest"]["files"][0]["rows"] += 1
    result = load(run_target, tmp_path / "t.duckdb", messages)
    assert result.rc == 65
    assert "holds 3 rows, its manifest says 4" in result.stderr
    assert result.states == []


def test_delete_on_success_deletes_only_committed_batches(run_tap, run_target, csv_dir, tmp_path, monkeypatch):
    messages = batches(run_tap, csv_dir, (tmp_path / "b").as_uri(), monkeypatch, cleanup="delete_on_success")
    files = files_of(messages)
    manifests = [local_path(m["dpone_manifest"]["uri"]) for m in messages if m["type"] == "BATCH"]
    _tamper(files[2])  # the last batch fails its check
    result = load(run_target, tmp_path / "t.duckdb", messages)
    assert result.rc == 65
    assert [f.exists() for f in files] == [False, False, True]
    assert [m.exists() for m in manifests] == [False, False, True]


def test_delete_on_success_after_a_whole_run(run_tap, run_target, csv_dir, tmp_path, monkeypatch):
    messages = batches(run_tap, csv_dir, (tmp_path / "b").as_uri(), monkeypatch, cleanup="delete_on_success")
    result = load(run_target, tmp_path / "t.duckdb", messages)
    assert result.rc == 0, result.stderr
    assert not any(f.exists() for f in files_of(messages))
    assert not list((tmp_path / "b").rglob("*.*"))  # the manifests too


def test_crash_after_the_load_before_cleanup_loses_nothing(run_tap, run_target, csv_dir, tmp_path, monkeypatch):
    """The target dies between a batch's commit and its files' deletion: the rows are in, the files
    stay, and the next run (the tap re-sends from the last echoed state) loads them again, idempotently."""
    messages = batches(run_tap, csv_dir, (tmp_path / "b").as_uri(), monkeypatch, cleanup="delete_on_success")
    db = tmp_path / "t.duckdb"

    def die(*args: Any) -> None:
        raise SystemExit(137)

    with monkeypatch.context() as patched:
        patched.setattr(batch_manifest, "delete_files", die)  # the first deletion after a commit
        with pytest.raises(SystemExit):
            load(run_target, db, messages)
    assert [r[0] for r in table(db)] == [1, 2, 3]  # the first batch committed before the crash
    assert all(f.exists() for f in files_of(messages))
    result = load(run_target, db, messages)  # at-least-once: the same batches again
    assert result.rc == 0, result.stderr
    assert [r[0] for r in table(db)] == list(range(1, ROWS + 1))  # no duplicate
    assert not any(f.exists() for f in files_of(messages))


def test_sdk_batch_without_manifest_still_loads(run_target, tmp_path):
    path = tmp_path / "plain.jsonl"
    path.write_bytes(b'{"id": 1, "name": "a", "score": 1}\n{"id": 2, "name": "b", "score": 2}\n')
    schema = {
        "type": "SCHEMA",
        "stream": "people",
        "key_properties": ["id"],
        "schema": {"properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "score": {"type": "number"}}},
    }
    batch = {
        "type": "BATCH",
        "stream": "people",
        "encoding": {"format": "jsonl", "compression": None},
        "manifest": [path.as_uri()],
    }
    result = load(run_target, tmp_path / "t.duckdb", [schema, batch, state({"done": 1})])
    assert result.rc == 0, result.stderr
    assert [r[0] for r in table(tmp_path / "t.duckdb")] == [1, 2]
    assert result.states == [{"done": 1}]


def test_bad_cleanup_policy_is_a_config_error_before_any_output(run_tap, csv_dir, tmp_path):
    result = run_tap(CsvTap, tap_config(csv_dir, (tmp_path / "b").as_uri(), cleanup="sometimes"))
    assert result.rc == 78
    assert "cleanup must be one of retain, delete_on_success" in result.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    ("batch_config", "error"),
    [
        ({"storage": {"root": "s3://"}}, "no bucket"),
        ({"storage": {"root": "gs:///x"}}, "no bucket"),
        ({"storage": {"root": "ftp://host/x"}}, "unsupported URL scheme 'ftp'"),
        ({"storage": {"root": "/tmp/x", "spool_dir": "/proc/forbidden"}}, "spool_dir: cannot write files"),
        ({"storage": {"root": "/tmp/x"}, "batch_size": 0}, "batch_size must be a positive integer"),
        ({"storage": {"root": "/tmp/x"}, "batch_size": -5}, "batch_size must be a positive integer"),
        ({"storage": {"root": "/tmp/x"}, "batch_size": 1.5}, "batch_size must be a positive integer"),
        ({"storage": {"root": "/tmp/x"}, "batch_size": "abc"}, "batch_size must be a positive integer"),
    ],
)
def test_bad_batch_config_stops_before_any_output(run_tap, csv_dir, batch_config, error):
    config = {**tap_config(csv_dir, "/tmp/x"), "batch_config": batch_config}
    result = run_tap(CsvTap, config)
    assert result.rc == 78, result.stderr
    assert error in result.stderr
    assert not result.of_type("SCHEMA")


def test_target_spool_dir_is_made_or_refused(run_tap, run_target, csv_dir, tmp_path, monkeypatch):
    messages = batches(run_tap, csv_dir, (tmp_path / "b").as_uri(), monkeypatch)
    db = tmp_path / "t.duckdb"
    config = {"filepath": str(db), "batch_spool_dir": str(tmp_path / "new" / "spool")}
    assert run_target(DuckDBTarget, config, lines(*messages)).rc == 0
    config["batch_spool_dir"] = "/proc/forbidden"
    result = run_target(DuckDBTarget, config, lines(*messages))
    assert result.rc == 78
    assert "batch_spool_dir: cannot write files in /proc/forbidden" in result.stderr
