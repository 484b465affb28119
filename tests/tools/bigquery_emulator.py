"""A BigQuery API server on loopback for tests and benchmarks: bqemulator, in a process of its own.

bqemulator tries to download DuckDB's spatial extension when it starts, which fails offline; the
launcher makes that a no-op first (GEOGRAPHY is then unsupported, which dpone never creates).
The server lives until its parent closes its stdin, so a killed test leaves no server behind.

    python -m tests.tools.bigquery_emulator --rest-port P --grpc-port Q [--project test-proj]

Known gaps of the emulator, worked around in tests only (each has a live test against BigQuery):
`MERGE ... INSERT ROW` fails; Parquet autodetect into a new table fails; CSV loads need
`skip_leading_rows=0`; `load_table_from_json` (multipart upload) fails; `insert_rows` with typed
values hangs (use `insert_rows_json`).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT = "test-proj"
_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Emulator:
    rest_url: str
    grpc_endpoint: str
    project: str = PROJECT

    def client(self) -> Any:
        """A google-cloud-bigquery client that talks to the emulator (no token fetch)."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.rest_url),
        )

    def target_config(self, dataset: str, **extra: Any) -> dict[str, Any]:
        """target-bigquery / tap-bigquery settings that reach this emulator."""
        return {"project": self.project, "dataset": dataset, "api_endpoint": self.rest_url, **extra}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(timeout: float = 90.0, env: dict[str, str] | None = None) -> Iterator[Emulator]:
    """Start an emulator process; yield its endpoints once it answers; stop it after.

    `env`: variables added to the child's environment, e.g. {"BQEMU_GCS_LOCAL_ROOT": root} so that
    load jobs read gs://BUCKET/KEY from the file root/BUCKET/KEY (a fake-gcs-server's filesystem root).
    """
    rest, grpc = _free_port(), _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.tools.bigquery_emulator", "--rest-port", str(rest), "--grpc-port", str(grpc)],
        cwd=_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **env} if env else None,
    )
    url = f"http://127.0.0.1:{rest}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"bqemulator exited with {proc.returncode}: {err[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/bigquery/v2/projects/{PROJECT}/datasets", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("bqemulator did not answer in time") from None
                time.sleep(0.2)
        # Its log goes nowhere: a full stderr pipe would block the server.
        threading.Thread(target=lambda: proc.stderr and proc.stderr.read(), daemon=True).start()
        yield Emulator(url, f"127.0.0.1:{grpc}")
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _exit_when_parent_goes() -> None:
    sys.stdin.buffer.read()
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rest-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--project", default=PROJECT)
    args = parser.parse_args()
    from bqemulator.cli import main as emulator_main
    from bqemulator.storage.engine import DuckDBEngine

    DuckDBEngine._load_spatial = lambda self: None  # type: ignore[method-assign]
    threading.Thread(target=_exit_when_parent_goes, daemon=True).start()
    sys.argv = [
        "bqemulator",
        "start",
        "--rest-port",
        str(args.rest_port),
        "--grpc-port",
        str(args.grpc_port),
        "--project",
        args.project,
    ]
    emulator_main()


if __name__ == "__main__":
    main()
