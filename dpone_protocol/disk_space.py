"""Doctor checks on a local directory: can files be written there, and is there room for them.

Shared by the runner (its `.dpone/` folder, a tap's BATCH root) and file-backed targets (DuckDB's
database file), so every "free disk" line means the same thresholds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from dpone_protocol.ops import FAIL, OK, WARN, Check

# Below this much free space a load may run out mid-way: worth a warning.
WARN_FREE_BYTES = 1 << 30  # 1 GiB
# Below this, a staging file or a BATCH file of any size is likely to fill the disk: a failure.
FAIL_FREE_BYTES = 100 << 20  # 100 MiB
_FREE_HINT = "free space there, or point the setting at a larger disk"


def existing_ancestor(path: Path) -> Path:
    """`path` itself when it exists, else its nearest existing parent (what a mkdir -p starts from)."""
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def free_space_check(name: str, path: Path) -> Check:
    """Free space on the file system that holds `path` (or would, once created)."""
    where = existing_ancestor(path)
    try:
        free = shutil.disk_usage(where).free
    except OSError as exc:
        return Check(name, FAIL, f"cannot read the free space of {where}: {exc.strerror or exc}", _FREE_HINT)
    detail = f"{human_bytes(free)} free at {where}"
    if free < FAIL_FREE_BYTES:
        return Check(name, FAIL, f"{detail} (under {human_bytes(FAIL_FREE_BYTES)})", _FREE_HINT)
    if free < WARN_FREE_BYTES:
        return Check(name, WARN, f"{detail} (under {human_bytes(WARN_FREE_BYTES)})", _FREE_HINT)
    return Check(name, OK, detail)


def writable_check(name: str, directory: Path) -> Check:
    """Can a file be created in `directory` (or in the parent it would be made in)? A real write:
    permission bits say nothing about a read-only mount, and root passes every access() test."""
    where = existing_ancestor(directory)
    if not where.is_dir():
        return Check(name, FAIL, f"{where} is not a folder", f"choose a path whose parents are folders: {directory}")
    try:
        handle, probe = tempfile.mkstemp(prefix=".dpone-doctor-", dir=where)
    except OSError as exc:
        return Check(
            name,
            FAIL,
            f"cannot write in {where}: {exc.strerror or exc}",
            "give the user running dpone write access to that folder, or choose another path",
        )
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    created = "" if where == directory.absolute() else f" (it will be created under {where})"
    return Check(name, OK, f"{directory} writable{created}")
