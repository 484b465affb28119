"""tap-kafka on the mock Kafka cluster (tests/tools/kafka_mock.py), by class of behaviour: bounded reads,
resume from any state, a tap killed mid-run, decoding, tombstones, metadata columns, schemas, topics,
state errors, start and group offsets, and discovery.

Messages are produced with confluent_kafka to exact partitions; the tap runs in-process
(tests/service/kafka_source.py), and as a process where it has to be killed. Most topics declare their
schema in `streams`, so a run does not sample them; the schema tests let discovery sample.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from dpone_drivers import kafka
from dpone_protocol.codec import EXACT_CODEC
from tests.conftest import Run
from tests.kit.kit import conformed, process_command, process_env
from tests.service.kafka_source import (
    EXIT_CONFIG,
    EXIT_DATA,
    EXIT_TRANSIENT,
    Hooked,
    KafkaLab,
    by_partition,
    error_line,
    first_record,
    offsets,
    record_lines,
    records,
)
from tests.tools.fake_schema_registry import FakeSchemaRegistry

pytestmark = pytest.mark.service

PN_SCHEMA = {
    "type": "object",
    "properties": {"p": {"type": "integer"}, "n": {"type": "integer"}, "late": {"type": ["null", "boolean"]}},
}
METADATA = ["_kafka_topic", "_kafka_partition", "_kafka_offset", "_kafka_timestamp", "_kafka_key"]
WHEN = dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
WHEN_TEXT = "2024-01-02T03:04:05.678+00:00"


@pytest.fixture(autouse=True, params=["compiled", "python"])
def read_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test on both read paths: the compiled Reader (where it applies: JSON values as they came, no
    metadata columns) and the Python one (DPONE_PURE_PYTHON=1, for tap processes too)."""
    if request.param == "python":
        monkeypatch.setattr(kafka, "_FAST", False)
        monkeypatch.setenv("DPONE_PURE_PYTHON", "1")
    elif kafka.fast_module() is None:
        pytest.skip("the compiled Kafka reader is not built (or DPONE_PURE_PYTHON=1)")
    return str(request.param)


def declared(topic: str, schema: dict[str, Any] | None = None, **extra: Any) -> list[dict[str, Any]]:
    """`streams` for one topic with a declared schema (no sampling at discovery)."""
    return [{"topic": topic, "schema": schema or PN_SCHEMA, **extra}]


def ok(run: Run) -> Run:
    assert run.rc == 0, run.stderr
    assert run.messages and run.messages[-1]["type"] == "STATE", "a run ends with a STATE"
    return run


def contiguous(found: dict[int, list[int]], start: dict[int, int], end: dict[int, int]) -> None:
    """Each partition's offsets are exactly start..end-1, in order, once each."""
    for partition in set(start) | set(end) | set(found):
        expected = list(range(start.get(partition, 0), end.get(partition, 0)))
        assert found.get(partition, []) == expected, (partition, found.get(partition), expected)


# -- bounded reads -------------------------------------------------------------------------------------


class TestBoundedReads:
    @pytest.mark.parametrize(
        ("partitions", "empty"), [(1, ()), (3, ()), (4, (0, 2))], ids=["one", "several", "some-empty"]
    )
    def test_a_run_ends_at_the_offsets_fixed_at_its_start_while_producers_write(
        self, lab: KafkaLab, partitions: int, empty: tuple[int, ...]
    ) -> None:
        topic = lab.topic("live", partitions)
        full = [p for p in range(partitions) if p not in empty]
        lab.fill(topic, {p: 40 for p in full})
        config: dict[str, Any] = {"streams": declared(topic), "metadata_columns": True, "state_every_rows": 25}
        # Besides the writer: more messages in every partition once the read is on, in the fetches it gets.
        more = first_record(lambda: lab.fill(topic, {p: 5 for p in full}, start=1000))
        with lab.writing(topic, full) as writer:
            writer.wait_for(len(full) * 20)  # writing before the run starts, and all through it
            before = lab.ends(topic, partitions)
            first = ok(lab.run_within(30, stdout=Hooked(more), **config))
            writer.wait_for(len(full) * 20)  # and after it ended
        after = lab.ends(topic, partitions)

        end = offsets(first.states[-1], topic)
        assert set(end) == set(range(partitions)), "every partition is in the state, empty ones too"
        for p in range(partitions):
            assert before[p] <= end[p] <= after[p], (p, before[p], end[p], after[p])
        assert all(end[p] == 0 for p in empty)
        assert sum(after.values()) > sum(end.values()), "the producer wrote past the end the run fixed"
        # Exactly the messages below the end offsets: from the earliest, none twice, none after.
        contiguous(by_partition(records(first)), {}, end)

        # The next run, from the state: the rest, from exactly where the first stopped.
        second = ok(lab.run(state=first.states[-1], **config))
        contiguous(by_partition(records(second)), end, after)
        assert offsets(second.states[-1], topic) == after

        # Nothing new: no record, and the same state.
        third = ok(lab.run(state=second.states[-1], **config))
        assert records(third) == []
        assert offsets(third.states[-1], topic) == after

    def test_messages_written_to_an_empty_partition_during_a_run_wait_for_the_next(self, lab: KafkaLab) -> None:
        topic = lab.topic("latecomer", 2)
        lab.fill(topic, {0: 30})
        config: dict[str, Any] = {"streams": declared(topic), "metadata_columns": True}
        first = ok(lab.run(stdout=Hooked(first_record(lambda: lab.fill(topic, {0: 3, 1: 4}, start=100))), **config))
        assert offsets(first.states[-1], topic) == {0: 30, 1: 0}
        contiguous(by_partition(records(first)), {}, {0: 30})
        second = ok(lab.run(state=first.states[-1], **config))
        contiguous(by_partition(records(second)), {0: 30, 1: 0}, {0: 33, 1: 4})

    def test_an_empty_topic_gives_a_schema_and_a_state_of_zeros(self, lab: KafkaLab) -> None:
        topic = lab.topic("nothing", 3)
        run = ok(lab.run(streams=declared(topic)))
        assert [m["type"] for m in run.messages] == ["SCHEMA", "STATE"]
        assert run.states[-1]["bookmarks"][topic] == {"topic": topic, "partitions": {"0": 0, "1": 0, "2": 0}}


# -- resume -----------------------------------------------------------------------------------------------


