"""target-kafka's compiled producer against its Python paths: the same input, the same messages.

The compiled producer (dpone_drivers/kafkafast/producer.c) takes compact RECORD lines of registered
streams straight from the input, whole runs of them from a block or a line at a time, and sends
each record's bytes with a key it cuts from them; any line it is unsure of goes back to the Python
paths. Each case runs one input three ways, into topics of its own on the mock cluster:

* `confluent`: confluent-kafka's producer and the Python paths only (what DPONE_PURE_PYTHON=1 gives);
* `blocks`: the compiled producer, the input read as a file (runs of lines, as from a pipe);
* `lines`: the compiled producer, the input fed line by line (the framework's line loop).

The three must agree on every message (topic, partition, key, value, headers, order within each
partition), on the echoed states, and on the exit code and error line. The cases cover keys of
every kind (integers of every width, strings with escapes and non-ASCII, numbers, composite keys,
both key formats), deletes, layouts the compiled producer leaves to Python, and bad input, which
must fail the same way naming the same line. Producer API cases (runs, limits, failures) close it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.targets.kafka import delivery as delivery_module
from dpone.targets.kafka.target import KafkaTarget
from dpone_drivers import kafka
from dpone_protocol.config import Redactor
from tests.conftest import lines, record, schema, state
from tests.kit.kit import TargetKit
from tests.service.kafka_dest import KafkaDest
from tests.tools.kafka_mock import PRODUCE, MockKafka

pytestmark = pytest.mark.service

WAYS = ("confluent", "blocks", "lines")
PARTITIONS = 5
DELETED_AT = "2024-05-01T00:00:00+00:00"
MSG_SIZE_TOO_LARGE = 10


@pytest.fixture(autouse=True)
def compiled() -> Any:
    fast = kafka.fast_module()
    if fast is None:
        pytest.skip("the compiled Kafka module is off (not built, or DPONE_PURE_PYTHON=1)")
    return fast


def obj(*pairs: tuple[str, str]) -> str:
    """A JSON object's text from (name, value text) pairs, in that order."""
    return "{" + ",".join(f'"{name}":{value}' for name, value in pairs) + "}"


def raw(stream: str, body: str | bytes, tail: str = "") -> bytes:
    """A compact RECORD line with the record object's text as given (escapes, spaces, odd numbers)."""
    text = body.encode() if isinstance(body, str) else body
    return b'{"type":"RECORD","stream":"%b","record":%b%b}\n' % (stream.encode(), text, tail.encode())


@dataclass
class Outcome:
    rc: int
    error: str  # the connector's error line, topic prefix replaced
    states: list[Any]
    messages: dict[str, dict[int, list[tuple[bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]]]]
    taken: int  # lines the compiled producer took itself


