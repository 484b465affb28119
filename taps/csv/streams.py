"""A CSV stream: files matched by a glob, one header row, declared or inferred schema."""

from __future__ import annotations

import csv
import datetime as dt
import glob
import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dpone.taps.csv.type_map import infer_property, parser_for
from dpone.taps.csv.type_map import make_converter as _make_converter
from dpone.taps.framework.stream import ReadContext, Stream
from dpone_protocol.errors import ConfigError, DataError


class CsvStream(Stream):
    def __init__(self, spec: Mapping[str, Any], config: Mapping[str, Any]) -> None:
        try:
            self.name = str(spec["entity"])
            pattern = str(spec["path"])
        except KeyError as exc:
            raise ConfigError(f"files[]: each entry needs {exc.args[0]!r}") from None
        base = Path(str(config.get("base_path") or "."))
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        self.files = sorted(glob.glob(full, recursive=True))
        if not self.files:
            raise ConfigError(f"stream {self.name!r}: no file matches {full!r}")
        self.delimiter = str(spec.get("delimiter", config.get("delimiter", ",")))
        self.encoding = str(spec.get("encoding", "utf-8-sig"))
        self.empty_as_null = bool(spec.get("empty_as_null", True))
        self.key_properties = list(spec.get("keys") or [])  # type: ignore[misc]
        self.replication_key = spec.get("replication_key")
        self.header = self._header(self.files[0])
        self.schema = self._schema(spec.get("schema"), int(config.get("infer_rows") or 1000))
        for column in [*self.key_properties, *([self.replication_key] if self.replication_key else [])]:
            if column not in self.schema["properties"]:
                raise ConfigError(f"stream {self.name!r}: key or replication key {column!r} is not a column")
        if self.replication_key:
            self.valid_replication_keys = [self.replication_key]  # type: ignore[misc]

    def _open(self, path: str) -> Any:
        try:
            return open(path, newline="", encoding=self.encoding)
        except OSError as exc:
            raise ConfigError(f"stream {self.name!r}: cannot open {path}: {exc.strerror}") from None

    def _header(self, path: str) -> list[str]:
        with self._open(path) as fh:
            header = next(csv.reader(fh, delimiter=self.delimiter), None)
        if not header:
            raise DataError(f"stream {self.name!r}: {path} has no header row")
        if len(set(header)) != len(header):
            raise DataError(f"stream {self.name!r}: {path} has duplicate column names")
        return header

    def _schema(self, declared: Any, infer_rows: int) -> dict[str, Any]:
        """Inferred from a sample of the first file; declared properties override column by column."""
        overrides: Any = {}
        if declared:
            overrides = declared.get("properties", declared) if isinstance(declared, dict) else None
            if not isinstance(overrides, dict):
                raise ConfigError(f"stream {self.name!r}: 'schema' must map column names to JSON Schemas")
        with self._open(self.files[0]) as fh:
            reader = csv.reader(fh, delimiter=self.delimiter)
            next(reader, None)
            sample = list(itertools.islice(reader, infer_rows))
        columns = list(zip(*sample, strict=False)) if sample else []
        properties = {
            name: overrides.get(name) or infer_property(columns[i] if i < len(columns) else ())
            for i, name in enumerate(self.header)
        }
        return {"type": "object", "properties": properties}

    def _coerce_start(self, value: Any) -> Any:
        """A bookmark or start_date in the replication key's own type, so comparisons hold."""
        if value is None or not self.replication_key:
            return value
        parse = parser_for(self.schema["properties"][self.replication_key])
        try:
            return parse(value) if isinstance(value, str) and parse is not str else value
        except ValueError:
            raise ConfigError(
                f"stream {self.name!r}: start value {value!r} does not fit replication key {self.replication_key!r}"
            ) from None

    def bookmark_key(self, value: Any) -> Any:
        """Date-times compare as instants, not text: '09:00Z' is after '10:00+05:00'."""
        if isinstance(value, str) and self._rk_is_datetime():
            try:
                parsed = dt.datetime.fromisoformat(value)
            except ValueError:
                return value
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        return value

    def _rk_is_datetime(self) -> bool:
        prop = self.schema["properties"].get(self.replication_key or "", {})
        return bool(prop.get("format") == "date-time")

    def records(self, ctx: ReadContext) -> Iterator[dict[str, Any]]:
        rk = ctx.replication_key
        start = self._coerce_start(ctx.start_value)
        key = self.bookmark_key
        start_key = key(start) if start is not None else None
        for path in self.files:
            with self._open(path) as fh:
                reader = csv.reader(fh, delimiter=self.delimiter)
                header = next(reader, None)
                if header != self.header:
                    raise DataError(
                        f"stream {self.name!r}: {path} header differs from {self.files[0]}'s "
                        f"({header} vs {self.header})"
                    )
                convert = _make_converter(self.header, self.schema["properties"], self.empty_as_null, path)
                for line, row in enumerate(reader, start=2):
                    if not row:
                        continue
                    record = convert(row, line)
                    # >= keeps rows that share the bookmark value: at-least-once, never lost.
                    if start_key is not None and rk is not None:
                        value = record.get(rk)
                        if value is None or key(value) < start_key:
                            continue
                    yield record
