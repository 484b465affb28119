"""The pump's block lane (a tap's stdout read in blocks, nothing to decode) against its line loop: the
same bytes forwarded, the same counts, states and held-back tail, whatever the mix of lines and
wherever the blocks cut them."""

from __future__ import annotations

import io
import random
import threading
import types
from typing import Any

import orjson
import pytest

from dpone_runner.pump import Pump, _block_scanner
from dpone_runner.state_commit import StateLedger


def _record(stream: str, i: int) -> bytes:
    return b'{"type":"RECORD","stream":' + orjson.dumps(stream) + b',"record":{"i":%d,"s":"x\\ny"}}\n' % i


def _input(seed: int) -> bytes:
    rng = random.Random(seed)
    lines = [b'{"type":"SCHEMA","stream":"a","schema":{"properties":{}},"key_properties":[]}\n']
    streams = ["a"]
    for i in range(30_000):
        if i == 9_000:
            # A stream whose name opens like another's, and one in UTF-8.
            streams += ["ab", "Zoë"]
        roll = rng.random()
        if roll < 0.001:
            lines.append(b'{"type":"STATE","value":{"n":%d}}\n' % i)
        elif roll < 0.0015:
            lines.append(b'{ "type": "RECORD", "stream": "a", "record": {"i": %d}}\n' % i)  # another layout
        elif roll < 0.0018:
            lines.append(b"\n")  # an empty line: dropped by both lanes
        else:
            lines.append(_record(rng.choice(streams), i))
    return b"".join(lines)


class _Channel:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.failed = threading.Event()
        self.connector = types.SimpleNamespace(proc=types.SimpleNamespace(poll=lambda: None))

    def send(self, chunk: bytes) -> None:
        self.sent.append(chunk)


class _CountingPump(Pump):
    looped = 0  # lines the line loop handled

    def _pump(self, source: Any) -> None:
        lines = list(source)
        self.looped += len(lines)
        super()._pump(lines)


def _pump(source: Any) -> tuple[bytes, _CountingPump, list[dict[str, Any]]]:
    channel = _Channel()
    states: list[dict[str, Any]] = []
    pump = _CountingPump(source, [channel], StateLedger(0, states.append))  # type: ignore[list-item]
    pump.run()
    pump.finish()
    return b"".join(channel.sent), pump, states


@pytest.fixture(params=["compiled", "pure-python"])
def scanner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The block lane's two ways of telling lines apart: the C scanner, and bytes.count with a pattern."""
    monkeypatch.setenv("DPONE_PURE_PYTHON", "1" if request.param == "pure-python" else "0")
    return str(request.param)


def test_the_compiled_scanner_is_built_and_used_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # CI builds it: a silent fall back to bytes.count would hide a broken build.
    monkeypatch.delenv("DPONE_PURE_PYTHON", raising=False)
    assert _block_scanner() is not None
    monkeypatch.setenv("DPONE_PURE_PYTHON", "1")
    assert _block_scanner() is None


def test_the_scanner_counts_lines_per_head_up_to_the_first_other_line() -> None:
    scan = _block_scanner()
    assert scan is not None
    a, ab = _record("a", 1), _record("ab", 2)
    heads = (b'{"type":"RECORD","stream":"a"', b'{"type":"RECORD","stream":"ab"')
    block = a + ab + a + b'{"type":"STATE","value":{}}\n' + ab
    assert scan(block, heads, 0) == ([2, 1], len(a + ab + a))
    assert scan(block, heads, len(a)) == ([1, 1], len(a + ab + a))
    assert scan(block, heads, len(block) - len(ab)) == ([0, 1], len(block))
    assert scan(block, (), 0) == ([], 0)
    assert scan(a + a[:-1], heads, 0) == ([1, 0], len(a))  # a last line without its newline is not counted


@pytest.mark.parametrize("cut", [False, True], ids=["whole", "last-line-cut"])
@pytest.mark.parametrize("buffer", [4096, 65536, 1 << 20])
def test_the_block_lane_forwards_and_counts_as_the_line_loop(buffer: int, cut: bool, scanner: str) -> None:
    data = _input(buffer)
    if cut:
        data = data[:-7]  # the last line loses its end: held back as the tail
    lines = data.splitlines(keepends=True)
    by_line, line_pump, line_states = _pump(lines)
    by_block, block_pump, block_states = _pump(io.BufferedReader(io.BytesIO(data), buffer_size=buffer))
    # Most lines went by in whole blocks, not through the line loop.
    assert block_pump.looped < len(lines) // 3, block_pump.looped
    assert by_block == by_line
    assert block_pump.counts.rows_in == line_pump.counts.rows_in
    assert sum(block_pump.counts.rows_in.values()) > 29_000
    assert set(block_pump.counts.rows_in) == {"a", "ab", "Zoë"}
    assert (block_pump.counts.lines, block_pump.counts.bytes_in) == (line_pump.counts.lines, line_pump.counts.bytes_in)
    assert block_states == line_states and block_pump.counts.states == line_pump.counts.states > 0
    assert block_pump.tail == line_pump.tail == (data[data.rindex(b"\n") + 1 :] if cut else b"")


def test_the_block_lane_stops_when_a_target_fails(scanner: str) -> None:
    channel = _Channel()
    channel.failed.set()
    pump = Pump(io.BufferedReader(io.BytesIO(_input(1))), [channel], StateLedger(0, lambda s: None))  # type: ignore[list-item]
    pump.run()
    assert pump.stopped.is_set()
    assert pump.counts.lines < 30_000
