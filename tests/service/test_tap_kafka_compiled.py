"""tap-kafka's compiled Reader (dpone_drivers/kafkafast/consumer.c) against its Python path (DPONE_PURE_PYTHON=1).

The same topics give the same output on both: RECORD lines byte for byte (but time_extracted), the same
STATEs, the same dead letters, the same errors; for values of every shape (the ones the Reader writes
itself, and the ones it hands back to Python: tombstones, values its scanner does not pass, invalid
values in both on_invalid_message modes), on several partitions; and a run resumed from any of its
STATEs gives exactly the rest. Then the Reader itself: blocks bounded by max_messages, the messages
fetched after a stop kept in order for the next call, consumer errors as tuples, librdkafka's log lines
through Python logging, and the cases the tap leaves to the Python path.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone_drivers import kafka
from dpone_protocol.codec import EXACT_CODEC
from tests.conftest import Run
from tests.service.kafka_source import EXIT_CONFIG, EXIT_DATA, KafkaLab, error_line, offsets, records
from tests.tools.kafka_mock import MockKafka

pytestmark = pytest.mark.service

COMPILED, PYTHON = "compiled", "python"
SCHEMA = {"type": "object", "properties": {"p": {"type": "integer"}, "n": {"type": "integer"}}}

# Values the Reader writes itself: objects of every shape, each byte as it came (\n and \r as spaces).
OBJECTS = [
    b'{"big":123456789012345678901234567890,"neg":-98765432109876543210987654321}',
    b'{"d":1234567890.12345678901234567890,"e":1.5E+300,"z":-0.0,"tiny":1e-400,"i":-0,"x":0e0}',
    '{"text":"h\u00e9llo \u4e16\u754c \U0001f600","rtl":"\u05e9\u05dc\u05d5\u05dd","del":"\x7f"}'.encode(),
    rb'{"esc":"quote \" slash \\ tab \t nl \n u \u00e9 \ud83d\ude00 \u0000","slash":"a\/b"}',
    b'{"nested":{"a":[1,2.50,{"b":null}],"c":true},"empty":{},"list":[],"f":false}',
    b'  {"spaced" : 1 ,\t"x":[ 1 , 2 ] }  ',
    b'{\n  "a": 1,\n  "b": {\n    "c": "x y"\n  },\r\n  "d": 12345678901234567890123.000\n}\n',
    b"{}",
    b"\r\n{ }\r\n\t",
    b'{"dup":1,"dup":2}',
    b'{"deep":' + b"[" * 400 + b"]" * 400 + b"}",
]
# Deeper than the Reader's scanner goes, not than orjson: handed back, and a record all the same.
DEEP = b'{"deeper":' + b'{"a":' * 600 + b"1" + b"}" * 600 + b"}"
# Not records: each goes to the dead letters, or stops the run.
INVALID = [
    b"",
    b"[1,2]",
    b'"text"',
    b"42",
    b"null",
    b'{"a":1}x',
    b'{"a":1} {"b":2}',
    b'{"a":1,}',
    b'\xef\xbb\xbf{"bom":1}',
    b'{"bad":"\xff"}',
    b'{"ctl":"a\tb"}',
    b'{"s":"\\ud800"}',
    b'{"n":1e400}',
    b'{"n":1' + b"0" * 400 + b"}",
    b'{"nan":NaN}',
    b'{"a":' * 1100 + b"1" + b"}" * 1100,
]
_EXTRACTED = re.compile(rb',"time_extracted":"[^"]*"')


class Spy:
    """The compiled module, counting the Readers the tap makes."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.readers = 0

    def Reader(self, *args: Any, **kwargs: Any) -> Any:
        self.readers += 1
        return self.module.Reader(*args, **kwargs)


@pytest.fixture
def fast() -> Any:
    module = kafka.fast_module()
    if module is None:
        pytest.skip("the compiled Kafka reader is not built (or DPONE_PURE_PYTHON=1)")
    return module


class Paths:
    """tap-kafka runs in-process on one read path or the other."""

    def __init__(self, lab: KafkaLab, monkeypatch: pytest.MonkeyPatch, fast: Any) -> None:
        self.lab = lab
        self.monkeypatch = monkeypatch
        self.fast = fast

    def run(self, path: str, *, expect_reader: bool = True, **kwargs: Any) -> Run:
        spy = Spy(self.fast)
        with self.monkeypatch.context() as m:
            m.setattr(kafka, "_FAST", spy if path == COMPILED else False)
            run = self.lab.run(**kwargs)
        if path == COMPILED:
            assert spy.readers == (1 if expect_reader else 0), "the compiled Reader read the topic"
        return run

    def both(self, **kwargs: Any) -> tuple[Run, Run]:
        return self.run(COMPILED, **kwargs), self.run(PYTHON, **kwargs)


