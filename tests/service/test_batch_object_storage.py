"""BATCH files in object storage, against real local servers: S3 (moto), GCS (fake-gcs-server) and
Azure Blob (Azurite). A tap writes them under <root>/<pipeline>/<run id>/ with their manifest; a
target checks and loads them, and deletes them only after its commit.

fake-gcs-server has no XML API, through which obstore writes objects: against it the tap writes its
files locally and the test copies them into the bucket under the same names (the read, check and
delete paths are the product's own). test_gcs_upload_live covers the write path on Google Cloud
Storage when DPONE_TEST_GCS_BUCKET is set.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dpone.taps.csv.tap import CsvTap
from dpone.targets.duckdb.target import DuckDBTarget
from dpone_protocol import batch_manifest
from dpone_protocol.object_store import ObjectStores, local_path
from tests.conftest import lines
from tests.tools.object_stores import ObjectStoreServer, azure_server, gcs_server, s3_server

pytestmark = pytest.mark.service
ROWS = 7


@pytest.fixture(scope="module", params=["s3", "gs", "az"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStoreServer]:
    if request.param == "s3":
        with s3_server() as handle:
            yield handle
    elif request.param == "gs":
        with gcs_server(root=tmp_path_factory.mktemp("gcs")) as handle:
            yield handle
    else:
        with azure_server() as handle:
            yield handle


def options(server: ObjectStoreServer) -> dict[str, Any]:
    """The `options` setting a user would write for this server (obstore's keys)."""
    return {**server.config, "allow_http": True}


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    (d / "people.csv").write_text("id,name\n" + "".join(f"{i},name {i}\n" for i in range(1, ROWS + 1)))
    return d


@pytest.fixture
def run_id(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    run = f"{request.node.name.replace('[', '-').rstrip(']')}"
    monkeypatch.setenv("DPONE_PIPELINE", "people")
    monkeypatch.setenv("DPONE_RUN_ID", run)
    return run


def tap_batches(run_tap: Any, server: ObjectStoreServer, csv_dir: Path, tmp_path: Path, **storage: Any) -> list[Any]:
    """A tap's SCHEMA, BATCH and STATE messages with its files in the server's bucket."""
    root = server.url("dpone")
    if server.scheme == "gs":
        local = tmp_path / "gcs-staging"
        storage_config = {"root": local.as_uri(), **storage}
    else:
        storage_config = {"root": root, "options": options(server), **storage}
    config = {
        "base_path": str(csv_dir),
        "files": [{"entity": "people", "path": "people.csv", "keys": ["id"]}],
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": storage_config,
            "batch_size": 3,
        },
    }
    result = run_tap(CsvTap, config)
    assert result.rc == 0, result.stderr
    messages = [m for m in result.messages if m["type"] in ("SCHEMA", "BATCH", "STATE")]
    if server.scheme == "gs":
        _copy_into_gcs(server, messages, local, root)
    return messages


def _copy_into_gcs(server: ObjectStoreServer, messages: list[Any], local: Path, root: str) -> None:
    prefix = local.as_uri()
    for message in messages:
        if message["type"] != "BATCH":
            continue
        manifest = message["dpone_manifest"]
        for entry in manifest["files"]:
            path = local_path(entry["uri"])
            entry["uri"] = root + entry["uri"].removeprefix(prefix)
            server.upload(entry["uri"].removeprefix(f"gs://{server.bucket}/"), path.read_bytes())
        manifest["uri"] = root + manifest["uri"].removeprefix(prefix)
        server.upload(
            manifest["uri"].removeprefix(f"gs://{server.bucket}/"),
            local_path(manifest["uri"].replace(root, prefix)).read_bytes(),
        )
        message["manifest"] = [f["uri"] for f in manifest["files"]]


def target_config(server: ObjectStoreServer, db: Path) -> dict[str, Any]:
    return {"filepath": str(db), "batch_storage_options": options(server)}


def table(db: Path) -> list[int]:
    with duckdb.connect(str(db)) as con:
        return [r[0] for r in con.execute("SELECT id FROM people ORDER BY id").fetchall()]


def objects(server: ObjectStoreServer, prefix: str) -> list[str]:
    return ObjectStores(options(server)).list(server.url(prefix))


def test_batches_travel_through_the_bucket(run_tap, run_target, server, csv_dir, tmp_path, run_id):
    messages = tap_batches(run_tap, server, csv_dir, tmp_path)
    uris = [f["uri"] for m in messages if m["type"] == "BATCH" for f in m["dpone_manifest"]["files"]]
    assert len(uris) == 3
    assert all(u.startswith(server.url(f"dpone/people/{run_id}/")) for u in uris)
    stored = objects(server, f"dpone/people/{run_id}/")
    assert set(uris) < set(stored)
    assert sum(u.endswith(".manifest.json") for u in stored) == 3
    db = tmp_path / "t.duckdb"
    result = run_target(DuckDBTarget, target_config(server, db), lines(*messages))
    assert result.rc == 0, result.stderr
    assert table(db) == list(range(1, ROWS + 1))
    assert set(objects(server, f"dpone/people/{run_id}/")) == set(stored)  # retain


def test_a_changed_object_is_refused_before_loading(run_tap, run_target, server, csv_dir, tmp_path, run_id):
    messages = tap_batches(run_tap, server, csv_dir, tmp_path)
    second = [m for m in messages if m["type"] == "BATCH"][1]["dpone_manifest"]["files"][0]["uri"]
    server.upload(second.removeprefix(f"{server.scheme}://{server.bucket}/"), b'{"id": 99, "name": "forged"}\n')
    db = tmp_path / "t.duckdb"
    result = run_target(DuckDBTarget, target_config(server, db), lines(*messages))
    assert result.rc == 65
    assert "its manifest says" in result.stderr or "SHA-256" in result.stderr
    assert table(db) == [1, 2, 3]


def test_a_missing_object_is_a_data_error(run_tap, run_target, server, csv_dir, tmp_path, run_id):
    messages = tap_batches(run_tap, server, csv_dir, tmp_path)
    first = next(m for m in messages if m["type"] == "BATCH")["dpone_manifest"]["files"][0]["uri"]
    ObjectStores(options(server)).delete(first)
    result = run_target(DuckDBTarget, target_config(server, tmp_path / "t.duckdb"), lines(*messages))
    assert result.rc == 65
    assert f"file not found: {first}" in result.stderr
    assert result.states == []


def test_delete_on_success_and_a_crash_before_cleanup(
    run_tap, run_target, server, csv_dir, tmp_path, run_id, monkeypatch
):
    messages = tap_batches(run_tap, server, csv_dir, tmp_path, cleanup="delete_on_success")
    db = tmp_path / "t.duckdb"

    def die(*args: Any) -> None:
        raise SystemExit(137)

    with monkeypatch.context() as patched:
        patched.setattr(batch_manifest, "delete_files", die)  # the first deletion after a commit
        with pytest.raises(SystemExit):
            run_target(DuckDBTarget, target_config(server, db), lines(*messages))
    assert table(db) == [1, 2, 3]
    assert len(objects(server, f"dpone/people/{run_id}/")) == 6  # 3 files + 3 manifests, all kept
    result = run_target(DuckDBTarget, target_config(server, db), lines(*messages))
    assert result.rc == 0, result.stderr
    assert table(db) == list(range(1, ROWS + 1))
    assert objects(server, f"dpone/people/{run_id}/") == []


def test_credentials_never_show(run_tap, run_target, server, csv_dir, tmp_path, run_id):
    if server.scheme != "az":
        pytest.skip("moto and fake-gcs-server take any credentials; Azurite checks them")
    bad = options(server)
    secret_key = "secret_access_key" if server.scheme == "s3" else "account_key"
    bad[secret_key] = "dG9wLXNlY3JldC12YWx1ZS0xMjM0NQ=="
    messages = tap_batches(run_tap, server, csv_dir, tmp_path)
    config = {"filepath": str(tmp_path / "t.duckdb"), "batch_storage_options": bad}
    result = run_target(DuckDBTarget, config, lines(*messages))
    assert result.rc in (65, 75, 78), result.stderr
    assert bad[secret_key] not in result.stderr


@pytest.mark.skipif(
    not os.environ.get("DPONE_TEST_GCS_BUCKET"), reason="needs DPONE_TEST_GCS_BUCKET (and GCS credentials)"
)
def test_gcs_upload_live(run_tap, run_target, csv_dir, tmp_path, run_id):
    root = f"gs://{os.environ['DPONE_TEST_GCS_BUCKET']}/dpone-test"
    config = {
        "base_path": str(csv_dir),
        "files": [{"entity": "people", "path": "people.csv", "keys": ["id"]}],
        "batch_config": {"storage": {"root": root, "cleanup": "delete_on_success"}, "batch_size": 3},
    }
    result = run_tap(CsvTap, config)
    assert result.rc == 0, result.stderr
    db = tmp_path / "t.duckdb"
    loaded = run_target(DuckDBTarget, {"filepath": str(db)}, lines(*result.messages))
    assert loaded.rc == 0, loaded.stderr
    assert table(db) == list(range(1, ROWS + 1))
    assert ObjectStores().list(f"{root}/people/{run_id}/") == []


def _project(tmp_path: Path, tap: dict[str, Any], loaders: list[dict[str, Any]]) -> list[str]:
    import orjson

    project = {
        "plugins": {"extractors": [{"name": "tap-csv", "executable": "tap-csv", "config": tap}], "loaders": loaders}
    }
    (tmp_path / "meltano.yml").write_bytes(orjson.dumps(project))
    return ["--project", str(tmp_path), "--format", "json", "--state-backend", f"sqlite:///{tmp_path / 'state.db'}"]


def test_dpone_run_into_two_targets_deletes_files_once_both_committed(csv_dir, tmp_path):
    """With several targets the runner deletes the files (delete_on_success), after every target
    committed them: one target deleting them would take them from the other."""
    import orjson

    from dpone_runner import cli

    with s3_server(bucket="fanout") as s3:
        tap = {
            "base_path": str(csv_dir),
            "files": [{"entity": "people", "path": "people.csv", "keys": ["id"]}],
            "batch_config": {
                "storage": {"root": s3.url("dpone"), "options": options(s3), "cleanup": "delete_on_success"},
                "batch_size": 2,
            },
        }
        db = tmp_path / "t.duckdb"
        loaders = [
            {"name": "target-jsonl", "executable": "target-jsonl",
             "config": {"destination_path": str(tmp_path / "out"), "batch_storage_options": options(s3)}},
            {"name": "target-duckdb", "executable": "target-duckdb",
             "config": {"filepath": str(db), "batch_storage_options": options(s3)}},
        ]  # fmt: skip
        argv = ["run", "tap-csv", "target-jsonl", "target-duckdb", *_project(tmp_path, tap, loaders)]
        out, err = io.StringIO(), io.StringIO()
        assert cli.run(argv, stdout=out, stderr=err) == 0, err.getvalue()
        report = orjson.loads(out.getvalue())
        assert report["status"] == "success", report
        assert table(db) == list(range(1, ROWS + 1))
        assert len((tmp_path / "out" / "people.jsonl").read_bytes().splitlines()) == ROWS
        assert ObjectStores(options(s3)).list(s3.url("dpone/")) == []


def test_dpone_run_through_s3_twice(csv_dir, tmp_path):
    """`dpone run` with a tap writing to S3 and a target reading from it: files under the pipeline
    and run folders, rows counted in the report, the second run's files in a folder of their own."""
    import orjson

    from dpone_runner import cli

    with s3_server(bucket="runs") as s3:
        tap = {
            "base_path": str(csv_dir),
            "files": [{"entity": "people", "path": "people.csv", "keys": ["id"]}],
            "batch_config": {"storage": {"root": s3.url("dpone"), "options": options(s3)}, "batch_size": 4},
        }
        db = tmp_path / "t.duckdb"
        project = {
            "plugins": {
                "extractors": [{"name": "tap-csv", "executable": "tap-csv", "config": tap}],
                "loaders": [
                    {
                        "name": "target-duckdb",
                        "executable": "target-duckdb",
                        "config": {"filepath": str(db), "batch_storage_options": options(s3)},
                    }
                ],
            }
        }
        (tmp_path / "meltano.yml").write_bytes(orjson.dumps(project))
        argv = ["run", "tap-csv", "target-duckdb", "--project", str(tmp_path), "--format", "json"]
        argv += ["--state-backend", f"sqlite:///{tmp_path / 'state.db'}"]
        runs = []
        for _ in range(2):
            out = io.StringIO()
            rc = cli.run([*argv, "--full-refresh"], stdout=out, stderr=io.StringIO())
            assert rc == 0
            runs.append(orjson.loads(out.getvalue()))
        assert [s["rows_in"] for s in runs[0]["streams"]] == [ROWS]
        stored = ObjectStores(options(s3)).list(s3.url("dpone/tap-csv-to-target-duckdb/"))
        folders = {u.split("/")[-2] for u in stored}
        assert folders == {r["run_id"] for r in runs}
        assert table(db) == list(range(1, ROWS + 1))


@pytest.mark.parametrize("root", ["missing-bucket", "Bad_Bucket!"])
def test_a_bucket_that_does_not_exist_is_a_config_error(run_tap, csv_dir, tmp_path, root):
    with s3_server(bucket="exists") as s3:
        config = {
            "base_path": str(csv_dir),
            "files": [{"entity": "people", "path": "people.csv", "keys": ["id"]}],
            "batch_config": {"storage": {"root": f"s3://{root}/dpone", "options": options(s3)}},
        }
        result = run_tap(CsvTap, config)
    assert result.rc == 78, result.stderr
    assert f"s3://{root}/dpone/" in result.stderr
    assert not result.of_type("BATCH")


def test_an_azure_container_name_it_refuses_is_a_config_error(run_tap, csv_dir, tmp_path):
    with azure_server() as az:
        config = {
            "base_path": str(csv_dir),
            "files": [{"entity": "people", "path": "people.csv", "keys": ["id"]}],
            "batch_config": {"storage": {"root": "az://Bad_Container/x", "options": options(az)}},
        }
        result = run_tap(CsvTap, config)
    assert result.rc == 78, result.stderr
    assert az.config["account_key"] not in result.stderr
