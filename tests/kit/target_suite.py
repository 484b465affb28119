"""The scenarios every target runs: subclass `TargetSuite` and provide one fixture, `target_kit`.

Black-box on purpose: each scenario runs the connector on a Singer input and reads the destination
back through the kit, so it holds whatever loader, committer or sink the target is built on.
Scenarios that do not apply to a target (per its capabilities) skip, saying why.
"""

from __future__ import annotations

import decimal
import gzip
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from dpone.targets.framework.capabilities import APPEND, OVERWRITE, UPSERT
from tests.conftest import lines, record, schema, state
from tests.kit.kit import TargetKit
from tests.kit.target_checks import (
    DELETED_AT,
    NC,
    PROPS,
    SDK_STREAMS,
    applies,
    error_line,
    evolution,
    instant,
    live,
    need,
    number,
    ok,
    people,
    pick,
    sort_key,
    table,
    without_stamps,
)
from tests.kit.target_faults import FaultScenarios

SDK_FILES = sorted(p.stem for p in SDK_STREAMS.glob("*.singer"))
# The invalid inputs among them, and what the one error line must say.
SDK_INVALID = {
    "record_before_schema": "RECORD received before any SCHEMA",
    "record_missing_key_property": "no value for key property 'id'",
    "invalid_schema": "SCHEMA has no 'properties'",
}


