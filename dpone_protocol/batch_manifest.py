"""The manifest of one BATCH: each file's URL, size, SHA-256, MD5 and row count, the format, the
compression and the cleanup policy.

A tap writes it twice: inside the BATCH message (key `dpone_manifest`, next to the Singer SDK's
`manifest` list of URLs, which SDK targets read and this key leaves alone), and as an object
`<batch>.manifest.json` beside the files, for audits and for sweeping files a crashed run left.
A target checks every file against it before a row of the file is loaded (`fetch`), and deletes the
files only once the batch has committed, when the policy says `delete_on_success`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpone_protocol.errors import ConfigError, DataError, DponeError
from dpone_protocol.object_store import ObjectStores, check_root, is_remote, local_path

log = logging.getLogger("dpone.batch")

RETAIN = "retain"
DELETE_ON_SUCCESS = "delete_on_success"
CLEANUP_POLICIES = (RETAIN, DELETE_ON_SUCCESS)
MANIFEST_KEY = "dpone_manifest"
# Set by `dpone run` for its targets when it runs several: the runner deletes BATCH files (once every
# target committed them), not a target (which would take them from the others).
BATCH_CLEANUP_ENV = "DPONE_BATCH_CLEANUP"


@dataclass(frozen=True, slots=True)
class BatchFile:
    uri: str
    size: int
    sha256: str
    md5: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "size": self.size, "sha256": self.sha256, "md5": self.md5, "rows": self.rows}


@dataclass(slots=True)
class BatchManifest:
    stream: str
    format: str
    compression: str | None
    files: list[BatchFile]
    cleanup: str = RETAIN
    uri: str | None = None  # where the manifest object itself is, when written

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "stream": self.stream,
            "format": self.format,
            "compression": self.compression,
            "rows": self.rows,
            "cleanup": self.cleanup,
            "uri": self.uri,
            "files": [f.to_dict() for f in self.files],
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> BatchManifest:
        """A manifest from a BATCH message's `dpone_manifest`; DataError naming `where` if malformed."""
        try:
            files = [
                BatchFile(str(f["uri"]), int(f["size"]), str(f["sha256"]), str(f.get("md5", "")), int(f["rows"]))
                for f in data["files"]
            ]
            cleanup = str(data.get("cleanup") or RETAIN)
            if cleanup not in CLEANUP_POLICIES:
                raise ValueError(f"cleanup {cleanup!r}")
            return cls(
                str(data.get("stream", "")),
                str(data["format"]),
                data.get("compression"),
                files,
                cleanup,
                data.get("uri"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where}: malformed {MANIFEST_KEY} ({exc})") from None


@dataclass(frozen=True, slots=True)
class BatchLayout:
    """Where a tap's BATCH files go: `<root>/<pipeline>/<run id>/`, so runs never mix their files and a
    prefix can be swept or given a lifecycle rule as a whole."""

    root: str
    pipeline: str
    run_id: str
    spool: Path | None = None  # local directory for files on their way to a remote root
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def directory(self) -> str:
        return f"{self.root.rstrip('/')}/{self.pipeline}/{self.run_id}"

    @classmethod
    def from_config(
        cls, storage: Mapping[str, Any], tap_name: str, environ: Mapping[str, str] | None = None
    ) -> BatchLayout:
        env = os.environ if environ is None else environ
        root = str(storage.get("root") or "")
        if not root:
            raise ConfigError(
                "batch_config.storage.root is required, e.g. 'file:///tmp/dpone-batches' or 's3://bucket/dpone'"
            )
        pipeline = _segment(str(storage.get("pipeline") or env.get("DPONE_PIPELINE") or tap_name))
        run_id = env.get("DPONE_RUN_ID") or env.get("MELTANO_RUN_ID")
        if not run_id:
            run_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        spool = storage.get("spool_dir")
        options = storage.get("options") or {}
        if not isinstance(options, Mapping):
            raise ConfigError("batch_config.storage.options must be an object of the object store's settings")
        check_root(root)  # a bad URL is a config error now, before any output, not at the first file
        return cls(root, pipeline, _segment(run_id), usable_dir(spool, "batch_config.storage.spool_dir"), options)


def usable_dir(path: Any, setting: str) -> Path | None:
    """A local folder for files on their way, made if missing; ConfigError naming the setting if it
    cannot be (None: the system's temporary folder)."""
    if not path:
        return None
    folder = Path(str(path))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder)  # noqa: SIM115 - closed (and removed) at once
        probe.close()
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot write files in {folder}: {exc.strerror or exc}") from None
    return folder


