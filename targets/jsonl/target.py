"""target-jsonl: one JSON Lines file per stream, fsynced before STATE is echoed."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, ClassVar

from dpone.targets.framework.batching import BatchPolicy
from dpone.targets.framework.capabilities import APPEND, OVERWRITE, TargetCapabilities
from dpone.targets.framework.loader import table_name
from dpone.targets.framework.sink import Sink
from dpone.targets.framework.target import Target
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.errors import ConfigError
from dpone_protocol.messages import SchemaMessage
from dpone_protocol.os_errors import classify_os_error
from dpone_protocol.settings import Setting


def _repair_torn_tail(path: Path) -> None:
    """Cut a partial last line left by a crash mid-write, so appends stay line-aligned."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return
        size = fh.seek(0, os.SEEK_END)
        chunk = 1 << 16
        pos = size
        while pos > 0:
            start = max(0, pos - chunk)
            fh.seek(start)
            data = fh.read(pos - start)
            idx = data.rfind(b"\n")
            if idx >= 0:
                fh.truncate(start + idx + 1)
                return
            pos = start
        fh.truncate(0)


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_destination(root: Path) -> None:
    """Fail at the SCHEMA, before anything is created, when the files could not be written anyway."""
    found = _nearest_existing(root.absolute())
    if not found.is_dir():
        raise ConfigError(f"destination_path {root}: Not a directory ({found} is a file)")
    if not _writable(found):
        problem = "read-only file system" if _read_only(found) else "permission denied"
        raise ConfigError(f"destination_path {root}: {problem}: {found} is not writable by the user running it")


def _writable(path: Path) -> bool:
    # access() answers for the real user; EROFS shows up here too, whatever the user.
    return os.access(path, os.W_OK | os.X_OK)


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


class JsonlSink(Sink):
    def __init__(self, config: Mapping[str, Any], schema: SchemaMessage, policy: BatchPolicy) -> None:
        super().__init__(config, schema, policy)
        self.root = Path(str(config.get("destination_path") or "output"))
        _check_destination(self.root)
        self.overwrite = config.get("load_method") == OVERWRITE
        name = (
            table_name(self.stream, config.get("table_name_map"))
            if config.get("conform_names")
            else self.stream.replace("/", "_")
        )
        self.path = self.root / f"{name}.jsonl"
        self.write_path = self.path.with_suffix(".jsonl.partial") if self.overwrite else self.path
        # Opened at the first write (or at a successful end of input): a run that stops before
        # then leaves no empty file behind.
        self._fh: IO[bytes] | None = None
        self._failed = False
        self._finished = False

    def _file(self) -> IO[bytes]:
        if self._fh is None:
            with self._io(self.write_path):
                self.root.mkdir(parents=True, exist_ok=True)
                if self.overwrite:
                    self.write_path.unlink(missing_ok=True)
                else:
                    _repair_torn_tail(self.path)
                self._fh = self.write_path.open("ab")
        return self._fh

    @contextlib.contextmanager
    def _io(self, path: Path) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            self._failed = True
            known = classify_os_error(exc, str(path))
            if known is None:
                raise
            raise known from exc

    def write_batch(self, records: list[dict[str, Any]]) -> None:
        line = DEFAULT_CODEC.dumps
        fh = self._file()
        with self._io(self.write_path):
            fh.write(b"".join(line(r) + b"\n" for r in records))
            fh.flush()
            os.fsync(fh.fileno())

    def pending_commit(self) -> bool:
        return self.overwrite and not self._finished

    def finish(self) -> None:
        # The input ended cleanly: a stream with no records is an empty file (an overwrite empties it).
        fh = self._file()
        if self.overwrite and not self._finished:
            with self._io(self.path):
                fh.close()
                os.replace(self.write_path, self.path)
        self._finished = True

    def close(self) -> None:
        if self._fh is not None and not self._fh.closed:
            try:
                self._fh.close()
            except OSError:
                if not self._failed:
                    raise
                # The write that failed was reported; closing retries the same flush.


class JsonlTarget(Target):
    name = "target-jsonl"
    description = "Writes each stream to a JSON Lines file."
    capabilities: ClassVar[TargetCapabilities] = TargetCapabilities(load_methods=(APPEND, OVERWRITE))
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("destination_path", "string", "Directory for the <stream>.jsonl files.", default="output"),
        Setting(
            "load_method",
            "string",
            "append-only adds lines; overwrite replaces each file at the end.",
            default=APPEND,
            choices=(APPEND, OVERWRITE),
        ),
        Setting("add_record_metadata", "boolean", "Add _sdc_* metadata fields to each line.", default=False),
        Setting("conform_names", "boolean", "Make file names identifier-safe (lowercase, _).", default=False),
    )

    def make_sink(self, schema: SchemaMessage) -> Sink:
        return JsonlSink(self.config, schema, self.policy)

    def check(self) -> None:
        # The default probe would leave a probe file; a synced temporary file proves the same and goes away.
        root = Path(str(self.config.get("destination_path") or "output"))
        try:
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=root, prefix=".dpone-check-", suffix=".jsonl") as probe:
                probe.write(b"{}\n")
                probe.flush()
                os.fsync(probe.fileno())
        except OSError as exc:
            raise ConfigError(f"destination_path {root}: {exc.strerror}") from None
