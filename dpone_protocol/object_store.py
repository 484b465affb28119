"""Objects in S3, Google Cloud Storage and Azure Blob Storage (and local files), for BATCH files.

One client library for the three clouds: obstore (Rust's object_store; imported when a remote URL is
first used, so `file://` batches need nothing installed). Credentials come the usual way for each
cloud, read by obstore from the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN,
web identity and instance metadata; GOOGLE_SERVICE_ACCOUNT / GOOGLE_APPLICATION_CREDENTIALS and the
metadata server; AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY, a SAS, or a managed
identity), or from `options` (obstore's config keys, e.g. `endpoint`, `region`, `access_key_id`),
whose values are registered as secrets so no log or error shows them.

URLs: `s3://bucket/key`, `gs://bucket/key`, `az://container/key` (also `abfs://`, `azure://`),
`file:///path`, or a plain path.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from dpone_protocol.config import register_secret
from dpone_protocol.errors import ConfigError, DataError, DponeError, TransientError

REMOTE_SCHEMES = {"s3": "s3", "s3a": "s3", "gs": "gs", "gcs": "gs", "az": "az", "abfs": "az", "azure": "az"}
_CHUNK = 8 << 20
_PART = 32 << 20


def is_remote(uri: str) -> bool:
    return urlparse(uri).scheme in REMOTE_SCHEMES


def local_path(uri: str) -> Path:
    """The local path of a `file://` URI or a plain path."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path if parsed.scheme else uri))
    if parsed.scheme in REMOTE_SCHEMES:
        raise ConfigError(f"BATCH file {uri!r} is in object storage: fetch it first (batch_manifest.fetch)")
    raise ConfigError(f"{uri!r}: unsupported URL scheme {parsed.scheme!r} for BATCH files (s3, gs, az or file)")


def join(root: str, *parts: str) -> str:
    """`root` with path parts appended (a URL root or a local directory)."""
    tail = "/".join(p.strip("/") for p in parts if p.strip("/"))
    if not tail:
        return root
    return f"{root.rstrip('/')}/{tail}"


def _bucket_and_key(uri: str) -> tuple[str, str, str]:
    parsed = urlparse(uri)
    scheme = REMOTE_SCHEMES[parsed.scheme]
    if not parsed.netloc:
        raise ConfigError(f"{uri!r}: no bucket (container) in the URL, e.g. {parsed.scheme}://my-bucket/dpone")
    return scheme, parsed.netloc, unquote(parsed.path.lstrip("/"))


def check_root(root: str) -> None:
    """A BATCH root's URL is usable: a bucket for a remote one, a known scheme for a local one."""
    if is_remote(root):
        _bucket_and_key(root)
    else:
        local_path(root)


def _obstore() -> Any:
    try:
        import obstore  # noqa: PLC0415 - only remote BATCH files need it
    except ImportError:
        raise ConfigError("BATCH files in S3, GCS or Azure need obstore: pip install 'dpone[objectstore]'") from None
    return obstore