def _segment(text: str) -> str:
    """A path segment made safe: no slashes, no dots-only names."""
    safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in text).strip(".")
    return safe or "run"


@contextmanager
def fetch(
    file: BatchFile | str, stores: ObjectStores, spool: Path | None = None, *, where: str = "BATCH"
) -> Iterator[Path]:
    """A local copy of one batch file, checked against its manifest entry first (size and SHA-256).

    A local file is read where it is; a remote one is downloaded into the spool directory (and
    removed after). A plain URL (an SDK tap's BATCH, without a manifest) is only fetched.
    """
    uri = file.uri if isinstance(file, BatchFile) else file
    if not is_remote(uri):
        path = local_path(uri)
        if isinstance(file, BatchFile):
            _verify_local(path, file, where)
        yield path
        return
    handle, name = tempfile.mkstemp(prefix="dpone-batch-", suffix=_suffix(uri), dir=spool)
    path = Path(name)
    try:
        sha, size = hashlib.sha256(), 0
        with os.fdopen(handle, "wb") as out:
            for chunk in _stream_or_missing(stores, uri, where):
                sha.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if isinstance(file, BatchFile):
            _check(file, size, sha.hexdigest(), where)
        yield path
    finally:
        path.unlink(missing_ok=True)


def verify_remote(
    file: BatchFile, stores: ObjectStores, where: str = "BATCH", inspect: Callable[[bytes], None] | None = None
) -> None:
    """Check a remote file against its manifest entry by streaming it through SHA-256 (nothing stored);
    `inspect`, if given, sees the file's bytes as they pass."""
    sha, size = hashlib.sha256(), 0
    for chunk in _stream_or_missing(stores, file.uri, where):
        sha.update(chunk)
        size += len(chunk)
        if inspect is not None:
            inspect(chunk)
    _check(file, size, sha.hexdigest(), where)


def _stream_or_missing(stores: ObjectStores, uri: str, where: str) -> Iterator[bytes]:
    try:
        yield from stores.stream(uri)
    except DataError as exc:
        if str(exc).endswith("not found"):
            raise DataError(f"{where}: file not found: {uri}") from None
        raise


def _suffix(uri: str) -> str:
    name = uri.rsplit("/", 1)[-1]
    return "".join(Path(name).suffixes[-2:])


def _verify_local(path: Path, file: BatchFile, where: str) -> None:
    from dpone_protocol.object_store import file_digests  # noqa: PLC0415 - one module, no cycle

    try:
        size, sha, _ = file_digests(path)
    except FileNotFoundError:
        raise DataError(f"{where}: file not found: {path}") from None
    _check(file, size, sha, where)


def _check(file: BatchFile, size: int, sha256: str, where: str) -> None:
    if size != file.size:
        raise DataError(f"{where}: {file.uri} is {size} bytes, its manifest says {file.size}: refusing to load it")
    if sha256 != file.sha256:
        raise DataError(
            f"{where}: {file.uri} does not match its manifest's SHA-256 (changed or corrupted after it was "
            "written): refusing to load it"
        )


def delete_files(stores: ObjectStores, uris: list[str]) -> None:
    """Delete committed BATCH files (cleanup: delete_on_success). A file that cannot be deleted is only
    logged: its rows are committed, and the run has done its job."""
    for uri in uris:
        try:
            if is_remote(uri):
                stores.delete(uri)
            else:
                local_path(uri).unlink(missing_ok=True)
        except (DponeError, OSError) as exc:
            log.warning("BATCH file %s: committed but not deleted: %s", uri, exc)


class DeleteAfterCommit:
    """BATCH files waiting for their batch to commit before they are deleted."""

    def __init__(self, stores: Callable[[], ObjectStores]) -> None:
        self._stores = stores
        self._waiting: list[tuple[Callable[[], bool], list[str]]] = []

    def add(self, committed: Callable[[], bool], uris: list[str]) -> None:
        self._waiting.append((committed, uris))

    def sweep(self) -> None:
        """Delete the files of every batch that has committed since."""
        if not self._waiting:
            return
        waiting = []
        for committed, uris in self._waiting:
            if committed():
                delete_files(self._stores(), uris)
            else:
                waiting.append((committed, uris))
        self._waiting = waiting
