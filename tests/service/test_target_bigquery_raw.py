"""target-bigquery's raw path on the emulator: a batch loads as the RECORD lines themselves (the
envelope staging), and gives the rows the decoded path gives; which path a stream takes; the last
record of a key wins though a load job keeps no order; values the decoded path refuses still stop."""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

import pytest

from dpone.targets.bigquery.loader import BigQueryLoader
from dpone.targets.bigquery.target import BigQueryTarget
from dpone.targets.framework.batching import BatchPolicy
from dpone.targets.framework.loader import Loader, StreamPlan
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.config import Redactor
from dpone_protocol.json_schema import ColumnType, Logical
from tests.conftest import Run, record, schema, state
from tests.service.bigquery_dest import BigQueryDest

pytestmark = pytest.mark.service

RunTarget = Callable[..., Run]
# Every type a raw stream can have (numbers without a float format as NUMERIC: `string` takes the
# decoded path, and the emulator cannot make BIGNUMERIC columns).
TYPES = {
    "id": {"type": "integer"},
    "big": {"type": ["null", "integer"]},
    "dec": {"type": ["null", "string"], "format": "singer.decimal", "precision": 38, "scale": 9},
    "money": {"type": ["null", "number"], "multipleOf": 0.01, "maximum": 1e9},
    "plain": {"type": ["null", "number"]},
    "f": {"type": ["null", "number"], "format": "double"},
    "ok": {"type": ["null", "boolean"]},
    "s": {"type": ["null", "string"]},
    "ts": {"type": ["null", "string"], "format": "date-time"},
    "d": {"type": ["null", "string"], "format": "date"},
    "t": {"type": ["null", "string"], "format": "time"},
    "u": {"type": ["null", "string"], "format": "uuid"},
    "o": {"type": ["null", "object"]},
    "tags": {"type": ["null", "array"], "items": {"type": "string"}},
    "nums": {"type": ["null", "array"], "items": {"type": "integer"}},
    "mixed": {"type": ["null", "array"]},
}
FULL = {
    "id": 1,
    "big": -9223372036854775808,
    "dec": "12345678901234567890123456789.123456789",
    "money": Decimal("999999999.99"),
    "plain": Decimal("12345678901234567890.123456789"),
    "f": 0.30000000000000004,
    "ok": True,
    "s": 'caf\u00e9 "quoted" \n tab\t \u2713 \U0001f600 \\ / {"id":null}',
    "ts": "2024-02-29T23:59:59.123456+05:30",
    "d": "0001-01-01",
    "t": "23:59:59.999999",
    "u": "0b6c3b3e-8f4e-4c3a-9a55-7d2f7a3c1e10",
    "o": {"a": [1, {"b": None}], "c": "x\u00e9", "n": Decimal("1.5")},
    "tags": ["a", "", "b"],
    "nums": [1, 9223372036854775807],
    "mixed": [1, "two", {"three": 3}],
}
NUMERIC = {"unbounded_numbers": "numeric"}
PEOPLE = {"id": {"type": "integer"}, "name": {"type": ["null", "string"]}}


def lines(*messages: dict[str, Any]) -> bytes:
    return b"".join(DEFAULT_CODEC.dumps(m) + b"\n" for m in messages)


def ok(result: Run) -> Run:
    assert result.rc == 0, result.stderr
    return result


@pytest.fixture
def dest(bigquery_emulator: Any) -> BigQueryDest:
    return BigQueryDest(bigquery_emulator)


class Watched(BigQueryTarget):
    """Records which path each batch took (raw: bulk_load_encoded; decoded: bulk_load)."""

    paths: ClassVar[list[str]] = []

    def make_loader(self) -> Loader:
        loader = super().make_loader()
        assert isinstance(loader, BigQueryLoader)
        raw, decoded = loader.bulk_load_encoded, loader.bulk_load

        def watched_raw(*args: Any) -> None:
            Watched.paths.append("raw")
            raw(*args)

        def watched_decoded(*args: Any) -> None:
            Watched.paths.append("decoded")
            decoded(*args)

        loader.bulk_load_encoded = watched_raw  # type: ignore[method-assign,assignment]
        loader.bulk_load = watched_decoded  # type: ignore[method-assign,assignment]
        return loader


class Decoded(Watched):
    """The same target with the raw path off: what the decoded path gives."""

    def make_loader(self) -> Loader:
        loader = super().make_loader()
        loader.row_encoder = lambda *_a, **_k: None  # type: ignore[method-assign]
        return loader


@pytest.fixture(autouse=True)
def _fresh_paths() -> None:
    Watched.paths.clear()


def _plan(columns: dict[str, ColumnType], renames: dict[str, str] | None = None) -> StreamPlan:
    return StreamPlan("s", "s", columns, ["id"], "upsert", renames=renames)