class TargetSuite(FaultScenarios):
    """Subclass it in a test module and define the fixture `target_kit` returning a `TargetKit`."""

    # -- load methods ------------------------------------------------------------------------------------

    @pytest.mark.certifies("load_method:{method}")
    @pytest.mark.parametrize("existing", [False, True], ids=["new_table", "existing_table"])
    @pytest.mark.parametrize("method", [APPEND, UPSERT, OVERWRITE])
    def test_load_method(self, target_kit: TargetKit, method: str, existing: bool) -> None:
        kit = target_kit
        need(method in kit.load_methods(), f"{kit.name} has no {method} load method")
        old = [(1, "old"), (3, "old")]
        if existing:
            ok(kit.run(lines(schema("people", PROPS), *people(*old)), load_method=method))
        sent = [(1, "a"), (2, "b"), (1, "a2"), (2, "b2"), (1, "a3")]
        data = lines(schema("people", PROPS), *people(*sent), state({"s": 1}))
        assert ok(kit.run(data, load_method=method)).states == [{"s": 1}]
        last_per_key = [(1, "a3"), (2, "b2")]
        expected = {
            APPEND: (old if existing else []) + sent,
            # A keyed stream merges, the last duplicate of a batch winning; a file keeps every line.
            UPSERT: last_per_key + ([(3, "old")] if existing else []),
            OVERWRITE: last_per_key if kit.merges() else sent,
        }[method]
        assert pick(table(kit, "people"), "id", "name") == sorted(expected, key=sort_key)
        assert kit.tables() == {kit.table_for("people")}  # no staging or shadow left behind

    @pytest.mark.certifies("load_method:{method}")
    @pytest.mark.parametrize("method", [UPSERT, OVERWRITE])
    def test_the_same_input_twice_gives_the_same_table(self, target_kit: TargetKit, method: str) -> None:
        kit = target_kit
        need(method in kit.load_methods(), f"{kit.name} has no {method} load method")
        props = {**PROPS, "score": {"type": ["number", "null"]}, "tags": {"type": ["array", "null"]}}
        at = "2024-05-01T10:00:00+00:00"
        data = lines(
            schema("people", props),
            *[
                record("people", {"id": i, "name": f"n{i}", "score": i / 3, "tags": [i, "x"]}, time_extracted=at)
                for i in range(1, 50)
            ],
            record("people", {"id": 7, "name": "seven again", "score": None, "tags": None}, time_extracted=at),
            record("people", {"id": 9, "name": "gone", "_sdc_deleted_at": at}, time_extracted=at),
            state({"s": 1}),
        )
        config = {"load_method": method, "batch_size_rows": 16}
        assert ok(kit.run(data, **config)).states == [{"s": 1}]
        first = table(kit, "people")
        assert ok(kit.run(data, **config)).states == [{"s": 1}]
        again = table(kit, "people")
        assert without_stamps(again) == without_stamps(first)
        if kit.merges():
            assert len(again) == 49
            assert pick((r for r in again if r["id"] == 7), "name", "score", "tags") == [("seven again", None, None)]

    @pytest.mark.certifies("load_method:overwrite")
    def test_overwrite_holds_state_until_the_swap(self, target_kit: TargetKit) -> None:
        kit = target_kit
        need(kit.overwrites(), f"{kit.name} has no overwrite load method")
        config = {"load_method": OVERWRITE, "batch_size_rows": 2}
        old = [(1, "old"), (2, "old"), (3, "old")]
        ok(kit.run(lines(schema("people", PROPS), *people(*old)), **config))

        def during_the_run(out: bytes) -> None:
            # Two batches are loaded; readers still see the old table, whole, and no state is out:
            # the mid-stream state covers rows that are not in the table yet.
            assert pick(table(kit, "people"), "id", "name") == old
            assert out == b""

        result = kit.run_hooked(
            lines(schema("people", PROPS), *people((7, "new"), (8, "new")), state({"mid": 1})),
            lines(*people((9, "new"), (10, "new"))),
            during_the_run,
            lines(*people((11, "new")), state({"end": 1})),
            **config,
        )
        assert ok(result).states == [{"end": 1}]
        assert pick(table(kit, "people"), "id") == [(7,), (8,), (9,), (10,), (11,)]
        assert kit.tables() == {kit.table_for("people")}

    @pytest.mark.certifies("load_method:overwrite")
    def test_overwrite_with_no_rows_empties_the_table(self, target_kit: TargetKit) -> None:
        kit = target_kit
        need(kit.overwrites(), f"{kit.name} has no overwrite load method")
        ok(kit.run(lines(schema("people", PROPS), *people((1, "a"), (2, "b"))), load_method=OVERWRITE))
        assert len(table(kit, "people")) == 2
        result = ok(kit.run(lines(schema("people", PROPS), state({"empty": True})), load_method=OVERWRITE))
        assert result.states == [{"empty": True}]
        assert table(kit, "people") == []
        assert kit.tables() == {kit.table_for("people")}

    @pytest.mark.certifies("load_method:overwrite")
    def test_a_failed_overwrite_leaves_the_table_and_the_next_run_replaces_it(self, target_kit: TargetKit) -> None:
        kit = target_kit
        need(kit.overwrites(), f"{kit.name} has no overwrite load method")
        need(kit.has_tables, f"{kit.name} has no typed columns: no value is bad")
        config = {"load_method": OVERWRITE, "batch_size_rows": 2}
        ok(kit.run(lines(schema("people", PROPS), *people((1, "old"), (2, "old"))), **config))
        data = lines(
            schema("people", PROPS),
            *people((7, "new"), (8, "new")),
            state({"mid": 1}),
            record("people", {"id": "bad", "name": "new"}),
            state({"end": 1}),
        )
        result = kit.run(data, **config)
        assert "bad" in error_line(kit, result, "data", 65, "failed_overwrite")
        assert result.states == []
        assert pick(table(kit, "people"), "id", "name") == [(1, "old"), (2, "old")]
        # The next run starts a fresh shadow (dropping the abandoned one) and completes.
        ok(kit.run(lines(schema("people", PROPS), *people((9, "new"))), **config))
        assert pick(table(kit, "people"), "id", "name") == [(9, "new")]
        assert kit.tables() == {kit.table_for("people")}

    # -- versions and deletes ----------------------------------------------------------------------------

    @pytest.mark.certifies("activate_version")
    @pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
    @pytest.mark.parametrize("where", ["after_records", "before_records"])
    def test_activate_version(self, target_kit: TargetKit, where: str, hard: bool) -> None:
        kit = target_kit
        need(kit.activates_versions(), f"{kit.name} does not handle ACTIVATE_VERSION")
        need(kit.deletes(hard), f"{kit.name} has no {'hard' if hard else 'soft'} delete")
        ok(kit.run(lines(schema("people", PROPS), *people((1, "a"), (2, "b"), version=1)), hard_delete=hard))
        activate = {"type": "ACTIVATE_VERSION", "stream": "people", "version": 2}
        rows = people((2, "b2"), (3, "c"), version=2)
        body = [*rows, activate] if where == "after_records" else [activate, *rows]
        data = lines(schema("people", PROPS), *body, state({"v": 2}))
        assert ok(kit.run(data, hard_delete=hard)).states == [{"v": 2}]
        got = table(kit, "people")
        assert pick(live(got), "id", "name", "_sdc_table_version") == [(2, "b2", 2), (3, "c", 2)]
        gone = [r for r in got if r.get("_sdc_deleted_at") is not None]
        assert pick(gone, "id", "_sdc_table_version") == ([] if hard else [(1, 1)])

    @pytest.mark.certifies("delete:hard", hard=True)
    @pytest.mark.certifies("delete:soft", hard=False)
    @pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
    def test_cdc_deletes(self, target_kit: TargetKit, hard: bool) -> None:
        kit = target_kit
        need(kit.deletes(hard), f"{kit.name} has no {'hard' if hard else 'soft'} delete")
        ok(kit.run(lines(schema("people", PROPS), *people((1, "a"), (2, "b"))), hard_delete=hard))
        deleted = record("people", {"id": 1, "name": "a", "_sdc_deleted_at": DELETED_AT})
        ok(kit.run(lines(schema("people", PROPS), deleted), hard_delete=hard))  # a key the table has
        never_had = record("people", {"id": 9, "_sdc_deleted_at": DELETED_AT})
        ok(kit.run(lines(schema("people", PROPS), never_had), hard_delete=hard))
        got = [(r["id"], instant(r.get("_sdc_deleted_at"))) for r in table(kit, "people")]
        when = instant(DELETED_AT)
        assert sorted(got, key=lambda r: r[0]) == ([(2, None)] if hard else [(1, when), (2, None), (9, when)])

    # -- schema drift ------------------------------------------------------------------------------------

    @pytest.mark.certifies("schema_evolution:{policy}")
    @pytest.mark.parametrize("policy", ["strict", "additive", "widening"])
    def test_a_new_column(self, target_kit: TargetKit, policy: str) -> None:
        kit = target_kit
        need(kit.evolves_schemas(), f"{kit.name} does not evolve table schemas")
        wider = {**PROPS, "age": {"type": ["integer", "null"]}}
        data = lines(
            schema("people", PROPS),
            *people((1, "a")),
            state({"s": 0}),
            schema("people", wider),
            record("people", {"id": 2, "name": "b", "age": 30}),
            state({"s": 1}),
        )
        result = kit.run(data, **evolution(policy))
        if policy == "strict":
            line = error_line(kit, result, "data", 65, "strict_new_column")
            assert "line 4, stream 'people'" in line and "strict" in line and "'age'" in line
            # Rows sent under the old schema were committed under it; nothing of the new one.
            assert result.states == [{"s": 0}]
            (only,) = table(kit, "people")
            assert (only["id"], only["name"]) == (1, "a") and "age" not in only
            return
        assert ok(result).states[-1] == {"s": 1}
        assert pick(table(kit, "people"), "id", "name", "age") == [(1, "a", None), (2, "b", 30)]

    @pytest.mark.certifies("schema_evolution:{policy}")
    @pytest.mark.parametrize("policy", ["strict", "additive", "widening"])
    def test_a_widened_type(self, target_kit: TargetKit, policy: str) -> None:
        kit = target_kit
        need(kit.evolves_schemas(), f"{kit.name} does not evolve table schemas")
        narrow = {"id": {"type": "integer"}, "v": {"type": "integer"}}
        ok(kit.run(lines(schema("m", narrow), record("m", {"id": 1, "v": 5})), **evolution(policy)))
        decimal_v = {"type": "string", "format": "singer.decimal", "precision": 38, "scale": 9}
        wider = {"id": {"type": "integer"}, "v": decimal_v}
        result = kit.run(
            lines(schema("m", wider), record("m", {"id": 2, "v": "1.25"}), state({"s": 2})), **evolution(policy)
        )
        got = [(r["id"], number(r["v"])) for r in table(kit, "m")]
        if policy == "widening" and kit.widens():
            assert ok(result).states == [{"s": 2}]
            assert sorted(got) == [(1, decimal.Decimal(5)), (2, decimal.Decimal("1.25"))]
            return
        line = error_line(kit, result, "data", 65)
        assert policy in line and "'v'" in line
        assert result.states == []
        assert got == [(1, decimal.Decimal(5))]

    @pytest.mark.certifies("schema_evolution:{policy}")
    @pytest.mark.parametrize("policy", ["strict", "additive", "widening"])
    def test_a_breaking_type_change_stops_and_leaves_the_table(self, target_kit: TargetKit, policy: str) -> None:
        kit = target_kit
        need(kit.evolves_schemas(), f"{kit.name} does not evolve table schemas")
        applies(kit, "type_change")
        before = {"id": {"type": "integer"}, "v": {"type": "boolean"}}
        ok(kit.run(lines(schema("m", before), record("m", {"id": 1, "v": True})), **evolution(policy)))
        after = {"id": {"type": "integer"}, "v": {"type": "integer"}}
        data = lines(schema("m", after), record("m", {"id": 2, "v": 3}), state({"s": 1}))
        result = kit.run(data, **evolution(policy))
        line = error_line(kit, result, "data", 65, "type_change")
        assert "line 1, stream 'm'" in line and "column 'v'" in line
        assert result.states == []
        (only,) = table(kit, "m")
        assert only["id"] == 1 and only["v"] is True  # still a boolean column: 1 would not be `True`
        assert all(not c.startswith(NC) for c in only)

    @pytest.mark.certifies("schema_evolution:widening")  # the default policy
    def test_a_breaking_change_mid_stream_commits_what_came_before(self, target_kit: TargetKit) -> None:
        kit = target_kit
        need(kit.evolves_schemas(), f"{kit.name} does not evolve table schemas")
        applies(kit, "type_change")
        before = {"id": {"type": "integer"}, "v": {"type": "boolean"}}
        after = {"id": {"type": "integer"}, "v": {"type": "integer"}}
        data = lines(
            schema("m", before),
            record("m", {"id": 1, "v": True}),
            state({"s": 1}),
            schema("m", after),
            record("m", {"id": 2, "v": 3}),
            state({"s": 2}),
        )
        result = kit.run(data)
        assert "line 4, stream 'm'" in error_line(kit, result, "data", 65, "type_change")
        assert result.states == [{"s": 1}]
        assert pick(table(kit, "m"), "id", "v") == [(1, True)]

    @pytest.mark.certifies("schema_evolution:new_column")
    @pytest.mark.parametrize("policy", ["additive", "widening"])
    def test_on_type_change_new_column_routes_the_new_values(self, target_kit: TargetKit, policy: str) -> None:
        kit = target_kit
        need(kit.evolves_schemas(), f"{kit.name} does not evolve table schemas")
        config = evolution(policy, "new_column")
        int_v = {"id": {"type": "integer"}, "v": {"type": ["integer", "null"]}}
        str_v = {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}
        ok(kit.run(lines(schema("m", int_v), record("m", {"id": 1, "v": 7})), **config))
        result = kit.run(lines(schema("m", str_v), record("m", {"id": 2, "v": "two"}), state({"s": 2})), **config)
        assert ok(result).states == [{"s": 2}]
        assert pick(table(kit, "m"), "id", "v", f"{NC}v") == [(1, 7, None), (2, None, "two")]

    # -- the singer-sdk target test streams --------------------------------------------------------------

    def test_every_sdk_file_is_covered(self, target_kit: TargetKit) -> None:
        assert len(SDK_FILES) >= 20, SDK_STREAMS
        assert set(SDK_INVALID) <= set(SDK_FILES)

    @pytest.mark.parametrize("name", SDK_FILES)
    def test_sdk_stream(self, target_kit: TargetKit, name: str) -> None:
        kit = target_kit
        applies(kit, f"sdk:{name}")
        data = (SDK_STREAMS / f"{name}.singer").read_bytes()
        result = kit.run(data)
        if name in SDK_INVALID:
            line = error_line(kit, result, "data", 65)
            assert line.startswith(f"{kit.name}: data error: line "), line
            assert SDK_INVALID[name] in line
            assert result.states == []
            return
        ok(result)
        messages = [orjson.loads(line) for line in data.splitlines() if line.strip()]
        expected_states = [m["value"] for m in messages if m["type"] == "STATE"]
        if expected_states:
            assert result.states[-1] == expected_states[-1]
        records = [m for m in messages if m["type"] == "RECORD"]
        for stream in {r["stream"] for r in records}:
            sent = [r["record"] for r in records if r["stream"] == stream]
            rows = table(kit, stream)
            if kit.default_load_method() == APPEND:
                assert [{k: v for k, v in r.items() if not k.startswith("_sdc_")} for r in rows] == sent
            else:
                assert 1 <= len(rows) <= len(sent), (stream, len(rows))
        check = SDK_CHECKS.get(name)
        if check:
            check(kit, records)
        also = kit.also.get(f"sdk:{name}")
        if also:
            also(kit)

    @pytest.mark.certifies("load_method:upsert")
    def test_sdk_upsert_after_initial_load(self, target_kit: TargetKit) -> None:
        kit = target_kit
        need(kit.merges(), f"{kit.name} does not merge on key")
        ok(kit.run((SDK_STREAMS / "user_location_data.singer").read_bytes()))
        ok(kit.run((SDK_STREAMS / "user_location_upsert_data.singer").read_bytes()))
        users = table(kit, "test_users")
        ids = [r["id"] for r in users]
        assert len(ids) == len(set(ids))
        assert [r["name"] for r in users if r["id"] == 1] == ["Johny"]

    # -- BATCH messages ----------------------------------------------------------------------------------

    @pytest.mark.certifies("batch")
    def test_batch_messages_jsonl_gzip_and_parquet(self, target_kit: TargetKit) -> None:
        # The parquet extra: needed by this scenario only.
        import pyarrow as pa
        import pyarrow.parquet as pq

        kit = target_kit
        gz = kit.workdir / "part-1.jsonl.gz"
        with gzip.open(gz, "wb") as fh:
            fh.write(b"".join(orjson.dumps({"id": i, "name": f"n{i}"}) + b"\n" for i in range(1, 4)))
        pq_file = kit.workdir / "part-2.parquet"
        pq.write_table(pa.table({"id": [4, 5, 1], "name": ["n4", "n5", "one"]}), pq_file)
        data = lines(
            schema("people", PROPS),
            *people((6, "before")),
            {
                "type": "BATCH",
                "stream": "people",
                "encoding": {"format": "jsonl", "compression": "gzip"},
                "manifest": [gz.as_uri()],
            },
            {
                "type": "BATCH",
                "stream": "people",
                "encoding": {"format": "parquet", "compression": None},
                "manifest": [str(pq_file)],
            },
            state({"batches": 2}),
        )
        assert ok(kit.run(data)).states == [{"batches": 2}]
        merged = [(1, "one"), (2, "n2"), (3, "n3"), (4, "n4"), (5, "n5"), (6, "before")]
        every = [(1, "n1"), *merged]
        expected = merged if kit.merges() and kit.default_load_method() == UPSERT else every
        assert pick(table(kit, "people"), "id", "name") == sorted(expected, key=sort_key)


