"""Data-contract overhead: `dpone run` pass-through against `dpone run` with a contract.

    python bench/contracts_overhead.py [--rows 1000000] [--repeat 3]
    python bench/contracts_overhead.py --profile     # the contract stage alone, in-process

Same source, sink and stream as bench/runner_overhead.py (tap-replay `cat`s the bench/records.py
file into target-jsonl). The two projects differ only in dpone.yml: the second declares a
contract on the stream with five rules on three columns (below). Every record passes, so what
is measured is the price of checking: each RECORD line decoded once with orjson, the compiled
closures run, the original bytes forwarded. Wall and CPU seconds of every process of the
pipeline, best of --repeat runs, the two pipelines interleaved.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench.records import DEFAULT_SEED, STREAM
from bench.runner_overhead import Setup, describe_input, input_file, interleaved, print_overhead, print_table

# Five rules on three columns; every bench record satisfies them.
CONTRACT: dict[str, Any] = {
    "mode": "enforce",
    "columns": {
        "id": {"type": "integer", "not_null": True},
        "email": {"pattern": r"[^@\s]+@[^@\s]+"},
        "amount": {"min": 0, "max": 100000},
    },
}


def measure(rows: int, repeat: int, seed: int) -> int:
    source = input_file(rows, seed)
    plain = Setup(source, "contracts-off")
    checked = Setup(source, "contracts-on", {"contracts": {STREAM: CONTRACT}})
    describe_input(source, rows)
    print(f"contract on {STREAM}: {orjson.dumps(CONTRACT['columns']).decode()}")
    runs = {
        "dpone run, pass-through": (plain.dpone_argv(), plain),
        "dpone run, contract (5 rules, 3 columns)": (checked.dpone_argv(), checked),
    }
    found = interleaved(runs, rows, repeat)
    print_table(found, rows)
    base, ours = found.values()
    print_overhead("contract overhead", base, ours)
    plain.clean()
    checked.clean()
    return 0


def profile(rows: int, seed: int) -> int:
    """Per-record cost of the stage's guard (decode + checks), without processes or pipes."""
    from dpone_runner.contracts import ContractStage, RunContext, parse_contracts

    source = input_file(rows, seed)
    stage = ContractStage(parse_contracts({STREAM: CONTRACT}, Path.cwd()), RunContext("bench", "profile"))
    with source.open("rb") as fh:
        head = next(fh)
        stage.on_schema(orjson.loads(head), 1)
        guard = stage.guards[STREAM.encode()]
        lines = [line for line in itertools.islice(fh, 200_000) if line.startswith(b'{"type":"RECORD"')]
    loads = orjson.loads
    start = time.perf_counter()
    for line in lines:
        loads(line)
    decode = time.perf_counter() - start
    start = time.perf_counter()
    for n, line in enumerate(lines):
        guard(line, n)
    full = time.perf_counter() - start
    per = 1e6 / len(lines)
    print(f"{len(lines):,} RECORD lines: orjson.loads {decode * per:.2f} us/record, guard {full * per:.2f} us/record")
    print(f"checks alone: {(full - decode) * per:.2f} us/record ({full / decode:.1f}x the decode)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/contracts_overhead.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="RECORD messages in the stream (default 1000000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per pipeline; the best counts (default 3)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--profile", action="store_true", help="time the contract stage in-process instead")
    args = parser.parse_args(argv)
    if args.profile:
        return profile(args.rows, args.seed)
    return measure(args.rows, args.repeat, args.seed)


if __name__ == "__main__":
    sys.exit(main())
