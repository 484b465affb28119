"""Files referenced by BATCH messages: JSONL (optionally gzip) and Parquet.

Compatible with the Meltano Singer SDK: a manifest is a list of `file://` URIs (plain
paths are accepted too); the encoding names the format and compression.
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

import orjson

from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.errors import ConfigError, DataError
from dpone_protocol.messages import BatchEncoding


def uri_to_path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path if parsed.scheme else uri))
    raise ConfigError(f"BATCH file {uri!r}: only local file:// URIs are supported")


def _gzip() -> Any:
    """ISA-L's gzip where it is installed (the same files, compressed about 4x faster), else zlib's."""
    try:
        from isal import igzip  # noqa: PLC0415 - optional, and only BATCH files need it
    except ImportError:
        return gzip
    return igzip


def _open_jsonl(path: Path, compression: str | None) -> IO[bytes]:
    if compression == "gzip" or (compression is None and path.suffix == ".gz"):
        return _gzip().open(path, "rb")  # type: ignore[no-any-return]
    return path.open("rb")


def iter_jsonl_lines(uri: str, encoding: BatchEncoding) -> Iterator[bytes]:
    """Raw record lines of one JSONL batch file (for loaders that stream bytes)."""
    path = uri_to_path(uri)
    try:
        with _open_jsonl(path, encoding.compression) as fh:
            for line in fh:
                stripped = line.strip()
                if stripped:
                    yield stripped
    except FileNotFoundError:
        raise DataError(f"BATCH file not found: {path}") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"BATCH file {path} is unreadable: {exc}") from None


def iter_batch_records(
    uri: str,
    encoding: BatchEncoding,
    loads: Callable[[bytes], Any] = orjson.loads,
    take: Callable[[bytes], bool] | None = None,
) -> Iterator[dict[str, Any]]:
    """Decoded records of one batch file, whatever its format (`loads` decodes JSONL lines).

    `take`, for JSONL files, may consume a raw line itself (returning True): a loader that encodes
    rows from bytes. The lines it declines are decoded and yielded as usual.
    """
    fmt = encoding.format
    if fmt == "jsonl":
        for n, line in enumerate(iter_jsonl_lines(uri, encoding), start=1):
            if take is not None and take(line):
                continue
            try:
                yield loads(line)
            except ValueError as exc:
                raise DataError(f"BATCH file {uri} line {n}: malformed JSON ({exc})") from None
    elif fmt == "parquet":
        try:
            import pyarrow.parquet as pq  # noqa: PLC0415 - optional dependency
        except ImportError:
            raise ConfigError("parquet BATCH files need pyarrow: pip install 'dpone[parquet]'") from None
        path = uri_to_path(uri)
        try:
            parquet = pq.ParquetFile(path)
        except FileNotFoundError:
            raise DataError(f"BATCH file not found: {path}") from None
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise DataError(f"BATCH file {path} is unreadable: {exc}") from None
        for batch in parquet.iter_batches():
            yield from batch.to_pylist()
    else:
        raise DataError(f"unsupported BATCH encoding format {fmt!r} (jsonl or parquet)")


COMPRESSIONS = ("gzip", "none")
_WRITE_CHUNK = 1 << 20  # rows are joined and written (and compressed) a megabyte at a time


class JsonlBatchWriter:
    """Writes records into JSONL files (gzip, or plain with compression "none") of at most `max_rows` rows."""

    def __init__(
        self, root: Path, prefix: str, stream: str, max_rows: int = 1_000_000, compression: str = "gzip"
    ) -> None:
        if compression not in COMPRESSIONS:
            raise ConfigError(f"batch compression must be one of {', '.join(COMPRESSIONS)}; got {compression!r}")
        self.root = root
        self.prefix = prefix
        self.stream = stream
        self.max_rows = max_rows
        self.encoding = BatchEncoding("jsonl", compression)
        self._fh: IO[bytes] | None = None
        self._rows = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._files: list[str] = []

    def _open(self) -> IO[bytes]:
        self.root.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.stream)
        gz = self.encoding.compression == "gzip"
        path = self.root / f"{self.prefix}{safe}-{uuid.uuid4().hex}.jsonl{'.gz' if gz else ''}"
        self._files.append(path.resolve().as_uri())
        if gz:
            # Level 1: these files are read once, soon; speed beats size.
            return _gzip().open(path, "wb", compresslevel=1)  # type: ignore[no-any-return]
        return path.open("wb")

    def _spill(self) -> None:
        if self._fh is None:
            self._fh = self._open()
        self._fh.write(b"".join(self._pending))
        self._pending.clear()
        self._pending_bytes = 0

    def write(self, record: dict[str, Any]) -> None:
        # The codec's encoder: exact numbers (Decimal) keep every digit, as in a RECORD line.
        self.write_encoded(DEFAULT_CODEC.dumps(record))

    def write_encoded(self, record_json: bytes) -> None:
        """A record already serialized as one JSON object."""
        self.write_line(record_json + b"\n")

    def write_line(self, line: bytes) -> None:
        """A record serialized as one JSON object, newline included (as COPY sends rows)."""
        self._pending.append(line)
        self._pending_bytes += len(line)
        self._rows += 1
        if self._pending_bytes >= _WRITE_CHUNK:
            self._spill()

    @property
    def rows(self) -> int:
        """Rows in the files not yet closed."""
        return self._rows

    def full(self) -> bool:
        return self._rows >= self.max_rows

    def close(self) -> list[str]:
        """Finish the current files and return their manifest."""
        if self._pending:
            self._spill()
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        files, self._files, self._rows = self._files, [], 0
        return files


def write_jsonl_batch(root: Path, stream: str, records: Iterable[dict[str, Any]]) -> list[str]:
    writer = JsonlBatchWriter(root, "", stream)
    for record in records:
        writer.write(record)
    return writer.close()