def test_which_path_a_stream_takes(dest: BigQueryDest) -> None:
    integer, text = ColumnType(Logical.INTEGER), ColumnType(Logical.STRING)
    number, obj = ColumnType(Logical.NUMBER), ColumnType(Logical.OBJECT)
    policy = BatchPolicy()
    loader = BigQueryLoader(dest.config(unbounded_numbers="numeric"), Redactor())
    strings = BigQueryLoader(dest.config(unbounded_numbers="string"), Redactor(), read_only=True)
    rounding = BigQueryLoader(dest.config(exact_json_numbers=False), Redactor(), read_only=True)
    try:
        assert loader.row_encoder(_plan({"id": integer, "n": text}), policy, metadata=True) is not None
        assert loader.row_encoder(_plan({"id": integer, "n": number}), policy, metadata=True) is not None
        assert loader.row_encoder(_plan({"id": integer, "o": obj}), policy, metadata=True) is not None
        renamed = _plan({"id": integer, "a_b": text}, {"a-b": "a_b"})
        assert loader.row_encoder(renamed, policy, metadata=True) is None
        # A bare JSON number read into STRING goes through a double: numbers kept as text are decoded.
        assert strings.row_encoder(_plan({"id": integer, "n": number}), policy, metadata=True) is None
        assert strings.row_encoder(_plan({"id": integer, "n": text}), policy, metadata=True) is not None
        assert rounding.row_encoder(_plan({"id": integer, "o": obj}), policy, metadata=True) is None
        assert loader.row_encoder(_plan({"id": obj}), policy, metadata=True) is None  # a JSON key
    finally:
        loader.close()
        strings.close()
        rounding.close()


def _comparable(rows: list[dict[str, Any]] | None) -> dict[int, dict[str, Any]]:
    # The load times differ between two runs; every other value must be the same.
    skip = ("_sdc_received_at", "_sdc_batched_at")
    return {r["id"]: {k: v for k, v in r.items() if k not in skip} for r in rows or []}


def test_every_type_through_the_raw_path_as_the_decoded_path_gives_it(
    dest: BigQueryDest, bigquery_emulator: Any, run_target: RunTarget
) -> None:
    other = BigQueryDest(bigquery_emulator)
    empty = {"id": 2, "tags": None, "nums": None}
    data = lines(
        schema("types", TYPES),
        record("types", FULL, version=7, time_extracted="2024-05-01T10:00:00.5+02:00"),
        record("types", empty),
        record("types", {"id": 3, "s": "x", "unknown": {"deep": [1, 2]}, "more": 1e400}),  # not in the schema
        state({"s": 1}),
    )
    assert ok(run_target(Watched, dest.config(**NUMERIC), data)).states == [{"s": 1}]
    assert Watched.paths == ["raw"]
    Watched.paths.clear()
    ok(run_target(Decoded, other.config(**NUMERIC), data.replace(b',"more":1e400', b"")))
    assert Watched.paths == ["decoded"]
    raw, decoded = _comparable(dest.rows("types")), _comparable(other.rows("types"))
    assert raw == decoded
    full = raw[1]
    assert full["dec"] == Decimal("12345678901234567890123456789.123456789")
    assert full["plain"] == Decimal("12345678901234567890.123456789")
    assert full["big"] == -9223372036854775808 and full["nums"] == [1, 9223372036854775807]
    assert full["s"] == FULL["s"] and full["tags"] == ["a", "", "b"]
    assert full["ts"] == dt.datetime(2024, 2, 29, 18, 29, 59, 123456, tzinfo=dt.UTC)
    assert full["_sdc_extracted_at"] == dt.datetime(2024, 5, 1, 8, 0, 0, 500000, tzinfo=dt.UTC)
    assert full["_sdc_table_version"] == 7 and full["_sdc_deleted_at"] is None
    for rows in (dest.rows("types") or [], other.rows("types") or []):
        assert all(r["_sdc_received_at"] is not None and r["_sdc_batched_at"] is not None for r in rows)
    assert raw[2]["tags"] == [] and raw[3]["s"] == "x"


@pytest.mark.parametrize("hard_delete", [False, True])
def test_the_last_record_of_a_key_wins_within_a_raw_batch(
    dest: BigQueryDest, run_target: RunTarget, hard_delete: bool
) -> None:
    ok(run_target(Watched, dest.config(), lines(schema("people", PEOPLE), record("people", {"id": 3, "name": "old"}))))
    gone = "2024-01-01T00:00:00+00:00"
    data = lines(
        schema("people", PEOPLE),
        record("people", {"id": 1, "name": "a1"}),
        record("people", {"id": 2, "name": "b1"}),
        record("people", {"id": 1, "name": "a2"}),
        record("people", {"id": 3, "name": "c1"}),
        record("people", {"id": 2, "name": "b2"}),
        record("people", {"id": 1, "name": "a3"}),  # three times: the third wins
        record("people", {"id": 3, "name": "c2", "_sdc_deleted_at": gone}),  # a CDC delete last
        state({"s": 1}),
    )
    assert ok(run_target(Watched, dest.config(hard_delete=hard_delete), data)).states == [{"s": 1}]
    assert set(Watched.paths) == {"raw"}
    rows = {r["id"]: r for r in dest.rows("people") or []}
    assert (rows[1]["name"], rows[2]["name"]) == ("a3", "b2")
    if hard_delete:
        assert set(rows) == {1, 2}
    else:
        assert rows[3]["name"] == "c2" and rows[3]["_sdc_deleted_at"] == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert len(dest.rows("people") or []) == len(rows)  # one row per key


