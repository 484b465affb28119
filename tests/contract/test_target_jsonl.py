"""target-jsonl: one file per stream, appends, overwrite, torn-tail repair."""

from __future__ import annotations

from pathlib import Path

import orjson

from targets.jsonl.target import JsonlTarget
from tests.conftest import lines, record, schema, state

PROPS = {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}


def read(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_writes_one_file_per_stream_and_echoes_state(run_target, tmp_path):
    data = lines(
        schema("a", PROPS),
        schema("b/c", PROPS),
        record("a", {"id": 1, "v": "x"}),
        record("b/c", {"id": 2, "v": None}),
        state({"done": True}),
    )
    result = run_target(JsonlTarget, {"destination_path": str(tmp_path)}, data)
    assert result.rc == 0, result.stderr
    assert result.states == [{"done": True}]
    assert read(tmp_path / "a.jsonl") == [{"id": 1, "v": "x"}]
    assert read(tmp_path / "b_c.jsonl") == [{"id": 2, "v": None}]


def test_appends_across_runs_and_overwrite_replaces(run_target, tmp_path):
    data = lines(schema("a", PROPS), record("a", {"id": 1, "v": "x"}))
    run_target(JsonlTarget, {"destination_path": str(tmp_path)}, data)
    run_target(JsonlTarget, {"destination_path": str(tmp_path)}, data)
    assert len(read(tmp_path / "a.jsonl")) == 2
    result = run_target(JsonlTarget, {"destination_path": str(tmp_path), "load_method": "overwrite"}, data)
    assert result.rc == 0, result.stderr
    assert len(read(tmp_path / "a.jsonl")) == 1
    assert not list(tmp_path.glob("*.partial"))


def test_torn_last_line_from_a_crash_is_cut_before_appending(run_target, tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"id":1,"v":"x"}\n{"id":2,"v"')
    run_target(
        JsonlTarget, {"destination_path": str(tmp_path)}, lines(schema("a", PROPS), record("a", {"id": 2, "v": "y"}))
    )
    assert read(tmp_path / "a.jsonl") == [{"id": 1, "v": "x"}, {"id": 2, "v": "y"}]


def test_metadata_columns_on_request(run_target, tmp_path):
    data = lines(schema("a", PROPS), record("a", {"id": 1, "v": "x"}, time_extracted="2024-01-01T00:00:00Z"))
    run_target(JsonlTarget, {"destination_path": str(tmp_path), "add_record_metadata": True}, data)
    (row,) = read(tmp_path / "a.jsonl")
    assert row["_sdc_extracted_at"] == "2024-01-01T00:00:00Z"
    assert row["_sdc_batched_at"] and row["_sdc_received_at"]


def test_unwritable_destination_is_a_config_error(run_target, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_target(
        JsonlTarget, {"destination_path": str(blocker / "sub")}, lines(schema("a", PROPS), record("a", {"id": 1}))
    )
    assert result.rc == 78 and "destination_path" in result.stderr
