"""Where quarantined records go: a replayable JSONL file, or a `<stream>__quarantine` stream.

A quarantine must be as durable as the state that skips past its records: the file is
fsynced before each STATE is forwarded; the table rows travel in the message stream ahead of
that STATE, so the target commits them before it echoes it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from dpone_protocol.errors import ConfigError
from dpone_runner.contracts.rules import Violation

MARKER = "_dpone_quarantine"
TABLE_SUFFIX = "__quarantine"
REPLAYED_SUFFIX = ".replayed"


@dataclass(frozen=True, slots=True)
class RunContext:
    pipeline_id: str
    run_id: str


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"


def file_path(root: Path, context: RunContext, stream: str) -> Path:
    return root / safe_name(context.pipeline_id) / safe_name(stream) / f"{context.run_id}.jsonl"


def make_private_dirs(path: Path) -> None:
    """Create `path` and each missing parent 0700: they name pipelines and streams and hold source
    rows. (`mkdir(parents=True, mode=...)` gives the parents the umask's mode, 0755 as a rule.)"""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by another run: its mode is its own
        directory.chmod(0o700)  # mkdir's mode is cut by the umask; 0700 is what the docs promise


class Quarantine(Protocol):
    location: str

    def on_schema(self, schema_message: dict[str, Any]) -> None: ...

    def put(self, line: bytes, message: dict[str, Any], violations: Sequence[Violation], number: int) -> None: ...

    def checkpoint(self) -> None: ...

    def close(self) -> None: ...


class FileQuarantine:
    """`<root>/<pipeline>/<stream>/<run_id>.jsonl`: the SCHEMA, then each bad RECORD line as it came,
    with a `_dpone_quarantine` key added. Created on the first bad record only."""

    def __init__(self, root: Path, context: RunContext, stream: str) -> None:
        self.path = file_path(root, context, stream)
        self.location = str(self.path)
        self.context = context
        self._schema = b""
        self._fh: IO[bytes] | None = None
        self._dirty = False

    def on_schema(self, schema_message: dict[str, Any]) -> None:
        self._schema = orjson.dumps(schema_message) + b"\n"
        if self._fh is not None:
            # A new schema mid-run: the rows after it are read under it on replay, as in the tap's stream.
            self._fh.write(self._schema)

    def _open(self) -> IO[bytes]:
        try:
            make_private_dirs(self.path.parent)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise ConfigError(f"quarantine file {self.path}: {exc.strerror}") from None
        fh = os.fdopen(fd, "ab", buffering=1 << 16)
        fh.write(self._schema)
        return fh

    def put(self, line: bytes, message: dict[str, Any], violations: Sequence[Violation], number: int) -> None:
        if self._fh is None:
            self._fh = self._open()
        meta = {
            "rules": [v.name for v in violations],
            "reason": "; ".join(v.reason() for v in violations),
            "line": number,
            "run_id": self.context.run_id,
            "pipeline": self.context.pipeline_id,
            "at": utc_now(),
        }
        body = line.rstrip()
        # Splice into the original bytes rather than re-encode: the record stays exactly as the tap sent it.
        self._fh.write(body[:-1] + b',"' + MARKER.encode() + b'":' + orjson.dumps(meta) + b"}\n")
        self._dirty = True

    def checkpoint(self) -> None:
        if self._fh is not None and self._dirty:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._dirty = False

    def close(self) -> None:
        if self._fh is not None:
            self.checkpoint()
            self._fh.close()
            self._fh = None


def table_schema(stream: str) -> dict[str, Any]:
    properties = {
        "record": {"type": ["object", "null"]},
        "rules": {"type": "array", "items": {"type": "string"}},
        "reason": {"type": "string"},
        "line": {"type": "integer"},
        "run_id": {"type": "string"},
        "quarantined_at": {"type": "string", "format": "date-time"},
    }
    return {
        "type": "SCHEMA",
        "stream": stream + TABLE_SUFFIX,
        "schema": {"type": "object", "properties": properties},
        "key_properties": ["run_id", "line"],
    }


class TableQuarantine:
    """Bad records as rows of the stream `<stream>__quarantine`, sent to the same targets."""

    def __init__(self, context: RunContext, stream: str, emit: Callable[[bytes], None]) -> None:
        self.context = context
        self.stream = stream + TABLE_SUFFIX
        self.location = f"stream {self.stream}"
        self._schema = orjson.dumps(table_schema(stream)) + b"\n"
        self._emit = emit
        self._announced = False

    def on_schema(self, schema_message: dict[str, Any]) -> None:
        """The quarantine table's columns do not follow the stream's schema."""

    def put(self, line: bytes, message: dict[str, Any], violations: Sequence[Violation], number: int) -> None:
        if not self._announced:
            self._emit(self._schema)
            self._announced = True
        row = {
            "record": message.get("record"),
            "rules": [v.name for v in violations],
            "reason": "; ".join(v.reason() for v in violations),
            "line": number,
            "run_id": self.context.run_id,
            "quarantined_at": utc_now(),
        }
        self._emit(orjson.dumps({"type": "RECORD", "stream": self.stream, "record": row}) + b"\n")

    def checkpoint(self) -> None:
        """Nothing to do: the rows are ahead of the STATE in the targets' input."""

    def close(self) -> None:
        """Nothing to do: the targets commit the rows with the rest."""


# -- reading quarantine files back -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QuarantineFile:
    path: Path
    pipeline: str
    stream: str
    rows: int
    rules: dict[str, int]
    replayed: bool


def find_files(roots: Sequence[Path]) -> Iterator[QuarantineFile]:
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.glob("*/*/*.jsonl*")):
            if path.name.endswith((".jsonl", ".jsonl" + REPLAYED_SUFFIX)):
                yield summarize(path)


def summarize(path: Path) -> QuarantineFile:
    rows = 0
    rules: dict[str, int] = {}
    stream = pipeline = ""
    with path.open("rb") as fh:
        for raw in fh:
            try:
                message = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue  # a torn last line after a crash; replay says so
            if not isinstance(message, dict):
                continue
            stream = str(message.get("stream") or stream)
            meta = message.get(MARKER)
            if message.get("type") == "RECORD" and isinstance(meta, dict):
                rows += 1
                pipeline = str(meta.get("pipeline") or pipeline)
                for rule in meta.get("rules") or ():
                    rules[str(rule)] = rules.get(str(rule), 0) + 1
    replayed = path.suffix == REPLAYED_SUFFIX
    return QuarantineFile(path, pipeline or path.parent.parent.name, stream, rows, rules, replayed)
