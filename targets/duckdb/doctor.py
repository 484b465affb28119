"""target-duckdb's doctor checks: the database file can be written, is not held by another
process, and its disk (and the staging folder's) has room. Nothing is created: the default
probe load would leave a new database file behind."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dpone.targets.duckdb.connector import connect
from dpone_protocol.disk_space import free_space_check, writable_check
from dpone_protocol.errors import DponeError, TransientError
from dpone_protocol.ops import FAIL, HINTS, OK, Check

IN_MEMORY = ":memory:"


def checks(config: Mapping[str, Any]) -> list[Check]:
    filepath = str(config.get("filepath") or "dpone.duckdb")
    if filepath == IN_MEMORY:
        return [Check("database file", OK, "in memory: nothing is written to disk")]
    path = Path(filepath).absolute()
    found = [
        writable_check("database folder", path.parent),
        file_check(path),
        free_space_check("free disk", path.parent),
    ]
    staging = config.get("staging_dir")
    if staging:
        found += [
            writable_check("staging folder", Path(str(staging)).absolute()),
            free_space_check("free disk (staging)", Path(str(staging)).absolute()),
        ]
    return found


def file_check(path: Path) -> Check:
    name = "database file"
    if not path.exists():
        return Check(name, OK, f"{path} will be created on the first run")
    try:
        conn = connect(str(path), read_only=True)
    except TransientError as exc:
        return Check(
            name, FAIL, str(exc), "DuckDB lets one process write a file: wait for that process to end, or stop it"
        )
    except DponeError as exc:
        return Check(name, FAIL, str(exc), HINTS[exc.kind])
    if conn is not None:
        conn.close()
    return Check(name, OK, f"{path} opens")
