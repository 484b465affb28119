"""`dpone state replay-plan PIPELINE --to VALUE [--apply]` on real sources.

PostgreSQL (the session server runs with wal_level=logical): a LOG_BASED pipeline (tap-postgres into
target-duckdb, a replication slot of its own) run three times, so the slot has confirmed the second
run's position while the state holds the third's. A rewind to before the slot's position is refused
(exit 65) with what to do instead, and changes nothing, --apply included; a rewind between the two is
planned with the WAL and the changes it spans, `--apply` sets it, and the next run re-delivers exactly
those changes. Also refused: a position past the committed one, a dropped slot. A running pipeline
(its lock held) gets a plan without peeking at the slot, and --apply waits for it (exit 75).

Kafka (librdkafka's mock cluster): offsets rewound to a number or to `earliest`, planned per partition and
applied, then re-delivered by the next run; a rewind below the low watermark refused as retention
expired (the mock drops a partition's oldest messages past 5 MB, which is how the test provokes it: it
supports neither DeleteRecords nor a retention setting); an offset past the committed one refused; a
time (ISO 8601) parsed and resolved by the broker's time index (the mock answers every time with "no
such message", so only a time after every message is checked here); a locked pipeline.

Bad input: a --to that is no position, an unknown stream, a pipeline without state, a tap with no
position to rewind (tap-csv).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from dpone.state.store import new_lock, open_store
from dpone.taps.postgres.cdc import int_to_lsn, lsn_to_int
from tests.service.conftest import PostgresServer
from tests.service.test_plan_postgres import BIN, DPONE, EXIT_CONFIG, PASSWORD, Project, Result
from tests.tools.kafka_mock import MockKafka

pytestmark = pytest.mark.service

EXIT_DATA = 65
EXIT_TRANSIENT = 75


def replay(project: Any, pipeline: str, to: str | int, *extra: str) -> Result:
    res: Result = project.dpone("state", "replay-plan", pipeline, "--to", str(to), *extra)
    return res


def planned(project: Any, pipeline: str, to: str | int, *extra: str) -> dict[str, Any]:
    res = replay(project, pipeline, to, "--format", "json", *extra)
    assert res.rc == 0, res.out + res.err
    document: dict[str, Any] = orjson.loads(res.out)
    return document


def store_of(root: Path) -> Any:
    return open_store(f"sqlite:///{root / '.dpone' / 'state.db'}")


def read_state(root: Path, pipeline: str) -> dict[str, Any] | None:
    store = store_of(root)
    try:
        found = store.get(pipeline)
        return None if found is None else found.value
    finally:
        store.close()


class held_lock:
    """The pipeline's lock held as a run would hold it, for the length of a `with`."""

    def __init__(self, root: Path, pipeline: str) -> None:
        self.store = store_of(root)
        self.pipeline = pipeline

    def __enter__(self) -> None:
        self.store.acquire_lock(new_lock(self.pipeline, "run-0123456789ab"))

    def __exit__(self, *exc: object) -> None:
        self.store.release_lock(self.pipeline, "run-0123456789ab")
        self.store.close()


# -- PostgreSQL: LOG_BASED -----------------------------------------------------------------------------


