"""The compiled producer's line rules, without a broker: which lines feed_run takes itself.

feed_run takes a line only when the Python paths would send the very same message from it; every
other line is left (0 lines taken) for them. A producer without brokers only queues its messages, so
what a call took is seen in its counts and in the producer's queue. The messages themselves (keys, values,
headers, partitions) are compared with the Python paths' on a broker in
tests/service/test_target_kafka_fast.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dpone_drivers import kafka
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError, FatalError, TransientError
from dpone_protocol.wire import split_compact_record


@pytest.fixture
def producer() -> Iterator[Any]:
    fast = kafka.fast_module()
    if fast is None:
        pytest.skip("the compiled Kafka module is off (not built, or DPONE_PURE_PYTHON=1)")
    # No brokers: messages wait in the queue, and no connection error is queued beside them.
    made = fast.Producer({"log_level": "0", "message.timeout.ms": "600000"})
    made.register("s", "t", ("id",), "json", [("dpone-op", b"insert")])
    made.register("pairs", "t2", ("a", "b"), "json", [])
    made.register("text", "t3", ("id",), "string", [])
    made.register("keyless", "t4", (), "json", [])
    yield made
    del made


HEAD = b'{"type":"RECORD","stream":"s","record":'
TAKEN = {
    "plain": HEAD + b'{"id":1,"v":"x"}}',
    "version": HEAD + b'{"id":1},"version":12}',
    "negative_version": HEAD + b'{"id":1},"version":-1}',
    "time_extracted": HEAD + b'{"id":1},"time_extracted":"2024-01-01T00:00:00Z"}',
    "both": HEAD + b'{"id":1},"version":1,"time_extracted":"t"}',
    "spaces_inside_the_record": HEAD + b'{ "id" : 1 , "v" : [ 1 , 2 ] }}',
    "key_last": HEAD + b'{"v":{"id":2},"id":1}}',
    "negative_key": HEAD + b'{"id":-5}}',
    "zero_key": HEAD + b'{"id":0}}',
    "eighteen_digits": HEAD + b'{"id":999999999999999999}}',
    "string_key": HEAD + b'{"id":"a b \xc3\xa9"}}',
    "empty_string_json_key": HEAD + b'{"id":""}}',
    "deleted_at_null": HEAD + b'{"id":1,"_sdc_deleted_at":null}}',
    "escapes_elsewhere": HEAD + b'{"id":1,"v":"a\\"b\\u0000\\ud83d\\ude00"}}',
    "nested_key_names_escaped": HEAD + b'{"id":1,"v":{"\\u0069d":2}}}',
    "wide_numbers_elsewhere": HEAD + b'{"id":1,"v":123456789012345678901234567890.5e-3}}',
    "composite": b'{"type":"RECORD","stream":"pairs","record":{"b":2,"a":"x"}}',
    "string_format_integer": b'{"type":"RECORD","stream":"text","record":{"id":42}}',
    "keyless": b'{"type":"RECORD","stream":"keyless","record":{}}',
}
LEFT = {
    "another_type": b'{"type":"STATE","value":{}}',
    "spaced_envelope": b'{"type": "RECORD", "stream": "s", "record": {"id": 1}}',
    "other_key_order": b'{"stream":"s","type":"RECORD","record":{"id":1}}',
    "unknown_stream": b'{"type":"RECORD","stream":"other","record":{"id":1}}',
    "escaped_stream_name": b'{"type":"RECORD","stream":"\\u0073","record":{"id":1}}',
    "extracted_before_version": HEAD + b'{"id":1},"time_extracted":"t","version":1}',
    "version_not_a_number": HEAD + b'{"id":1},"version":"1"}',
    "escaped_time_extracted": HEAD + b'{"id":1},"time_extracted":"\\u0074"}',
    "trailing_space": HEAD + b'{"id":1}} ',
    "carriage_return": HEAD + b'{"id":1}}\r',
    "not_an_object": HEAD + b"[1]}",
    "invalid_json": HEAD + b'{"id":1,"v":tru}}',
    "invalid_utf8": HEAD + b'{"id":1,"v":"\xff"}}',
    "lone_surrogate": HEAD + b'{"id":1,"v":"\\ud800"}}',
    "number_past_a_double": HEAD + b'{"id":1,"v":1e400}}',
    "two_objects": HEAD + b'{"id":1}{"id":2}}',
    "missing_key": HEAD + b'{"v":1}}',
    "null_key": HEAD + b'{"id":null}}',
    "key_twice": HEAD + b'{"id":1,"id":2}}',
    "escaped_key_name": HEAD + b'{"\\u0069d":1}}',
    "escaped_other_name": HEAD + b'{"id":1,"\\u0076":1}}',
    "deleted": HEAD + b'{"id":1,"_sdc_deleted_at":"2024-01-01"}}',
    "deleted_at_twice": HEAD + b'{"id":1,"_sdc_deleted_at":null,"_sdc_deleted_at":null}}',
    "minus_zero_key": HEAD + b'{"id":-0}}',
    "nineteen_digits": HEAD + b'{"id":1000000000000000000}}',
    "fraction_key": HEAD + b'{"id":1.0}}',
    "exponent_key": HEAD + b'{"id":1e2}}',
    "boolean_key": HEAD + b'{"id":true}}',
    "object_key": HEAD + b'{"id":{"a":1}}}',
    "escaped_string_key": HEAD + b'{"id":"a\\nb"}}',
    "escaped_slash_key": HEAD + b'{"id":"a\\/b"}}',
    "composite_missing_one": b'{"type":"RECORD","stream":"pairs","record":{"a":1}}',
    "empty_string_key_as_text": b'{"type":"RECORD","stream":"text","record":{"id":""}}',
    "too_deep": HEAD + b'{"id":1,"v":' + b"[" * 600 + b"]" * 600 + b"}}",
}


@pytest.mark.parametrize("case", sorted(TAKEN))
def test_lines_it_takes(producer: Any, case: str) -> None:
    line = TAKEN[case] + b"\n"
    assert split_compact_record(line) is not None  # what the Python router takes too
    end, count, size, stream = producer.feed_run(line, 0, 10)
    assert (end, count, size) == (len(line), 1, len(line))
    assert stream == line.split(b'"stream":"')[1].split(b'"')[0].decode()
    assert len(producer) == 1


@pytest.mark.parametrize("case", sorted(LEFT))
def test_lines_it_leaves_to_python(producer: Any, case: str) -> None:
    line = LEFT[case] + b"\n"
    assert producer.feed_run(line, 0, 10) == (0, 0, 0, None)
    assert producer.feed_run(TAKEN["plain"] + b"\n" + line, 0, 10)[:2] == (len(TAKEN["plain"]) + 1, 1)
    assert len(producer) == 1


def test_a_run_stops_at_its_limits_and_at_another_stream(producer: Any) -> None:
    line = TAKEN["plain"] + b"\n"
    block = line * 5 + TAKEN["composite"] + b"\n" + line
    assert producer.feed_run(block, 0, 3) == (3 * len(line), 3, 3 * len(line), "s")
    # The line that reaches the byte limit is taken whole.
    assert producer.feed_run(block, 3 * len(line), 10, 1) == (4 * len(line), 1, len(line), "s")
    assert producer.feed_run(block, 4 * len(line), 10)[1:] == (1, len(line), "s")
    assert producer.feed_run(block, 5 * len(line), 10)[1:] == (1, len(TAKEN["composite"]) + 1, "pairs")
    assert len(producer) == 6


def test_a_stream_unregistered_or_registered_again(producer: Any) -> None:
    line = TAKEN["plain"] + b"\n"
    producer.unregister("s")
    producer.unregister("never")
    assert producer.feed_run(line, 0, 1)[1] == 0
    producer.register("s", "t", ("v",), "string", [])
    assert producer.feed_run(line, 0, 1)[1] == 1  # "v":"x" is its key now
    assert producer.feed_run(HEAD + b'{"id":1}}\n', 0, 1)[1] == 0


def test_register_refuses_what_it_cannot_do(producer: Any) -> None:
    with pytest.raises(ValueError, match="key_format"):
        producer.register("x", "t", ("id",), "avro", [])
    with pytest.raises(ValueError, match="one key"):
        producer.register("x", "t", ("a", "b"), "string", [])
    with pytest.raises(TypeError):
        producer.register("x", "t", (1,), "json", [])
    with pytest.raises(TypeError):
        producer.register("x", "t", ("id",), "json", [("h", 1)])


def test_produce_takes_confluents_arguments(producer: Any) -> None:
    producer.produce("t", b"v", b"k", headers=[("a", b"1"), ("b", None), ("c", "text")])
    producer.produce("t", None, None)  # a tombstone without a key
    producer.produce(topic="t", value=b"v")
    assert len(producer) == 3
    with pytest.raises(TypeError):
        producer.produce("t", b"v", b"k", headers=[("a",)])
    assert producer.failure() is None
    assert producer.poll(0) >= 0
    assert producer.flush(0) == 3  # nothing can be acknowledged here


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("MSG_SIZE_TOO_LARGE", DataError),
        ("TOPIC_AUTHORIZATION_FAILED", ConfigError),
        ("_MSG_TIMED_OUT", TransientError),
        ("OUT_OF_ORDER_SEQUENCE_NUMBER", TransientError),
    ],
)
def test_its_errors_are_classified_as_confluents_are(name: str, kind: type[Exception]) -> None:
    error = kafka.classify(kafka.ClientError(1, name, "text"), Redactor(), "doing")
    assert type(error) is kind and str(error).startswith(f"doing: text [{name}]"), error
    fatal = kafka.classify(kafka.ClientError(45, "OUT_OF_ORDER_SEQUENCE_NUMBER", "text", True), Redactor(), "x")
    assert type(fatal) is FatalError
