"""What a benchmark ran on, for the first lines of its output: Python, psycopg, CPUs, commit, server."""

from __future__ import annotations

import os
import platform
import subprocess

from bench.paths import REPO
from bench.pg_server import PgServer


def commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown commit"


def machine_line() -> str:
    import psycopg

    return (
        f"Python {platform.python_version()}, psycopg {psycopg.__version__} ({psycopg.pq.__impl__}), "
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, dpone at {commit()}"
    )


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def server_line(server: PgServer, settings: tuple[str, ...]) -> str:
    """The server's version and port, and the values of the named settings (all at their defaults)."""
    version = server.psql("SHOW server_version")
    names = ", ".join(f"'{name}'" for name in settings)
    values = server.psql(
        "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings "
        f"WHERE name IN ({names})"
    )
    return f"PostgreSQL {version} on port {server.port} (defaults: {values})"
