"""What a database target echoes when its run ends badly: a failure after committed batches, and
input cut inside a line (the sender died). Each on every database target, in-process and as the
installed command with its stdout and stderr gone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dpone_protocol.errors import EXIT_CODES, ErrorKind
from tests.conftest import lines, record, schema, state, write_config

pytestmark = pytest.mark.service

PROPS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}
EXIT_CUT = EXIT_CODES[ErrorKind.INPUT_CUT]
EXIT_DATA = EXIT_CODES[ErrorKind.DATA]


def people(first: int, count: int) -> list[dict[str, Any]]:
    return [record("people", {"id": i, "name": f"n{i}"}) for i in range(first, first + count)]


@pytest.mark.parametrize("batch_size_rows", [100, 50_000])
def test_a_failed_load_echoes_the_state_its_committed_batches_cover(run_target, dest, batch_size_rows):
    # A new column under the strict policy: the kind of SCHEMA change that stops a load.
    incompatible = schema("people", {**PROPS, "extra": {"type": ["string", "null"]}})
    data = lines(
        schema("people", PROPS),
        *people(0, 100),
        state({"step": 1}),
        *people(100, 100),
        state({"step": 2}),
        incompatible,
        record("people", {"id": 1000, "name": "x", "extra": "y"}),
    )
    strict = {"policy": "strict"}
    config = dest.config(load_method="append-only", batch_size_rows=batch_size_rows, schema_evolution=strict)
    result = run_target(dest.target, config, data)
    assert result.rc == EXIT_DATA, result.stderr
    assert result.states[-1] == {"step": 2}
    assert dest.rows("SELECT count(*) FROM people") == [(200,)]


def cut_input(records: int, state_every: int) -> tuple[bytes, dict[str, Any]]:
    """A stream cut in the middle of its last record, and the last state before the cut."""
    messages: list[dict[str, Any]] = [schema("people", PROPS)]
    last: dict[str, Any] = {}
    for i in range(records):
        messages.append(record("people", {"id": i, "name": f"n{i}"}))
        if (i + 1) % state_every == 0:
            last = {"done": i + 1}
            messages.append(state(last))
    data = lines(*messages)
    return data[: len(data) - 9], last  # inside the last RECORD line


@pytest.mark.parametrize("method", ["upsert", "append-only"])
def test_input_cut_inside_a_line_commits_and_echoes_the_covered_state(run_target, dest, method):
    data, last = cut_input(12_345, 1_000)
    result = run_target(dest.target, dest.config(load_method=method, batch_size_rows=4_000), data)
    assert result.rc == EXIT_CUT, result.stderr
    assert "input cut error" in result.stderr and "ended inside a line" in result.stderr
    assert result.states[-1] == last == {"done": 12_000}
    # Every whole record is committed (the cut one is not): at least what the state covers.
    assert dest.rows("SELECT count(*), min(id), max(id) FROM people") == [(12_344, 0, 12_343)]


def test_input_cut_never_completes_a_full_refresh(run_target, dest):
    config = dest.config(load_method="overwrite")
    whole = lines(schema("people", PROPS), *people(0, 5), state({"old": 1}))
    assert run_target(dest.target, config, whole).rc == 0
    data, _ = cut_input(300, 100)
    result = run_target(dest.target, config, data)
    assert result.rc == EXIT_CUT, result.stderr
    assert result.states == []  # the states covered rows of a refresh that never completed
    assert sorted(dest.rows("SELECT id FROM people")) == [(i,) for i in range(5)]


def test_a_whole_last_message_without_its_newline_is_read(run_target, dest):
    data = lines(schema("people", PROPS), *people(0, 3)) + b'{"type":"STATE","value":{"end":1}}'
    result = run_target(dest.target, dest.config(), data)
    assert result.rc == 0, result.stderr
    assert result.states == [{"end": 1}]


def test_input_cut_with_stdout_and_stderr_gone_still_commits_and_exits_74(dest, tmp_path: Path):
    data, _ = cut_input(2_001, 500)
    command = dest.target.name
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / command), "--config", write_config(tmp_path, dest.config())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
    proc.stdout.close()  # the runner that read them was killed
    proc.stderr.close()
    proc.stdin.write(data)
    proc.stdin.close()
    assert proc.wait(timeout=120) == EXIT_CUT
    assert dest.rows("SELECT count(*) FROM people") == [(2_000,)]
