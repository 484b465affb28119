"""A tap's RECORD output read exactly, as database taps' tests compare it: integers of any width,
and numbers with a fraction or exponent as their text."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.conftest import Run


@dataclass(frozen=True)
class Num:
    """A JSON number with a fraction or exponent, as written: `-0.0` and `0` stay apart, no digit is
    rounded, and it never equals a JSON string of the same text."""

    text: str


def exact(line: bytes | str) -> Any:
    """A JSON document with integers of any width kept and fractions as their text (Num)."""
    return json.loads(line, parse_float=Num, parse_int=int)


def records(run: Run, stream: str | None = None) -> list[dict[str, Any]]:
    """The RECORDs' rows, decoded exactly (orjson would round integers wider than 64 bits)."""
    found = []
    for line in run.stdout.splitlines():
        if line.startswith(b'{"type":"RECORD"'):
            message = exact(line)
            if stream in (None, message["stream"]):
                found.append(message["record"])
    return found


def ok(run: Run) -> Run:
    assert run.rc == 0, run.stderr
    return run
