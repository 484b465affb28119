"""target-kafka on librdkafka's mock cluster: what is Kafka's own, each as a class of cases.

Keys (formats, composite keys, stable bytes, the partition a key lands in and its order), headers,
deletes per delete_mode, value formats (exact JSON, Avro through a registry), what is refused
(overwrite, ACTIVATE_VERSION), settings mistakes, and STATE only once the brokers acknowledged
(interleaved states, delivery failures, a small producer queue). The shared scenarios run in
test_target_kafka_suite.py and the kill tests in tests/crash/test_target_kafka_killed.py.

Tests write topics under a prefix of their own on the session's cluster; a test that injects a
fault (it acts on the whole cluster) takes a cluster of its own. Every test runs on both producers
target-kafka has: the compiled one (dpone_drivers/kafkafast/producer.c, which takes whole runs of
RECORD lines) and confluent-kafka's with the Python paths (as with DPONE_PURE_PYTHON=1). A run whose
input is given whole reads it as a file (in blocks, as from a pipe); a run with hooks, line by line.
Tests of what a message looks like (`quick`) turn the idempotent producer off: its producer id takes
librdkafka ~0.5 s to obtain at every start, and they are not about delivery; every test of delivery
runs with the defaults.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import re
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import fastavro
import pytest

from dpone.targets.kafka.delivery import Delivery
from dpone.targets.kafka.target import KafkaTarget
from dpone_drivers import kafka
from tests.conftest import lines, record, schema, state
from tests.kit.kit import TargetKit
from tests.kit.target_checks import error_line, ok
from tests.service.kafka_dest import KafkaDest, Message
from tests.tools.fake_schema_registry import FakeSchemaRegistry
from tests.tools.kafka_mock import PRODUCE, MockKafka

pytestmark = pytest.mark.service

PROPS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}
DELETED_AT = "2024-05-01T00:00:00+00:00"
SECRET = "s3cret-Pa55word"
# librdkafka / Kafka protocol error codes the mock answers produce requests with.
NOT_ENOUGH_REPLICAS = 19
MSG_SIZE_TOO_LARGE = 10
TOPIC_AUTHORIZATION_FAILED = 29
INVALID_RECORD = 87
UNKNOWN_TOPIC_OR_PART = 3
TRANSPORT = -195  # the mock broker drops the connection instead of answering
Part = bytes | Callable[[bytes], None]


@dataclass
class Env:
    cluster: MockKafka
    dest: KafkaDest
    kit: TargetKit

    def topic(self, stream: str, partitions: int | None = None) -> str:
        """The stream's topic; created with exactly `partitions` partitions when given."""
        topic = self.dest.topic_for(stream)
        if partitions is not None:
            self.cluster.create_topic(topic, partitions)
        return topic

    def messages(self, stream: str) -> list[Message]:
        found = self.dest.messages(self.dest.topic_for(stream))
        assert found is not None, f"no topic for stream {stream!r}: {self.dest.tables()}"
        return found


def make_env(cluster: MockKafka, prefix: str, workdir: Path, **config: Any) -> Env:
    dest = KafkaDest(cluster.bootstrap, prefix)
    kit = TargetKit(
        target=KafkaTarget,
        config=dest.config(**config),
        read_table=dest.rows,
        tables=dest.tables,
        workdir=workdir,
        has_tables=False,
        table_for=dest.topic_for,
        stdin_file=True,
    )
    return Env(cluster, dest, kit)


@pytest.fixture(params=["compiled", "confluent"])
def producer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which producer the target runs on: the compiled one, or confluent-kafka's (the Python paths)."""
    if request.param == "confluent":
        monkeypatch.setattr(kafka, "_FAST", False)  # as DPONE_PURE_PYTHON=1 leaves it
    elif kafka.fast_module() is None:
        pytest.skip("the compiled Kafka module is off (not built, or DPONE_PURE_PYTHON=1)")
    return str(request.param)


@pytest.fixture
def env(kafka_cluster: MockKafka, kafka_prefix: str, tmp_path: Path, producer: str) -> Env:
    return make_env(kafka_cluster, kafka_prefix, tmp_path)


@pytest.fixture
def quick(kafka_cluster: MockKafka, kafka_prefix: str, tmp_path: Path, producer: str) -> Env:
    """For tests of what goes into a message, not of its delivery: no idempotent producer start-up."""
    return make_env(kafka_cluster, kafka_prefix, tmp_path, idempotence=False)


@pytest.fixture
def own(kafka_own_cluster: MockKafka, kafka_prefix: str, tmp_path: Path, producer: str) -> Env:
    """A cluster of the test's own: faults injected into it reach no other test."""
    return make_env(kafka_own_cluster, kafka_prefix, tmp_path)


@pytest.fixture
def registry() -> Iterator[FakeSchemaRegistry]:
    with FakeSchemaRegistry() as running:
        yield running


def java_partition(key: bytes, partitions: int) -> int:
    """Where the Java client's default partitioner puts a key: murmur2, made positive, modulo."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) as an unsigned 32-bit value."""
    m = 0x5BD1E995
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    whole = len(data) & ~3
    for at in range(0, whole, 4):
        k = (int.from_bytes(data[at : at + 4], "little") * m) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = data[whole:]
    if len(rest) == 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if rest:
        h = ((h ^ rest[0]) * m) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def test_murmur2_matches_kafkas_own_test_vectors() -> None:
    # From Kafka's UtilsTest: the partition checks below rest on this.
    vectors = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536, b"abc": 479470107}
    for data, signed in vectors.items():
        assert murmur2(data) == signed & 0xFFFFFFFF, data


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def exact(value: bytes) -> Any:
    """A JSON value with every number as it was sent (Decimal, int of any width)."""
    return json.loads(value, parse_float=decimal.Decimal)


