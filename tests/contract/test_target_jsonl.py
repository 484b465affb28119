"""target-jsonl's own cases: file names, torn-tail repair, metadata fields, errors that name the path.

Load methods, bad input, state after commit and crashes are the shared suite's
(tests/kit/target_suite.py, run by test_target_jsonl_suite.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.targets.jsonl import target as jsonl_target
from dpone.targets.jsonl.target import JsonlTarget
from tests.conftest import Run, lines, record, schema, state

RunTarget = Callable[..., Run]

PROPS = {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}


def read(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_writes_one_file_per_stream_and_echoes_state(run_target: RunTarget, tmp_path: Path) -> None:
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


def test_torn_last_line_from_a_crash_is_cut_before_appending(run_target: RunTarget, tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(b'{"id":1,"v":"x"}\n{"id":2,"v"')
    run_target(
        JsonlTarget, {"destination_path": str(tmp_path)}, lines(schema("a", PROPS), record("a", {"id": 2, "v": "y"}))
    )
    assert read(tmp_path / "a.jsonl") == [{"id": 1, "v": "x"}, {"id": 2, "v": "y"}]


def test_metadata_columns_on_request(run_target: RunTarget, tmp_path: Path) -> None:
    data = lines(schema("a", PROPS), record("a", {"id": 1, "v": "x"}, time_extracted="2024-01-01T00:00:00Z"))
    run_target(JsonlTarget, {"destination_path": str(tmp_path), "add_record_metadata": True}, data)
    (row,) = read(tmp_path / "a.jsonl")
    assert row["_sdc_extracted_at"] == "2024-01-01T00:00:00Z"
    assert row["_sdc_batched_at"] and row["_sdc_received_at"]


def test_unwritable_destination_is_a_config_error(run_target: RunTarget, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_target(
        JsonlTarget, {"destination_path": str(blocker / "sub")}, lines(schema("a", PROPS), record("a", {"id": 1}))
    )
    assert result.rc == 78 and "destination_path" in result.stderr


def test_a_stream_without_records_is_an_empty_file_when_the_input_ends_cleanly(
    run_target: RunTarget, tmp_path: Path
) -> None:
    (tmp_path / "b.jsonl").write_bytes(b'{"id":1,"v":"old"}\n')
    data = lines(schema("a", PROPS), schema("b", PROPS), state({"done": True}))
    assert run_target(JsonlTarget, {"destination_path": str(tmp_path)}, data).rc == 0
    assert (tmp_path / "a.jsonl").read_bytes() == b""
    assert read(tmp_path / "b.jsonl") == [{"id": 1, "v": "old"}]  # append-only: kept
    result = run_target(JsonlTarget, {"destination_path": str(tmp_path), "load_method": "overwrite"}, data)
    assert result.rc == 0 and result.states == [{"done": True}]
    assert (tmp_path / "b.jsonl").read_bytes() == b""  # a full refresh of an empty source empties it


def test_full_disk_is_one_transient_error_naming_the_file(run_target: RunTarget, tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").symlink_to("/dev/full")  # every write fails with ENOSPC
    data = lines(schema("a", PROPS), record("a", {"id": 1}), state({"n": 1}))
    result = run_target(JsonlTarget, {"destination_path": str(tmp_path)}, data)
    assert result.rc == 75, result.stderr
    assert result.states == []  # the record it covers was not written
    (line,) = result.stderr.strip().splitlines()  # no traceback from closing the file after the failure
    assert line.startswith(f"target-jsonl: transient error: {tmp_path / 'a.jsonl'}: disk full (No space left")


@pytest.mark.parametrize(("read_only", "says"), [(False, "permission denied"), (True, "read-only file system")])
def test_unwritable_directory_is_a_config_error_before_anything_is_created(
    run_target: RunTarget, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_only: bool, says: str
) -> None:
    # Root writes anywhere, so the test plays the kernel's answers; tests/contract/test_exit_codes.py
    # runs the real thing without root's power.
    monkeypatch.setattr(jsonl_target, "_writable", lambda path: False)
    monkeypatch.setattr(jsonl_target, "_read_only", lambda path: read_only)
    out = tmp_path / "out" / "sub"
    result = run_target(JsonlTarget, {"destination_path": str(out)}, lines(schema("a", PROPS), record("a", {"id": 1})))
    assert result.rc == 78, result.stderr
    assert f"target-jsonl: config error: destination_path {out}: {says}: {tmp_path} is not writable" in result.stderr
    assert not (tmp_path / "out").exists()