class ObjectStores:
    """Remote stores by bucket, made on first use and shared by threads (obstore's are thread-safe)."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = {str(k): v for k, v in (options or {}).items()}
        for key, value in self.options.items():
            if isinstance(value, str) and any(w in key for w in ("secret", "key", "token", "password", "sas")):
                register_secret(value)
        self._stores: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def _store(self, scheme: str, bucket: str) -> Any:
        with self._lock:
            store = self._stores.get((scheme, bucket))
            if store is None:
                _obstore()
                from obstore.store import from_url  # noqa: PLC0415

                make: Any = from_url  # its overloads type `config` per cloud; ours is checked by obstore
                options = dict(self.options)
                client: dict[str, Any] = {}
                # http:// endpoints (an on-premises S3, a local emulator) need it said explicitly.
                allow_http = _flag(options.pop("allow_http", False))
                endpoint = str(options.get("endpoint") or options.get("aws_endpoint") or "")
                if allow_http or endpoint.startswith("http://"):
                    client["allow_http"] = True
                try:
                    store = make(f"{scheme}://{bucket}", config=options or None, client_options=client or None)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as exc:  # an unknown key panics in obstore's Rust code (a BaseException)
                    raise ConfigError(f"{scheme}://{bucket}: cannot make a client from the options: {exc}") from None
                self._stores[(scheme, bucket)] = store
        return store

    def _call(self, what: str, uri: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        scheme, bucket, key = _bucket_and_key(uri)
        try:
            return fn(self._store(scheme, bucket), key, *args, **kwargs)
        except DponeError:
            raise
        except Exception as exc:
            raise _classify(exc, f"{what} {uri}", writing=what in ("uploading to", "writing")) from None

    def put_file(self, path: Path, uri: str) -> None:
        """Upload a local file (atomic: readers never see half of it). Files up to 32 MiB go in one
        request; larger ones in 32 MiB parts, a few at a time (bench/object_storage.py: 5 MiB parts
        made an 8 MB file take two to three times as long as one PUT)."""
        self._call("uploading to", uri, _obstore().put, path, chunk_size=_PART, max_concurrency=4)

    def put_bytes(self, data: bytes, uri: str) -> None:
        self._call("writing", uri, _obstore().put, data)

    def get_bytes(self, uri: str) -> bytes:
        return bytes(self._call("reading", uri, lambda s, k: _obstore().get(s, k).bytes()))

    def stream(self, uri: str) -> Iterator[bytes]:
        """The object's bytes, a few megabytes at a time."""
        result = self._call("reading", uri, _obstore().get)
        try:
            for chunk in result.stream(min_chunk_size=_CHUNK):
                yield bytes(chunk)
        except Exception as exc:
            raise _classify(exc, f"reading {uri}") from None

    def size(self, uri: str) -> int:
        return int(self._call("looking up", uri, _obstore().head)["size"])

    def delete(self, uri: str) -> None:
        self._call("deleting", uri, _obstore().delete)

    def list(self, prefix_uri: str) -> list[str]:
        """URLs of the objects under a prefix."""
        scheme, bucket, key = _bucket_and_key(prefix_uri)
        store = self._store(scheme, bucket)
        try:
            found = [meta["path"] for batch in _obstore().list(store, key or None) for meta in batch]
        except Exception as exc:
            raise _classify(exc, f"listing {prefix_uri}") from None
        return [f"{urlparse(prefix_uri).scheme}://{bucket}/{path}" for path in found]


def _flag(value: Any) -> bool:
    """A boolean option, also as Meltano passes settings from the environment ("true", "false")."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


_STATUS = re.compile(r"\b([45]\d\d) [A-Z]")
_CODE = re.compile(r"<Code>([A-Za-z]+)</Code>")


def _classify(exc: BaseException, doing: str, writing: bool = False) -> DponeError:
    name = type(exc).__name__
    # obstore's messages end with a Rust debug dump of the error's source: the first part says it.
    text = " ".join(str(exc).split()).split(" Debug source:")[0]
    code = _CODE.search(text)
    detail = code.group(1) if code else text[:300]
    if name == "NotFoundError" or isinstance(exc, FileNotFoundError):  # obstore raises the builtin
        if writing or (code and code.group(1) in ("NoSuchBucket", "ContainerNotFound")):
            return ConfigError(f"{doing}: the bucket (or container) does not exist ({detail})")
        return DataError(f"{doing}: not found")
    if name in ("PermissionDeniedError", "UnauthenticatedError") or isinstance(exc, PermissionError):
        return ConfigError(f"{doing}: access refused ({detail}); check the credentials and grants")
    if name in ("UnknownConfigurationKeyError", "InvalidPathError", "NotSupportedError"):
        return ConfigError(f"{doing}: {text[:300]}")
    status = _STATUS.search(text)
    if status and status.group(1).startswith("4") and status.group(1) not in ("408", "429"):
        # A request the store refuses as made (a bad name, a bad key): retrying cannot help.
        return ConfigError(f"{doing}: refused with {status.group(1)} ({detail})")
    # object_store retries requests itself; what reaches here is a network or server failure.
    return TransientError(f"{doing}: {detail}")


def file_digests(path: Path) -> tuple[int, str, str]:
    """Size, SHA-256 and MD5 (hex) of a local file, in one pass."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest(), md5.hexdigest()