@pytest.fixture
def paths(lab: KafkaLab, monkeypatch: pytest.MonkeyPatch, fast: Any) -> Paths:
    return Paths(lab, monkeypatch, fast)


def normalized(stdout: bytes) -> bytes:
    return _EXTRACTED.sub(b"", stdout)


def record_lines(run: Run) -> list[bytes]:
    return [line for line in normalized(run.stdout).splitlines() if line.startswith(b'{"type":"RECORD"')]


def dead_letters(path: Path) -> list[dict[str, Any]]:
    found = [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []
    for letter in found:
        del letter["dead_lettered_at"]
    return found


# -- one partition: the same bytes, STATE for STATE --------------------------------------------------------


def one_partition_messages() -> list[tuple[bytes | None, bytes | None]]:
    """(value, key): every object, DEEP, tombstones of both kinds and every invalid value, interleaved so
    that a stop falls inside a fetched batch, at its start and at its end."""
    messages: list[tuple[bytes | None, bytes | None]] = []
    bad = iter([*INVALID, None, None])
    for i, value in enumerate([*OBJECTS, DEEP] * 2):
        messages.append((value, None))
        if i % 2:
            messages.append((None, orjson.dumps({"p": 0, "n": len(messages)})))  # a delete
        nxt = next(bad, b"")
        messages.append((nxt, b"not json") if nxt is not None else (None, b"not json" if i % 3 else None))
    return messages


@pytest.mark.parametrize(("batch", "every"), [(7, 3), (10_000, 10_000), (10_000, 5), (1, 1)])
def test_one_partition_gives_the_same_bytes_states_and_dead_letters(
    paths: Paths, lab: KafkaLab, batch: int, every: int
) -> None:
    topic = lab.topic("same", 1)
    for value, key in one_partition_messages():
        lab.send(topic, value, key)
    lab.flush()
    config: dict[str, Any] = {
        "streams": [{"topic": topic, "schema": SCHEMA}],
        "consume_batch_size": batch,
        "state_every_rows": every,
        "on_invalid_message": "dead_letter",
    }
    compiled = paths.run(COMPILED, dead_letter_path=str(lab.workdir / COMPILED), **config)
    python = paths.run(PYTHON, dead_letter_path=str(lab.workdir / PYTHON), **config)
    assert compiled.rc == python.rc == 0, compiled.stderr + python.stderr
    assert normalized(compiled.stdout) == normalized(python.stdout)
    values = 2 * (len(OBJECTS) + 1)
    assert len(records(compiled)) == values + values // 2  # the objects and DEEP, and a delete every other
    letters = dead_letters(lab.workdir / COMPILED / f"{topic}.jsonl")
    assert letters == dead_letters(lab.workdir / PYTHON / f"{topic}.jsonl")
    assert len(letters) == values  # every invalid value and bad tombstone, one after each value


def test_a_value_that_is_not_a_record_stops_both_at_the_same_line(paths: Paths, lab: KafkaLab) -> None:
    topic = lab.topic("stop", 1)
    for value in [*OBJECTS, DEEP, b'{"a":1} trailing', *OBJECTS]:
        lab.send(topic, value)
    lab.flush()
    compiled, python = paths.both(streams=[{"topic": topic, "schema": SCHEMA}], state_every_rows=4)
    assert compiled.rc == python.rc == EXIT_DATA
    assert error_line(compiled) == error_line(python)
    offset = len(OBJECTS) + 1
    assert f"topic {topic} partition 0 offset {offset}: the value is not JSON" in error_line(compiled)
    assert normalized(compiled.stdout) == normalized(python.stdout)
    assert len(records(compiled)) == offset


# -- several partitions: the same records, each partition in order, STATEs that cover exactly what came ----


def fill_partitions(lab: KafkaLab, topic: str, counts: dict[int, int]) -> dict[int, list[int]]:
    """Messages whose records say their partition and offset (`p`, `n`): objects wrapped as `v`, DEEP,
    deletes; and invalid values and tombstones in between. Partition -> the offsets that are records."""
    kept: dict[int, list[int]] = {}
    for p, count in counts.items():
        kept[p] = []
        for n in range(count):
            kind = n % 5
            if kind in (0, 1):
                value: bytes | None = b'{"p":%d,"n":%d,"v":%b}' % (p, n, OBJECTS[(n + p) % len(OBJECTS)])
                key: bytes | None = None
            elif kind == 2:
                value, key = b'{"p":%d,"n":%d,"v":%b}' % (p, n, DEEP), None
            elif kind == 3:
                value, key = None, orjson.dumps({"p": p, "n": n})
            else:
                value, key = INVALID[(n + p) % len(INVALID)], None
            lab.send(topic, value, key, partition=p)
            if kind != 4:
                kept[p].append(n)
    lab.flush()
    return kept


def placed(run: Run) -> list[tuple[int, int]]:
    return [(int(r["p"]), int(r["n"])) for r in records(run)]


def check_states(run: Run, topic: str) -> None:
    """Each STATE covers exactly the records before it: their offsets below it, the later ones at or past it."""
    seen: list[tuple[int, int]] = []
    later = placed(run)
    at = 0
    for message in run.messages:
        if message["type"] == "RECORD":
            seen.append(later[at])
            at += 1
        elif message["type"] == "STATE":
            state = offsets(message["value"], topic)
            assert all(n < state[p] for p, n in seen), "a STATE covers every record before it"
            assert all(n >= state[p] for p, n in later[at:]), "and none after it"


def test_several_partitions_give_the_same_records_states_and_resume_from_every_state(
    paths: Paths, lab: KafkaLab
) -> None:
    counts = {0: 42, 1: 0, 2: 37, 3: 1}
    topic = lab.topic("parts", len(counts))
    kept = fill_partitions(lab, topic, counts)
    config: dict[str, Any] = {
        "streams": [{"topic": topic, "schema": SCHEMA}],
        "consume_batch_size": 10_000,
        "state_every_rows": 6,
        "on_invalid_message": "dead_letter",
    }
    compiled = paths.run(COMPILED, dead_letter_path=str(lab.workdir / COMPILED), **config)
    python = paths.run(PYTHON, dead_letter_path=str(lab.workdir / PYTHON), **config)
    assert compiled.rc == python.rc == 0, compiled.stderr + python.stderr
    # The partitions' messages interleave as fetched; each partition's come in order, all of them.
    assert Counter(record_lines(compiled)) == Counter(record_lines(python))
    for run in (compiled, python):
        found = placed(run)
        assert {p: [n for q, n in found if q == p] for p in counts} == kept
        check_states(run, topic)
        assert offsets(run.states[-1], topic) == counts
    key = lambda letter: (letter["partition"], letter["offset"])  # noqa: E731
    assert sorted(dead_letters(lab.workdir / COMPILED / f"{topic}.jsonl"), key=key) == sorted(
        dead_letters(lab.workdir / PYTHON / f"{topic}.jsonl"), key=key
    )

    # From every STATE of the compiled run: exactly the records after it, byte for byte.
    lines = list(zip(record_lines(compiled), placed(compiled), strict=True))
    for state in {orjson.dumps(s): s for s in compiled.states}.values():
        start = offsets(state, topic)
        resumed = paths.run(
            COMPILED,
            expect_reader=any(start[p] < c for p, c in counts.items()),
            state=state,
            dead_letter_path=str(lab.workdir / "resumed"),
            **config,
        )
        assert resumed.rc == 0, resumed.stderr
        rest = [line for line, (p, n) in lines if n >= start[p]]
        assert Counter(record_lines(resumed)) == Counter(rest)
        check_states(resumed, topic)
        assert offsets(resumed.states[-1], topic) == counts


# -- errors, and where the Python path reads instead ----------------------------------------------------------


def test_a_consumer_error_is_classified_the_same(fast: Any, kafka_own_cluster: MockKafka, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    lab = KafkaLab(kafka_own_cluster, "own_", tmp_path)
    paths = Paths(lab, monkeypatch, fast)
    topic = lab.topic("denied", 1)
    lab.fill(topic, {0: 30})
    runs = []
    for path in (COMPILED, PYTHON):
        kafka_own_cluster.push_request_errors(1, *[29] * 5)  # FETCH: TOPIC_AUTHORIZATION_FAILED
        runs.append(paths.run(path, streams=[{"topic": topic, "schema": SCHEMA}], read_timeout_seconds=5))
        kafka_own_cluster.clear_request_errors(1)
    compiled, python = runs
    assert compiled.rc == python.rc == EXIT_CONFIG
    assert error_line(compiled) == error_line(python)
    assert "[TOPIC_AUTHORIZATION_FAILED]" in error_line(compiled)
    lab.close()


@pytest.mark.parametrize(
    "setting",
    [
        {"metadata_columns": True},
        {"stream_maps": {"*": {"__alias__": "renamed"}}},
        {"batch_config": "BATCH"},
        {"catalog": "DESELECT"},
    ],
    ids=["metadata-columns", "stream-map", "batch-files", "projection"],
)
def test_records_the_reader_would_not_write_as_they_came_take_the_python_path(
    paths: Paths, lab: KafkaLab, setting: dict[str, Any]
) -> None:
    topic = lab.topic("python", 2)
    lab.fill(topic, {0: 5, 1: 4})
    config: dict[str, Any] = {"streams": [{"topic": topic, "schema": SCHEMA}], **setting}
    if setting.get("batch_config"):
        config["batch_config"] = {"storage": {"root": (lab.workdir / "batches").as_uri()}}
    if setting.get("catalog"):
        catalog = lab.discover(streams=config["streams"])
        for entry in catalog["streams"]:
            for md in entry["metadata"]:
                if md["breadcrumb"] == ["properties", "n"]:
                    md["metadata"]["selected"] = False
                if md["breadcrumb"] == []:
                    md["metadata"]["selected"] = True
        config["catalog"] = catalog
    compiled = paths.run(COMPILED, expect_reader=False, **config)
    assert compiled.rc == 0, compiled.stderr


def test_the_default_run_reads_with_the_compiled_reader(paths: Paths, lab: KafkaLab) -> None:
    topic = lab.topic("default", 2)
    lab.fill(topic, {0: 5, 1: 4})
    run = paths.run(COMPILED, topics=[topic])  # schema inferred, nothing deselected
    assert run.rc == 0, run.stderr
    assert sorted(placed(run)) == [(0, n) for n in range(5)] + [(1, n) for n in range(4)]


# -- the Reader itself ------------------------------------------------------------------------------------------


def reader_conf(lab: KafkaLab, **extra: str) -> dict[str, str]:
    return {
        "bootstrap.servers": lab.broker.bootstrap,
        "group.id": f"{lab.prefix}reader",
        "enable.partition.eof": "true",
        "auto.offset.reset": "error",
        **extra,
    }


def read_all(reader: Any, max_messages: int, limit: float = 20) -> list[tuple[Any, ...]]:
    """Every read() until no partition is left: (lines, count, next_offsets, remaining, stop) each."""
    calls = []
    deadline = time.monotonic() + limit
    while reader.remaining and time.monotonic() < deadline:
        calls.append(reader.read(max_messages, 0.2))
    assert not reader.remaining, "the Reader did not reach every end offset"
    return calls


def test_reader_blocks_are_bounded_and_stops_keep_what_was_fetched_after_them(fast: Any, lab: KafkaLab) -> None:
    topic = lab.topic("reader", 2)
    values = [b'{"n":%d}' % n if n % 7 else None for n in range(60)]  # a tombstone every 7th
    for n, value in enumerate(values):
        lab.send(topic, value, b"k%d" % n, partition=0)
    lab.fill(topic, {1: 25})
    lab.flush()
    # Partition 0 from offset 3 up to 50; partition 1 whole; partition 5 not there, never waited for.
    reader = fast.Reader(reader_conf(lab), topic, [(0, 3, 50), (1, 0, 25), (5, 4, 4)], b"<", b">\n")
    try:
        assert reader.open_partitions() == [0, 1]
        calls = read_all(reader, 4)
    finally:
        reader.close()
    got: dict[int, list[bytes | None]] = {0: [], 1: []}
    nxt = {0: 3, 1: 0}
    left = 2
    for lines, count, moved, remaining, stop in calls:
        assert count <= 4 and len(lines.splitlines()) == count
        assert remaining <= left
        left = remaining
        for line in lines.splitlines():
            record = orjson.loads(line[1:-1])
            got[1 if "p" in record else 0].append(line)
        for p, offset in moved.items():
            assert offset > nxt[p]
            nxt[p] = offset
        if stop is not None:
            partition, offset, key, value, kind, _, headers = stop
            assert (partition, value, key, kind, headers) == (0, None, b"k%d" % offset, 1, None)
            assert offset % 7 == 0 and offset == nxt[0], "a stop comes after the lines before it, in order"
            got[0].append(None)
            nxt[0] = offset + 1
    assert got[0] == [None if values[n] is None else b"<%b>" % values[n] for n in range(3, 50)]
    assert got[1] == [b'<{"p":1,"n":%d}>' % n for n in range(25)]
    assert nxt == {0: 50, 1: 25}
    reader.close()
    with pytest.raises(RuntimeError, match="closed"):
        reader.read(4, 0)


def test_reader_reads_nothing_more_once_every_partition_ended(fast: Any, lab: KafkaLab) -> None:
    topic = lab.topic("ended", 1)
    lab.fill(topic, {0: 5})
    reader = fast.Reader(reader_conf(lab), topic, [(0, 0, 5)], b"", b"\n")
    try:
        calls = read_all(reader, 100)
        assert sum(count for _, count, _, _, _ in calls) == 5
        assert reader.read(4, 0) == (b"", 0, {}, 0, None)
        assert reader.open_partitions() == []
    finally:
        reader.close()


def test_reader_returns_a_consumer_error_as_a_tuple(fast: Any, lab: KafkaLab) -> None:
    topic = lab.topic("gone", 1)
    lab.fill(topic, {0: 3})
    reader = fast.Reader(reader_conf(lab), topic, [(0, 100, 200)], b"", b"\n")
    deadline = time.monotonic() + 10
    stop = None
    try:
        while stop is None and time.monotonic() < deadline:
            _, count, _, remaining, stop = reader.read(10, 0.2)
            assert count == 0 and remaining == 1
    finally:
        reader.close()
    assert stop is not None and len(stop) == 4
    code, name, text, partition = stop
    assert (name, partition) == ("_AUTO_OFFSET_RESET", 0) and code < 0 and "offset" in text.lower()


def test_reader_logs_go_to_python_logging_on_the_reading_thread(fast: Any, lab: KafkaLab) -> None:
    topic = lab.topic("logs", 1)
    lab.fill(topic, {0: 3})
    seen: list[tuple[int, str, int]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.levelno, record.getMessage(), threading.get_ident()))

    logger = logging.getLogger("test.kafkafast.reader")
    logger.addHandler(Keep())
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    reader = fast.Reader(reader_conf(lab, debug="consumer"), topic, [(0, 0, 3)], b"", b"\n", logger)
    try:
        read_all(reader, 10)
    finally:
        reader.close()
    assert logging.DEBUG in {level for level, _, _ in seen}
    assert {thread for _, _, thread in seen} == {threading.get_ident()}


@pytest.mark.parametrize(
    ("conf", "assignment", "error"),
    [
        ({"no.such.property": "1"}, [(0, 0, 1)], ValueError),
        ({"group.id": None}, [(0, 0, 1)], ValueError),
        ({}, [(0, 0)], TypeError),
        ({}, [(-1, 0, 1)], ValueError),
        ({}, [(0, 0, 1), (0, 1, 2)], ValueError),
        ({"fetch.wait.max.ms": 5}, [(0, 0, 1)], TypeError),
    ],
    ids=["unknown-property", "no-group", "not-a-triple", "negative-partition", "twice", "not-text"],
)
def test_reader_arguments_are_checked(
    fast: Any, lab: KafkaLab, conf: dict[str, Any], assignment: list[Any], error: type[Exception]
) -> None:
    full = {k: v for k, v in {**reader_conf(lab), **conf}.items() if v is not None}
    with pytest.raises(error):
        fast.Reader(full, "t", assignment, b"", b"\n")


def test_exact_values_survive_the_reader(paths: Paths, lab: KafkaLab) -> None:
    """Every digit of every number, read back exactly from the lines the Reader wrote."""
    topic = lab.topic("exact", 1)
    for value in OBJECTS:
        lab.send(topic, value)
    lab.flush()
    run = paths.run(COMPILED, streams=[{"topic": topic, "schema": SCHEMA}])
    assert run.rc == 0, run.stderr
    assert [r for r in records(run)] == [EXACT_CODEC.loads(v) for v in OBJECTS]