def laid_out(data: bytes, layout: str) -> bytes:
    """The input as compact JSON lines (what dpone and the Singer SDK write: target-kafka passes the
    record through), or spaced as singer-python writes them (the record is decoded and encoded again)."""
    if layout == "compact":
        return data
    return b"".join(json.dumps(json.loads(line)).encode() + b"\n" for line in data.splitlines())


LAYOUTS = ["compact", "spaced"]


def echoed(out: bytes) -> list[Any]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def ids(rows: list[dict[str, Any]] | None) -> list[int]:
    return sorted(r["id"] for r in rows or [])


# -- keys ---------------------------------------------------------------------------------------------------

TEXT_ID = {"id": {"type": "string"}, "name": {"type": ["string", "null"]}}
TWO_KEYS = {"tenant": {"type": "string"}, "id": {"type": "integer"}, "name": {"type": ["string", "null"]}}
# key properties, schema, the record's key values, key_format, the key's bytes
KEYS: dict[str, tuple[list[str], dict[str, Any], dict[str, Any], str, bytes | None]] = {
    "json_integer": (["id"], PROPS, {"id": 42}, "json", b'{"id":42}'),
    "json_negative": (["id"], PROPS, {"id": -7}, "json", b'{"id":-7}'),
    "json_text": (["id"], TEXT_ID, {"id": 'a"b é'}, "json", '{"id":"a\\"b é"}'.encode()),
    "json_composite_in_key_order": (
        ["tenant", "id"],
        TWO_KEYS,
        {"id": 7, "tenant": "acme"},
        "json",
        b'{"tenant":"acme","id":7}',
    ),
    "string_integer": (["id"], PROPS, {"id": 42}, "string", b"42"),
    "string_negative": (["id"], PROPS, {"id": -7}, "string", b"-7"),
    "string_text": (["id"], TEXT_ID, {"id": 'a"b é'}, "string", 'a"b é'.encode()),
    "keyless_json": ([], PROPS, {"id": 42}, "json", None),
    "keyless_string": ([], PROPS, {"id": 42}, "string", None),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", sorted(KEYS))
def test_message_keys(quick: Env, case: str, layout: str) -> None:
    keys, props, values, key_format, expected = KEYS[case]
    first = {**values, "name": "first"}
    # The same key again, its properties in another order and another value beside them.
    second = {"name": "second", **dict(reversed(list(values.items())))}
    data = lines(schema("k", props, keys), record("k", first), record("k", second), state({"s": 1}))
    data = laid_out(data, layout)
    assert ok(quick.kit.run(data, key_format=key_format)).states == [{"s": 1}]
    ok(quick.kit.run(data, key_format=key_format))  # another run gives the same bytes
    found = quick.messages("k")
    assert [m.key for m in found] == [expected] * 4
    if expected is not None:
        assert len({m.partition for m in found}) == 1


@pytest.mark.parametrize("layout", ["compact", "spaced"])
@pytest.mark.parametrize("key_format", ["json", "string"])
@pytest.mark.parametrize(
    ("kind", "first", "second"),
    [
        ("number", "12345678901234567890.5", "12345678901234567890.6"),
        ("integer", "123456789012345678901234567890", "123456789012345678901234567891"),
        ("integer", "-9223372036854775809", "-9223372036854775810"),
    ],
    ids=["long_decimal", "wide_integer", "below_int64"],
)
def test_a_key_keeps_every_digit(quick: Env, kind: str, first: str, second: str, key_format: str, layout: str) -> None:
    """Keys of two records whose ids differ in the last digit differ, and carry the digits as sent
    (as the values do): a compacted topic must not merge them."""
    sep = b" " if layout == "spaced" else b""
    data = lines(schema("n", {"id": {"type": kind}, "v": {"type": "integer"}}))
    for text in (first, second):
        data += b'{"type":"RECORD",%b"stream":"n",%b"record":{"id":%b,%b"v":1}}\n' % (sep, sep, text.encode(), sep)
    ok(quick.kit.run(data, key_format=key_format))
    expected = [t.encode() if key_format == "string" else b'{"id":%b}' % t.encode() for t in (first, second)]
    assert sorted(m.key or b"" for m in quick.messages("n")) == sorted(expected)


def test_key_format_string_takes_exactly_one_key_property(quick: Env) -> None:
    before = quick.dest.topics()
    data = lines(schema("two", TWO_KEYS, ["tenant", "id"]), record("two", {"tenant": "a", "id": 1}), state({"s": 1}))
    result = quick.kit.run(data, key_format="string")
    line = error_line(quick.kit, result, "config", 78)
    assert "key_format string" in line and "'two'" in line and "json" in line, line
    assert result.states == []
    assert quick.dest.topics() == before


@pytest.mark.parametrize("key_format", ["json", "string"])
def test_a_key_keeps_its_partition_and_its_order(env: Env, key_format: str) -> None:
    """Every version of a key lands in the partition Java's partitioner gives it, in input order,
    while many produce requests are in flight (no linger, small batches)."""
    partitions, keys, versions = 6, 40, 8
    env.topic("orders", partitions)
    props = {"id": {"type": "integer"}, "v": {"type": "integer"}}
    sent = [record("orders", {"id": k, "v": v}) for v in range(versions) for k in range(keys)]
    data = lines(schema("orders", props), *sent, state({"s": 1}))
    ok(env.kit.run(data, key_format=key_format, batch_size_rows=37, linger_ms=0, producer_batch_bytes=200))
    found = env.messages("orders")
    assert len(found) == keys * versions
    per_key: dict[bytes, list[Message]] = {}
    for m in found:
        assert m.key is not None
        per_key.setdefault(m.key, []).append(m)
    assert len(per_key) == keys
    for key, got in per_key.items():
        assert {m.partition for m in got} == {java_partition(key, partitions)}, key
        assert [m.json()["v"] for m in got] == list(range(versions)), key
    assert len({m.partition for m in found}) > 1


# -- headers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_headers_name_the_stream_its_schema_and_the_operation(quick: Env, layout: str) -> None:
    stream = "sales/orders"
    quick.topic(stream, 1)  # one partition: the messages in input order
    v1 = PROPS
    v1_reordered = dict(reversed(list(PROPS.items())))
    v2 = {**PROPS, "age": {"type": ["integer", "null"]}}
    data = lines(
        schema(stream, v1),
        record(stream, {"id": 1, "name": "a"}),
        record(stream, {"id": 2, "name": "b", "_sdc_deleted_at": DELETED_AT}),
        schema(stream, v1),  # the same SCHEMA again
        record(stream, {"id": 3, "name": "c"}),
        schema(stream, v2),  # a new property
        record(stream, {"id": 4, "name": "d", "age": 40}),
        schema(stream, v1_reordered),  # the first schema, its properties in another order
        record(stream, {"id": 5, "name": "e"}),
        schema(stream, v1, ["id", "name"]),  # other key properties
        record(stream, {"id": 6, "name": "f"}),
        state({"s": 1}),
    )
    ok(quick.kit.run(laid_out(data, layout)))
    found = quick.messages(stream)
    assert [m.json()["id"] for m in found] == [1, 2, 3, 4, 5, 6]
    for m in found:
        assert sorted(name for name, _ in m.headers) == ["dpone-op", "dpone-schema", "dpone-stream"], m.headers
        assert m.header("dpone-stream") == stream
        assert re.fullmatch(r"[0-9a-f]{16}", m.header("dpone-schema") or ""), m.headers
    assert [m.header("dpone-op") for m in found] == ["insert", "delete", "insert", "insert", "insert", "insert"]
    fp = [m.header("dpone-schema") for m in found]
    assert fp[0] == fp[1] == fp[2] == fp[4]
    assert len({fp[0], fp[3], fp[5]}) == 3
    # Another run with the same schema: the same fingerprint.
    ok(quick.kit.run(lines(schema(stream, v1), record(stream, {"id": 7, "name": "g"}))))
    assert quick.messages(stream)[-1].header("dpone-schema") == fp[0]


# -- deletes ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "keyless"])
@pytest.mark.parametrize("mode", ["default", "record", "tombstone", "record_and_tombstone"])
def test_deletes(quick: Env, mode: str, keyed: bool, layout: str) -> None:
    quick.topic("d", 1)
    one = {"id": 1, "name": "a"}
    gone = {"id": 1, "name": "a", "_sdc_deleted_at": DELETED_AT}
    two = {"id": 2, "name": "b", "_sdc_deleted_at": None}  # a null deletion time is no delete
    data = lines(
        schema("d", PROPS, ["id"] if keyed else []),
        record("d", one),
        state({"s": 1}),
        record("d", gone),
        record("d", two),
        state({"s": 2}),
    )
    result = quick.kit.run(laid_out(data, layout), **({} if mode == "default" else {"delete_mode": mode}))
    mode = "record" if mode == "default" else mode
    got = [(m.key, None if m.value is None else json.loads(m.value), m.header("dpone-op")) for m in quick.messages("d")]
    if not keyed and mode != "record":
        line = error_line(quick.kit, result, "data", 65)
        assert "line 4" in line and "'d'" in line and "tombstone" in line and "no key properties" in line, line
        assert result.states == [{"s": 1}]
        assert got == [(None, one, "insert")]  # nothing of the refused delete
        return

    def key(i: int) -> bytes | None:
        return b'{"id":%d}' % i if keyed else None

    assert ok(result).states[-1] == {"s": 2}
    expected: list[tuple[bytes | None, Any, str]] = [(key(1), one, "insert")]
    if mode != "tombstone":
        expected.append((key(1), gone, "delete"))
    if mode != "record":
        expected.append((key(1), None, "delete"))  # the tombstone: the key, no value
    expected.append((key(2), two, "insert"))
    assert got == expected


# -- value formats: JSON ------------------------------------------------------------------------------------

EXACT_VALUES: dict[str, tuple[dict[str, Any], bytes]] = {
    "long_decimal": ({"type": "number"}, b"12345678901234567890.123456789012345678901234567890"),
    "tiny_decimal": ({"type": "number"}, b"-0.000000000000000000000000000001"),
    "trailing_zero": ({"type": ["number", "null"]}, b"1.10"),
    "beyond_a_double": ({"type": "number"}, b"1E+400"),
    "negative_zero": ({"type": "number"}, b"-0.0"),
    "wide_integer": ({"type": "integer"}, b"123456789012345678901234567890"),
    "below_int64": ({"type": ["integer", "null"]}, b"-9223372036854775809"),
    "inside_an_object": ({"type": "object"}, b'{"n":0.1000000000000000000001,"m":[1.10,2]}'),
    "decimal_string": ({"type": "string", "format": "singer.decimal"}, b'"1.2300"'),
}


@pytest.mark.parametrize("layout", ["compact", "spaced"])
@pytest.mark.parametrize("case", sorted(EXACT_VALUES))
def test_json_values_keep_every_digit(quick: Env, case: str, layout: str) -> None:
    """A compact RECORD line's record goes out byte for byte; any other layout, value for value."""
    prop, text = EXACT_VALUES[case]
    body = b'{"id":1,"v":%b}' % text
    if layout == "compact":
        line = b'{"type":"RECORD","stream":"x","record":%b}\n' % body
    else:
        line = b'{"type": "RECORD", "stream": "x", "record": {"id": 1, "v": %b}}\n' % text
    ok(quick.kit.run(lines(schema("x", {"id": {"type": "integer"}, "v": prop})) + line))
    (only,) = quick.messages("x")
    assert only.value is not None
    if layout == "compact":
        assert only.value == body
    else:
        assert exact(only.value) == exact(body), only.value


# -- value formats: Avro ------------------------------------------------------------------------------------


def registry_get(url: str, path: str) -> Any:
    with urllib.request.urlopen(url + path, timeout=10) as answer:
        return json.loads(answer.read())


def decode_avro(value: bytes | None, url: str) -> tuple[int, dict[str, Any]]:
    """A Confluent-framed Avro value: magic byte 0, the schema id (4 bytes, big-endian), the body."""
    assert value is not None and len(value) >= 5 and value[0] == 0, value
    schema_id = int.from_bytes(value[1:5], "big")
    writer = fastavro.parse_schema(json.loads(registry_get(url, f"/schemas/ids/{schema_id}")["schema"]))
    decoded = fastavro.schemaless_reader(io.BytesIO(value[5:]), writer, None)
    assert isinstance(decoded, dict)
    return schema_id, decoded


def avro_config(url: str, **extra: Any) -> dict[str, Any]:
    return {"value_format": "avro", "schema_registry_url": url, **extra}


def test_avro_values_are_confluent_framed_under_the_topics_subject(quick: Env, registry: FakeSchemaRegistry) -> None:
    quick.topic("av", 1)
    props = {
        "id": {"type": "integer"},
        "name": {"type": ["string", "null"]},
        "active": {"type": ["boolean", "null"]},
        "at": {"type": ["string", "null"], "format": "date-time"},
    }
    sent: list[dict[str, Any]] = [
        {"id": 1, "name": "a", "active": True, "at": "2024-05-01T10:00:00.123456+00:00"},
        {"id": 2, "name": None, "active": False, "at": None},
    ]
    data = lines(schema("av", props), *[record("av", r) for r in sent], state({"s": 1}))
    assert ok(quick.kit.run(data, **avro_config(registry.url))).states == [{"s": 1}]
    subject = f"{quick.dest.topic_for('av')}-value"
    latest = registry_get(registry.url, f"/subjects/{quote(subject, safe='')}/versions/latest")
    found = quick.messages("av")
    assert [m.key for m in found] == [b'{"id":1}', b'{"id":2}']  # keys stay JSON
    assert [m.header("dpone-op") for m in found] == ["insert", "insert"]
    for m, want in zip(found, sent, strict=True):
        schema_id, got = decode_avro(m.value, registry.url)
        assert schema_id == latest["id"]
        assert (got["id"], got["name"], got["active"]) == (want["id"], want["name"], want["active"])
        at = got["at"]
        assert (at if at is None else at.astimezone(dt.UTC)) == (want["at"] and dt.datetime.fromisoformat(want["at"]))


@pytest.mark.parametrize("change", ["added_property", "changed_type"])
def test_avro_schema_changes(quick: Env, registry: FakeSchemaRegistry, change: str) -> None:
    """A new nullable property is a new compatible version; a type change is refused by the registry:
    the run stops naming the subject, and the records before it keep their state."""
    quick.topic("ev", 1)
    v1 = PROPS
    if change == "added_property":
        v2, third = {**PROPS, "age": {"type": ["integer", "null"]}}, {"id": 3, "name": "c", "age": 30}
    else:
        v2, third = {"id": {"type": "integer"}, "name": {"type": ["integer", "null"]}}, {"id": 3, "name": 3}
    data = lines(
        schema("ev", v1),
        record("ev", {"id": 1, "name": "a"}),
        record("ev", {"id": 2, "name": "b"}),
        state({"s": 1}),
        schema("ev", v2),
        record("ev", third),
        state({"s": 2}),
    )
    result = quick.kit.run(data, **avro_config(registry.url))
    subject = f"{quick.dest.topic_for('ev')}-value"
    decoded = [decode_avro(m.value, registry.url) for m in quick.messages("ev")]
    if change == "added_property":
        assert ok(result).states[-1] == {"s": 2}
        assert [r["id"] for _, r in decoded] == [1, 2, 3]
        assert decoded[2][1]["age"] == 30
        first_id, second_id = decoded[0][0], decoded[2][0]
        assert decoded[1][0] == first_id != second_id
        latest = registry_get(registry.url, f"/subjects/{quote(subject, safe='')}/versions/latest")
        assert latest["id"] == second_id
        return
    line = error_line(quick.kit, result, "data", 65)
    assert subject in line and "incompatible" in line and "line 5" in line, line
    assert result.states == [{"s": 1}]
    assert [r["id"] for _, r in decoded] == [1, 2]


@pytest.mark.parametrize(
    ("failure", "kind", "rc"),
    [
        ("registry_down", "transient", 75),
        ("server_error", "transient", 75),
        ("wrong_password", "config", 78),
        ("wrong_password_in_the_url", "config", 78),
        ("no_registry_url", "config", 78),
    ],
)
def test_registry_failures_stop_before_anything_is_sent(quick: Env, failure: str, kind: str, rc: int) -> None:
    data = lines(schema("rf", PROPS), record("rf", {"id": 1, "name": "a"}), state({"s": 1}))
    before = quick.dest.topics()
    with FakeSchemaRegistry(username="dpone", password="right-password") as registry:
        address = registry.url.removeprefix("http://")
        config = avro_config(registry.url, schema_registry_username="dpone", schema_registry_password="right-password")
        if failure == "registry_down":
            address = f"127.0.0.1:{closed_port()}"
            config["schema_registry_url"] = f"http://{address}"
        elif failure == "server_error":
            registry.fail_next(500, times=20)
        elif failure == "wrong_password":
            config["schema_registry_password"] = SECRET
        elif failure == "wrong_password_in_the_url":
            del config["schema_registry_username"], config["schema_registry_password"]
            config["schema_registry_url"] = f"http://dpone:{SECRET}@{address}"
        else:
            del config["schema_registry_url"]
        result = quick.kit.run(data, **config)
    line = error_line(quick.kit, result, kind, rc)
    assert ("schema_registry_url" if failure == "no_registry_url" else address) in line, line
    assert SECRET not in result.stderr
    assert result.states == []
    assert quick.dest.topics() == before


# -- refusals: load methods and ACTIVATE_VERSION ------------------------------------------------------------

ACTIVATE = {"type": "ACTIVATE_VERSION", "stream": "people", "version": 2}


def _with_activate(where: str) -> list[dict[str, Any]]:
    r = [record("people", {"id": i, "name": f"n{i}"}, version=2) for i in range(1, 5)]
    body: list[dict[str, Any]] = [r[0], r[1], state({"s": 1}), r[2], r[3], state({"s": 2})]
    at = {"none": None, "first": 0, "after_a_state": 3, "before_the_last_state": 5}[where]
    if at is not None:
        body.insert(at, ACTIVATE)
    return [schema("people", PROPS), *body]


@pytest.mark.parametrize("where", ["none", "first", "after_a_state", "before_the_last_state"])
@pytest.mark.parametrize("setting", [None, "fail", "ignore"], ids=["av_default", "av_fail", "av_ignore"])
@pytest.mark.parametrize("method", [None, "append-only", "overwrite", "upsert"], ids=lambda m: f"method_{m}")
def test_load_methods_and_activate_version(quick: Env, method: str | None, setting: str | None, where: str) -> None:
    config = {"load_method": method, "activate_version": setting}
    before = quick.dest.topics()
    result = quick.kit.run(lines(*_with_activate(where)), **{k: v for k, v in config.items() if v is not None})
    got = ids(quick.kit.rows("people"))
    if method in ("overwrite", "upsert"):
        line = error_line(quick.kit, result, "config", 78)
        assert method in line and "append-only" in line, line
        assert result.states == []
        assert quick.dest.topics() == before
        return
    if where == "none" or setting == "ignore":
        assert ok(result).states[-1] == {"s": 2}
        assert got == [1, 2, 3, 4]  # appended, as every other record
        return
    line = error_line(quick.kit, result, "config", 78)
    assert "ACTIVATE_VERSION" in line and "activate_version: ignore" in line and "'people'" in line, line
    # The states whose records were sent before the refusal go out (their records are acknowledged);
    # none past it.
    expected_states = {"first": [], "after_a_state": [{"s": 1}], "before_the_last_state": [{"s": 1}]}[where]
    assert result.states == expected_states
    assert got == {"first": [], "after_a_state": [1, 2], "before_the_last_state": [1, 2, 3, 4]}[where]


# -- settings mistakes --------------------------------------------------------------------------------------

BAD_TOPICS: dict[str, tuple[dict[str, Any], str]] = {
    "space": ({"topic": "PFX_bad topic {stream}"}, "topic for stream 'people'"),
    "punctuation": ({"topic": "PFX_{stream}!"}, "topic for stream 'people'"),
    "another_placeholder": ({"topic": "PFX_{table}"}, "{stream}"),
    "too_long": ({"topic": "PFX_" + "x" * 245 + "{stream}"}, "topic for stream 'people'"),
    "dot": ({"topic": "."}, "topic for stream 'people'"),
    "dot_dot": ({"topic": ".."}, "topic for stream 'people'"),
    "map_space": ({"topic_map": {"people": "PFX_has space"}}, "topic_map['people']"),
    "map_empty": ({"topic_map": {"people": ""}}, "topic_map['people']"),
    "map_too_long": ({"topic_map": {"people": "y" * 250}}, "topic_map['people']"),
    "map_dot_dot": ({"topic_map": {"people": ".."}}, "topic_map['people']"),
    "map_not_an_object": ({"topic_map": ["people"]}, "topic_map"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOPICS))
def test_a_bad_topic_name_stops_before_anything_is_created(quick: Env, case: str) -> None:
    settings, says = BAD_TOPICS[case]
    settings = json.loads(json.dumps(settings).replace("PFX_", quick.dest.prefix))
    before = quick.dest.topics()
    result = quick.kit.run(lines(schema("people", PROPS), record("people", {"id": 1, "name": "a"})), **settings)
    line = error_line(quick.kit, result, "config", 78)
    assert says in line, line
    assert result.states == []
    assert quick.dest.topics() == before


GOOD_TOPICS = {
    "sales/orders": "sales_orders",
    "public.orders-v1_x": "public.orders-v1_x",
    "db:schema table": "db_schema_table",
    "café": "caf_",
}


@pytest.mark.parametrize("stream", sorted(GOOD_TOPICS))
def test_a_stream_name_becomes_a_topic_name(quick: Env, stream: str) -> None:
    ok(quick.kit.run(lines(schema(stream, PROPS), record(stream, {"id": 1, "name": "a"}))))
    assert quick.dest.tables() == {quick.dest.prefix + GOOD_TOPICS[stream]}
    (only,) = quick.messages(stream)
    assert only.header("dpone-stream") == stream  # the header keeps the name as it was


def test_topic_map_wins_over_the_template(quick: Env) -> None:
    mapped = f"{quick.dest.prefix}people.v1"
    data = lines(
        schema("people", PROPS),
        schema("pets", PROPS),
        record("people", {"id": 1, "name": "a"}),
        record("pets", {"id": 2, "name": "b"}),
    )
    ok(quick.kit.run(data, topic_map={"people": mapped}))
    assert quick.dest.tables() == {mapped, quick.dest.topic_for("pets")}
    assert ids(quick.dest.rows(mapped)) == [1]


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (UNKNOWN_TOPIC_OR_PART, "Unknown topic or partition"),
        (TOPIC_AUTHORIZATION_FAILED, "TOPIC_AUTHORIZATION_FAILED"),
    ],
    ids=["missing_and_not_created", "not_authorized"],
)
def test_a_topic_the_brokers_refuse_stops_the_run(own: Env, code: int, says: str) -> None:
    """The brokers answer the topic's metadata with an error (no auto-creation, no ACL): a config error
    naming the topic, and no state."""
    topic = own.dest.topic_for("people")
    own.cluster.topic_error(topic, code)
    data = lines(schema("people", PROPS), record("people", {"id": 1, "name": "a"}), state({"s": 1}))
    result = own.kit.run(data, connect_timeout=3)
    line = error_line(own.kit, result, "config", 78)
    assert topic in line and says in line, line
    assert result.states == []


