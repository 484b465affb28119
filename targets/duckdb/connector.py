"""The DuckDB connection; the only module that imports the driver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dpone_protocol.errors import ConfigError, TransientError


def connect(filepath: str, *, read_only: bool = False) -> Any:
    """A connection; with `read_only`, None when the file does not exist yet (nothing to read)."""
    try:
        import duckdb  # noqa: PLC0415 - lazy: `--help` must not need the driver
    except ImportError:
        raise ConfigError("target-duckdb needs the duckdb package: pip install 'dpone[duckdb]'") from None
    if read_only and (filepath == ":memory:" or not Path(filepath).exists()):
        return None
    if filepath != ":memory:":
        Path(filepath).parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(filepath, read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise TransientError(f"DuckDB file {filepath} is locked by another process") from None
        raise ConfigError(f"cannot open DuckDB file {filepath}: {exc}") from None


def error_types() -> tuple[type[Exception], ...]:
    """Driver errors that mean the data did not fit (a DataError for the caller)."""
    import duckdb  # noqa: PLC0415

    return (duckdb.ConversionException, duckdb.InvalidInputException, duckdb.ConstraintException)
