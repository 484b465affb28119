"""Reading what the benchmarked taps wrote: rows and the sum of their ids, or the count a tap logged."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson


@dataclass(frozen=True, slots=True)
class Checked:
    rows: int
    id_sum: int


def check_singer(lines: Iterator[bytes], stream_ids: set[str]) -> Checked:
    """Count RECORD messages of the table's stream and add up their ids."""
    rows = id_sum = 0
    loads = orjson.loads
    for line in lines:
        if b"RECORD" not in line:
            continue
        message = loads(line)
        if message.get("type") != "RECORD":
            continue
        if message.get("stream") not in stream_ids:
            raise SystemExit(f"error: a RECORD of unexpected stream {message.get('stream')!r}")
        rows += 1
        id_sum += int(message["record"]["id"])
    return Checked(rows, id_sum)


def check_psql(lines: Iterator[bytes]) -> Checked:
    """Rows of psql's output: text format (id first), or our tap's CSV (a JSON object first)."""
    rows = id_sum = 0
    for line in lines:
        rows += 1
        if b"\x1f" in line:
            id_sum += int(orjson.loads(line.split(b"\x1f", 1)[0])["id"])
        else:
            id_sum += int(line.split(b"\t", 1)[0])
    return Checked(rows, id_sum)


def batch_files(stdout_file: Path) -> list[Path]:
    """The files named by the BATCH messages of a tap's output."""
    from dpone_protocol.batch_files import uri_to_path

    files: list[Path] = []
    for line in stdout_file.read_bytes().splitlines():
        message = orjson.loads(line)
        if message.get("type") == "RECORD":
            raise SystemExit("error: the tap in BATCH mode wrote RECORD messages")
        if message.get("type") == "BATCH":
            files.extend(uri_to_path(uri) for uri in message["manifest"])
    return files


def check_batch(files: list[Path], with_ids: bool) -> Checked:
    rows = id_sum = 0
    for path in files:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as fh:
            if not with_ids:
                while chunk := fh.read(1 << 20):
                    rows += chunk.count(b"\n")
                continue
            for line in fh:
                rows += 1
                id_sum += int(orjson.loads(line)["id"])
    return Checked(rows, id_sum)


_OUR_COUNT = re.compile(rb"stream \S+: (\d+) records")
_METRIC_COUNT = re.compile(rb'"metric":\s*"record_count",\s*"value":\s*(\d+)')


def logged_count(stderr_file: Path) -> int | None:
    """The record count a tool logged: our final log line, or the sum of singer record_count counters."""
    text = stderr_file.read_bytes()
    ours = _OUR_COUNT.findall(text)
    if ours:
        return int(ours[-1])
    metrics = _METRIC_COUNT.findall(text)
    return sum(int(n) for n in metrics) if metrics else None