@pytest.mark.parametrize("security", ["PLAINTEXT", "SASL_PLAINTEXT"])
def test_an_unreachable_cluster_fails_within_connect_timeout_without_secrets(quick: Env, security: str) -> None:
    address = f"127.0.0.1:{closed_port()}"
    config: dict[str, Any] = {"bootstrap_servers": address, "connect_timeout": 1, "sasl_password": SECRET}
    if security != "PLAINTEXT":
        config.update(security_protocol=security, sasl_mechanism="PLAIN", sasl_username="dpone")
    started = time.monotonic()
    result = quick.kit.run(lines(schema("people", PROPS), record("people", {"id": 1, "name": "a"})), **config)
    took = time.monotonic() - started
    line = error_line(quick.kit, result, "transient", 75)
    assert address in line and "bootstrap_servers" in line, line
    assert SECRET not in result.stderr
    assert result.states == []
    assert took < 6, took


@pytest.mark.parametrize(
    ("properties", "says"),
    [
        ({"no.such.property": 1}, "no.such.property"),
        ({"acks": "sometimes"}, "Invalid value"),
        ({"on_delivery": "print"}, "callback"),
        ("linger.ms=5", "kafka_properties"),
    ],
    ids=["unknown_property", "bad_value", "a_callback", "not_an_object"],
)
def test_kafka_properties_mistakes_are_config_errors(quick: Env, properties: Any, says: str) -> None:
    before = quick.dest.topics()
    result = quick.kit.run(lines(schema("people", PROPS), record("people", {"id": 1})), kafka_properties=properties)
    assert says in error_line(quick.kit, result, "config", 78)
    assert result.states == []
    assert quick.dest.topics() == before


