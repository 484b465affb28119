"""target-jsonl: one JSON Lines file per stream, fsynced before STATE is echoed."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, ClassVar

from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.errors import ConfigError
from dpone_protocol.messages import SchemaMessage
from dpone_protocol.settings import Setting
from targets.framework.batching import BatchPolicy
from targets.framework.capabilities import APPEND, OVERWRITE, TargetCapabilities
from targets.framework.loader import table_name
from targets.framework.sink import Sink
from targets.framework.target import Target


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


class JsonlSink(Sink):
    def __init__(self, config: Mapping[str, Any], schema: SchemaMessage, policy: BatchPolicy) -> None:
        super().__init__(config, schema, policy)
        root = Path(str(config.get("destination_path") or "output"))
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"destination_path {root}: {exc.strerror}") from None
        self.overwrite = config.get("load_method") == OVERWRITE
        name = (
            table_name(self.stream, config.get("table_name_map"))
            if config.get("conform_names")
            else self.stream.replace("/", "_")
        )
        self.path = root / f"{name}.jsonl"
        self.write_path = self.path.with_suffix(".jsonl.partial") if self.overwrite else self.path
        if self.overwrite:
            self.write_path.unlink(missing_ok=True)
        else:
            _repair_torn_tail(self.path)
        self._fh: IO[bytes] = self.write_path.open("ab")
        self._opened = True

    def write_batch(self, records: list[dict[str, Any]]) -> None:
        line = DEFAULT_CODEC.dumps
        self._fh.write(b"".join(line(r) + b"\n" for r in records))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def pending_commit(self) -> bool:
        return self.overwrite and self._opened

    def finish(self) -> None:
        if self.overwrite and self._opened:
            self._fh.close()
            os.replace(self.write_path, self.path)
            self._opened = False

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


class JsonlTarget(Target):
    name = "target-jsonl"
    description = "Writes each stream to a JSON Lines file."
    capabilities: ClassVar[TargetCapabilities] = TargetCapabilities(load_methods=(APPEND, OVERWRITE), replace_swap=True)
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