class TestResume:
    @pytest.mark.parametrize("counts", [{0: 11}, {0: 5, 1: 0, 2: 9, 3: 4}], ids=["one", "several"])
    def test_a_run_from_any_state_of_a_run_emits_exactly_the_messages_after_it(
        self, lab: KafkaLab, counts: dict[int, int]
    ) -> None:
        topic = lab.topic("resume", len(counts))
        lab.fill(topic, counts)
        config: dict[str, Any] = {"streams": declared(topic), "metadata_columns": True, "state_every_rows": 3}
        first = ok(lab.run(**config))
        end = offsets(first.states[-1], topic)
        assert end == counts
        everything = by_partition(records(first))
        contiguous(everything, {}, end)

        kinds = [m["type"] for m in first.messages]
        cuts = [i for i, kind in enumerate(kinds) if kind == "STATE"]
        assert len(cuts) >= sum(counts.values()) // 3, "a STATE every 3 records"
        for cut in cuts:
            state = first.messages[cut]["value"]
            at = offsets(state, topic)
            before = by_partition([m["record"] for m in first.messages[:cut] if m["type"] == "RECORD"])
            # A state covers exactly the records before it.
            contiguous(before, {}, at)
            # The saved STATE message works as --state as well as its bare value.
            resumed = ok(lab.run(state=first.messages[cut] if cut == cuts[0] else state, **config))
            contiguous(by_partition(records(resumed)), at, end)
            assert offsets(resumed.states[-1], topic) == end

    def test_a_partition_the_state_does_not_name_starts_at_the_earliest(self, lab: KafkaLab) -> None:
        topic = lab.topic("partial", 3)
        lab.fill(topic, {0: 4, 1: 3, 2: 2})
        state = {"bookmarks": {topic: {"topic": topic, "partitions": {"0": 2}}}}
        run = ok(lab.run(state=state, streams=declared(topic), metadata_columns=True))
        contiguous(by_partition(records(run)), {0: 2}, {0: 4, 1: 3, 2: 2})

    def test_a_state_without_the_topic_name_resumes_too(self, lab: KafkaLab) -> None:
        topic = lab.topic("anonymous", 1)
        lab.fill(topic, {0: 5})
        state = {"bookmarks": {topic: {"partitions": {"0": 3}}}}
        run = ok(lab.run(state=state, streams=declared(topic), metadata_columns=True))
        contiguous(by_partition(records(run)), {0: 3}, {0: 5})
        assert run.states[-1]["bookmarks"][topic] == {"topic": topic, "partitions": {"0": 5}}

    def test_other_streams_bookmarks_are_kept(self, lab: KafkaLab) -> None:
        topic = lab.topic("neighbours", 1)
        lab.fill(topic, {0: 2})
        state = {"bookmarks": {"someone-else": {"replication_key_value": 5}}}
        run = ok(lab.run(state=state, streams=declared(topic)))
        assert run.states[-1]["bookmarks"]["someone-else"] == {"replication_key_value": 5}


# -- a tap killed mid-run ---------------------------------------------------------------------------

# tap-kafka as a process that SIGKILLs itself at a chosen point of its output: at the Nth RECORD (half of
# its line out: the target sees a cut line) or before the Nth STATE (what came before is out, whole).
KILLED_TAP = """
import os, signal, sys
from dpone.taps.framework.tap_cli import run
from dpone.taps.kafka.tap import KafkaTap

point, n = sys.argv[1], int(sys.argv[2])
raw = open(1, "wb", buffering=1 << 20, closefd=False)
seen = {"RECORD": 0, "STATE": 0}


class Out:
    def write(self, data):
        # Line by line: the compiled reader writes a block of RECORD lines at once.
        for line in bytes(data).splitlines(keepends=True):
            kind = line[9:15].decode(errors="replace").strip('"')
            if kind in seen:
                seen[kind] += 1
                if kind == point and seen[kind] == n:
                    if kind == "RECORD":
                        raw.write(line[: len(line) // 2])
                    raw.flush()
                    os.kill(os.getpid(), signal.SIGKILL)
            raw.write(line)
        return len(data)

    def flush(self):
        raw.flush()


sys.exit(run(KafkaTap, sys.argv[3:], stdout=Out()))
"""


class Pipeline:
    """`tap-kafka | target` as two processes joined by a pipe; each run resumes from the last state the
    target echoed."""

    def __init__(self, lab: KafkaLab, target: str, target_config: dict[str, Any], **tap_config: Any) -> None:
        self.lab = lab
        self.target = target
        self.target_config = target_config
        self.tap_config = tap_config
        self.state: dict[str, Any] | None = None
        self.runs = 0

    def run(self, point: str = "none", n: int = 0) -> tuple[int, int, list[dict[str, Any]]]:
        """(tap exit code, target exit code, the states the target echoed)."""
        self.runs += 1
        workdir = self.lab.workdir
        tap_err = (workdir / f"tap-{self.runs}.err").open("wb")
        target_err = (workdir / f"target-{self.runs}.err").open("wb")
        target_argv = ["--config", self.lab.file("target-config", self.target_config)]
        tap = subprocess.Popen(
            [sys.executable, "-c", KILLED_TAP, point, str(n), *self.lab.argv(state=self.state, **self.tap_config)],
            stdout=subprocess.PIPE,
            stderr=tap_err,
            env=process_env(),
        )
        assert tap.stdout is not None
        target = subprocess.Popen(
            [*process_command(f"dpone.targets.{self.target}.cli"), *target_argv],
            stdin=tap.stdout,
            stdout=subprocess.PIPE,
            stderr=target_err,
            env=process_env(),
        )
        tap.stdout.close()  # the target holds the only reading end: the tap sees it go if it dies
        out, _ = target.communicate(timeout=60)
        tap_rc = tap.wait(timeout=60)
        tap_err.close()
        target_err.close()
        echoed = [orjson.loads(line) for line in out.splitlines() if line.strip()]
        if echoed:
            self.state = echoed[-1]
        return tap_rc, target.returncode, echoed

    def stderr(self, who: str) -> str:
        return (self.lab.workdir / f"{who}-{self.runs}.err").read_text()


