"""Deterministic Singer RECORD data for the benchmarks.

One stream, ``bench_records``, with ten columns covering the types a loader has to
handle: integers, strings, a float, an exact decimal, a boolean, a timestamp, a date
and a nullable integer. The same ``seed`` and ``n`` always give the same bytes, so
benchmarks of different connectors (and different runs) read identical input.

    python -m bench.records --rows 1000000 --out bench/.work/records-1000000.jsonl
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

STREAM = "bench_records"
DEFAULT_SEED = 20240101
STATE_EVERY = 10_000

# Fixed, so the stream's bytes do not depend on when it was generated.
TIME_EXTRACTED = "2024-06-01T00:00:00+00:00"
_EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_BIRTH_EPOCH = dt.date(1950, 1, 1)

SCHEMA_MESSAGE: dict[str, Any] = {
    "type": "SCHEMA",
    "stream": STREAM,
    "schema": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": ["string", "null"]},
            "email": {"type": ["string", "null"]},
            "country": {"type": ["string", "null"], "maxLength": 2},
            "score": {"type": ["number", "null"]},
            "amount": {"type": ["number", "null"], "multipleOf": 0.01, "minimum": 0, "maximum": 1000000},
            "active": {"type": ["boolean", "null"]},
            "updated_at": {"type": ["string", "null"], "format": "date-time"},
            "birth_date": {"type": ["string", "null"], "format": "date"},
            "parent_id": {"type": ["integer", "null"]},
        },
        "required": ["id"],
    },
    "key_properties": ["id"],
    "bookmark_properties": ["id"],
}

FIRST_NAMES = (
    "Ada", "Alan", "Barbara", "Claude", "Donald", "Edsger", "Frances", "Grace", "Hedy", "Ivan",
    "John", "Katherine", "Leslie", "Margaret", "Niklaus", "Radia", "Sophie", "Tim", "Vint", "Zoë",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Turing", "Liskov", "Shannon", "Knuth", "Dijkstra", "Allen", "Hopper", "Lamarr",
    "Sutherland", "Backus", "Johnson", "Lamport", "Hamilton", "Wirth", "Perlman", "Wilson", "Cerf",
)  # fmt: skip
COUNTRIES = ("US", "DE", "FR", "GB", "JP", "BR", "IN", "CA", "ES", "NL", "SE", "PL")


def iter_records(n: int, seed: int = DEFAULT_SEED) -> Iterator[dict[str, Any]]:
    """Yield ``n`` record dicts (the RECORD ``record`` payload), ids 1..n."""
    rng = random.Random(seed)
    rand, choice, uniform = rng.random, rng.choice, rng.uniform
    for i in range(1, n + 1):
        first, last = choice(FIRST_NAMES), choice(LAST_NAMES)
        updated = _EPOCH + dt.timedelta(seconds=i * 7, milliseconds=int(rand() * 1000))
        yield {
            "id": i,
            "name": f"{first} {last}",
            "email": f"{first.lower()}.{last.lower()}{i}@example.com",
            "country": choice(COUNTRIES),
            "score": uniform(-1000.0, 1000.0),
            "amount": round(uniform(0.0, 100_000.0), 2),
            "active": rand() < 0.7,
            "updated_at": updated.isoformat(timespec="milliseconds"),
            "birth_date": (_BIRTH_EPOCH + dt.timedelta(days=int(rand() * 20_000))).isoformat(),
            "parent_id": None if rand() < 0.2 else int(rand() * i) + 1,
        }


def _state_line(last_id: int) -> bytes:
    value = {"bookmarks": {STREAM: {"replication_key": "id", "replication_key_value": last_id}}}
    return orjson.dumps({"type": "STATE", "value": value}) + b"\n"


def iter_lines(n: int, seed: int = DEFAULT_SEED) -> Iterator[bytes]:
    """The stream's lines (with newline): SCHEMA, ``n`` RECORDs, a STATE every 10,000 records and at the end."""
    dumps = orjson.dumps
    yield dumps(SCHEMA_MESSAGE) + b"\n"
    last_id = 0
    for record in iter_records(n, seed):
        last_id = record["id"]
        yield dumps({"type": "RECORD", "stream": STREAM, "record": record, "time_extracted": TIME_EXTRACTED}) + b"\n"
        if last_id % STATE_EVERY == 0:
            yield _state_line(last_id)
    if last_id % STATE_EVERY != 0 or n == 0:
        yield _state_line(last_id)


def write_stream(path: str | os.PathLike[str], n: int, seed: int = DEFAULT_SEED) -> int:
    """Write the stream of :func:`iter_lines` to ``path``; return the number of lines (messages).

    The file is written under a temporary name and renamed, so a reader never sees a
    partial file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    lines = 0
    try:
        with tmp.open("wb", buffering=1 << 20) as out:
            for line in iter_lines(n, seed):
                out.write(line)
                lines += 1
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.records", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True, help="number of RECORD messages")
    parser.add_argument("--out", required=True, help="output file ('-' for stdout)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    if args.rows < 0:
        parser.error("--rows must be >= 0")
    if args.out == "-":
        sys.stdout.buffer.writelines(iter_lines(args.rows, args.seed))
        sys.stdout.buffer.flush()
        return 0
    lines = write_stream(args.out, args.rows, args.seed)
    print(f"wrote {lines} lines ({args.rows} records) to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
