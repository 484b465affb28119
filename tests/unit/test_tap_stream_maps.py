"""Stream maps in the tap framework: the Meltano SDK subset that needs no expression evaluation."""

from __future__ import annotations

import decimal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.taps.csv.tap import CsvTap
from dpone.taps.framework.stream import EncodedRecord, ReadContext, Stream
from dpone.taps.framework.stream_maps import StreamMaps
from dpone.taps.framework.tap import Tap
from dpone.taps.framework.tap_cli import about
from dpone_protocol.codec import EXACT_CODEC
from dpone_protocol.messages import ActivateVersionMessage

ROWS = "id,name,email,amount,updated_at\n1,Ada,ada@x.io,10.5,2024-01-01\n2,Bob,bob@x.io,7,2024-01-02\n"


def csv_config(tmp_path: Path, stream_maps: Any = None, **extra: Any) -> dict[str, Any]:
    (tmp_path / "people.csv").write_text(ROWS)
    (tmp_path / "orders.csv").write_text("order_id,total\n1,3.5\n")
    config: dict[str, Any] = {
        "base_path": str(tmp_path),
        "files": [
            {"entity": "people", "path": "people.csv", "keys": ["id"], "replication_key": "updated_at"},
            {"entity": "orders", "path": "orders.csv", "keys": ["order_id"]},
        ],
        **extra,
    }
    if stream_maps is not None:
        config["stream_maps"] = stream_maps
    return config


