"""A throwaway PostgreSQL 15 server for the benchmarks, with the server's default settings.

    python bench/pg_server.py          # start one, print its connection settings, stop on Ctrl-C

``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the ``postgres``
user through ``runuser``; the data and socket directories live in a fresh temp dir owned
by that user, and the server listens on a free port on 127.0.0.1 with trust
authentication. Nothing else is changed: fsync, synchronous_commit, shared_buffers,
max_wal_size and the rest keep their defaults, so load timings are those of a stock server.
(``initdb --no-sync`` only skips flushing the freshly created catalog to disk.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BIN_DIR = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "postgres"


@dataclass(frozen=True, slots=True)
class PgServer:
    host: str
    port: int
    user: str
    bin_dir: Path
    root: Path  # temp dir holding data/, sock/ and the server log

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def config(self, database: str = "postgres") -> dict[str, Any]:
        """Connection settings in target-postgres's config shape."""
        return {"host": self.host, "port": self.port, "user": self.user, "database": database}

    def psql_command(self, database: str = "postgres") -> list[str]:
        """psql (the client from the same PostgreSQL), quiet, stopping at the first error."""
        psql = self.bin_dir / "psql"
        exe = str(psql) if psql.exists() else "psql"
        return [
            exe,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            database,
        ]

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql; return its unaligned, tuples-only output."""
        done = subprocess.run(
            [*self.psql_command(database), "-A", "-t", "-c", sql], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed ({done.returncode}) running {sql[:200]!r}: {done.stderr.strip()}")
        return done.stdout.strip()


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", SUPERUSER, "--", *cmd] if os.geteuid() == 0 else cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(_as_postgres(cmd), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")


def start(bin_dir: Path = BIN_DIR, parent: str | None = None) -> PgServer:
    """initdb a fresh cluster in a temp dir and start it; the caller must :func:`stop` it."""
    if not (bin_dir / "initdb").exists():
        raise RuntimeError(f"PostgreSQL server binaries not found in {bin_dir}: apt-get install -y postgresql")
    root = Path(tempfile.mkdtemp(prefix="dpone-bench-pg-", dir=parent))
    sock = root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, SUPERUSER)
        shutil.chown(sock, SUPERUSER)
    server = PgServer("127.0.0.1", _free_port(), SUPERUSER, bin_dir, root)
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(server.data_dir),
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        options = f"-c port={server.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={sock}"
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(server.data_dir),
                "-o",
                options,
                "-l",
                str(server.log_file),
                "-w",
                "-t",
                "60",
                "start",
            ],
            "pg_ctl start",
        )
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server


def stop(server: PgServer) -> None:
    """Stop the server (fast shutdown) and delete its directory."""
    subprocess.run(
        _as_postgres([str(server.bin_dir / "pg_ctl"), "-D", str(server.data_dir), "-m", "fast", "-w", "stop"]),
        capture_output=True,
        check=False,
    )
    shutil.rmtree(server.root, ignore_errors=True)


@contextmanager
def throwaway_server(bin_dir: Path = BIN_DIR, parent: str | None = None) -> Iterator[PgServer]:
    server = start(bin_dir, parent)
    try:
        yield server
    finally:
        stop(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/pg_server.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", type=Path, default=BIN_DIR, help=f"server binaries (default {BIN_DIR})")
    parser.add_argument("--database", default="postgres", help="database name printed in the config")
    args = parser.parse_args(argv)
    stopping = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with throwaway_server(args.bin_dir) as server:
        if args.database != "postgres":
            server.psql(f'CREATE DATABASE "{args.database}"')
        print(f"PostgreSQL running: {server.dsn(args.database)}  (data in {server.root}; Ctrl-C stops it)")
        print(f"config: {server.config(args.database)}".replace("'", '"'), flush=True)
        while not stopping:
            time.sleep(0.2)
    print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