def test_a_key_deleted_then_sent_again_in_one_batch_is_back(dest: BigQueryDest, run_target: RunTarget) -> None:
    data = lines(
        schema("people", PEOPLE),
        record("people", {"id": 1, "name": "a"}),
        record("people", {"id": 1, "name": "x", "_sdc_deleted_at": "2024-01-01T00:00:00Z"}),
        record("people", {"id": 1, "name": "again"}),
    )
    ok(run_target(Watched, dest.config(hard_delete=True), data))
    assert [(r["id"], r["name"]) for r in dest.rows("people") or []] == [(1, "again")]


def test_append_only_keeps_every_raw_line(dest: BigQueryDest, run_target: RunTarget) -> None:
    data = lines(schema("people", PEOPLE), *[record("people", {"id": 1, "name": f"n{i}"}) for i in range(3)])
    ok(run_target(Watched, dest.config(load_method="append-only"), data))
    assert sorted(r["name"] for r in dest.rows("people") or []) == ["n0", "n1", "n2"]


@pytest.mark.parametrize(
    ("prop", "text", "says"),
    [
        ("big", b"1.5", "is not an integer"),
        ("big", b"9223372036854775808", "beyond INT64"),
        ("nums", b"[1,2.5]", "is not an integer"),
        ("dec", b'"1.0000000001"', "does not fit"),
        ("money", b"1e-20", "does not fit"),
    ],
)
def test_a_raw_value_the_column_cannot_hold_stops_naming_it(
    dest: BigQueryDest, run_target: RunTarget, prop: str, text: bytes, says: str
) -> None:
    # Written by hand: the bytes a tap sends, which the raw path never decodes unless they look wrong.
    bad = b'{"type":"RECORD","stream":"types","record":{"id":7,"%s":%s}}\n' % (prop.encode(), text)
    data = lines(schema("types", TYPES), record("types", {"id": 1})) + bad + lines(state({"s": 1}))
    result = run_target(Watched, dest.config(**NUMERIC), data)
    assert result.rc == 65, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "line 3, stream 'types'" in last and f"column {prop!r}" in last and says in last, last
    assert result.states == [] and dest.tables() == set()


def test_a_record_without_its_key_stops(dest: BigQueryDest, run_target: RunTarget) -> None:
    bad = b'{"type":"RECORD","stream":"people","record":{"name":"nobody","o":{"id":1}}}\n'
    data = lines(schema("people", PEOPLE), record("people", {"id": 1, "name": "a"})) + bad + lines(state({"s": 1}))
    result = run_target(Watched, dest.config(), data)
    assert result.rc == 65 and "no value for key property 'id'" in result.stderr, result.stderr
    assert result.states == []


def test_a_value_the_load_job_refuses_names_the_line_and_the_job(dest: BigQueryDest, run_target: RunTarget) -> None:
    data = lines(
        schema("types", TYPES), record("types", {"id": 1}), record("types", {"id": 2, "ts": "not a time"}), state({})
    )
    result = run_target(Watched, dest.config(**NUMERIC), data)
    assert result.rc == 65 and result.states == [], result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "line 3, stream 'types' (id=2), column 'ts'" in last and "job " in last and "invalid" in last, last
    assert dest.tables() == set()


def test_wide_integers_go_as_text_on_the_raw_path(
    dest: BigQueryDest, run_target: RunTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A raw batch holding an integer beyond 2^53 is rewritten with it as a string before upload
    (BigQuery may read a bare one through a double); the other lines keep their bare numbers."""
    uploads: list[bytes] = []
    real = BigQueryLoader.bulk_load_encoded

    def capture(self: BigQueryLoader, plan: Any, staging: str, rows: Any) -> None:
        client = self.client
        original = client.load_table_from_file

        def load(body: Any, *args: Any, **kwargs: Any) -> Any:
            data = body.read()
            uploads.append(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
            body.seek(0)
            return original(body, *args, **kwargs)

        monkeypatch.setattr(client, "load_table_from_file", load)
        real(self, plan, staging, rows)

    monkeypatch.setattr(BigQueryLoader, "bulk_load_encoded", capture)
    wide = 2**62 + 7
    schema = {
        "type": "SCHEMA",
        "stream": "wide",
        "key_properties": ["id"],
        "schema": {"properties": {"id": {"type": "integer"}, "n": {"type": ["null", "integer"]}}},
    }
    data = lines(
        schema,
        {"type": "RECORD", "stream": "wide", "record": {"id": 1, "n": 5}},
        {"type": "RECORD", "stream": "wide", "record": {"id": 2, "n": wide}},
    )
    ok(run_target(BigQueryTarget, dest.config(), data))
    assert len(uploads) == 1
    assert f'"n":"{wide}"'.encode() in uploads[0] and b'"n":5' in uploads[0]
    rows = dest.rows("wide") or []
    assert sorted((r["id"], r["n"]) for r in rows) == [(1, 5), (2, wide)]