def by_stream(run: Any, kind: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for m in run.of_type(kind):
        out.setdefault(m["stream"], []).append(m)
    return out


def config_error(run: Any) -> str:
    assert run.rc == 78, run.stderr
    assert run.stdout == b""  # every map is checked before the first message
    return str(run.stderr.strip().splitlines()[-1])


def test_alias_renames_schema_and_records_but_state_keeps_the_source_name(run_tap, tmp_path):
    run = run_tap(CsvTap, csv_config(tmp_path, {"people": {"__alias__": "clients"}}))
    assert run.rc == 0, run.stderr
    schemas, records = by_stream(run, "SCHEMA"), by_stream(run, "RECORD")
    assert set(schemas) == set(records) == {"clients", "orders"}
    assert schemas["clients"][0]["key_properties"] == ["id"]
    assert schemas["clients"][0]["bookmark_properties"] == ["updated_at"]
    assert [r["record"]["name"] for r in records["clients"]] == ["Ada", "Bob"]
    assert set(run.states[-1]["bookmarks"]) == {"people", "orders"}


def test_null_drops_a_property_from_schema_and_records(run_tap, tmp_path):
    run = run_tap(CsvTap, csv_config(tmp_path, {"people": {"email": None, "amount": "__NULL__"}}))
    assert run.rc == 0, run.stderr
    (schema,) = by_stream(run, "SCHEMA")["people"]
    assert list(schema["schema"]["properties"]) == ["id", "name", "updated_at"]
    assert all(set(r["record"]) == {"id", "name", "updated_at"} for r in by_stream(run, "RECORD")["people"])


def test_else_null_keeps_keys_and_listed_properties_and_copies_by_name(run_tap, tmp_path):
    maps = {"people": {"__else__": None, "name": "name", "contact": "email"}}
    run = run_tap(CsvTap, csv_config(tmp_path, maps))
    assert run.rc == 0, run.stderr
    (schema,) = by_stream(run, "SCHEMA")["people"]
    assert list(schema["schema"]["properties"]) == ["id", "name", "contact"]
    assert schema["schema"]["properties"]["contact"] == schema["schema"]["properties"]["name"]
    records = [r["record"] for r in by_stream(run, "RECORD")["people"]]
    assert records == [{"id": 1, "name": "Ada", "contact": "ada@x.io"}, {"id": 2, "name": "Bob", "contact": "bob@x.io"}]
    assert "bookmark_properties" not in schema  # the key left the stream; the tap still tracks it
    assert run.states[-1]["bookmarks"]["people"]["replication_key_value"].startswith("2024-01-02")


def test_key_properties_override(run_tap, tmp_path):
    run = run_tap(CsvTap, csv_config(tmp_path, {"people": {"__key_properties__": ["email"], "id": None}}))
    assert run.rc == 0, run.stderr
    (schema,) = by_stream(run, "SCHEMA")["people"]
    assert schema["key_properties"] == ["email"]
    assert "id" not in schema["schema"]["properties"]


def test_a_null_stream_is_not_read_and_else_null_drops_unmapped_streams(run_tap, tmp_path):
    run = run_tap(CsvTap, csv_config(tmp_path, {"orders": None}))
    assert run.rc == 0, run.stderr
    assert set(by_stream(run, "RECORD")) == {"people"}
    assert set(run.states[-1]["bookmarks"]) == {"people"}

    run = run_tap(CsvTap, csv_config(tmp_path, {"__else__": None, "peo*": {"__alias__": "p"}}))
    assert run.rc == 0, run.stderr
    assert set(by_stream(run, "RECORD")) == {"p"}

    run = run_tap(CsvTap, csv_config(tmp_path, {"__else__": None}))
    assert run.rc == 0, run.stderr
    assert run.of_type("RECORD") == [] and run.states == [{}]


def test_a_glob_maps_every_matching_stream_and_the_last_match_wins(run_tap, tmp_path):
    maps = {"*": {"__key_properties__": []}, "orders": {"total": None}}
    run = run_tap(CsvTap, csv_config(tmp_path, maps))
    assert run.rc == 0, run.stderr
    schemas = {s["stream"]: s for s in run.of_type("SCHEMA")}
    assert schemas["people"]["key_properties"] == []
    assert schemas["orders"]["key_properties"] == ["order_id"]  # its own entry replaced the glob's
    assert "total" not in schemas["orders"]["schema"]["properties"]


@pytest.mark.parametrize(
    ("maps", "message"),
    [
        ({"people": {"__filter__": "amount > 5"}}, "stream_maps.people.__filter__: a filter expression 'amount > 5'"),
        ({"people": {"double": "amount * 2"}}, "stream_maps.people.double: expression 'amount * 2' is not supported"),
        ({"people": {"__alias__": "__stream_name__.upper()"}}, "alias '__stream_name__.upper()' is not supported"),
        ({"people": {"__source__": "orders"}}, "stream_maps.people.__source__"),
        ({"people": {"__else__": "name"}}, "stream_maps.people.__else__: default expression 'name'"),
        ({"people": {"__unknown__": 1}}, "unknown option '__unknown__'"),
        ({"people": {"amount": 5}}, "property definition 5 is not supported"),
        ({"people": "keep"}, "stream_maps.people: stream definition 'keep' is not supported"),
        ({"people": {"id": None}}, "cannot drop key property 'id'"),
        ({"people": {"__key_properties__": ["nope"]}}, "key properties ['nope'] are not in the mapped stream"),
        ({"*": {"__alias__": "same"}}, "would both be sent as 'same'"),
        ({"__source__": None}, "only __else__: null is supported there"),
        (["people"], "setting 'stream_maps' must be object"),
    ],
)
def test_unsupported_or_invalid_maps_are_config_errors_before_any_output(run_tap, tmp_path, maps, message):
    line = config_error(run_tap(CsvTap, csv_config(tmp_path, maps)))
    assert line.startswith("tap-csv: config error: ")
    assert message in line
    if "expression" in message:
        assert "evaluate no stream map expressions" in line


def test_stream_map_config_is_accepted_and_must_be_an_object(run_tap, tmp_path):
    ok = run_tap(CsvTap, csv_config(tmp_path, {"people": {"email": None}}, stream_map_config={"salt": "x"}))
    assert ok.rc == 0, ok.stderr
    bad = run_tap(CsvTap, csv_config(tmp_path, None, stream_map_config="x"))
    assert "setting 'stream_map_config' must be object" in config_error(bad)


def test_batch_messages_carry_the_alias(run_tap, tmp_path):
    batch = {"encoding": {"format": "jsonl", "compression": "gzip"}, "storage": {"root": (tmp_path / "b").as_uri()}}
    run = run_tap(CsvTap, csv_config(tmp_path, {"people": {"__alias__": "clients", "email": None}}, batch_config=batch))
    assert run.rc == 0, run.stderr
    assert {m["stream"] for m in run.of_type("BATCH")} == {"clients", "orders"}
    # The files go by the alias too: a prefix's listing shows the streams as the target sees them.
    for message in run.of_type("BATCH"):
        assert all(uri.rsplit("/", 1)[1].startswith(f"{message['stream']}-") for uri in message["manifest"])


def test_no_maps_is_the_identity():
    maps = StreamMaps.from_config({})
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
    bound = maps.bind("s", schema, ["id"])
    assert bound.identity and not bound.removed and bound.schema is schema
    assert StreamMaps.from_config({"stream_maps": {"s": {"id": "id"}}}).bind("s", schema, ["id"]).identity is False


# -- pre-encoded rows (as tap-postgres sends them) ------------------------------------------------------------


class _EncodedStream(Stream):
    name = "things"
    schema = {"type": "object", "properties": {"id": {"type": "integer"}, "big": {"type": "number"}}}
    key_properties = ["id"]

    def records(self, ctx: ReadContext) -> Iterator[Any]:
        ctx.version = 7
        yield ActivateVersionMessage(self.name, 7)
        yield EncodedRecord(b'{"id":1,"big":12345678901234567890.123456789}')


class _EncodedTap(Tap):
    name = "tap-encoded"

    def discover_streams(self) -> list[Stream]:
        return [_EncodedStream()]


@pytest.mark.parametrize("maps", [None, {"things": {"__alias__": "renamed"}}, {"things": {"copy": "big"}}])
def test_encoded_records_keep_every_digit_and_other_messages_follow_the_alias(run_tap, maps):
    config: dict[str, Any] = {"stream_maps": maps} if maps else {}
    run = run_tap(_EncodedTap, config)
    assert run.rc == 0, run.stderr
    name = "renamed" if maps and "renamed" in str(maps) else "things"
    assert {m["stream"] for m in run.messages if "stream" in m} == {name}
    line = next(raw for raw in run.stdout.splitlines() if b'"RECORD"' in raw)
    record = EXACT_CODEC.loads(line)["record"]
    assert record["big"] == decimal.Decimal("12345678901234567890.123456789")
    assert orjson.loads(line)["version"] == 7
    if maps and "copy" in str(maps):
        assert record["copy"] == record["big"]


def test_about_lists_stream_maps_capabilities_and_secret_settings():
    from dpone.taps.postgres.tap import PostgresTap

    for cls in (CsvTap, PostgresTap):
        doc = orjson.loads(about(cls, "json"))
        assert "stream-maps" in doc["capabilities"]
        assert doc["stream_maps"]["expressions"] is False
        assert {"stream_maps", "stream_map_config"} <= set(doc["settings"]["properties"])
    doc = orjson.loads(about(PostgresTap, "json"))
    secrets = {k for k, v in doc["settings"]["properties"].items() if v.get("secret")}
    assert secrets == {"password", "dsn"}