def test_kafka_properties_are_applied_over_the_targets_own(quick: Env) -> None:
    """message.max.bytes from kafka_properties holds: a record over it stops the run, naming its line."""
    data = lines(
        schema("big", PROPS),
        record("big", {"id": 1, "name": "small"}),
        state({"s": 1}),
        record("big", {"id": 2, "name": "x" * 5000}),
        state({"s": 2}),
    )
    result = quick.kit.run(data, batch_size_rows=1, kafka_properties={"message.max.bytes": 2000, "linger.ms": 0})
    line = error_line(quick.kit, result, "data", 65)
    assert "line 4" in line and "'big'" in line, line
    assert result.states == [{"s": 1}]
    assert ids(quick.kit.rows("big")) == [1]


# -- STATE only after acknowledgement -----------------------------------------------------------------------

STATE_PLACES = {
    # every how many records a STATE comes, batch_size_rows
    "after_every_record": (1, 100_000),
    "at_batch_boundaries": (10, 5),  # two streams alternate: every 10 records both batches are full
    "off_batch_boundaries": (3, 4),
    "only_at_the_end": (0, 7),
}


@pytest.mark.parametrize("place", sorted(STATE_PLACES))
def test_every_echoed_state_covers_acknowledged_messages(env: Env, place: str) -> None:
    every, batch = STATE_PLACES[place]
    got = run_with_interleaved_states(env.kit, env.dest, every, batch)
    if place == "at_batch_boundaries":
        assert got == [10, 20, 30]  # each goes out as soon as its batch is acknowledged