def jsonl_rows(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


KILLS = [("RECORD", 6), ("STATE", 3), ("RECORD", 1), ("STATE", 1)]


class TestKilledTap:
    def test_killed_runs_into_jsonl_deliver_every_offset_at_least_once(self, lab: KafkaLab) -> None:
        topic = lab.topic("killed_jsonl", 3)
        counts = {0: 20, 1: 0, 2: 17}
        lab.fill(topic, counts)
        out = lab.workdir / "out"
        pipeline = Pipeline(
            lab,
            "jsonl",
            {"destination_path": str(out), "batch_size_rows": 5},
            streams=declared(topic),
            metadata_columns=True,
            state_every_rows=4,
        )
        path = out / f"{topic}.jsonl"
        for point, n in KILLS:
            tap_rc, _, echoed = pipeline.run(point, n)
            assert tap_rc == -signal.SIGKILL, f"the tap was to die at {point} {n}: {pipeline.stderr('tap')}"
            # Whatever the target echoed is in the file: a state never runs ahead of the data.
            if echoed:
                covered = offsets(echoed[-1], topic)
                found = {(r["_kafka_partition"], r["_kafka_offset"]) for r in jsonl_rows(path)}
                assert all((p, o) in found for p, end in covered.items() for o in range(end)), (point, n)
        tap_rc, target_rc, echoed = pipeline.run()
        assert (tap_rc, target_rc) == (0, 0), pipeline.stderr("tap") + pipeline.stderr("target")
        assert offsets(echoed[-1], topic) == counts
        delivered = Counter((r["_kafka_partition"], r["_kafka_offset"]) for r in jsonl_rows(path))
        expected = {(p, o) for p, count in counts.items() for o in range(count)}
        assert set(delivered) == expected, "every offset at least once, nothing else"
        assert max(delivered.values()) > 1, "some offsets came twice: the kills did cut runs short"

    @pytest.mark.parametrize("keyed_by", ["message_key", "metadata"])
    def test_killed_runs_into_a_keyed_table_deliver_every_offset_exactly_once(
        self, lab: KafkaLab, keyed_by: str
    ) -> None:
        topic = lab.topic(f"killed_{keyed_by}", 2)
        counts = {0: 18, 1: 15}
        if keyed_by == "message_key":
            # As target-kafka writes them: the key properties as a JSON object; discovery infers the key.
            for p, count in counts.items():
                for n in range(count):
                    lab.send(topic, {"id": p * 1000 + n, "p": p, "n": n}, {"id": p * 1000 + n}, partition=p)
            lab.flush()
            tap_config: dict[str, Any] = {"topics": [topic]}
            key = "id"
        else:
            lab.fill(topic, counts)
            tap_config = {"streams": declared(topic), "metadata_columns": True}
            key = "_kafka_partition, _kafka_offset"
        db = lab.workdir / "dest.duckdb"
        pipeline = Pipeline(
            lab, "duckdb", {"filepath": str(db), "batch_size_rows": 4}, state_every_rows=5, **tap_config
        )
        for point, n in KILLS:
            tap_rc, _, _ = pipeline.run(point, n)
            assert tap_rc == -signal.SIGKILL, pipeline.stderr("tap")
        tap_rc, target_rc, echoed = pipeline.run()
        assert (tap_rc, target_rc) == (0, 0), pipeline.stderr("tap") + pipeline.stderr("target")
        assert offsets(echoed[-1], topic) == counts
        with duckdb.connect(str(db), read_only=True) as conn:
            table = conformed(topic)
            total, distinct = conn.execute(f"SELECT count(*), count(DISTINCT ({key})) FROM {table}").fetchone() or (
                0,
                0,
            )
            pairs = conn.execute(f"SELECT p, n FROM {table}").fetchall()
        assert total == distinct == sum(counts.values()), "every message exactly once"
        assert set(pairs) == {(p, n) for p, count in counts.items() for n in range(count)}


# -- decoding ---------------------------------------------------------------------------------------------

EXACT_VALUES = [
    b'{"big":123456789012345678901234567890,"neg":-98765432109876543210987654321}',
    b'{"d":1234567890.12345678901234567890,"e":1.5E+300,"z":-0.0}',
    '{"text":"h\u00e9llo \u4e16\u754c \U0001f600","rtl":"\u05e9\u05dc\u05d5\u05dd"}'.encode(),
    rb'{"esc":"quote \" slash \\ tab \t nl \n u \u00e9 \ud83d\ude00 \u0000","slash":"a\/b"}',
    b'{"nested":{"a":[1,2.50,{"b":null}],"c":true},"empty":{},"list":[]}',
    b'  {"spaced" : 1 ,\t"x":[ 1 , 2 ] }  ',
]
PRETTY = b'{\n  "a": 1,\n  "b": {\n    "c": "x y"\n  },\r\n  "d": 12345678901234567890123.000\n}\n'


class TestDecoding:
    def test_json_objects_pass_through_byte_exact(self, lab: KafkaLab) -> None:
        topic = lab.topic("exact", 1)
        for value in EXACT_VALUES:
            lab.send(topic, value)
        lab.flush()
        run = ok(lab.run(streams=declared(topic, {"type": "object", "properties": {}})))
        lines = record_lines(run)
        assert len(lines) == len(EXACT_VALUES)
        for line, value in zip(lines, EXACT_VALUES, strict=True):
            assert b'"record":' + value + b',"time_extracted"' in line, line

    def test_a_pretty_printed_value_stays_one_line_with_every_digit(self, lab: KafkaLab) -> None:
        topic = lab.topic("pretty", 1)
        lab.send(topic, PRETTY)
        lab.flush()
        for metadata in (False, True):
            run = ok(lab.run(streams=declared(topic, {"type": "object", "properties": {}}), metadata_columns=metadata))
            (line,) = record_lines(run)
            (record,) = records(run)
            assert {k: v for k, v in record.items() if not k.startswith("_kafka_")} == EXACT_CODEC.loads(PRETTY)
            assert str(record["d"]) == "12345678901234567890123.000"
            assert line.count(b"\n") == 0

    @pytest.mark.parametrize(
        ("value", "why"),
        [
            (b"[1, 2]", "JSON array"),
            (b"42", "JSON number"),
            (b'"text"', "JSON string"),
            (b"null", "JSON null"),
            (b"true", "JSON boolean"),
            (b'{"a": 1', "not JSON"),
            (b'{"a": 1} {"b": 2}', "not JSON"),
            (b'{"a": NaN}', "not JSON"),
            (b"", "not JSON"),
            (b'{"a": "\xff\xfe"}', "not JSON"),
            (b'{"a": "\xed\xa0\x80"}', "not JSON"),  # a UTF-16 surrogate encoded in UTF-8: not UTF-8
            ('{"a": 123456789012345678901234567890}'.encode("utf-16-le"), "not JSON"),
            ("\ufeff{}".encode(), "not JSON"),
        ],
        ids=[
            "array",
            "number",
            "string",
            "null",
            "boolean",
            "cut",
            "two-values",
            "nan",
            "empty",
            "invalid-utf8",
            "surrogate-utf8",
            "utf16",
            "bom",
        ],
    )
    def test_a_value_that_is_not_a_json_object_stops_the_run_naming_it(
        self, lab: KafkaLab, value: bytes, why: str
    ) -> None:
        topic = lab.topic("bad", 2)
        lab.fill(topic, {0: 3, 1: 4})
        lab.send(topic, value, partition=1)
        lab.fill(topic, {1: 2}, start=4)
        run = lab.run(streams=declared(topic), metadata_columns=True, state_every_rows=2)
        assert run.rc == EXIT_DATA, (run.rc, run.stderr, run.stdout[-500:])
        line = error_line(run)
        assert f"topic {topic} partition 1 offset 4" in line, line
        assert why in line and "on_invalid_message" in line, line
        # No state passes the message; everything before it on its partition came.
        assert all(offsets(state, topic).get(1, 0) <= 4 for state in run.states)
        assert by_partition(records(run)).get(1, []) == list(range(4))

    def _bad_mix(self, lab: KafkaLab, topic: str) -> list[tuple[int, int, bytes | None, bytes | None]]:
        """Good messages around bad ones in two partitions; (partition, offset, key, value) of the bad."""
        bad: list[tuple[int, int, bytes | None, bytes | None]] = []
        plan: dict[int, list[bytes | None]] = {
            0: [b'{"p":0,"n":0}', b"[1]", b'{"p":0,"n":2}', b"nope"],
            1: [b'{"p":1,"n":0}', None, b'{"p":1,"n":2}'],
        }
        for p, values in plan.items():
            for offset, value in enumerate(values):
                key = b"k\xff" if value is None else f"key-{p}-{offset}".encode()
                lab.send(topic, value, key, partition=p, headers=[("origin", b"test")], timestamp=WHEN)
                if value is None or not value.startswith(b'{"p"'):
                    bad.append((p, offset, key, value))
        lab.flush()
        return bad

    def test_dead_letters_go_to_a_file_before_a_state_passes_them(self, lab: KafkaLab) -> None:
        topic = lab.topic("dlq_file", 2)
        bad = self._bad_mix(lab, topic)
        where = lab.workdir / "dead"
        path = where / f"{topic}.jsonl"
        checks: list[int] = []

        def check(data: bytes) -> None:
            """At each STATE, every dead letter it passes is in the file already."""
            if data.startswith(b'{"type":"STATE"'):
                passed = offsets(orjson.loads(data)["value"], topic)
                lines = [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []
                written = {(d["partition"], d["offset"]) for d in lines}
                for p, offset, _, _ in bad:
                    if offset < passed.get(p, 0):
                        assert (p, offset) in written, f"a STATE passed dead letter {p}/{offset} before it was written"
                checks.append(len(written))

        run = ok(
            lab.run(
                stdout=Hooked(check),
                streams=declared(topic),
                on_invalid_message="dead_letter",
                dead_letter_path=str(where),
                state_every_rows=1,
            )
        )
        assert sorted((r["p"], r["n"]) for r in records(run)) == [(0, 0), (0, 2), (1, 0), (1, 2)]
        assert offsets(run.states[-1], topic) == {0: 4, 1: 3}
        assert checks and checks[-1] == len(bad)
        # Partitions are read in no set order: the lines follow their partition's order only.
        lines = sorted(
            (orjson.loads(line) for line in path.read_bytes().splitlines()), key=lambda d: (d["partition"], d["offset"])
        )
        assert [(d["partition"], d["offset"]) for d in lines] == [(p, o) for p, o, _, _ in bad]
        for line, (_, _, key, value) in zip(lines, bad, strict=True):
            assert line["topic"] == topic and line["timestamp"] == WHEN_TEXT
            assert line["key_base64"] == (None if key is None else base64.b64encode(key).decode())
            assert line["value_base64"] == (None if value is None else base64.b64encode(value).decode())
            assert line["error"], line
        assert "tombstone" in lines[-1]["error"]
        assert "3 messages did not decode" in run.stderr and str(path) in run.stderr

    def test_dead_letters_go_to_a_topic_as_they_were_with_the_error(self, lab: KafkaLab) -> None:
        topic = lab.topic("dlq_src", 2)
        dlq = lab.topic("dlq", 1)
        bad = self._bad_mix(lab, topic)
        sent: list[int] = []

        def check(data: bytes) -> None:
            """At each STATE, the dead-letter topic holds every dead letter the state passes."""
            if data.startswith(b'{"type":"STATE"'):
                passed = offsets(orjson.loads(data)["value"], topic)
                due = sum(1 for p, offset, _, _ in bad if offset < passed.get(p, 0))
                acknowledged = lab.ends(dlq, 1)[0]
                assert acknowledged >= due, f"a STATE passed {due} dead letters, {acknowledged} acknowledged"
                sent.append(acknowledged)

        run = ok(
            lab.run(
                stdout=Hooked(check),
                streams=declared(topic),
                on_invalid_message="dead_letter",
                dead_letter_topic=dlq,
                state_every_rows=1,
            )
        )
        assert len(records(run)) == 4 and sent[-1] == len(bad)
        # Partitions are read in no set order: the letters follow their partition's order only.
        letters = sorted(lab.read_all(dlq, 1), key=lambda m: dict(m.headers() or [])["dpone-source"])
        assert [(m.key(), m.value()) for m in letters] == [(key, value) for _, _, key, value in bad]
        for message, (p, offset, _, _) in zip(letters, bad, strict=True):
            headers = dict(message.headers() or [])
            assert headers["origin"] == b"test"  # the message's own headers are kept
            assert headers["dpone-error"]
            assert headers["dpone-source"] == f"{topic}/{p}/{offset}".encode()


# -- tombstones --------------------------------------------------------------------------------------------

ORDERS = {
    "type": "object",
    "properties": {"tenant": {"type": "string"}, "id": {"type": "integer"}, "amount": {"type": "number"}},
}


class TestTombstones:
    def test_a_tombstone_with_a_json_object_key_is_a_delete(self, lab: KafkaLab) -> None:
        topic = lab.topic("tomb", 1)
        key = {"tenant": "a", "id": 7}
        lab.send(topic, {"tenant": "a", "id": 7, "amount": 1.5}, key)
        lab.send(topic, None, key, timestamp=WHEN)
        lab.flush()
        streams = declared(topic, ORDERS, key_properties=["tenant", "id"])
        for metadata in (False, True):
            run = ok(lab.run(streams=streams, metadata_columns=metadata))
            (schema,) = run.of_type("SCHEMA")
            assert schema["schema"]["properties"]["_sdc_deleted_at"] == {
                "type": ["null", "string"],
                "format": "date-time",
            }
            rows = records(run)
            assert len(rows) == 2, rows
            assert {k: v for k, v in rows[1].items() if not k.startswith("_kafka_")} == {
                "tenant": "a",
                "id": 7,
                "_sdc_deleted_at": WHEN_TEXT,
            }
            if metadata:
                assert rows[1]["_kafka_offset"] == 1 and rows[1]["_kafka_key"] == '{"tenant":"a","id":7}'

    def test_a_tombstone_deletes_its_key_by_its_exact_value(self, lab: KafkaLab) -> None:
        topic = lab.topic("tomb_wide", 1)
        lab.send(topic, None, b'{"id":123456789012345678901234567890,"code":0.100000000000000000000000000001}')
        lab.flush()
        schema = {"type": "object", "properties": {"id": {"type": "integer"}, "code": {"type": "number"}}}
        run = ok(lab.run(streams=declared(topic, schema, key_properties=["id", "code"])))
        (row,) = records(run)
        assert row["id"] == 123456789012345678901234567890
        assert row["code"] == Decimal("0.100000000000000000000000000001")

    @pytest.mark.parametrize("key", [None, b"plain-text", b"[1,2]", b'"id"', b"{broken"], ids=repr)
    def test_a_tombstone_whose_key_is_not_a_json_object_is_an_invalid_message(
        self, lab: KafkaLab, key: bytes | None
    ) -> None:
        topic = lab.topic("tomb_bad", 1)
        lab.fill(topic, {0: 2})
        lab.send(topic, None, key)
        lab.flush()
        run = lab.run(streams=declared(topic))
        assert run.rc == EXIT_DATA, run.stderr
        assert f"topic {topic} partition 0 offset 2" in error_line(run) and "tombstone" in error_line(run)
        letters = lab.workdir / "dead"
        run = ok(lab.run(streams=declared(topic), on_invalid_message="dead_letter", dead_letter_path=str(letters)))
        assert len(records(run)) == 2
        (line,) = (letters / f"{topic}.jsonl").read_bytes().splitlines()
        assert orjson.loads(line)["offset"] == 2 and orjson.loads(line)["value_base64"] is None


# -- metadata columns ------------------------------------------------------------------------------------


class TestMetadataColumns:
    def test_off_the_record_is_the_value_and_on_the_metadata_follow_it(self, lab: KafkaLab) -> None:
        topic = lab.topic("meta", 2)
        lab.send(topic, {"a": 1, "b": "x"}, b"k1", partition=1, timestamp=WHEN)
        lab.send(topic, {"a": 2}, None, partition=1, timestamp=WHEN)
        lab.send(topic, {}, b"caf\xc3\xa9 \xff", partition=1, timestamp=WHEN)
        lab.flush()
        streams = declared(topic, {"type": "object", "properties": {"a": {"type": "integer"}}})
        off = ok(lab.run(streams=streams))
        assert records(off) == [{"a": 1, "b": "x"}, {"a": 2}, {}]
        assert not any(k in off.of_type("SCHEMA")[0]["schema"]["properties"] for k in METADATA)
        assert off.of_type("SCHEMA")[0]["key_properties"] == []

        on = ok(lab.run(streams=streams, metadata_columns=True))
        (schema,) = on.of_type("SCHEMA")
        assert list(schema["schema"]["properties"]) == ["a", "_sdc_deleted_at", *METADATA]
        assert schema["key_properties"] == ["_kafka_partition", "_kafka_offset"]
        rows = records(on)
        common = {"_kafka_topic": topic, "_kafka_partition": 1, "_kafka_timestamp": WHEN_TEXT}
        assert rows == [
            {"a": 1, "b": "x", **common, "_kafka_offset": 0, "_kafka_key": "k1"},
            {"a": 2, **common, "_kafka_offset": 1, "_kafka_key": None},
            {**common, "_kafka_offset": 2, "_kafka_key": "café \\xff"},
        ]
        assert [list(r)[:2] for r in rows[:1]] == [["a", "b"]], "the value's own fields first"

    def test_a_value_with_a_metadata_field_of_its_own_keeps_every_digit(self, lab: KafkaLab) -> None:
        topic = lab.topic("meta_clash", 1)
        value = b'{"_kafka_offset":"mine","big":123456789012345678901234567890,"d":0.100000000000000000000000000001}'
        lab.send(topic, value, b"k")
        lab.flush()
        run = ok(lab.run(streams=declared(topic, {"type": "object", "properties": {}}), metadata_columns=True))
        (line,) = record_lines(run)
        assert line.count(b'"_kafka_offset"') == 1, "no key twice in a record"
        (record,) = records(run)
        assert record["_kafka_offset"] == 0, "the column is the message's offset"
        assert record["big"] == 123456789012345678901234567890
        assert record["d"] == Decimal("0.100000000000000000000000000001")


# -- schemas -----------------------------------------------------------------------------------------------


def props(run: Run) -> dict[str, Any]:
    found: dict[str, Any] = run.of_type("SCHEMA")[0]["schema"]["properties"]
    return found


class TestSchemas:
    def test_a_declared_schema_renames_the_stream_and_names_its_keys(self, lab: KafkaLab) -> None:
        topic = lab.topic("orders.v1", 2)
        lab.send(topic, {"tenant": "a", "id": 1, "amount": 2.5}, partition=1)
        lab.flush()
        streams = [{"topic": topic, "stream": "orders", "key_properties": ["tenant", "id"], "schema": ORDERS}]
        catalog = lab.discover(streams=streams)
        (entry,) = catalog["streams"]
        assert entry["tap_stream_id"] == "orders" and entry["key_properties"] == ["tenant", "id"]
        run = ok(lab.run(streams=streams))
        (schema,) = run.of_type("SCHEMA")
        assert schema["stream"] == "orders" and schema["key_properties"] == ["tenant", "id"]
        assert list(schema["schema"]["properties"]) == ["tenant", "id", "amount", "_sdc_deleted_at"]
        assert [m["stream"] for m in run.of_type("RECORD")] == ["orders"]
        assert run.states[-1]["bookmarks"] == {"orders": {"topic": topic, "partitions": {"0": 0, "1": 1}}}

    @pytest.mark.parametrize(
        "entry",
        [
            {"topic": "{t}", "key_properties": ["nope"], "schema": ORDERS},
            {"topic": "{t}", "schema": {"type": "object"}},
            {"stream": "x"},
        ],
        ids=["key-not-in-schema", "schema-without-properties", "no-topic"],
    )
    def test_a_bad_declaration_is_a_config_error(self, lab: KafkaLab, entry: dict[str, Any]) -> None:
        topic = lab.topic("declared_bad", 1)
        entry = {k: (v.replace("{t}", topic) if isinstance(v, str) else v) for k, v in entry.items()}
        run = lab.run(streams=[entry])
        assert run.rc == EXIT_CONFIG, run.stderr
        assert "streams" in error_line(run)

    def test_an_inferred_schema_types_every_field_and_takes_the_key_from_json_keys(self, lab: KafkaLab) -> None:
        topic = lab.topic("inferred", 3)
        for i in range(12):
            value = {
                "id": i,
                "price": i + 0.25,
                "name": f"n{i}",
                "ok": i % 2 == 0,
                "at": f"2024-01-{i + 1:02d}T00:00:00Z",
                "day": f"2024-02-{i + 1:02d}",
                "tags": ["a", "b"],
                "obj": {"k": i},
                "maybe": None if i % 3 else "x",
            }
            lab.send(topic, value, {"id": i}, partition=i % 3)
        lab.flush()
        run = ok(lab.run(topics=[topic]))
        found = props(run)
        assert list(found) == ["id", "price", "name", "ok", "at", "day", "tags", "obj", "maybe", "_sdc_deleted_at"]
        assert found["id"]["type"] == ["null", "integer"]
        assert found["price"]["type"] == ["null", "number"]
        assert found["name"]["type"] == ["null", "string"] and "format" not in found["name"]
        assert found["ok"]["type"] == ["null", "boolean"]
        assert found["at"]["format"] == "date-time" and found["day"]["format"] == "date"
        assert "array" in found["tags"]["type"] and "object" in found["obj"]["type"]
        assert "string" in found["maybe"]["type"]
        assert run.of_type("SCHEMA")[0]["key_properties"] == ["id"]
        assert len(records(run)) == 12

    def test_an_inferred_integer_wider_than_64_bits_stays_an_integer(self, lab: KafkaLab) -> None:
        topic = lab.topic("inferred_wide", 1)
        for i in range(3):
            lab.send(topic, b'{"id":%d,"wide":12345678901234567890123456789%d}' % (i, i))
        lab.flush()
        run = ok(lab.run(topics=[topic]))
        wide = props(run)["wide"]
        # An exact column: integer with bounds a 64-bit one cannot hold (schema_inference.py), not a float.
        assert wide["type"] == ["null", "integer"], wide
        assert wide.get("maximum", 0) >= 10**29, wide
        assert [r["wide"] for r in records(run)] == [123456789012345678901234567890 + i for i in range(3)]

    def test_stream_maps_drop_and_rename_with_every_digit(self, lab: KafkaLab) -> None:
        topic = lab.topic("mapped", 1)
        lab.send(topic, b'{"id":1,"secret":"x","big":123456789012345678901234567890,"d":1.000000000000000000001}')
        lab.flush()
        schema = {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "secret": {"type": "string"},
                "big": {"type": "integer"},
                "d": {"type": "number"},
            },
        }
        maps = {topic: {"__alias__": "renamed", "secret": None}}
        run = ok(lab.run(streams=declared(topic, schema, key_properties=["id"]), stream_maps=maps))
        (schema_message,) = run.of_type("SCHEMA")
        assert schema_message["stream"] == "renamed"
        assert "secret" not in schema_message["schema"]["properties"]
        (record,) = records(run)
        assert record == {"id": 1, "big": 123456789012345678901234567890, "d": Decimal("1.000000000000000000001")}
        assert [m["stream"] for m in run.of_type("RECORD")] == ["renamed"]

    @pytest.mark.parametrize(
        ("keys", "expected"),
        [
            ([{"tenant": "a", "id": 1}, {"tenant": "b", "id": 2}], ["tenant", "id"]),
            ([{"id": 1}, {"other": 2}], []),
            ([{"id": 1}, {"id": 2, "tenant": "b"}], []),
            ([{"id": 1}, None], []),
            ([b"1", b"2"], []),
            ([b"text", b"more"], []),
            ([{"missing": 1}, {"missing": 2}], []),
        ],
        ids=["composite", "differ", "grow", "one-without", "not-objects", "not-json", "not-in-values"],
    )
    def test_key_properties_come_only_from_consistent_json_object_keys(
        self, lab: KafkaLab, keys: list[Any], expected: list[str]
    ) -> None:
        topic = lab.topic("keys", 1)
        for i, key in enumerate(keys):
            lab.send(topic, {"tenant": "t", "id": i, "v": i}, key)
        lab.flush()
        run = ok(lab.run(topics=[topic]))
        assert run.of_type("SCHEMA")[0]["key_properties"] == expected

    def test_avro_values_decode_with_the_schema_from_the_registry(self, lab: KafkaLab) -> None:
        from fastavro import parse_schema, schemaless_writer

        topic = lab.topic("avro", 2)
        avro = {
            "type": "record",
            "name": "Order",
            "fields": [
                {"name": "id", "type": "long"},
                {"name": "name", "type": "string"},
                {"name": "score", "type": "double"},
                {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                {"name": "note", "type": ["null", "string"], "default": None},
                {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 4}},
            ],
        }
        with FakeSchemaRegistry() as registry:
            schema_id = register(registry.url, f"{topic}-value", avro)
            parsed = parse_schema(avro)
            for i in range(4):
                payload = io.BytesIO()
                payload.write(b"\x00" + schema_id.to_bytes(4, "big"))
                record = {
                    "id": i,
                    "name": f"é{i}",
                    "score": i / 4,
                    "at": WHEN,
                    "note": None if i % 2 else "n",
                    "amount": Decimal("12345678901234.5678") + i,
                }
                schemaless_writer(payload, parsed, record)
                lab.send(topic, payload.getvalue(), {"id": i}, partition=i % 2)
            lab.send(topic, None, {"id": 3}, partition=1, timestamp=WHEN)
            lab.flush()
            config: dict[str, Any] = {"topics": [topic], "value_format": "avro", "schema_registry_url": registry.url}
            run = ok(lab.run(**config, metadata_columns=True))
            missing = lab.run(**{**config, "topics": [lab.topic("avro_unregistered", 1)]})
        found = props(run)
        assert list(found)[:6] == ["id", "name", "score", "at", "note", "amount"]
        assert "integer" in found["id"]["type"] and "string" in found["name"]["type"]
        assert found["at"].get("format") == "date-time"
        rows = sorted(records(run), key=lambda r: (r["_kafka_partition"], r["_kafka_offset"]))
        values = [{k: v for k, v in r.items() if not k.startswith("_kafka_")} for r in rows]
        assert values[0] == {
            "id": 0,
            "name": "é0",
            "score": 0,
            "at": "2024-01-02T03:04:05.678000+00:00",
            "note": "n",
            "amount": Decimal("12345678901234.5678"),  # every digit, a JSON number
        }
        assert values[-1] == {"id": 3, "_sdc_deleted_at": WHEN_TEXT}
        assert len(values) == 5
        assert missing.rc == EXIT_CONFIG, missing.stderr
        assert f"{lab.prefix}avro_unregistered-value" in error_line(missing)

    def test_a_value_that_is_not_confluent_avro_is_an_invalid_message(self, lab: KafkaLab) -> None:
        topic = lab.topic("avro_bad", 1)
        with FakeSchemaRegistry() as registry:
            register(
                registry.url,
                f"{topic}-value",
                {"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]},
            )
            lab.send(topic, b'{"a": 1}')
            lab.flush()
            run = lab.run(topics=[topic], value_format="avro", schema_registry_url=registry.url)
        assert run.rc == EXIT_DATA, run.stderr
        assert f"topic {topic} partition 0 offset 0" in error_line(run)


def register(url: str, subject: str, schema: dict[str, Any]) -> int:
    """Register a schema the way any client does (POST /subjects/<s>/versions); its id."""
    body = json.dumps({"schema": json.dumps(schema)}).encode()
    request = urllib.request.Request(
        f"{url}/subjects/{subject}/versions",
        body,
        {"Content-Type": "application/vnd.schemaregistry.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # the local fake registry
        return int(json.loads(answer.read())["id"])


# -- topics ------------------------------------------------------------------------------------------------


class TestTopics:
    def test_a_list_of_topics_is_read_in_its_order(self, lab: KafkaLab) -> None:
        second, first = lab.topic("b_second", 1), lab.topic("a_first", 2)
        lab.fill(second, {0: 2})
        lab.fill(first, {0: 1, 1: 1})
        streams = [*declared(first), *declared(second)]
        run = ok(lab.run(topics=[second, first], streams=streams))
        assert [m["stream"] for m in run.of_type("SCHEMA")] == [second, first]
        assert set(run.states[-1]["bookmarks"]) == {first, second}

    def test_a_pattern_reads_every_matching_topic_but_internal_ones(self, lab: KafkaLab) -> None:
        matching = [lab.topic("orders.eu", 1), lab.topic("orders.us", 1)]
        lab.topic("ordersXus", 1)
        lab.topic("customers", 1)
        internal = f"__{lab.prefix}orders.internal"
        lab.broker.create_topic(internal, 1)
        for topic in [*matching, internal]:
            lab.fill(topic, {0: 1})
        pattern = rf"(__)?{lab.prefix}orders\..*"
        catalog = lab.discover(topic_pattern=pattern)
        assert sorted(e["tap_stream_id"] for e in catalog["streams"]) == sorted(matching)
        # A whole-name match: a prefix of a name is not enough.
        assert lab.discover(topic_pattern=f"{lab.prefix}orders")["streams"] == []

    @pytest.mark.parametrize(
        ("config", "says"),
        [
            ({"topics": ["{p}missing"]}, "do not exist"),
            ({"topic_pattern": "(unclosed"}, "topic_pattern"),
            ({"topics": ["bad name!"]}, "not a valid Kafka topic name"),
            ({}, "topics, topic_pattern or streams"),
            (
                {"streams": [{"topic": "{p}one", "stream": "same"}, {"topic": "{p}two", "stream": "same"}]},
                "same stream name",
            ),
            ({"topics": ["{p}two"], "streams": [{"topic": "{p}one", "stream": "{p}two"}]}, "same stream name"),
        ],
        ids=["missing", "bad-regex", "bad-name", "nothing", "two-topics-one-stream", "renamed-onto-another"],
    )
    def test_topics_that_cannot_be_read_are_a_config_error(
        self, lab: KafkaLab, config: dict[str, Any], says: str
    ) -> None:
        for name in ("one", "two"):
            lab.fill(lab.topic(name, 1), {0: 1})
        config = orjson.loads(orjson.dumps(config).replace(b"{p}", lab.prefix.encode()))
        started = time.monotonic()
        run = lab.run(**config)
        assert run.rc == EXIT_CONFIG, run.stderr
        assert says in error_line(run), error_line(run)
        assert run.stdout == b"", "nothing is emitted before the check"
        assert time.monotonic() - started < 10


# -- state errors ---------------------------------------------------------------------------------------------


class TestStateErrors:
    def test_a_state_of_another_topic_says_how_to_start_over(self, lab: KafkaLab) -> None:
        topic = lab.topic("moved", 1)
        lab.fill(topic, {0: 3})
        state = {"bookmarks": {"orders": {"topic": "elsewhere", "partitions": {"0": 2}}}}
        run = lab.run(state=state, streams=[{"topic": topic, "stream": "orders", "schema": PN_SCHEMA}])
        assert run.rc == EXIT_CONFIG, run.stderr
        line = error_line(run)
        assert "elsewhere" in line and topic in line and "dpone state clear" in line, line
        assert records(run) == []

    def test_a_state_beyond_the_end_of_a_partition_is_a_config_error(self, lab: KafkaLab) -> None:
        topic = lab.topic("recreated", 2)
        lab.fill(topic, {0: 3, 1: 3})
        state = {"bookmarks": {topic: {"topic": topic, "partitions": {"0": 1, "1": 99}}}}
        run = lab.run(state=state, streams=declared(topic))
        assert run.rc == EXIT_CONFIG, run.stderr
        assert "99" in error_line(run) and "partition 1" in error_line(run), error_line(run)
        assert records(run) == []

    @pytest.fixture
    def truncated(self, lab: KafkaLab) -> tuple[str, int, int]:
        """A partition whose oldest messages the broker dropped: (topic, low watermark, high watermark).

        The mock cluster keeps 5 MB per partition: 70 messages of 100 kB, each its own batch, push the
        first ones out."""
        topic = lab.topic("truncated", 1)
        pad = "x" * 100_000
        for n in range(70):
            lab.send(topic, {"p": 0, "n": n, "pad": pad})
            lab.flush()
        ((low, high),) = lab.watermarks(topic, 1).values()
        assert 5 < low < high == 70, (low, high)
        return topic, low, high

    def test_an_offset_gap_stops_the_run_by_default(self, lab: KafkaLab, truncated: tuple[str, int, int]) -> None:
        topic, low, _ = truncated
        state = {"bookmarks": {topic: {"topic": topic, "partitions": {"0": 3}}}}
        run = lab.run(state=state, streams=declared(topic))
        assert run.rc == EXIT_DATA, run.stderr
        line = error_line(run)
        assert f"offsets 3 to {low - 1} are gone" in line and "on_offset_gap" in line, line
        assert records(run) == []

    def test_on_offset_gap_skip_goes_on_from_the_low_watermark(
        self, lab: KafkaLab, truncated: tuple[str, int, int]
    ) -> None:
        topic, low, high = truncated
        state = {"bookmarks": {topic: {"topic": topic, "partitions": {"0": 3}}}}
        run = ok(lab.run(state=state, streams=declared(topic), on_offset_gap="skip", metadata_columns=True))
        contiguous(by_partition(records(run)), {0: low}, {0: high})
        assert f"offsets 3 to {low - 1} are gone" in run.stderr
        # A first run (no state) starts at the earliest offset there is: no gap to speak of.
        first = ok(lab.run(streams=declared(topic), metadata_columns=True))
        contiguous(by_partition(records(first)), {0: low}, {0: high})

    @pytest.mark.parametrize(
        "bookmark",
        [
            "text",
            ["0", 1],
            {"partitions": [1, 2]},
            {"partitions": {"0": "5"}},
            {"partitions": {"x": 5}},
            {"partitions": {"0": 1.5}},
            {"partitions": {"0": True}},
            {"partitions": {"0": -1}},
            {"topic": 7, "partitions": {"0": 1}},
        ],
        ids=repr,
    )
    def test_a_malformed_bookmark_is_a_config_error(self, lab: KafkaLab, bookmark: Any) -> None:
        topic = lab.topic("malformed", 1)
        lab.fill(topic, {0: 3})
        run = lab.run(state={"bookmarks": {topic: bookmark}}, streams=declared(topic))
        assert run.rc == EXIT_CONFIG, (run.rc, run.stderr)
        assert "bookmark" in error_line(run) and topic in error_line(run), error_line(run)
        assert records(run) == []


# -- start offsets, group offsets, connection ----------------------------------------------------------------


class TestOffsetsAndConnection:
    def test_start_offset_latest_reads_only_what_comes_after_the_first_run(self, lab: KafkaLab) -> None:
        topic = lab.topic("latest", 2)
        lab.fill(topic, {0: 3, 1: 2})
        config: dict[str, Any] = {"streams": declared(topic), "start_offset": "latest", "metadata_columns": True}
        first = ok(lab.run(**config))
        assert records(first) == []
        assert offsets(first.states[-1], topic) == {0: 3, 1: 2}
        lab.fill(topic, {0: 2, 1: 1}, start=10)
        second = ok(lab.run(state=first.states[-1], **config))
        contiguous(by_partition(records(second)), {0: 3, 1: 2}, {0: 5, 1: 3})
        # A partition the state does not name starts at its end too.
        third = ok(lab.run(state={"bookmarks": {topic: {"partitions": {"0": 1}}}}, **config))
        contiguous(by_partition(records(third)), {0: 1, 1: 3}, {0: 5, 1: 3})

    def test_commit_group_offsets_commits_the_state_it_started_from(self, lab: KafkaLab) -> None:
        from confluent_kafka import TopicPartition

        topic = lab.topic("group", 3)
        lab.fill(topic, {0: 5, 1: 4, 2: 0})
        group = f"{lab.prefix}lag-watch"
        config: dict[str, Any] = {"streams": declared(topic), "group_id": group, "commit_group_offsets": True}

        def committed(group: str = group) -> dict[int, int]:
            consumer = lab.consumer(**{"group.id": group})
            try:
                found = consumer.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
            finally:
                consumer.close()
            return {tp.partition: tp.offset for tp in found}

        first = ok(lab.run(**config))  # no state: nothing to commit yet
        assert all(offset < 0 for offset in committed().values()), committed()
        state = {"bookmarks": {topic: {"topic": topic, "partitions": {"0": 2, "1": 4}}}}
        ok(lab.run(state=state, **config))
        # What the last run's target committed, never what this run read up to.
        assert {p: o for p, o in committed().items() if o >= 0} == {0: 2, 1: 4}
        ok(lab.run(state=first.states[-1], **config))
        assert committed() == {0: 5, 1: 4, 2: 0}
        # Off by default.
        other: dict[str, Any] = {**config, "group_id": f"{lab.prefix}quiet", "commit_group_offsets": False}
        ok(lab.run(state=first.states[-1], **other))
        assert all(offset < 0 for offset in committed(f"{lab.prefix}quiet").values())

    def test_an_unreachable_cluster_fails_fast_as_transient_without_secrets(self, lab: KafkaLab) -> None:
        secret = "s3cr3t-Pa55word"
        started = time.monotonic()
        run = lab.run(
            bootstrap_servers="127.0.0.1:1",
            connect_timeout=2,
            topics=["anything"],
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_username="me",
            sasl_password=secret,
        )
        elapsed = time.monotonic() - started
        assert run.rc == EXIT_TRANSIENT, run.stderr
        assert elapsed < 10, elapsed
        assert "127.0.0.1:1" in error_line(run)
        assert secret not in run.stderr and secret not in run.stdout.decode()


# -- discovery --------------------------------------------------------------------------------------------------


class TestDiscovery:
    def test_the_catalog_forces_log_based_reads_and_lists_deletes_and_metadata(self, lab: KafkaLab) -> None:
        topic = lab.topic("discover", 2)
        lab.send(topic, {"id": 1, "name": "a"}, {"id": 1})
        lab.flush()
        for metadata in (False, True):
            catalog = lab.discover(topics=[topic], metadata_columns=metadata)
            (entry,) = catalog["streams"]
            root = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
            assert root["forced-replication-method"] == "LOG_BASED"
            assert root["replication-method"] == "LOG_BASED"
            assert "replication-key" not in root and "valid-replication-keys" not in root
            # No part of the entry says otherwise (the top-level legacy field included).
            assert entry.get("replication_method", "LOG_BASED") == "LOG_BASED", entry.get("replication_method")
            properties = entry["schema"]["properties"]
            assert properties["_sdc_deleted_at"] == {"type": ["null", "string"], "format": "date-time"}
            assert entry["key_properties"] == ["id"] == root["table-key-properties"]
            expected = ["id", "name", "_sdc_deleted_at", *(METADATA if metadata else [])]
            assert list(properties) == expected
            breadcrumbs = [m["breadcrumb"][-1] for m in entry["metadata"] if m["breadcrumb"]]
            assert breadcrumbs == expected

    def test_a_catalog_of_the_discovered_stream_reads_it_from_its_offsets(self, lab: KafkaLab) -> None:
        topic = lab.topic("catalogued", 1)
        lab.fill(topic, {0: 4})
        catalog = lab.discover(streams=declared(topic))
        first = ok(lab.run(catalog=catalog, streams=declared(topic), state_every_rows=2))
        cut = first.states[0]
        resumed = ok(lab.run(catalog=catalog, state=cut, streams=declared(topic)))
        assert [r["n"] for r in records(resumed)] == list(range(offsets(cut, topic)[0], 4))


def test_no_dead_letter_directory_is_made_when_nothing_is_dead(lab: KafkaLab) -> None:
    topic = lab.topic("clean", 1)
    lab.fill(topic, {0: 2})
    where = lab.workdir / "dead"
    ok(lab.run(streams=declared(topic), on_invalid_message="dead_letter", dead_letter_path=str(where)))
    assert not where.exists()
