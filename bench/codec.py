"""Codec benchmark: decode every line of a Singer stream into a message and encode it back.

    python bench/codec.py [--rows 1000000]       # or: python -m bench.codec

The input is the stream of :mod:`bench.records` (SCHEMA, N RECORDs of 10 columns, a
STATE every 10,000 records), generated once under ``bench/.work/`` and reused. Each
implementation reads the file line by line, turns each line into its message
representation, serializes that back to one line and writes it to ``/dev/null``.
Wall-clock time, best of ``--repeat`` runs; the runs of the implementations are
interleaved so that a noisy neighbour hurts them all alike.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import io
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

if __package__ in (None, ""):
    # Run as a script (python bench/codec.py): make the repo root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench.records import DEFAULT_SEED, write_stream
from dpone_protocol.codec import MessageReader, MessageWriter

WORK_DIR = Path(__file__).resolve().parent / ".work"
CHECK_LINES = 2_000

Runner = Callable[[IO[Any], IO[Any]], int]


@dataclass(frozen=True, slots=True)
class Implementation:
    name: str
    text: bool  # reads and writes str lines (True) or bytes lines (False)
    run: Runner


def run_ours(src: IO[bytes], out: IO[bytes]) -> int:
    """dpone: MessageReader.messages() decodes (orjson) and validates each line into a slotted
    dataclass (RecordMessage, SchemaMessage, StateMessage); MessageWriter.write() calls the
    message's to_dict() and serializes it with orjson."""
    writer = MessageWriter(out)
    count = 0
    for message in MessageReader(src).messages():
        writer.write(message)
        count += 1
    return count


def run_stdlib(src: IO[str], out: IO[str]) -> int:
    """Baseline: json.loads per line, json.dumps of the resulting dict. No validation."""
    loads, dumps = json.loads, json.dumps
    write = out.write
    count = 0
    for line in src:
        write(dumps(loads(line), separators=(",", ":")) + "\n")
        count += 1
    return count


def make_singer_sdk() -> Runner:
    """The Meltano Singer SDK's own reader and writer, as its plugins call them.

    Reading: ``SimpleSingerReader.process_lines(file, callbacks)`` is the loop every SDK
    target (and inline mapper) runs on its stdin, a text stream: per line it calls
    ``deserialize_json(line)`` (``json.loads(line, parse_float=decimal.Decimal)``), then
    ``assert_line_requires(line_dict, {"type"})``, then the callback for the message type.
    Our callbacks do what ``Target._process_record_message`` checks first
    (``assert_line_requires(d, {"stream", "record"})`` for a RECORD), then build the SDK
    message object with the SDK's ``<MessageClass>.from_dict(d)`` (a RECORD's
    ``time_extracted`` becomes an aware datetime there).

    Writing: ``SimpleSingerWriter.format_message(message)`` -> ``serialize_message`` ->
    ``serialize_json(message.to_dict())`` (``simplejson.dumps(..., use_decimal=True)``),
    plus a newline, written to the sink. The SDK's ``write_message`` also flushes stdout
    after every message; that flush is left out here (it is I/O policy, not the codec,
    and leaving it out only makes the SDK faster).
    """
    from singer_sdk.singerlib.encoding import SimpleSingerReader, SimpleSingerWriter, SingerMessageType
    from singer_sdk.singerlib.encoding.simple import (
        ActivateVersionMessage,
        RecordMessage,
        SchemaMessage,
        StateMessage,
    )

    def run(src: IO[str], out: IO[str]) -> int:
        reader = SimpleSingerReader()
        writer = SimpleSingerWriter()
        requires = reader.assert_line_requires
        format_message = writer.format_message
        write = out.write
        record_keys = {"stream", "record"}

        def on_record(line_dict: dict[str, Any]) -> None:
            requires(line_dict, requires=record_keys)
            write(format_message(RecordMessage.from_dict(line_dict)) + "\n")

        def on_schema(line_dict: dict[str, Any]) -> None:
            write(format_message(SchemaMessage.from_dict(line_dict)) + "\n")

        def on_state(line_dict: dict[str, Any]) -> None:
            write(format_message(StateMessage.from_dict(line_dict)) + "\n")

        def on_activate_version(line_dict: dict[str, Any]) -> None:
            write(format_message(ActivateVersionMessage.from_dict(line_dict)) + "\n")

        counts = reader.process_lines(
            src,
            callbacks={
                SingerMessageType.RECORD: on_record,
                SingerMessageType.SCHEMA: on_schema,
                SingerMessageType.STATE: on_state,
                SingerMessageType.ACTIVATE_VERSION: on_activate_version,
            },
        )
        return sum(counts.values())

    return run


