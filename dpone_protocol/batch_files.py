"""Files referenced by BATCH messages: JSONL (optionally gzip) and Parquet.

Compatible with the Meltano Singer SDK: a manifest is a list of `file://` URIs (plain
paths are accepted too); the encoding names the format and compression.
"""

from __future__ import annotations

import gzip
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from dpone_protocol.batch_manifest import BatchFile
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.errors import ConfigError, DataError
from dpone_protocol.messages import BatchEncoding
from dpone_protocol.object_store import ObjectStores, file_digests, is_remote, join, local_path


def uri_to_path(uri: str) -> Path:
    """The local path of a `file://` URI or plain path (remote files are fetched first: batch_manifest.fetch)."""
    return local_path(uri)


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


def iter_jsonl_lines(uri: str, encoding: BatchEncoding, name: str | None = None) -> Iterator[bytes]:
    """Raw record lines of one local JSONL batch file (for loaders that stream bytes); errors name
    the file as `name` (its URL, for a fetched copy)."""
    path = uri_to_path(uri)
    name = name or str(path)
    try:
        with _open_jsonl(path, encoding.compression) as fh:
            for line in fh:
                stripped = line.strip()
                if stripped:
                    yield stripped
    except FileNotFoundError:
        raise DataError(f"BATCH file not found: {name}") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"BATCH file {name} is unreadable: {exc}") from None


def iter_batch_records(
    uri: str,
    encoding: BatchEncoding,
    loads: Callable[[bytes], Any] = orjson.loads,
    take: Callable[[bytes], bool] | None = None,
    name: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Decoded records of one batch file, whatever its format (`loads` decodes JSONL lines).

    `take`, for JSONL files, may consume a raw line itself (returning True): a loader that encodes
    rows from bytes. The lines it declines are decoded and yielded as usual.
    """
    fmt = encoding.format
    if fmt == "jsonl":
        for n, line in enumerate(iter_jsonl_lines(uri, encoding, name), start=1):
            if take is not None and take(line):
                continue
            try:
                yield loads(line)
            except ValueError as exc:
                raise DataError(f"BATCH file {name or uri} line {n}: malformed JSON ({exc})") from None
    elif fmt == "parquet":
        try:
            import pyarrow.parquet as pq  # noqa: PLC0415 - optional dependency
        except ImportError:
            raise ConfigError("parquet BATCH files need pyarrow: pip install 'dpone[parquet]'") from None
        path = uri_to_path(uri)
        try:
            parquet = pq.ParquetFile(path)
        except FileNotFoundError:
            raise DataError(f"BATCH file not found: {name or path}") from None
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise DataError(f"BATCH file {name or path} is unreadable: {exc}") from None
        for batch in parquet.iter_batches():
            yield from batch.to_pylist()
    else:
        raise DataError(f"unsupported BATCH encoding format {fmt!r} (jsonl or parquet)")


COMPRESSIONS = ("gzip", "none")
_WRITE_CHUNK = 1 << 20  # rows are joined and written (and compressed) a megabyte at a time


class JsonlBatchWriter:
    """Writes records into JSONL files (gzip, or plain with compression "none") of at most `max_rows` rows.

    `directory` is a local path or `file://` URL, or a remote one (s3://, gs://, az://): files for a
    remote directory are written in `spool` (the system's temporary directory by default) and uploaded
    when closed. `close()` gives each file's manifest entry (size, SHA-256, MD5, rows).
    """

    def __init__(
        self,
        directory: str | Path,
        prefix: str,
        stream: str,
        max_rows: int = 1_000_000,
        compression: str = "gzip",
        stores: ObjectStores | None = None,
        spool: Path | None = None,
    ) -> None:
        if compression not in COMPRESSIONS:
            raise ConfigError(f"batch compression must be one of {', '.join(COMPRESSIONS)}; got {compression!r}")
        self.directory = str(directory)
        self.remote = is_remote(self.directory)
        self.local_dir = Path(spool or tempfile.gettempdir()) if self.remote else local_path(self.directory)
        self.stores = stores if stores is not None else ObjectStores()
        self.prefix = prefix
        self.stream = stream
        self.max_rows = max_rows
        self.encoding = BatchEncoding("jsonl", compression)
        self._fh: IO[bytes] | None = None
        self._path: Path | None = None
        self._rows = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def _open(self) -> IO[bytes]:
        self.local_dir.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.stream)
        gz = self.encoding.compression == "gzip"
        self._path = path = self.local_dir / f"{self.prefix}{safe}-{uuid.uuid4().hex}.jsonl{'.gz' if gz else ''}"
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
        self.write_lines(line, 1)

    def write_lines(self, data: bytes, count: int) -> None:
        """`count` records, each serialized as one JSON object on its own line."""
        self._pending.append(data)
        self._pending_bytes += len(data)
        self._rows += count
        if self._pending_bytes >= _WRITE_CHUNK:
            self._spill()

    @property
    def rows(self) -> int:
        """Rows in the files not yet closed."""
        return self._rows

    def full(self) -> bool:
        return self._rows >= self.max_rows

    def close(self) -> list[BatchFile]:
        """Finish the current file (uploading it to a remote directory) and return its manifest entries."""
        if self._pending:
            self._spill()
        if self._fh is None:
            return []
        self._fh.close()
        self._fh = None
        path, rows = self._path, self._rows
        assert path is not None
        self._path, self._rows = None, 0
        size, sha256, md5 = file_digests(path)
        if self.remote:
            uri = join(self.directory, path.name)
            try:
                self.stores.put_file(path, uri)
            finally:
                path.unlink(missing_ok=True)
        else:
            uri = path.resolve().as_uri()
        return [BatchFile(uri, size, sha256, md5, rows)]


def write_jsonl_batch(root: Path, stream: str, records: Iterable[dict[str, Any]]) -> list[str]:
    writer = JsonlBatchWriter(root, "", stream)
    for record in records:
        writer.write(record)
    return [f.uri for f in writer.close()]