def run_with_interleaved_states(kit: TargetKit, dest: KafkaDest, every: int, batch: int, total: int = 30) -> list[int]:
    """Two streams share the producer; a STATE after record n covers records 1..n of both. After each
    STATE line is handled, every state echoed so far must be covered by the topics (messages wait in
    the producer for linger_ms, so a state echoed when its records were only queued would show).
    Returns the echoed states' n."""
    checks: list[int] = []

    def present() -> set[int]:
        return set(ids(dest.rows(dest.topic_for("a")))) | set(ids(dest.rows(dest.topic_for("b"))))

    def check(out: bytes) -> None:
        states = [s["n"] for s in echoed(out)]
        if not states or (checks and states[-1] == checks[-1]):
            return
        found = present()
        assert set(range(1, states[-1] + 1)) <= found, (states, sorted(found))
        checks.append(states[-1])

    parts: list[Part] = [lines(schema("a", PROPS), schema("b", PROPS))]
    for i in range(1, total + 1):
        parts.append(lines(record("a" if i % 2 else "b", {"id": i, "name": f"n{i}"})))
        if (every and i % every == 0) or i == total:
            parts += [lines(state({"n": i})), check]
    result = ok(kit.run_hooked(*parts, batch_size_rows=batch, linger_ms=100))
    got = [s["n"] for s in result.states]
    assert got == sorted(set(got)) and got[-1] == total, got
    assert present() == set(range(1, total + 1))
    return got