# -- what a few of the singer-sdk files must load to, beyond "every stream is there" -----------------------


def _duplicate_records(kit: TargetKit, records: list[dict[str, Any]]) -> None:
    if kit.merges() and kit.default_load_method() == UPSERT:
        assert pick(table(kit, "test_duplicate_records"), "id", "metric") == [(1, 100), (2, 20)]  # the last wins


def _schema_updates(kit: TargetKit, records: list[dict[str, Any]]) -> None:
    got = pick(table(kit, "test_schema_updates"), "id", "a3", "a6")
    assert got[0] == (1, None, None) and got[-1] == (6, True, 341)


def _encoded_string_data(kit: TargetKit, records: list[dict[str, Any]]) -> None:
    texts = {r["info"] for r in table(kit, "test_strings")}
    assert "简单的字串" in texts


def _special_chars(kit: TargetKit, records: list[dict[str, Any]]) -> None:
    (row,) = table(kit, "test:SpecialChars!in?attributes")
    d = row["d"] if isinstance(row["d"], dict) else orjson.loads(row["d"])
    assert row["_id"] == "a2e98886" and d["agent:os:version"] == "10.13.1"


def _no_primary_keys_append(kit: TargetKit, records: list[dict[str, Any]]) -> None:
    assert len(table(kit, "test_no_pk")) == len(records)


SDK_CHECKS: dict[str, Callable[[TargetKit, list[dict[str, Any]]], None]] = {
    "duplicate_records": _duplicate_records,
    "schema_updates": _schema_updates,
    "encoded_string_data": _encoded_string_data,
    "special_chars_in_attributes": _special_chars,
    "no_primary_keys_append": _no_primary_keys_append,
}
