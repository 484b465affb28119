"""The shared target scenarios of bad input and failure: malformed lines, bad values, STATE only after
commit, the connector as a process, and SIGKILL at each crash point followed by a resume."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import orjson
import pytest

from dpone.targets.framework.capabilities import APPEND, OVERWRITE, UPSERT
from tests.conftest import lines, record, schema, state
from tests.kit.kit import TargetKit, feed_lines
from tests.kit.target_checks import PROPS, SDK_STREAMS, error_line, need, ok, people, pick, table

# Bad input at line 6, after a committed batch (lines 2-3) and its state (line 4), and a record (line 5).
BAD_LINES: dict[str, tuple[bytes, str]] = {
    "malformed": (b"{not json\n", "malformed JSON"),
    "record_before_schema": (
        lines(record("other", {"id": 9})),
        "stream 'other': RECORD received before any SCHEMA for this stream",
    ),
    "unknown_stream": (lines({"type": "ACTIVATE_VERSION", "stream": "ghost", "version": 1}), "stream 'ghost'"),
    "unknown_type": (b'{"type": "RECORDZ", "stream": "people"}\n', "unknown message type 'RECORDZ'"),
}


class FaultScenarios:
    # The crash scenarios start the connector as a process; a subclass may point elsewhere.
    fault_runner: ClassVar[str] = "tests.kit.fault_run"

    # -- bad input ---------------------------------------------------------------------------------------

    @pytest.mark.parametrize("bad", sorted(BAD_LINES))
    def test_bad_input_names_the_line_and_loses_nothing_committed(self, target_kit: TargetKit, bad: str) -> None:
        kit = target_kit
        wrong, says = BAD_LINES[bad]
        data = lines(schema("people", PROPS), *people((1, "a"), (2, "b")), state({"n": 2}), *people((3, "c"))) + wrong
        result = kit.run(data, batch_size_rows=2)
        line = error_line(kit, result, "data", 65)
        assert line.startswith(f"{kit.name}: data error: line 6"), line
        assert says in line, line
        assert result.states == [{"n": 2}]
        got = pick(table(kit, "people"), "id")
        # A target that sends each record as it comes (no batch to roll back) may hold record 3 too.
        assert got == [(1,), (2,)] or (kit.sends_as_it_reads and got == [(1,), (2,), (3,)]), got

    def test_a_run_that_stops_at_once_creates_nothing(self, target_kit: TargetKit) -> None:
        kit = target_kit
        result = kit.run(lines(schema("people", PROPS)) + b"INFO starting sync\n")
        assert "line 2: malformed JSON" in error_line(kit, result, "data", 65)
        no_key = lines(schema("people", PROPS), record("people", {"name": "no id"}))
        result = kit.run(no_key, load_method=OVERWRITE if kit.overwrites() else APPEND)
        assert "record has no value for key property 'id'" in error_line(kit, result, "data", 65)
        assert kit.tables() == set()

    def test_a_bad_value_fails_its_batch_only(self, target_kit: TargetKit) -> None:
        kit = target_kit
        need(kit.has_tables, f"{kit.name} has no typed columns: no value is bad")
        data = lines(
            schema("people", PROPS),
            *people((1, "a"), (2, "b")),
            state({"after": 2}),
            record("people", {"id": 3, "name": "c"}),
            record("people", {"id": "not-a-number", "name": "d"}),
            state({"after": 4}),
            *people((5, "e")),
        )
        result = kit.run(data, batch_size_rows=2)
        line = error_line(kit, result, "data", 65, "bad_value")
        assert "'people'" in line and "not-a-number" in line
        assert result.states == [{"after": 2}]
        assert pick(table(kit, "people"), "id") == [(1,), (2,)]
        assert kit.tables() == {kit.table_for("people")}

    def test_a_bad_value_in_the_first_batch_of_an_existing_table(self, target_kit: TargetKit) -> None:
        kit = target_kit
        need(kit.has_tables, f"{kit.name} has no typed columns: no value is bad")
        ok(kit.run(lines(schema("people", PROPS), *people((1, "a")))))
        data = lines(
            schema("people", PROPS),
            *people((1, "changed"), (2, "b")),
            record("people", {"id": 3.5, "name": "x"}),
            state({"s": 1}),
        )
        result = kit.run(data)
        assert "3.5" in error_line(kit, result, "data", 65, "bad_value_existing")
        assert result.states == []
        assert pick(table(kit, "people"), "id", "name") == [(1, "a")]

    # -- state after commit ------------------------------------------------------------------------------

    def test_state_is_echoed_only_after_the_records_before_it_commit(self, target_kit: TargetKit) -> None:
        kit = target_kit
        seen: list[tuple[list[int], int]] = []

        def snapshot(out: bytes) -> None:
            echoed = [orjson.loads(line)["n"] for line in out.splitlines()]
            ids = {r["id"] for r in kit.rows("people") or []}
            seen.append((echoed, len(ids)))
            if echoed:  # every echoed state is covered by committed rows
                assert set(range(1, echoed[-1] + 1)) <= ids, (echoed, ids)

        parts: list[bytes | Callable[[bytes], None]] = [lines(schema("people", PROPS))]
        for n in range(1, 8):
            parts += [lines(*people((n, f"p{n}")), state({"n": n})), snapshot]
        result = ok(kit.run_hooked(*parts, batch_size_rows=3))
        # Batches may commit in the background, so a state can go out a batch or two later, coalesced
        # to the newest one covered; never before its rows.
        echoed = [s["n"] for s in result.states]
        assert echoed == sorted(set(echoed)) and echoed[-1] == 7 and len(echoed) >= 2
        assert all(count >= (states[-1] if states else 0) for states, count in seen)
        assert pick(table(kit, "people"), "id") == [(n,) for n in range(1, 8)]

    # -- as a process -----------------------------------------------------------------------------------

    def test_the_cli_module_runs_as_a_process(self, target_kit: TargetKit) -> None:
        """What Meltano or a shell starts, from the cli module alone: no installed script needed."""
        kit = target_kit
        proc = kit.spawn(kit.command())
        out, err = proc.communicate(lines(schema("people", PROPS), *people((1, "a")), state({"s": 1})), timeout=60)
        assert proc.returncode == 0, err.decode()
        assert [orjson.loads(line) for line in out.splitlines()] == [{"s": 1}]
        assert pick(table(kit, "people"), "id", "name") == [(1, "a")]
        proc = kit.spawn(kit.command())
        out, err = proc.communicate((SDK_STREAMS / "record_before_schema.singer").read_bytes(), timeout=60)
        assert proc.returncode == 65
        assert err.decode().strip() == (
            f"{kit.name}: data error: line 1, stream 'test_record_before_schema': "
            "RECORD received before any SCHEMA for this stream"
        )
        assert out == b""

    # -- crash points ------------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("point", "n"),
        [("record", 6), ("record", 9), ("echo", 1), ("echo", 2)],
        ids=[
            "killed_mid_batch_early",
            "killed_mid_batch_late",
            "killed_before_first_echo",
            "killed_before_second_echo",
        ],
    )
    def test_a_killed_target_holds_whole_batches_and_covers_its_last_echo(
        self, target_kit: TargetKit, point: str, n: int
    ) -> None:
        kit = target_kit
        rows, batch = 12, 4
        config = {"batch_size_rows": batch, "load_method": UPSERT if kit.merges() else APPEND}
        where = f"{kit.target.__module__}:{kit.target.__qualname__}"
        proc = kit.spawn([sys.executable, "-m", self.fault_runner, where, point, str(n)], **config)
        echoed = _run_to_death(proc, _numbered(1, rows, every=2))
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
        if point == "echo":
            assert len(echoed) == n - 1, echoed
        committed = sorted(r["id"] for r in kit.rows("events") or [])
        # Whole batches only: the first k of them, or all rows (the last, short batch at the end).
        assert committed == list(range(1, len(committed) + 1)), committed
        assert len(committed) % batch == 0 or len(committed) == rows, committed
        last = echoed[-1] if echoed else 0
        assert last <= len(committed), f"state upto={last} echoed, but only {len(committed)} rows committed"
        # Resume from the last echoed state as a tap would: every row is there, the covered ones once.
        resumed = kit.run(lines(schema("events", EVENT_PROPS)) + _numbered(last + 1, rows, every=2), **config)
        assert ok(resumed).states[-1] == {"upto": rows}
        ids = sorted(r["id"] for r in table(kit, "events"))
        assert set(ids) == set(range(1, rows + 1))
        if kit.merges():
            assert ids == list(range(1, rows + 1))
        else:
            assert [i for i in ids if i <= last] == list(range(1, last + 1))


EVENT_PROPS = {"id": {"type": "integer"}, "payload": {"type": "string"}}


def _numbered(start: int, end: int, every: int) -> bytes:
    out = [] if start > 1 else [schema("events", EVENT_PROPS)]
    for i in range(start, end + 1):
        out.append(record("events", {"id": i, "payload": f"row {i}"}))
        if i % every == 0 or i == end:
            out.append(state({"upto": i}))
    return lines(*out)


def _run_to_death(proc: Any, data: bytes) -> list[int]:
    """Feed `data`, let the process end (or be killed), and return the states it echoed."""
    echoed: list[int] = []

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            if raw.endswith(b"\n"):  # a torn echo is not an echo
                echoed.append(orjson.loads(raw)["upto"])

    reader = threading.Thread(target=read)
    reader.start()
    feed_lines(proc, [data])
    proc.wait(timeout=60)
    reader.join(timeout=60)
    return echoed