class Cdc:
    """A LOG_BASED pipeline `cdc` (tap-postgres -> target-duckdb) run three times:
    L0 (the snapshot's position) -> L2 -> L3; the slot has confirmed L2, the state holds L3, and
    between L2 and L3 three changes were committed (an insert, an update, a delete)."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.slot = f"dpone_rp_{uuid.uuid4().hex[:8]}"
        self.stream = project.stream("orders")
        tap = project.extractors[0]
        tap["config"]["replication_slot"] = self.slot
        # Beside it an INCREMENTAL stream, whose bookmark a rewind leaves as it is.
        self.other = project.stream("customers")
        tap["select"] = [f"{self.stream}.*", f"{self.other}.*"]
        tap["metadata"] = {
            self.stream: {"replication-method": "LOG_BASED"},
            self.other: {"replication-method": "INCREMENTAL", "replication-key": "id"},
        }
        project.loaders = [project.loaders[1]]  # target-duckdb
        project.pipelines = {"cdc": {"tap": "tap-postgres", "targets": ["target-duckdb"]}}
        project.write()
        project.sql(
            "CREATE TABLE orders (id int PRIMARY KEY, item text, qty int)",
            "INSERT INTO orders VALUES (1, 'apple', 1), (2, 'pear', 2)",
            "CREATE TABLE customers (id int PRIMARY KEY, name text)",
            "INSERT INTO customers VALUES (1, 'Ada')",
        )
        self.l0 = self.run(2)
        project.sql("INSERT INTO orders VALUES (3, 'fig', 3)", "UPDATE orders SET qty = 20 WHERE id = 2")
        self.l2 = self.run(2)
        project.sql(
            "INSERT INTO orders VALUES (4, 'kiwi', 4)",
            "UPDATE orders SET qty = 10 WHERE id = 1",
            "DELETE FROM orders WHERE id = 3",
        )
        self.l3 = self.run(3)
        assert self.confirmed() == self.l2 < self.l3

    def run(self, rows: int) -> int:
        report = self.project.run("target-duckdb", pipeline="cdc")
        assert {s["stream"]: s["rows_in"] for s in report["streams"]}[self.stream] == rows, report
        return self.lsn()

    def lsn(self) -> int:
        state = read_state(self.project.root, "cdc")
        assert state is not None
        value = state["bookmarks"][self.stream]["lsn"]
        assert isinstance(value, int)
        return value

    def confirmed(self) -> int | None:
        row = self.project.conn.execute(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)
        ).fetchone()
        return None if row is None or row[0] is None else lsn_to_int(row[0])

    def rows(self) -> list[tuple[Any, ...]]:
        import duckdb

        table = f"{self.project.schema}_orders"
        with duckdb.connect(str(self.project.duckdb), read_only=True) as conn:
            return conn.execute(
                f'SELECT id, item, qty, _sdc_deleted_at IS NOT NULL FROM "{table}" ORDER BY id'
            ).fetchall()

    def close(self) -> None:
        self.project.conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)
        )


@pytest.fixture
def cdc(postgres_server: PostgresServer, database: str, tmp_path: Path) -> Iterator[Cdc]:
    project = Project(postgres_server, database, tmp_path)
    found = Cdc(project)
    try:
        yield found
    finally:
        found.close()
        project.close()


class TestPostgresRefusals:
    def test_a_rewind_before_the_slot_position_is_refused_by_the_installed_dpone(self, cdc: Cdc):
        state = read_state(cdc.project.root, "cdc")
        for extra in ([], ["--apply"]):
            proc = subprocess.run(
                [DPONE, "state", "replay-plan", "cdc", "--to", int_to_lsn(cdc.l0), *extra],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                cwd=cdc.project.root,
                env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
            )
            assert proc.returncode == EXIT_DATA, proc.stdout + proc.stderr
            confirmed = int_to_lsn(cdc.l2)
            assert proc.stdout == (
                f"pipeline cdc: rewind to {int_to_lsn(cdc.l0)}\n"
                f"  {cdc.stream}: committed {int_to_lsn(cdc.l3)}\n"
                f"    REFUSED: the slot {cdc.slot!r} already confirmed {confirmed}: changes before it are gone\n"
                f"    instead: rewind to {confirmed} or later (`dpone state replay-plan cdc --to {confirmed}`); or "
                f"re-sync the stream: `dpone state clear cdc --stream {cdc.stream}` (its next run reads it "
                "from the start), or a one-off `dpone run ... --full-refresh` of the whole pipeline\n"
                f"  other streams keep their bookmarks: {cdc.other}\n"
                "nothing was changed\n"
            )
            assert proc.stderr.strip().splitlines()[-1] == (
                f"dpone: data error: the rewind of {cdc.stream} is refused (see above); nothing was changed"
            )
            assert PASSWORD not in proc.stdout + proc.stderr
            assert read_state(cdc.project.root, "cdc") == state
            assert cdc.confirmed() == cdc.l2

    def test_a_position_past_the_committed_one_is_no_rewind(self, cdc: Cdc):
        ahead = int_to_lsn(cdc.l3 + 16)
        res = replay(cdc.project, "cdc", ahead, "--apply")
        assert res.rc == EXIT_DATA
        assert (
            f"REFUSED: LSN {ahead} is after the committed position {int_to_lsn(cdc.l3)}: that is no rewind, and the "
            "changes in between would be skipped\n"
        ) in res.out
        assert f"instead: rewind to {int_to_lsn(cdc.l3)} or earlier\n" in res.out
        assert cdc.lsn() == cdc.l3

    def test_a_dropped_slot_cannot_serve_any_rewind(self, cdc: Cdc):
        cdc.close()
        document = orjson.loads(replay(cdc.project, "cdc", int_to_lsn(cdc.l3), "--format", "json").out)
        (stream,) = document["streams"]
        assert document["refused"] is True and document["applied"] is False
        assert (
            stream["refusal"]
            == f"replication slot {cdc.slot!r} does not exist (dropped?): the changes it kept are gone"
        )
        assert stream["hint"].startswith(f"re-sync the stream: `dpone state clear cdc --stream {cdc.stream}`")
        assert stream["bookmark"] is None

    def test_a_slot_past_the_committed_position_is_named_by_replay_plan_doctor_and_the_run(self, cdc: Cdc):
        # The slot re-created after the last run: it starts past the committed position, so no
        # rewind can serve the stream and the next run would fail. Each command says the same fix.
        cdc.close()
        cdc.project.conn.execute("SELECT pg_create_logical_replication_slot(%s, 'wal2json')", (cdc.slot,))
        fix = f"`dpone state clear cdc --stream {cdc.stream}`"
        plan = orjson.loads(replay(cdc.project, "cdc", "committed", "--format", "json").out)
        (stream,) = plan["streams"]
        assert stream["refusal"].startswith(f"the slot {cdc.slot!r} already confirmed ")
        assert f"past the committed position {int_to_lsn(cdc.l3)} (it was advanced or re-created)" in stream["refusal"]
        assert stream["hint"].startswith(f"re-sync the stream: {fix}")
        doctor = cdc.project.dpone("doctor", "cdc", "--format", "json")
        assert doctor.rc == EXIT_CONFIG, doctor.out + doctor.err
        groups = orjson.loads(doctor.out)
        (resume,) = [c for g in groups for c in g["checks"] if c["name"] == "resume position"]
        assert resume["status"] == "fail"
        assert f"{cdc.stream}: the slot {cdc.slot!r} already confirmed" in resume["detail"]
        assert fix in resume["hint"]
        run = cdc.project.dpone("run", "cdc", "--no-progress")
        assert run.rc == EXIT_CONFIG
        assert f"dpone state clear cdc --stream {cdc.stream}" in run.err  # the pipeline's own id, not PIPELINE

    def test_doctor_finds_the_committed_position_still_served(self, cdc: Cdc):
        doctor = cdc.project.dpone("doctor", "cdc", "--format", "json")
        groups = orjson.loads(doctor.out)
        (resume,) = [c for g in groups for c in g["checks"] if c["name"] == "resume position"]
        assert resume == {
            "name": "resume position",
            "status": "ok",
            "detail": "the source still holds every stream's committed position",
            "hint": "",
        }

    def test_bad_positions_and_names_are_config_errors(self, cdc: Cdc):
        for to in ("banana", "0/XYZ", "-5", ""):
            res = replay(cdc.project, "cdc", to)
            assert res.rc == EXIT_CONFIG, (to, res.err)
            assert f"--to {to!r} is not an LSN: give one as PostgreSQL prints it (e.g. 0/16B3748)" in res.err
        res = replay(cdc.project, "cdc", int_to_lsn(cdc.l2), "--stream", "nope")
        assert res.rc == EXIT_CONFIG
        assert f"the state has no stream 'nope' (streams: {', '.join(sorted([cdc.other, cdc.stream]))})" in res.err
        res = replay(cdc.project, "tap-postgres-to-target-duckdb", int_to_lsn(cdc.l2))
        assert res.rc == EXIT_CONFIG
        assert (
            "pipeline 'tap-postgres-to-target-duckdb' has no committed bookmarks: there is nothing to rewind" in res.err
        )
        assert "Traceback" not in res.err


class TestPostgresRewind:
    def test_a_rewind_to_the_slot_position_is_planned_applied_and_redelivered(self, cdc: Cdc):
        document = planned(cdc.project, "cdc", int_to_lsn(cdc.l2))
        (stream,) = document["streams"]
        assert (document["refused"], document["applied"], document["unchanged"]) == (False, False, [cdc.other])
        assert (stream["committed"], stream["rewind_to"]) == (int_to_lsn(cdc.l3), int_to_lsn(cdc.l2))
        assert stream["redeliver"] == {"wal_bytes": cdc.l3 - cdc.l2, "changes": 3, "changes_at_least": False}
        assert stream["bookmark"] == {"lsn": cdc.l2}  # an integer, as the state had it
        assert cdc.lsn() == cdc.l3  # a plan changes nothing
        text = replay(cdc.project, "cdc", int_to_lsn(cdc.l2)).ok().out
        assert text == (
            f"pipeline cdc: rewind to {int_to_lsn(cdc.l2)}\n"
            f"  {cdc.stream}: committed {int_to_lsn(cdc.l3)}\n"
            f"    re-delivers 3 changes committed from {int_to_lsn(cdc.l2)} up to {int_to_lsn(cdc.l3)} "
            f"({cdc.l3 - cdc.l2:,} bytes of WAL)\n"
            f"  other streams keep their bookmarks: {cdc.other}\n"
            f"nothing was changed; to set it: dpone state replay-plan cdc --to {int_to_lsn(cdc.l2)} --apply\n"
        )
        state = read_state(cdc.project.root, "cdc")
        assert state is not None
        applied = replay(cdc.project, "cdc", int_to_lsn(cdc.l2), "--apply").ok().out
        assert applied.endswith(f"state set: the next run starts from\n  {cdc.stream}: {int_to_lsn(cdc.l2)}\n")
        assert read_state(cdc.project.root, "cdc") == {
            **state,
            "bookmarks": {**state["bookmarks"], cdc.stream: {"lsn": cdc.l2}},
        }
        assert cdc.confirmed() == cdc.l2  # the slot did not move
        before = cdc.rows()
        cdc.run(3)  # the insert, the update and the delete, again
        assert (
            cdc.rows()
            == before
            # A delete carries only the key: the soft-deleted row keeps no other value.
            == [(1, "apple", 10, False), (2, "pear", 20, False), (3, None, None, True), (4, "kiwi", 4, False)]
        )
        assert cdc.lsn() >= cdc.l3  # on from where the state was (the same LSN when nothing was written since)

    def test_a_rewind_inside_the_range_counts_only_later_transactions(self, cdc: Cdc):
        # Between L2 and L3 each statement committed on its own; a position after the first commit
        # leaves it out. The first transaction's commit LSN is found by peeking at the slot.
        row = cdc.project.conn.execute(
            "SELECT (data::jsonb ->> 'lsn')::pg_lsn::text AS commit FROM pg_logical_slot_peek_changes(%s, NULL, NULL, "
            "'format-version', '2', 'include-transaction', '1', 'include-lsn', '1') "
            "WHERE data::jsonb ->> 'action' = 'B' AND (data::jsonb ->> 'lsn')::pg_lsn >= %s::pg_lsn "
            "ORDER BY (data::jsonb ->> 'lsn')::pg_lsn LIMIT 1",
            (cdc.slot, int_to_lsn(cdc.l2)),
        ).fetchone()
        assert row is not None
        later = lsn_to_int(row[0]) + 1
        (stream,) = planned(cdc.project, "cdc", int_to_lsn(later))["streams"]
        assert stream["redeliver"]["changes"] == 2
        assert stream["redeliver"]["wal_bytes"] == cdc.l3 - later

    def test_a_running_pipeline_gets_a_plan_without_peeking_and_no_apply(self, cdc: Cdc):
        with held_lock(cdc.project.root, "cdc"):
            (stream,) = planned(cdc.project, "cdc", int_to_lsn(cdc.l2))["streams"]
            assert stream["redeliver"] == {"wal_bytes": cdc.l3 - cdc.l2, "changes": None}
            assert stream["summary"].endswith(
                "changes not counted (the pipeline is running: peeking at the slot would get in its way)"
            )
            res = replay(cdc.project, "cdc", int_to_lsn(cdc.l2), "--apply")
            assert res.rc == EXIT_TRANSIENT
            assert "pipeline 'cdc' is locked by run run-0123456789ab" in res.err
        assert cdc.lsn() == cdc.l3

    def test_a_tap_with_no_position_to_rewind(self, cdc: Cdc):
        (cdc.project.root / "items.csv").write_text("sku,qty\na,1\n")
        cdc.project.extractors.append(
            {"name": "tap-csv", "config": {"files": [{"entity": "items", "path": "items.csv", "keys": ["sku"]}]}}
        )
        cdc.project.write()
        cdc.project.run("target-duckdb", pipeline="tap-csv-to-target-duckdb", tap="tap-csv")
        res = replay(cdc.project, "tap-csv-to-target-duckdb", "0/0")
        assert res.rc == EXIT_CONFIG
        assert res.err.strip().endswith(
            "cannot plan a rewind of pipeline 'tap-csv-to-target-duckdb': tap-csv has no position to rewind"
        )


# -- Kafka ---------------------------------------------------------------------------------------------


class KafkaProject:
    """A project with tap-kafka on a topic of its own into target-jsonl: pipeline `events`."""

    def __init__(self, cluster: MockKafka, prefix: str, root: Path, partitions: int = 2) -> None:
        self.cluster = cluster
        self.root = root
        self.topic = f"{prefix}events"
        cluster.create_topic(self.topic, partitions)
        self.partitions = partitions
        self.producer = Producer({"bootstrap.servers": cluster.bootstrap, "linger.ms": 0})
        plugins = {
            "extractors": [
                {"name": "tap-kafka", "config": {"bootstrap_servers": cluster.bootstrap, "topics": [self.topic]}}
            ],
            "loaders": [{"name": "target-jsonl", "config": {"destination_path": "out"}}],
        }
        (root / "meltano.yml").write_text(yaml.safe_dump({"version": 1, "plugins": plugins}))
        (root / "dpone.yml").write_text(
            yaml.safe_dump({"pipelines": {"events": {"tap": "tap-kafka", "targets": ["target-jsonl"]}}})
        )

    def send(self, partition: int, count: int, pad: int = 0) -> None:
        for n in range(count):
            self.producer.produce(self.topic, orjson.dumps({"n": n, "pad": "x" * pad}), partition=partition)
            self.producer.flush(30)  # one batch each: the mock drops whole batches

    def dpone(self, *argv: str) -> Result:
        import io

        from dpone_runner import cli

        out, err = io.StringIO(), io.StringIO()
        rc = cli.run([*argv, "--project", str(self.root)], stdout=out, stderr=err)
        return Result(rc, out.getvalue(), err.getvalue())

    def run(self) -> int:
        res = self.dpone(
            "run", "tap-kafka", "target-jsonl", "--pipeline-id", "events", "--no-progress", "--format", "json"
        )
        assert res.rc == 0, res.out + res.err
        (stream,) = orjson.loads(res.out)["streams"]
        rows: int = stream["rows_in"]
        return rows

    def offsets(self) -> dict[str, int]:
        state = read_state(self.root, "events")
        assert state is not None
        found: dict[str, int] = state["bookmarks"][self.topic]["partitions"]
        return found

    def low_watermark(self, partition: int) -> int:
        consumer = Consumer({"bootstrap.servers": self.cluster.bootstrap, "group.id": "probe"})
        try:
            low, _ = consumer.get_watermark_offsets(TopicPartition(self.topic, partition), timeout=10)
            return int(low)
        finally:
            consumer.close()


@pytest.fixture
def events(kafka_cluster: MockKafka, kafka_prefix: str, tmp_path: Path) -> Iterator[KafkaProject]:
    project = KafkaProject(kafka_cluster, kafka_prefix, tmp_path)
    project.send(0, 5)
    project.send(1, 4)
    assert project.run() == 9
    assert project.offsets() == {"0": 5, "1": 4}
    yield project


class TestKafkaRewind:
    def test_an_offset_is_planned_per_partition_applied_and_redelivered(self, events: KafkaProject):
        document = planned(events, "events", 2)
        (stream,) = document["streams"]
        assert (stream["stream"], stream["committed"], stream["rewind_to"]) == (
            events.topic,
            {"0": 5, "1": 4},
            {"0": 2, "1": 2},
        )
        assert stream["redeliver"] == {"messages": 5, "partitions": {"0": 3, "1": 2}}
        assert stream["summary"] == (
            f"re-delivers at most 5 messages of topic {events.topic}: partition 0 offsets 2..4 (3); "
            "partition 1 offsets 2..3 (2)"
        )
        assert events.offsets() == {"0": 5, "1": 4}
        text = replay(events, "events", 2, "--apply").ok().out
        assert text == (
            "pipeline events: rewind to 2\n"
            f"  {events.topic}: committed partition 0 offset 5, partition 1 offset 4\n"
            f"    re-delivers at most 5 messages of topic {events.topic}: partition 0 offsets 2..4 (3); partition 1 "
            "offsets 2..3 (2)\n"
            "state set: the next run starts from\n"
            f"  {events.topic}: partition 0 offset 2, partition 1 offset 2\n"
        )
        state = read_state(events.root, "events")
        assert state is not None
        assert state["bookmarks"][events.topic] == {"topic": events.topic, "partitions": {"0": 2, "1": 2}}
        assert events.run() == 5
        assert events.offsets() == {"0": 5, "1": 4}

    def test_earliest_is_the_oldest_offset_each_partition_keeps(self, events: KafkaProject):
        (stream,) = planned(events, "events", "earliest")["streams"]
        assert stream["rewind_to"] == {"0": 0, "1": 0}
        assert stream["redeliver"] == {"messages": 9, "partitions": {"0": 5, "1": 4}}
        replay(events, "events", "EARLIEST", "--apply").ok()
        assert events.run() == 9

    def test_a_time_after_every_message_keeps_the_committed_offsets(self, events: KafkaProject):
        later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
        (stream,) = planned(events, "events", later)["streams"]
        assert stream["rewind_to"] == {"0": 5, "1": 4}
        assert stream["redeliver"] == {"messages": 0, "partitions": {"0": 0, "1": 0}}
        assert stream["summary"].endswith(
            "partition 0 keeps offset 5 (nothing read there since that time); partition 1 keeps offset 4 (nothing "
            "read there since that time)"
        )

    def test_an_offset_past_the_committed_one_is_refused(self, events: KafkaProject):
        res = replay(events, "events", 5, "--apply")
        assert res.rc == EXIT_DATA
        assert (
            f"REFUSED: topic {events.topic}: offset 5 is after the committed offset 4 in partition 1: that is no "
            "rewind, and messages 4 to 4 would be skipped\n"
        ) in res.out
        assert "instead: rewind to the committed offsets or earlier\n" in res.out
        assert events.offsets() == {"0": 5, "1": 4}

    def test_a_locked_pipeline_is_not_applied(self, events: KafkaProject):
        with held_lock(events.root, "events"):
            res = replay(events, "events", 0, "--apply")
            assert res.rc == EXIT_TRANSIENT
            assert "pipeline 'events' is locked by run run-0123456789ab" in res.err
            assert "dpone state unlock events" in res.err
            replay(events, "events", 0).ok()  # a plan alone still works
        assert events.offsets() == {"0": 5, "1": 4}

    def test_bad_input(self, events: KafkaProject):
        res = replay(events, "events", "yesterday")
        assert res.rc == EXIT_CONFIG
        assert (
            "--to 'yesterday': give an offset (a whole number, the same for every partition), earliest, or" in res.err
        )
        res = replay(events, "events", 0, "--stream", "other")
        assert res.rc == EXIT_CONFIG
        assert f"the state has no stream 'other' (streams: {events.topic})" in res.err


def test_kafka_refuses_a_rewind_below_the_low_watermark(kafka_cluster: MockKafka, kafka_prefix: str, tmp_path: Path):
    project = KafkaProject(kafka_cluster, kafka_prefix, tmp_path, partitions=1)
    project.send(0, 60, pad=100_000)  # 6 MB: the mock keeps 5 MB of a partition and drops the oldest
    project.send(0, 3)
    low = project.low_watermark(0)
    assert 0 < low < 60
    assert project.run() == 63 - low
    state = read_state(tmp_path, "events")
    res = replay(project, "events", 0, "--apply")
    assert res.rc == EXIT_DATA
    assert (
        f"    REFUSED: topic {project.topic}: retention expired: the oldest offset still kept in partition 0 is {low}\n"
    ) in res.out
    assert (
        "    instead: rewind no further than the oldest offsets kept: `dpone state replay-plan events --to earliest`\n"
        in res.out
    )
    assert read_state(tmp_path, "events") == state
    (stream,) = planned(project, "events", "earliest")["streams"]
    assert stream["rewind_to"] == {"0": low}
    assert stream["redeliver"] == {"messages": 63 - low, "partitions": {"0": 63 - low}}
    # Once retention passes the committed offset itself, no rewind serves it: the next run would miss them too.
    project.send(0, 60, pad=100_000)
    gone = project.low_watermark(0)
    assert gone > 63
    res = replay(project, "events", "earliest", "--apply")
    assert res.rc == EXIT_DATA
    assert (
        f"REFUSED: topic {project.topic}: retention expired: partition 0 keeps offsets from {gone} on, past the "
        f"committed offset 63: messages 63 to {gone - 1} are gone\n"
    ) in res.out
    assert f"instead: re-sync the stream: `dpone state clear events --stream {project.topic}`" in res.out
    assert read_state(tmp_path, "events") == state