class Ways:
    """Runs an input each way into topics of its own: `PARTITIONS` partitions each, one for a stream
    without key properties (a message without a key goes to a partition at random)."""

    def __init__(self, cluster: MockKafka, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.monkeypatch = monkeypatch

    def run(self, way: str, data: bytes, streams: tuple[str, ...], keyless: tuple[str, ...], **config: Any) -> Outcome:
        prefix = f"f{uuid.uuid4().hex[:10]}_"
        dest = KafkaDest(self.cluster.bootstrap, prefix)
        for stream in streams:
            self.cluster.create_topic(dest.topic_for(stream), 1 if stream in keyless else PARTITIONS)
        kit = TargetKit(
            target=KafkaTarget,
            config=dest.config(idempotence=False, **config),
            read_table=dest.rows,
            tables=dest.tables,
            workdir=self.workdir / f"{way}-{prefix}",
            has_tables=False,
            table_for=dest.topic_for,
            stdin_file=way != "lines",
        )
        kit.workdir.mkdir()
        taken = [0]
        feed_run = delivery_module.Delivery.feed_run

        def counting(self: delivery_module.Delivery, *args: Any) -> tuple[int, int, int, str | None]:
            got = feed_run(self, *args)
            taken[0] += got[1]
            return got

        with self.monkeypatch.context() as patch:
            patch.setattr(delivery_module.Delivery, "feed_run", counting)
            if way == "confluent":
                patch.setattr(kafka, "_FAST", False)
            result = kit.run(data)
        errors = [line for line in result.stderr.splitlines() if line.startswith("target-kafka:")]
        messages = {}
        for stream in streams:
            per_partition: dict[int, list[Any]] = {}
            for m in dest.messages(dest.topic_for(stream)) or []:
                per_partition.setdefault(m.partition, []).append((m.key, m.value, m.headers))
            messages[stream] = per_partition
        return Outcome(
            result.rc,
            errors[-1].replace(prefix, "PFX_") if errors else "",
            result.states,
            messages,
            taken[0],
        )

    def compare(
        self,
        data: bytes,
        streams: tuple[str, ...],
        keyless: tuple[str, ...] = (),
        received_at: bool = False,
        **config: Any,
    ) -> dict[str, Outcome]:
        """The outcomes each way, checked equal; `received_at`: values carry _sdc_received_at, which
        is when the run read the record, and is left out of the comparison."""
        got = {way: self.run(way, data, streams, keyless, **config) for way in WAYS}
        first = got["confluent"]
        assert first.taken == 0
        for way in WAYS[1:]:
            other = got[way]
            assert (other.rc, other.error, other.states) == (first.rc, first.error, first.states), way
            for stream in streams:
                if received_at:
                    assert _without_received_at(other.messages[stream]) == _without_received_at(
                        first.messages[stream]
                    ), (way, stream)
                else:
                    assert other.messages[stream] == first.messages[stream], (way, stream)
        return got


def _without_received_at(messages: dict[int, list[Any]]) -> dict[int, list[Any]]:
    def value(text: bytes | None) -> Any:
        found = orjson.loads(text) if text is not None else None
        if isinstance(found, dict):
            found.pop("_sdc_received_at", None)
        return found

    return {p: [(key, value(text), headers) for key, text, headers in got] for p, got in messages.items()}


@pytest.fixture
def ways(kafka_cluster: MockKafka, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ways:
    return Ways(kafka_cluster, tmp_path, monkeypatch)


# -- keys ---------------------------------------------------------------------------------------------------


def integer_texts() -> list[str]:
    """Integers of every width, as JSON text: around each power of two up to past 64 bits, every
    number of decimal digits up to 25, and the edges of int64 and uint64."""
    values: set[int] = {0, 1, -1, 7, -7, 10, -10}
    for bits in range(1, 70):
        for v in (2**bits - 1, 2**bits, 2**bits + 1):
            values |= {v, -v}
    for digits in range(1, 26):
        values |= {10 ** (digits - 1), 10**digits - 1, -(10**digits - 1), int(("1234567890" * 3)[:digits])}
    return [str(v) for v in sorted(values)]


# Key values as JSON text, beyond integers: what orjson reads (and writes again) differently from the
# text, escapes, every UTF-8 length, and values that are not numbers or strings at all.
OTHER_KEY_TEXTS = [
    "-0",
    "1.5",
    "-2.0",
    "1e3",
    "1E-2",
    "12345678901234567890.5",
    "0.1",
    "true",
    "false",
    '{"a":1}',
    "[1,2]",
    '""',
    '"a"',
    '"A b-c_d.e"',
    '"007"',
    '"é"',
    '"日本語"',
    '"😀"',
    '"\x7f"',
    '"\u2028"',
    '"a\\"b"',
    '"a\\\\b"',
    '"tab\\there"',
    '"nl\\n"',
    '"\\u00e9"',
    '"\\ud83d\\ude00"',
    '"\\/"',
    '"nul\\u0000"',
    '" spaced "',
]


def key_case_records(texts: list[str], composite: bool) -> list[bytes]:
    """One record a key text (compact, the key first, last, or between), plus a spaced copy of some."""
    out = []
    for n, text in enumerate(texts):
        if composite:
            body = obj(("tenant", text), ("id", str(n)), ("v", str(n)))
        elif n % 3 == 0:
            body = obj(("id", text), ("v", str(n)))
        elif n % 3 == 1:
            body = obj(("v", str(n)), ("id", text))
        else:
            body = obj(("v", str(n)), ("id", text), ("w", '"x"'))
        out.append(raw("k", body))
        if n % 7 == 0:
            out.append(raw("k", body.replace(":", ": ").replace(",", ", ")))  # spaces in the record only
    return out


@pytest.mark.parametrize(
    ("kind", "key_format"),
    [("integers", "json"), ("integers", "string"), ("others", "json"), ("others", "string"), ("composite", "json")],
)
def test_keys_are_the_same_bytes_either_way(ways: Ways, kind: str, key_format: str) -> None:
    texts = integer_texts() if kind == "integers" else OTHER_KEY_TEXTS + integer_texts()[::9]
    keys = ["tenant", "id"] if kind == "composite" else ["id"]
    # The key's declared type decides how the Python paths decode it (wide integers exactly).
    props = {"tenant": {"type": ["string", "null"]}, "id": {"type": "integer"}, "v": {"type": "integer"}}
    data = lines(schema("k", props, keys)) + b"".join(key_case_records(texts, kind == "composite"))
    data += lines(state({"s": 1}))
    got = ways.compare(data, ("k",), key_format=key_format)
    assert got["confluent"].rc == 0, got["confluent"].error
    assert got["confluent"].states == [{"s": 1}]
    sent = sum(len(p) for p in got["confluent"].messages["k"].values())
    assert sent == data.count(b'"type":"RECORD"')
    # The compiled producer took every line with a plain key itself: an integer of up to 18 digits
    # other than -0, a string without escapes (and not empty, with key_format string).
    plain = sum(1 + (n % 7 == 0) for n, text in enumerate(texts) if _plain(text, key_format == "string"))
    assert got["blocks"].taken == got["lines"].taken == plain


def _plain(text: str, string_format: bool) -> bool:
    if text.startswith('"'):
        return "\\" not in text and not (string_format and text == '""')
    digits = text.removeprefix("-")
    return digits.isascii() and digits.isdigit() and len(digits) <= 18 and text != "-0"


# -- a mixed stream -----------------------------------------------------------------------------------------

PROPS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}


def mixed_input() -> bytes:
    """Two keyed streams and a keyless one, interleaved and in runs, with every kind of line the
    compiled producer leaves to Python between the ones it takes."""
    out = [lines(schema("a", PROPS), schema("b", {**PROPS, "n": {"type": "number"}}), schema("c", PROPS, []))]
    for i in range(1, 121):
        out.append(lines(record("a", {"id": i, "name": f"a{i}"})))
        if i % 2:
            out.append(lines(record("b", {"id": i % 17, "name": "é日😀", "n": i / 7})))
        if i % 5 == 0:
            out.append(lines(record("c", {"id": i, "name": None})))
        if i % 10 == 0:
            out.append(lines(state({"i": i})))
    out += [
        # Version and time_extracted, in the compact layout and in others.
        raw("a", '{"id":500,"name":"v"}', ',"version":3'),
        raw("a", '{"id":501,"name":"t"}', ',"time_extracted":"2024-01-01T00:00:00Z"'),
        raw("a", '{"id":502,"name":"vt"}', ',"version":-1,"time_extracted":"2024-01-01T00:00:00Z"'),
        b'{"type":"RECORD","stream":"a","record":{"id":503},"time_extracted":"x","version":1}\n',
        b'{"type": "RECORD", "stream": "a", "record": {"id": 504, "name": "spaced"}}\n',
        b'{"stream":"a","type":"RECORD","record":{"id":505}}\n',
        b'{"type":"RECORD","stream":"\\u0061","record":{"id":506,"name":"escaped stream name"}}\n',
        # Records the compiled producer leaves to Python: escaped or repeated names, deletes.
        raw("a", '{"\\u0069d":507,"name":"escaped key name"}'),
        raw("a", '{"id":508,"na\\u006de":"escaped other name"}'),
        raw("a", '{"id":509,"id":510,"name":"twice"}'),
        raw("a", obj(("id", "511"), ("name", '"deleted"'), ("_sdc_deleted_at", f'"{DELETED_AT}"'))),
        raw("a", '{"id":512,"name":"not deleted","_sdc_deleted_at":null}'),
        raw("c", obj(("id", "513"), ("_sdc_deleted_at", f'"{DELETED_AT}"'))),
        # Values kept exactly as they came: wide numbers, exponents, escapes, deep nesting.
        raw("b", '{"id":1,"n":123456789012345678901234567890.123456789,"name":"wide"}'),
        raw("b", '{"id":2,"n":1e400,"name":"past a double"}'),
        raw("b", '{"id":3,"n":-0.0,"name":"\\ud83d\\ude00 \\u0000 \\"q\\""}'),
        raw("b", '{"id":4,"n":1,"name":null,"deep":%s}' % ("[" * 40 + "1" + "]" * 40)),
        raw("b", '{"id":5,"n":1,"name":"x","deeper":%s}' % ("[" * 600 + "]" * 600)),
        raw("b", '{"id":6,"n":1e2}'),
        raw("b", '{ "id" : 7 , "n" : 2 }'),
        b"\n",
        b"   \n",
        # A new schema for a: new headers from here on.
        lines(schema("a", {**PROPS, "extra": {"type": ["string", "null"]}})),
        raw("a", '{"id":600,"name":"after","extra":"e"}'),
        lines(state({"i": "end"})),
    ]
    return b"".join(out)


@pytest.mark.parametrize("delete_mode", ["record", "record_and_tombstone"])
def test_a_mixed_stream_gives_the_same_messages_either_way(ways: Ways, delete_mode: str) -> None:
    data = mixed_input()
    if delete_mode != "record":
        data = data.replace(
            raw("c", obj(("id", "513"), ("_sdc_deleted_at", f'"{DELETED_AT}"'))), b""
        )  # keyless: no tombstone
    got = ways.compare(data, ("a", "b", "c"), keyless=("c",), delete_mode=delete_mode)
    assert got["confluent"].rc == 0, got["confluent"].error
    assert got["confluent"].states[-1] == {"i": "end"}
    assert got["blocks"].taken > 150  # most lines went the compiled way


def test_a_stream_with_record_metadata_stays_on_the_python_paths(ways: Ways) -> None:
    """add_record_metadata puts fields into the value: the compiled producer takes none of its lines."""
    data = lines(schema("a", PROPS), *[record("a", {"id": i, "name": "x"}) for i in range(20)], state({"s": 1}))
    got = ways.compare(data, ("a",), received_at=True, add_record_metadata=True)
    assert got["blocks"].taken == got["lines"].taken == 0
    assert got["confluent"].rc == 0


# -- bad input ------------------------------------------------------------------------------------------------

BAD_LINES = {
    "invalid_json": raw("a", '{"id":3,"name":tru}'),
    "unterminated_string": raw("a", '{"id":3,"name":"abc}'),
    "trailing_comma": raw("a", '{"id":3,"name":"x",}'),
    "invalid_utf8": raw("a", b'{"id":3,"name":"\xff\xfe"}'),
    "control_character": raw("a", b'{"id":3,"name":"a\x01b"}'),
    "leading_zero": raw("a", '{"id":03,"name":"x"}'),
    "null_key": raw("a", '{"id":null,"name":"x"}'),
    "missing_key": raw("a", '{"name":"x"}'),
    "unknown_stream": raw("nope", '{"id":3}'),
    "two_objects": raw("a", '{"id":3}{"id":4}'),
    "not_an_object": raw("a", "[1,2]"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_input_fails_the_same_way_naming_the_line(ways: Ways, case: str) -> None:
    head = lines(schema("a", PROPS), record("a", {"id": 1, "name": "x"}), record("a", {"id": 2}), state({"s": 1}))
    data = head + BAD_LINES[case] + lines(record("a", {"id": 4}), state({"s": 2}))
    got = ways.compare(data, ("a",))
    first = got["confluent"]
    assert first.rc != 0, first
    assert "line 5" in first.error, first.error
    assert first.states == [{"s": 1}]


def test_a_record_before_its_schema_names_the_line(ways: Ways) -> None:
    data = lines(schema("a", PROPS), record("a", {"id": 1}), record("b", {"id": 2}), schema("b", PROPS))
    got = ways.compare(data, ("a", "b"))
    assert got["confluent"].rc != 0 and "line 3" in got["confluent"].error, got["confluent"].error


def test_a_message_the_producer_refuses_names_the_line(ways: Ways) -> None:
    data = lines(
        schema("a", PROPS),
        record("a", {"id": 1, "name": "small"}),
        state({"s": 1}),
        record("a", {"id": 2, "name": "x" * 5000}),
        state({"s": 2}),
    )
    got = ways.compare(data, ("a",), batch_size_rows=1, kafka_properties={"message.max.bytes": 2000})
    first = got["confluent"]
    assert first.rc == 65 and "line 4" in first.error and "MSG_SIZE_TOO_LARGE" in first.error, first.error
    assert first.states == [{"s": 1}]


# -- the Producer itself --------------------------------------------------------------------------------------


@pytest.fixture
def producer(compiled: Any, kafka_cluster: MockKafka) -> Iterator[tuple[Any, KafkaDest]]:
    dest = KafkaDest(kafka_cluster.bootstrap, f"p{uuid.uuid4().hex[:10]}_")
    for stream in ("a", "b"):
        kafka_cluster.create_topic(dest.topic_for(stream), 1)
    made = compiled.Producer({"bootstrap.servers": kafka_cluster.bootstrap, "linger.ms": "1"})
    yield made, dest
    del made


HEADERS = [("h", b"1")]


def test_feed_run_takes_one_streams_whole_lines_up_to_its_limits(producer: tuple[Any, KafkaDest]) -> None:
    made, dest = producer
    made.register("a", dest.topic_for("a"), ("id",), "json", HEADERS)
    made.register("b", dest.topic_for("b"), (), "json", [])
    a = [raw("a", obj(("id", str(i)))) for i in range(6)]
    block = b"".join([*a[:3], raw("b", '{"x":1}'), raw("b", '{"x":2}'), *a[3:5], lines(state({})), a[5][:-1]])
    at, ends = 0, []
    for limit, byte_limit in ((10, None), (10, None), (1, None), (10, len(a[4])), (10, None)):
        end, count, size, stream = made.feed_run(block, at, limit, byte_limit)
        assert size == end - at and count == block.count(b"\n", at, end)
        ends.append((count, stream))
        at = end
    assert ends == [(3, "a"), (2, "b"), (1, "a"), (1, "a"), (0, None)]  # a STATE: not its line
    assert block[at:].startswith(b'{"type":"STATE"')
    # The last line has no newline: never taken, even past the STATE.
    assert made.feed_run(block, block.rindex(b"\n") + 1, 10) == (len(block) - len(a[5]) + 1, 0, 0, None)
    made.unregister("b")
    assert made.feed_run(raw("b", '{"x":3}'), 0, 10)[1] == 0
    assert made.flush(10) == 0 and made.failure() is None
    got = dest.messages(dest.topic_for("a")) or []
    assert [(m.key, m.value, m.headers) for m in got] == [
        (b'{"id":%d}' % i, b'{"id":%d}' % i, (("h", b"1"),)) for i in range(5)
    ]
    assert [m.key for m in dest.messages(dest.topic_for("b")) or []] == [None, None]


def test_feed_run_refuses_what_is_not_a_buffer_or_outside_it(producer: tuple[Any, KafkaDest]) -> None:
    made, _ = producer
    with pytest.raises(TypeError):
        made.feed_run("text", 0, 1)
    with pytest.raises(ValueError, match="outside"):
        made.feed_run(b"x\n", 3, 1)
    with pytest.raises(ValueError, match="key_format"):
        made.register("a", "t", ("id",), "avro", [])
    with pytest.raises(ValueError, match="one key"):
        made.register("a", "t", ("a", "b"), "string", [])


@pytest.mark.parametrize(
    ("conf", "says"),
    [({"no.such.property": "1"}, "No such configuration property"), ({"acks": "sometimes"}, "Invalid value")],
)
def test_settings_librdkafka_refuses_are_value_errors(compiled: Any, conf: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        compiled.Producer({"bootstrap.servers": "127.0.0.1:9", **conf})
    with pytest.raises(TypeError):
        compiled.Producer({"linger.ms": 5})


def test_produce_errors_carry_librdkafkas_code_name_and_text(producer: tuple[Any, KafkaDest]) -> None:
    made, dest = producer
    with pytest.raises(compiled_error(made)) as caught:
        made.produce(dest.topic_for("a"), b"x" * 2_000_000, None)
    code, name, text = caught.value.args
    assert (code, name) == (MSG_SIZE_TOO_LARGE, "MSG_SIZE_TOO_LARGE") and text, caught.value.args
    error = kafka.classify_exception(caught.value, Redactor(), "sending")
    assert type(error).__name__ == "DataError" and "MSG_SIZE_TOO_LARGE" in str(error)


def compiled_error(made: Any) -> type[BaseException]:
    fast = kafka.fast_module()
    assert fast is not None
    return fast.ProducerError  # type: ignore[no-any-return]


def test_a_failed_delivery_is_kept_with_its_topic(compiled: Any, kafka_own_cluster: MockKafka) -> None:
    topic = "failing"
    kafka_own_cluster.create_topic(topic, 1)
    made = compiled.Producer({"bootstrap.servers": kafka_own_cluster.bootstrap, "linger.ms": "0", "retries": "0"})
    assert topic in made.topics(10)
    kafka_own_cluster.push_request_errors(PRODUCE, 87)  # INVALID_RECORD
    made.produce(topic, b"v", b"k")
    made.flush(10)
    code, name, text, where, partition, fatal = made.failure()
    assert (code, name, where, partition, fatal) == (87, "INVALID_RECORD", topic, 0, False), text
    assert isinstance(made.logs(), list) and isinstance(made.errors(), list)
    assert json.dumps(made.logs())  # plain tuples of int and str
