"""tap-csv: CSV files by glob, one stream per `files` entry."""

from __future__ import annotations

from typing import ClassVar

from dpone.taps.csv.streams import CsvStream
from dpone.taps.framework.stream import Stream
from dpone.taps.framework.tap import Tap
from dpone_protocol.errors import ConfigError
from dpone_protocol.settings import Setting


class CsvTap(Tap):
    name = "tap-csv"
    description = "Reads CSV files (by glob) as Singer streams, full table or incremental."
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting(
            "files",
            "array",
            'Streams: [{"entity", "path" (glob), "keys", "replication_key", '
            '"schema", "delimiter", "encoding", "empty_as_null"}]',
            required=True,
        ),
        Setting("base_path", "string", "Directory that relative paths are resolved from.", default="."),
        Setting("delimiter", "string", "Default field delimiter.", default=","),
        Setting("infer_rows", "integer", "Rows sampled to infer column types when no schema is given.", default=1000),
    )

    def discover_streams(self) -> list[Stream]:
        files = self.config.get("files") or []
        names = [f.get("entity") for f in files if isinstance(f, dict)]
        if len(names) != len(files):
            raise ConfigError("files: every entry must be an object with 'entity' and 'path'")
        if len(set(names)) != len(names):
            raise ConfigError("files: entity names must be unique")
        return [CsvStream(spec, self.config) for spec in files]