def test_a_state_waits_for_the_brokers_answer(own: Env) -> None:
    """With every broker answer 400 ms late, no state can be echoed before that long after its records."""
    sent_at: list[float] = []

    def slow_down(out: bytes) -> None:
        own.cluster.broker_rtt(400)

    def nothing_yet(out: bytes) -> None:
        if time.monotonic() - sent_at[0] < 0.3:  # the answer cannot be here yet
            assert out == b"", out

    parts: list[Part] = [
        lines(schema("people", PROPS)),
        slow_down,
        lambda out: sent_at.append(time.monotonic()),
        lines(record("people", {"id": 1, "name": "a"}), state({"s": 1})),
        nothing_yet,
        lines(record("people", {"id": 2, "name": "b"}), state({"s": 2})),
        nothing_yet,
    ]
    result = ok(own.kit.run_hooked(*parts, linger_ms=0))
    assert result.states[-1] == {"s": 2}
    own.cluster.broker_rtt(0)
    assert ids(own.kit.rows("people")) == [1, 2]


def _push(code: int, times: int = 1) -> Callable[[Env], None]:
    return lambda env: env.cluster.push_request_errors(PRODUCE, *([code] * times))


# A delivery that times out is reported by librdkafka (_MSG_TIMED_OUT, naming the topic) or, when the
# target's own deadline comes first (a busy machine), by the target's flush: either is the same fault.
TIMED_OUT = "_MSG_TIMED_OUT"
UNACKNOWLEDGED = "not acknowledged by the brokers"