def implementations() -> list[Implementation]:
    try:
        sdk_runner = make_singer_sdk()
    except ImportError as exc:
        sys.exit(
            f"error: singer-sdk is not importable ({exc}); the codec benchmark compares against it.\n"
            "Install the dev extra: pip install -e '.[dev]'"
        )
    return [
        Implementation("dpone (orjson + validated messages)", False, run_ours),
        Implementation("stdlib json", True, run_stdlib),
        Implementation("singer-sdk", True, sdk_runner),
    ]


def input_file(rows: int, seed: int) -> Path:
    path = WORK_DIR / f"records-{rows}-seed{seed}.jsonl"
    if path.exists():
        print(f"reusing {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    else:
        print(f"generating {rows:,} records into {path} ...", flush=True)
        start = time.perf_counter()
        write_stream(path, rows, seed)
        print(f"  done in {time.perf_counter() - start:.1f}s")
    return path


def _normalize(line: bytes) -> Any:
    """A message's wire form, made comparable across encoders."""
    obj = orjson.loads(line)
    if obj.get("type") == "RECORD" and "time_extracted" in obj:
        obj["time_extracted"] = obj["time_extracted"].replace("Z", "+00:00")
    return obj


def check_outputs(path: Path, impls: list[Implementation]) -> None:
    """Every implementation must write back the same messages it read (first lines only)."""
    with path.open("rb") as fh:
        head = [fh.readline() for _ in range(CHECK_LINES)]
    head = [line for line in head if line]
    expected = [_normalize(line) for line in head]
    for impl in impls:
        if impl.text:
            text_out = io.StringIO()
            impl.run(io.StringIO(b"".join(head).decode()), text_out)
            produced = text_out.getvalue().encode()
        else:
            bytes_out = io.BytesIO()
            impl.run(io.BytesIO(b"".join(head)), bytes_out)
            produced = bytes_out.getvalue()
        got = [_normalize(line) for line in produced.splitlines()]
        if got != expected:
            bad = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), len(got))
            sys.exit(f"error: {impl.name} does not round-trip line {bad + 1} of {path}")


def time_once(impl: Implementation, path: Path) -> tuple[float, int]:
    gc.collect()
    if impl.text:
        start = time.perf_counter()
        with path.open(encoding="utf-8") as src, open(os.devnull, "w", encoding="utf-8") as text_out:
            count = impl.run(src, text_out)
    else:
        start = time.perf_counter()
        with path.open("rb") as bsrc, open(os.devnull, "wb") as bytes_out:
            count = impl.run(bsrc, bytes_out)
    return time.perf_counter() - start, count


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/codec.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="RECORD messages in the input (default 1000000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per implementation; the best counts (default 3)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--min-ratio",
        type=float,
        default=0.0,
        help="exit 1 if dpone's messages/s is below this multiple of singer-sdk's (default: no check)",
    )
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be >= 1")

    impls = implementations()
    print(
        f"Python {platform.python_version()}, orjson {_version('orjson')}, singer-sdk {_version('singer-sdk')}, "
        f"simplejson {_version('simplejson')}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}"
    )
    path = input_file(args.rows, args.seed)
    check_outputs(path, impls)

    best: dict[str, float] = {}
    messages: dict[str, int] = {}
    for run in range(1, args.repeat + 1):
        for impl in impls:
            seconds, count = time_once(impl, path)
            print(f"  run {run}: {impl.name:<38} {seconds:7.3f}s", flush=True)
            best[impl.name] = min(best.get(impl.name, seconds), seconds)
            messages[impl.name] = count
    if len(set(messages.values())) != 1:
        sys.exit(f"error: implementations saw different message counts: {messages}")

    total = next(iter(messages.values()))
    sdk_seconds = best["singer-sdk"]
    print(f"\n{total:,} messages ({args.rows:,} RECORD), decode + encode, best of {args.repeat}:\n")
    print("| implementation | seconds | messages/s | vs singer-sdk |")
    print("|---|---:|---:|---:|")
    for impl in impls:
        seconds = best[impl.name]
        print(f"| {impl.name} | {seconds:.3f} | {total / seconds:,.0f} | {sdk_seconds / seconds:.2f}x |")

    ratio = sdk_seconds / best[impls[0].name]
    if args.min_ratio and ratio < args.min_ratio:
        print(f"\nFAIL: dpone is {ratio:.2f}x singer-sdk, below the required {args.min_ratio:.2f}x", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
