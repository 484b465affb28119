"""The DuckDB connection; the only module that imports the driver."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from dpone_protocol.errors import ConfigError, DponeError, TransientError
from dpone_protocol.local_process import process_exists
from dpone_protocol.os_errors import classify_os_error, errno_in_text, file_error


class Connection:
    """The driver's connection, whose I/O failures say what to do: a read-only file or directory
    is a setting to fix (78), a full disk is transient (75). Everything else passes through."""

    def __init__(self, conn: Any, filepath: str, io_errors: tuple[type[Exception], ...]) -> None:
        self._conn = conn
        self._filepath = filepath
        self._io_errors = io_errors

    def execute(self, *args: Any) -> Any:
        try:
            return self._conn.execute(*args)
        except self._io_errors as exc:
            raise io_error(exc, self._filepath) from exc

    def close(self) -> None:
        try:
            self._conn.close()
        except self._io_errors as exc:  # the checkpoint at close writes too
            raise io_error(exc, self._filepath) from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def io_error(exc: Exception, filepath: str) -> Exception:
    """A DuckDB I/O error as the kind to act on; `exc` itself when its cause has no kind."""
    text = " ".join(str(exc).split())
    known = file_error(errno_in_text(text), f"DuckDB file {filepath}", text)
    return known if known is not None else exc


def connect(filepath: str, *, read_only: bool = False) -> Connection | None:
    """A connection; with `read_only`, None when the file does not exist yet (nothing to read)."""
    try:
        import duckdb  # noqa: PLC0415 - lazy: `--help` must not need the driver
    except ImportError:
        raise ConfigError("target-duckdb needs the duckdb package: pip install 'dpone[duckdb]'") from None
    if read_only and (filepath == ":memory:" or not Path(filepath).exists()):
        return None
    if filepath != ":memory:":
        try:
            Path(filepath).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _file_error(exc, filepath) from exc
    try:
        if not read_only and filepath != ":memory:" and not Path(filepath).exists():
            _create(duckdb, filepath)
        conn = duckdb.connect(filepath, read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise TransientError(f"DuckDB file {filepath} is locked by another process") from None
        known = io_error(exc, filepath)
        if isinstance(known, DponeError):
            raise known from exc
        raise ConfigError(f"cannot open DuckDB file {filepath}: {exc}") from None
    # A failed write of the WAL surfaces at COMMIT, as a transaction error.
    return Connection(conn, filepath, (duckdb.IOException, duckdb.TransactionException))


def _create(duckdb: Any, filepath: str) -> None:
    """Create the database file whole or not at all. DuckDB writes a new file's headers in several
    writes: a process killed between them leaves a file no later run can open. So the file is made
    under another name and linked into place (link, unlike rename, never replaces a file another
    process created meanwhile)."""
    path = Path(filepath)
    for stale in path.parent.glob(f".{path.name}.*.dpone-new*"):
        pid = stale.name.removeprefix(f".{path.name}.").split(".", 1)[0]
        if not (pid.isdigit() and process_exists(int(pid))):
            with contextlib.suppress(OSError):
                stale.unlink(missing_ok=True)  # left by a run killed while creating the file
    fresh = path.with_name(f".{path.name}.{os.getpid()}.dpone-new")
    try:
        try:
            duckdb.connect(str(fresh)).close()
        except duckdb.IOException as exc:
            # Name the file the user asked for, not the one it is made under.
            raise type(exc)(str(exc).replace(str(fresh), filepath)) from None
        try:
            os.link(fresh, path)
        except FileExistsError:
            pass  # another run created it first: use theirs
        except OSError:
            if not path.exists():  # a file system without hard links
                os.replace(fresh, path)
    except OSError as exc:
        raise _file_error(exc, filepath) from exc
    finally:
        for made in (fresh, fresh.with_name(fresh.name + ".wal")):
            with contextlib.suppress(OSError):  # nothing was made where nothing can be written
                made.unlink(missing_ok=True)


def _file_error(exc: OSError, filepath: str) -> DponeError:
    known = classify_os_error(exc, str(Path(filepath).parent))
    return known or ConfigError(f"filepath {filepath}: {exc.strerror or exc}")


def error_types() -> tuple[type[Exception], ...]:
    """Driver errors that mean the data did not fit (a DataError for the caller)."""
    import duckdb  # noqa: PLC0415

    return (duckdb.ConversionException, duckdb.InvalidInputException, duckdb.ConstraintException)