# How a delivery fails, the error kind and exit code, and what the error line says.
FAULTS: dict[str, tuple[Callable[[Env], None], str, int, str]] = {
    "retriable_error_until_timeout": (_push(NOT_ENOUGH_REPLICAS, 1000), "transient", 75, TIMED_OUT),
    "broker_down": (lambda env: env.cluster.broker_down(), "transient", 75, TIMED_OUT),
    "disconnected_at_every_produce": (_push(TRANSPORT, 1000), "transient", 75, TIMED_OUT),
    "message_too_large": (_push(MSG_SIZE_TOO_LARGE), "data", 65, "MSG_SIZE_TOO_LARGE"),
    "invalid_record": (_push(INVALID_RECORD), "data", 65, "INVALID_RECORD"),
    "not_authorized": (_push(TOPIC_AUTHORIZATION_FAILED), "config", 78, "TOPIC_AUTHORIZATION_FAILED"),
}


@pytest.mark.parametrize("when", ["before_any_state", "after_a_state"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_delivery_failure_stops_the_run_with_no_state_past_it(own: Env, fault: str, when: str) -> None:
    inject, kind, rc, says = FAULTS[fault]
    own.topic("people", 2)
    timeout = 1
    first = [record("people", {"id": i, "name": "a"}) for i in range(1, 6)]
    later = [record("people", {"id": i, "name": "b"}) for i in range(6, 13)]
    seen: list[bytes] = []
    parts: list[Part] = [lines(schema("people", PROPS))]
    if when == "before_any_state":
        parts += [lambda out: inject(own), lines(*first, state({"n": 5}), *later, state({"n": 12}))]
    else:
        # batch_size_rows 5: record 5 fills the batch, its acknowledgement is awaited, and the state goes out.
        parts += [lines(*first, state({"n": 5})), seen.append, lambda out: inject(own)]
        parts += [lines(*later[:5], state({"n": 10}), *later[5:], state({"n": 12}))]
    started = time.monotonic()
    result = own.kit.run_hooked(*parts, batch_size_rows=5, delivery_timeout_seconds=timeout)
    took = time.monotonic() - started
    own.cluster.broker_up()
    line = error_line(own.kit, result, kind, rc)
    if says == TIMED_OUT and UNACKNOWLEDGED in line:
        assert "no state past them was echoed" in line, line
    else:
        assert says in line and own.dest.topic_for("people") in line, line
    expected = [] if when == "before_any_state" else [{"n": 5}]
    assert result.states == expected
    if when == "after_a_state":
        assert echoed(seen[0]) == [{"n": 5}]  # it went out before the fault, as soon as acknowledged
        assert set(range(1, 6)) <= set(ids(own.kit.rows("people")))  # and its records are there
    assert took < timeout + 10, took


# -- producer settings --------------------------------------------------------------------------------------


def test_a_small_queue_waits_for_room_and_delivers_everything_in_order(
    own: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """queue_max_mb 1 with 6 MB of records and slow broker answers: the producer's queue fills
    (BufferError, or the compiled producer's own wait), the target waits for the brokers to take
    some, and every record arrives, each key's in order."""
    partitions, keys, versions = 8, 100, 30
    own.topic("bulk", partitions)  # under the mock's 5 MB a partition
    waits: list[int] = []
    deliveries: list[Delivery] = []
    wait_for_room, init = Delivery._wait_for_room, Delivery.__init__

    def counting(self: Delivery, *args: Any) -> None:
        waits.append(1)
        wait_for_room(self, *args)

    def kept(self: Delivery, *args: Any) -> None:
        init(self, *args)
        deliveries.append(self)

    monkeypatch.setattr(Delivery, "_wait_for_room", counting)
    monkeypatch.setattr(Delivery, "__init__", kept)
    pad = "p" * 2000
    props = {"id": {"type": "integer"}, "v": {"type": "integer"}, "pad": {"type": "string"}}
    sent = [record("bulk", {"id": k, "v": v, "pad": pad}) for v in range(versions) for k in range(keys)]
    data = lines(schema("bulk", props), *sent, state({"s": 1}))
    result = ok(
        own.kit.run_hooked(
            lines(schema("bulk", props)), lambda out: own.cluster.broker_rtt(20), data, queue_max_mb=1, linger_ms=5
        )
    )
    assert result.states == [{"s": 1}]
    waits += [d.producer.room_waits for d in deliveries if d.fast and d.producer.room_waits]
    assert waits, "the queue never filled: the test did not reach the waiting path"
    own.cluster.broker_rtt(0)
    assert sum(own.dest.end_offsets(own.dest.topic_for("bulk")).values()) == keys * versions  # nothing dropped
    per_key: dict[int, list[int]] = {}
    for m in own.messages("bulk"):
        value = m.json()
        per_key.setdefault(value["id"], []).append(value["v"])
    assert per_key == {k: list(range(versions)) for k in range(keys)}


KNOBS: dict[str, dict[str, Any]] = {
    **{f"compression_{c}": {"compression_type": c} for c in ("none", "gzip", "snappy", "lz4", "zstd")},
    "no_linger_small_batches": {"linger_ms": 0, "producer_batch_bytes": 1024},
    "not_idempotent": {"idempotence": False},
    "record_metadata": {"add_record_metadata": True},
    "short_timeouts": {"delivery_timeout_seconds": 5, "connect_timeout": 3},
}


@pytest.mark.parametrize("knob", sorted(KNOBS))
def test_producer_settings_are_taken(env: Env, knob: str) -> None:
    sent = [{"id": i % 10, "name": f"v{i}"} for i in range(100)]
    data = lines(schema("people", PROPS), *[record("people", r) for r in sent], state({"s": 1}))
    assert ok(env.kit.run(data, **KNOBS[knob])).states == [{"s": 1}]
    per_key: dict[int, list[str]] = {}
    for m in env.messages("people"):
        value = m.json()
        if knob == "record_metadata":
            assert {"_sdc_received_at", "_sdc_extracted_at", "_sdc_table_version", "_sdc_deleted_at"} <= set(value)
        else:
            assert not any(k.startswith("_sdc_") for k in value), value
        per_key.setdefault(value["id"], []).append(value["name"])
    assert per_key == {k: [r["name"] for r in sent if r["id"] == k] for k in range(10)}


def test_two_streams_the_template_sends_to_one_topic_stop_the_run(quick: Env) -> None:
    props = {"id": {"type": "integer"}}
    data = lines(
        schema("sales/orders", props, ["id"]),
        record("sales/orders", {"id": 1}),
        schema("sales_orders", props, ["id"]),
        record("sales_orders", {"id": 2}),
    )
    result = quick.kit.run(data)
    line = error_line(quick.kit, result, "config", 78)
    assert "'sales/orders' and 'sales_orders' both go to topic" in line and "topic_map" in line, line
    # A topic_map entry may share a topic on purpose.
    shared = quick.dest.topic_for("shared")
    ok(quick.kit.run(data, topic_map={"sales/orders": shared, "sales_orders": shared}))
    assert sorted(r["id"] for r in quick.dest.rows(shared) or []) == [1, 2]
