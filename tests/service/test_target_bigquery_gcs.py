"""target-bigquery loading BATCH files that sit in gs:// in place: one load job reads them into staging,
and their rows never pass through the target (Loader.accepts_files / bulk_load_files).

The files come from tap-csv and live in fake-gcs-server (filesystem backend); a second bqemulator of
this module's own resolves gs://BUCKET/KEY in load jobs to the same folder (BQEMU_GCS_LOCAL_ROOT), so
the target's SHA-256 check reads the objects through obstore and the load job reads the very same
bytes. fake-gcs-server has no XML API, through which obstore writes: the tap writes its files
locally and the test copies them into the bucket under the same names (as in
test_batch_object_storage.py). The proof that rows did not pass through the target: the load jobs of
the dataset (the emulator's job list) name the gs:// files and nothing else, loader_sink's log line
"N rows loaded from N BATCH files in place", and the loader's bulk_load_files answering True with its row
paths never called.

The live section at the end runs against Google Cloud Storage and BigQuery when both
DPONE_TEST_BIGQUERY_PROJECT and DPONE_TEST_GCS_BUCKET are set (the tap then uploads itself).
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dpone.taps.csv.tap import CsvTap
from dpone.targets.bigquery.loader import BigQueryLoader
from dpone.targets.bigquery.target import BigQueryTarget
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.object_store import ObjectStores, local_path
from tests.conftest import Run
from tests.service.bigquery_dest import BigQueryDest
from tests.tools.bigquery_emulator import Emulator, running
from tests.tools.object_stores import ObjectStoreServer, gcs_server

pytestmark = pytest.mark.service

IN_PLACE = re.compile(r"stream people: \d+ rows loaded from \d+ BATCH files in place")  # loader_sink.load_files
CSV_V1 = [(i, f"name {i}", i + 0.25) for i in range(1, 8)]  # 7 rows: batches of 3, 3 and 1
CSV_V2 = [(i, f"renamed {i}", i + 0.5) for i in range(5, 11)]  # 5..7 change, 8..10 are new


def lines(*messages: dict[str, Any]) -> bytes:
    return b"".join(DEFAULT_CODEC.dumps(m) + b"\n" for m in messages)


# -- servers: fake-gcs-server and a bqemulator reading gs:// from its folder ------------------------------


@pytest.fixture(scope="module")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStoreServer]:
    with gcs_server(root=tmp_path_factory.mktemp("gcs")) as handle:
        yield handle


@pytest.fixture(scope="module")
def gcs_emulator(gcs: ObjectStoreServer) -> Iterator[Emulator]:
    """Not the session's emulator: this one resolves gs:// in load jobs to fake-gcs-server's files."""
    assert gcs.root is not None
    with running(env={"BQEMU_GCS_LOCAL_ROOT": str(gcs.root)}) as emulator:
        yield emulator


@dataclass
class Calls:
    """What the loader was handed: BATCH files (and whether it took them in place), or rows."""

    files: list[tuple[list[str], bool]] = field(default_factory=list)
    rows: int = 0


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    seen = Calls()
    real_files = BigQueryLoader.bulk_load_files
    real_rows = BigQueryLoader.bulk_load
    real_encoded = BigQueryLoader.bulk_load_encoded

    def bulk_load_files(self: BigQueryLoader, plan: Any, staging: str, manifest: Any) -> bool:
        taken = real_files(self, plan, staging, manifest)
        seen.files.append(([f.uri for f in manifest.files], taken))
        return taken

    def bulk_load(self: BigQueryLoader, plan: Any, staging: str, records: Any) -> None:
        seen.rows += len(records)
        real_rows(self, plan, staging, records)

    def bulk_load_encoded(self: BigQueryLoader, plan: Any, staging: str, rows: Any) -> None:
        seen.rows += int(getattr(rows, "rows", 0) or 1)
        real_encoded(self, plan, staging, rows)

    monkeypatch.setattr(BigQueryLoader, "bulk_load_files", bulk_load_files)
    monkeypatch.setattr(BigQueryLoader, "bulk_load", bulk_load)
    monkeypatch.setattr(BigQueryLoader, "bulk_load_encoded", bulk_load_encoded)
    return seen


class Bench:
    """One test's dataset on the module's emulator, and its tap runs' files in the module's bucket."""

    def __init__(
        self,
        gcs: ObjectStoreServer,
        emulator: Emulator,
        run_tap: Callable[..., Run],
        run_target: Callable[..., Run],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self.gcs, self.emulator = gcs, emulator
        self.dest = BigQueryDest(emulator)
        self.run_tap, self.run_target = run_tap, run_target
        self.tmp_path, self.monkeypatch = tmp_path, monkeypatch
        self.pipeline = f"p{uuid.uuid4().hex[:10]}"  # this test's folder in the bucket
        self.runs = 0

    def options(self) -> dict[str, Any]:
        """`batch_storage_options` as a user would write them for fake-gcs-server (obstore's keys)."""
        return {**self.gcs.config, "allow_http": True}

    def batches(
        self, rows: list[tuple[Any, ...]], *, compression: str = "gzip", batch_size: int = 3, **storage: Any
    ) -> list[dict[str, Any]]:
        """tap-csv's SCHEMA, BATCH and STATE messages for `rows`, its files (and manifests) in gs://."""
        self.runs += 1
        run_id = f"run{self.runs}"
        data = self.tmp_path / f"csv{self.runs}"
        data.mkdir()
        (data / "people.csv").write_text("id,name,score\n" + "".join(f"{i},{n},{s}\n" for i, n, s in rows))
        local = self.tmp_path / f"spool{self.runs}"
        self.monkeypatch.setenv("DPONE_PIPELINE", self.pipeline)
        self.monkeypatch.setenv("DPONE_RUN_ID", run_id)
        config = {
            "base_path": str(data),
            "files": [{"entity": "people", "path": "people.csv", "keys": ["id"]}],
            "batch_config": {
                "encoding": {"format": "jsonl", "compression": compression},
                "storage": {"root": local.as_uri(), **storage},
                "batch_size": batch_size,
            },
        }
        result = self.run_tap(CsvTap, config)
        assert result.rc == 0, result.stderr
        self.monkeypatch.delenv("DPONE_RUN_ID")  # the target is not under `dpone run`
        messages = [m for m in result.messages if m["type"] in ("SCHEMA", "BATCH", "STATE")]
        self._copy_into_gcs(messages, local.as_uri(), self.gcs.url("dpone"))
        return messages

    def _copy_into_gcs(self, messages: list[dict[str, Any]], prefix: str, root: str) -> None:
        for message in messages:
            if message["type"] != "BATCH":
                continue
            manifest = message["dpone_manifest"]
            for entry in [*manifest["files"], manifest]:
                path = local_path(entry["uri"])
                entry["uri"] = root + entry["uri"].removeprefix(prefix)
                self.gcs.upload(self.key(entry["uri"]), path.read_bytes())
            message["manifest"] = [f["uri"] for f in manifest["files"]]

    def key(self, uri: str) -> str:
        return uri.removeprefix(f"gs://{self.gcs.bucket}/")

    def prefix(self) -> str:
        return self.gcs.url(f"dpone/{self.pipeline}/")

    def objects(self) -> list[str]:
        return sorted(ObjectStores(self.options()).list(self.prefix()))

    def config(self, **extra: Any) -> dict[str, Any]:
        # score is an unbounded number: STRING in the emulator's config (BigQueryDest), every digit kept.
        return self.dest.config(batch_storage_options=self.options(), **extra)

    def load(self, messages: list[dict[str, Any]], **extra: Any) -> Run:
        return self.run_target(BigQueryTarget, self.config(**extra), lines(*messages))

    def table(self) -> list[tuple[Any, ...]]:
        found = self.dest.rows("people")
        assert found is not None, "no table people"
        return sorted((r["id"], r["name"], float(r["score"])) for r in found)

    def load_jobs(self) -> list[list[str]]:
        """The source URIs of every load job into this test's dataset (a job from an upload has none)."""
        jobs = []
        for job in self.dest.client.list_jobs(all_users=True):
            destination = getattr(job, "destination", None)
            if job.job_type == "load" and destination is not None and destination.dataset_id == self.dest.dataset:
                jobs.append(list(job.source_uris or []))
        return jobs


def file_uris(messages: list[dict[str, Any]]) -> list[str]:
    return [f["uri"] for m in messages if m["type"] == "BATCH" for f in m["dpone_manifest"]["files"]]


def assert_in_place(bench: Bench, calls: Calls, result: Run, uris: list[str], before: int = 0) -> None:
    """Every BATCH went in place: one load job per file's batch naming exactly its gs:// files, the log
    line of each, the loader took every manifest, and no row went through the row path."""
    assert len(IN_PLACE.findall(result.stderr)) == len(uris), result.stderr
    assert sorted(u for taken in calls.files for u in taken[0]) == sorted(uris)
    assert all(taken for _, taken in calls.files)
    assert calls.rows == 0
    jobs = bench.load_jobs()
    assert len(jobs) == before + len(uris)
    assert all(job and all(u.startswith("gs://") for u in job) for job in jobs)  # no upload-made load
    assert sorted(u for job in jobs for u in job if u in uris) == sorted(uris)


@pytest.fixture
def bench(
    gcs: ObjectStoreServer,
    gcs_emulator: Emulator,
    run_tap: Callable[..., Run],
    run_target: Callable[..., Run],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Bench:
    return Bench(gcs, gcs_emulator, run_tap, run_target, tmp_path, monkeypatch)


def ok(result: Run) -> Run:
    assert result.rc == 0, result.stderr
    return result


# -- 1. append-only and upsert, into a new table and then an existing one -------------------------------


@pytest.mark.parametrize("compression", ["gzip", "none"])
@pytest.mark.parametrize("method", ["append-only", "upsert"])
def test_gs_batches_load_in_place_into_a_new_then_an_existing_table(
    bench: Bench, calls: Calls, method: str, compression: str
) -> None:
    first = bench.batches(CSV_V1, compression=compression)
    uris = file_uris(first)
    assert len(uris) == 3 and all(u.startswith(bench.prefix()) for u in uris)
    assert all(u.endswith(".jsonl.gz" if compression == "gzip" else ".jsonl") for u in uris)
    result = ok(bench.load(first, load_method=method))
    assert bench.table() == CSV_V1  # a new table
    assert result.states[-1] == first[-1]["value"]
    assert_in_place(bench, calls, result, uris)

    calls.files.clear()
    second = bench.batches(CSV_V2, compression=compression)
    result = ok(bench.load(second, load_method=method))
    if method == "upsert":
        merged = {row[0]: row for row in CSV_V1} | {row[0]: row for row in CSV_V2}
        assert bench.table() == sorted(merged.values())
    else:
        assert bench.table() == sorted(CSV_V1 + CSV_V2)
    assert result.states[-1] == second[-1]["value"]
    assert_in_place(bench, calls, result, file_uris(second), before=3)
    assert bench.dest.tables() == {"people"}  # staging dropped


# -- 2. an upsert whose files repeat a key: read by the target, the last record per key wins ---------------


@pytest.mark.parametrize("cleanup", ["retain", "delete_on_success"])
@pytest.mark.parametrize("method", ["upsert", "overwrite"])
def test_a_merge_whose_files_repeat_a_key_is_read_by_the_target(
    bench: Bench, calls: Calls, method: str, cleanup: str
) -> None:
    ok(bench.load(bench.batches(CSV_V1), load_method="append-only"))  # an existing table
    calls.files.clear()
    rows = [(1, "first", 1.25), (2, "two", 2.25), (1, "last", 1.5), (3, "three", 3.25)]
    messages = bench.batches(rows, batch_size=4, cleanup=cleanup)  # one BATCH, one file, id 1 twice
    result = ok(bench.load(messages, load_method=method))
    wanted = [(1, "last", 1.5), (2, "two", 2.25), (3, "three", 3.25)]
    if method == "upsert":
        wanted += CSV_V1[3:]
    assert bench.table() == wanted
    assert calls.files == [(file_uris(messages), False)]  # offered in place, declined
    assert not IN_PLACE.search(result.stderr)
    assert calls.rows in (3, 4)  # then read by the target (deduplicated by the sink, or by the loader)
    assert result.states[-1] == messages[-1]["value"]
    this_run = [u for u in bench.objects() if "/run2/" in u]  # the file and its manifest
    assert len(this_run) == (0 if cleanup == "delete_on_success" else 2)
    assert bench.dest.tables() == {"people"}


def test_append_only_keeps_a_repeated_key_in_place(bench: Bench, calls: Calls) -> None:
    rows = [(1, "first", 1.25), (1, "last", 1.5)]
    messages = bench.batches(rows, batch_size=2)
    result = ok(bench.load(messages, load_method="append-only"))
    assert bench.table() == [(1, "first", 1.25), (1, "last", 1.5)]
    assert_in_place(bench, calls, result, file_uris(messages))


@pytest.mark.parametrize(
    ("method", "fault"),
    [
        pytest.param("upsert", ("load_table_from_uri", "503"), id="load-job-503"),
        pytest.param("append-only", ("query", "lost"), id="move-answer-lost"),
    ],
)
def test_a_transient_error_retries_the_in_place_batch_once_only(
    bench: Bench, calls: Calls, monkeypatch: pytest.MonkeyPatch, method: str, fault: tuple[str, str]
) -> None:
    from google.api_core import exceptions as api_errors

    from tests.service.test_target_bigquery import FaultyTarget, _lost_answer

    call, kind = fault
    error = _lost_answer if kind == "lost" else (lambda: api_errors.ServiceUnavailable("backend down"))
    monkeypatch.setattr("time.sleep", lambda _s: None)
    monkeypatch.setattr(FaultyTarget, "faults", {call: [error]})
    messages = bench.batches(CSV_V1)
    result = ok(bench.run_target(FaultyTarget, bench.config(load_method=method), lines(*messages)))
    assert "transient error" in result.stderr
    assert bench.table() == CSV_V1  # each row once
    assert len(IN_PLACE.findall(result.stderr)) == 3 and calls.rows == 0


# -- 3. and 4. a changed or missing object: nothing of it loads, no state after it ----------------------------


def _forged(original: bytes, gzipped: bool) -> bytes:
    """Other bytes of the same size: rows that would load if the check let them (same length names)."""
    if gzipped:
        data = bytearray(original)
        data[-12] ^= 0x01  # inside the gzip trailer's CRC
        return bytes(data)
    forged = original.replace(b'"renamed ', b'"forged! ')
    assert forged != original and len(forged) == len(original)
    return forged


def _numbered_states(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tap's SCHEMA and BATCH messages, each BATCH followed by a STATE naming it."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message["type"] == "STATE":
            continue
        out.append(message)
        if message["type"] == "BATCH":
            out.append({"type": "STATE", "value": {"after_batch": sum(m["type"] == "BATCH" for m in out)}})
    return out


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_a_changed_object_is_refused_before_its_load_job(bench: Bench, calls: Calls, compression: str) -> None:
    ok(bench.load(bench.batches(CSV_V1, compression=compression), load_method="upsert"))
    assert bench.table() == CSV_V1
    jobs_before = len(bench.load_jobs())
    calls.files.clear()
    messages = _numbered_states(bench.batches(CSV_V2, compression=compression))
    uris = file_uris(messages)
    second = uris[1]
    original = (bench.gcs.root / bench.gcs.bucket / bench.key(second)).read_bytes()  # type: ignore[operator]
    bench.gcs.upload(bench.key(second), _forged(original, compression == "gzip"))
    result = bench.load(messages, load_method="upsert")
    assert result.rc == 65, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert second in last and "SHA-256" in last, last
    # The first batch of this run committed; nothing of the changed one, no state after it.
    merged = {row[0]: row for row in CSV_V1} | {row[0]: row for row in CSV_V2[:3]}
    assert bench.table() == sorted(merged.values())
    assert result.states == [{"after_batch": 1}]
    assert [u for taken in calls.files for u in taken[0]] == [uris[0]]  # the changed one never reached it
    assert len(bench.load_jobs()) == jobs_before + 1
    assert hashlib.sha256(original).hexdigest() == messages[3]["dpone_manifest"]["files"][0]["sha256"]


def test_a_missing_object_is_a_data_error(bench: Bench, calls: Calls) -> None:
    ok(bench.load(bench.batches(CSV_V1), load_method="append-only"))
    messages = _numbered_states(bench.batches(CSV_V2))
    first = file_uris(messages)[0]
    ObjectStores(bench.options()).delete(first)
    result = bench.load(messages, load_method="append-only")
    assert result.rc == 65, result.stderr
    assert f"file not found: {first}" in result.stderr.strip().splitlines()[-1]
    assert result.states == []
    assert bench.table() == CSV_V1  # unchanged


# -- 5. cleanup: delete_on_success deletes the objects after the commit; retain keeps them -----------------


@pytest.mark.parametrize("method", ["append-only", "upsert", "overwrite"])
def test_delete_on_success_deletes_the_objects_after_the_commit(bench: Bench, calls: Calls, method: str) -> None:
    messages = bench.batches(CSV_V1, cleanup="delete_on_success")
    stored = bench.objects()
    assert len(stored) == 6  # 3 files and their 3 manifests
    result = ok(bench.load(messages, load_method=method))
    assert bench.table() == CSV_V1
    assert_in_place(bench, calls, result, file_uris(messages))
    assert bench.objects() == []


def test_retain_keeps_the_objects(bench: Bench, calls: Calls) -> None:
    messages = bench.batches(CSV_V1)
    assert messages[1]["dpone_manifest"]["cleanup"] == "retain"
    stored = bench.objects()
    result = ok(bench.load(messages, load_method="upsert"))
    assert bench.table() == CSV_V1
    assert_in_place(bench, calls, result, file_uris(messages))
    assert bench.objects() == stored and len(stored) == 6


# -- 6. overwrite: the table replaced whole from gs:// files ------------------------------------------------


def test_overwrite_replaces_the_table_from_gs_files(bench: Bench, calls: Calls) -> None:
    ok(bench.load(bench.batches(CSV_V1), load_method="append-only"))
    assert bench.table() == CSV_V1
    calls.files.clear()
    messages = bench.batches(CSV_V2)
    result = ok(bench.load(messages, load_method="overwrite"))
    assert bench.table() == CSV_V2  # rows 1..4 are gone, 5..7 replaced, 8..10 new
    assert_in_place(bench, calls, result, file_uris(messages), before=3)
    assert result.states[-1] == messages[-1]["value"]
    assert bench.dest.tables() == {"people"}  # no shadow or staging left


# -- live: Google Cloud Storage and BigQuery ------------------------------------------------------------------

LIVE_PROJECT = os.environ.get("DPONE_TEST_BIGQUERY_PROJECT")
LIVE_BUCKET = os.environ.get("DPONE_TEST_GCS_BUCKET")
live_only = pytest.mark.skipif(
    not (LIVE_PROJECT and LIVE_BUCKET),
    reason="set DPONE_TEST_BIGQUERY_PROJECT and DPONE_TEST_GCS_BUCKET (and Google credentials) to run against GCP",
)


class Live:
    """A dataset of its own in the live project, and a folder of its own in the live bucket."""

    def __init__(self, run_tap: Callable[..., Run], run_target: Callable[..., Run], tmp_path: Path) -> None:
        from dpone_drivers import bigquery as bq
        from dpone_protocol.config import Redactor

        self.run_tap, self.run_target, self.tmp_path = run_tap, run_target, tmp_path
        self.dataset = f"dpone_test_{uuid.uuid4().hex[:10]}"
        self.base: dict[str, Any] = {"project": LIVE_PROJECT, "dataset": self.dataset}
        if os.environ.get("DPONE_TEST_BIGQUERY_CREDENTIALS"):
            self.base["credentials_path"] = os.environ["DPONE_TEST_BIGQUERY_CREDENTIALS"]
        self.client = bq.client(self.base, Redactor())
        self.root = f"gs://{LIVE_BUCKET}/dpone-test-bq-{uuid.uuid4().hex[:10]}"
        self.stores = ObjectStores()
        self.runs = 0

    def batches(self, rows: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
        self.runs += 1
        data = self.tmp_path / f"csv{self.runs}"
        data.mkdir()
        (data / "people.csv").write_text("id,name,score\n" + "".join(f"{i},{n},{s}\n" for i, n, s in rows))
        monkeypatch.setenv("DPONE_PIPELINE", "people")
        monkeypatch.setenv("DPONE_RUN_ID", f"run{self.runs}")
        config = {
            "base_path": str(data),
            "files": [{"entity": "people", "path": "people.csv", "keys": ["id"]}],
            "batch_config": {
                "encoding": {"format": "jsonl", "compression": "gzip"},
                "storage": {"root": self.root},  # the tap uploads through obstore itself
                "batch_size": 3,
            },
        }
        result = self.run_tap(CsvTap, config)
        monkeypatch.delenv("DPONE_RUN_ID")
        assert result.rc == 0, result.stderr
        return [m for m in result.messages if m["type"] in ("SCHEMA", "BATCH", "STATE")]

    def load(self, messages: list[dict[str, Any]], **extra: Any) -> Run:
        # score: float64, so the table compares with the CSV's floats (the default bignumeric holds them too).
        config = {**self.base, "unbounded_numbers": "float64", **extra}
        return self.run_target(BigQueryTarget, config, lines(*messages))

    def table(self) -> list[tuple[Any, ...]]:
        result = self.client.query(f"SELECT id, name, score FROM `{LIVE_PROJECT}.{self.dataset}.people`").result()
        return sorted((r["id"], r["name"], float(r["score"])) for r in result)

    def load_jobs(self) -> list[list[str]]:
        jobs = []
        for job in self.client.list_jobs(max_results=200):
            destination = getattr(job, "destination", None)
            if job.job_type == "load" and destination is not None and destination.dataset_id == self.dataset:
                jobs.append(list(job.source_uris or []))
        return jobs

    def close(self) -> None:
        self.client.delete_dataset(f"{LIVE_PROJECT}.{self.dataset}", delete_contents=True, not_found_ok=True)
        for uri in self.stores.list(self.root + "/"):
            self.stores.delete(uri)


@pytest.fixture
def live(run_tap: Callable[..., Run], run_target: Callable[..., Run], tmp_path: Path) -> Iterator[Live]:
    found = Live(run_tap, run_target, tmp_path)
    try:
        yield found
    finally:
        found.close()


@live_only
@pytest.mark.parametrize("method", ["append-only", "upsert"])
def test_live_gzip_batches_load_in_place(
    live: Live, calls: Calls, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    first = live.batches(CSV_V1, monkeypatch)
    uris = file_uris(first)
    assert all(u.startswith(live.root) and u.endswith(".jsonl.gz") for u in uris)
    result = live.load(first, load_method=method)
    assert result.rc == 0, result.stderr
    assert live.table() == CSV_V1
    assert len(IN_PLACE.findall(result.stderr)) == 3 and calls.rows == 0
    assert all(taken for _, taken in calls.files)
    second = live.batches(CSV_V2, monkeypatch)
    assert live.load(second, load_method=method).rc == 0
    if method == "upsert":
        assert live.table() == sorted(({r[0]: r for r in CSV_V1} | {r[0]: r for r in CSV_V2}).values())
    else:
        assert live.table() == sorted(CSV_V1 + CSV_V2)
    assert calls.rows == 0
    loaded = sorted(u for job in live.load_jobs() for u in job)
    assert loaded == sorted(uris + file_uris(second))


@live_only
def test_live_a_changed_object_is_refused(live: Live, calls: Calls, monkeypatch: pytest.MonkeyPatch) -> None:
    assert live.load(live.batches(CSV_V1, monkeypatch), load_method="upsert").rc == 0
    messages = _numbered_states(live.batches(CSV_V2, monkeypatch))
    second = file_uris(messages)[1]
    live.stores.put_bytes(_forged(live.stores.get_bytes(second), gzipped=True), second)
    result = live.load(messages, load_method="upsert")
    assert result.rc == 65, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert second in last and "SHA-256" in last, last
    merged = {row[0]: row for row in CSV_V1} | {row[0]: row for row in CSV_V2[:3]}
    assert live.table() == sorted(merged.values())
    assert result.states == [{"after_batch": 1}]


# -- numbers a load job may read through a double: the target reads those files itself -------------------


def test_an_integer_beyond_2_53_sends_the_files_through_the_target(bench: Bench, calls: Calls) -> None:
    """BigQuery documents that a JSON load reads integers beyond 2^53 exactly only as strings: files
    holding one are read by the target, which writes such integers as text."""
    wide = 2**53 + 1
    rows = [(1, "small", 1.25), (wide, "wide", 2.25)]
    messages = bench.batches(rows, batch_size=2)
    result = ok(bench.load(messages, load_method="upsert"))
    assert calls.files == []  # turned down while checked, before any load job
    assert "BATCH files read by the target: a value to check or to load as text" in result.stderr
    assert calls.rows == 2
    assert bench.table() == [(1, "small", 1.25), (wide, "wide", 2.25)]
