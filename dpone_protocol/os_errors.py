"""A failed file operation as the kind of error the operator acts on.

A destination that cannot be written is a setting to fix (another path, other permissions), and a
full disk is transient (free space, re-run from the saved state); neither is a bug, so neither may
surface as an internal error with the bare errno text.
"""

from __future__ import annotations

import errno

from dpone_protocol.errors import ConfigError, DponeError, TransientError

DENIED = frozenset({errno.EACCES, errno.EPERM})
READ_ONLY = frozenset({errno.EROFS})
FULL = frozenset({errno.ENOSPC, errno.EDQUOT})

# Driver messages (DuckDB reports I/O failures as text, without an errno), lowercased.
_TEXT_SIGNS: tuple[tuple[str, int], ...] = (
    ("permission denied", errno.EACCES),
    ("operation not permitted", errno.EPERM),
    ("read-only file system", errno.EROFS),
    ("no space left on device", errno.ENOSPC),
    ("disk quota exceeded", errno.EDQUOT),
)


def errno_in_text(text: str) -> int | None:
    """The errno a driver's message describes, for the errnos that have a kind of their own."""
    lowered = text.lower()
    return next((code for sign, code in _TEXT_SIGNS if sign in lowered), None)


def file_error(code: int | None, path: str | None, detail: str = "") -> DponeError | None:
    """The error for `code` on `path`; None for an errno with no kind of its own."""
    where = f"{path}: " if path else ""
    why = f" ({detail})" if detail else ""
    if code in DENIED:
        return ConfigError(f"{where}permission denied{why}: give the user running this access, or choose another path")
    if code in READ_ONLY:
        return ConfigError(f"{where}read-only file system{why}: choose a writable path")
    if code in FULL:
        return TransientError(
            f"{where}disk full{why}: free some space and re-run; what the last echoed state covers is committed"
        )
    return None


def classify_os_error(exc: OSError, path: str | None = None) -> DponeError | None:
    """`exc` as a config or transient error naming the path; None when its errno has no kind."""
    where = path or (str(exc.filename) if exc.filename is not None else None)
    detail = exc.strerror if exc.errno in FULL and exc.strerror else ""
    return file_error(exc.errno, where, detail)
