"""target-postgres's fast path: RECORD lines encoded straight into COPY text by a C extension.

`_copyrows` (built from `copyrows/*.c` at install time) parses each RECORD line and appends its
row, in COPY text format, to the stream's batch: no dict, no per-value Python object, and every
digit of a number kept. A line it is not sure about goes through the decoded path, which adds
the decoded record to the same batch (so arrival order holds) or raises the precise error.

Where the extension could not be built, or with ``DPONE_PURE_PYTHON=1``, `available()` is false
and the loader takes the decoded path for every record (psycopg formats the rows).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Callable
from decimal import Decimal
from types import ModuleType
from typing import TYPE_CHECKING, Any

from dpone.targets.framework.batching import BatchPolicy
from dpone.targets.framework.loader import StreamPlan

if TYPE_CHECKING:
    from dpone.targets.postgres import _copyrows

PURE_PYTHON_ENV = "DPONE_PURE_PYTHON"
EXTRACTED_AT = "_sdc_extracted_at"
TABLE_VERSION = "_sdc_table_version"
_NUL_POLICIES = ("strip", "replace", "fail")


def _pure_python_asked() -> bool:
    return os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0")


def _module() -> ModuleType | None:
    if _pure_python_asked():
        return None
    try:
        from dpone.targets.postgres import _copyrows  # noqa: PLC0415 - compiled, optional
    except ImportError:
        return None
    return _copyrows


def available() -> bool:
    return _module() is not None


def missing_reason() -> str | None:
    """Why the fast path is off, when it is off by accident (not by DPONE_PURE_PYTHON)."""
    if available() or _pure_python_asked():
        return None
    return (
        "the COPY row encoder (targets/postgres/copyrows/) was not built when dpone was installed, "
        "so records load through the slower decoded path; install a C compiler and the Python headers "
        "(Debian: apt-get install gcc python3-dev) and reinstall dpone"
    )


def column_kind(pg_type: str) -> int:
    """How the encoder treats a column's JSON values, by the column's PostgreSQL type."""
    module = _module()
    assert module is not None
    if pg_type in ("bigint", "integer", "smallint"):
        return int(module.KIND_INT)
    if pg_type in ("double precision", "real"):
        return int(module.KIND_FLOAT)
    if pg_type.startswith("numeric"):
        return int(module.KIND_DECIMAL)
    if pg_type == "boolean":
        return int(module.KIND_BOOL)
    if pg_type in ("jsonb", "json"):
        return int(module.KIND_JSON)
    return int(module.KIND_TEXT)  # strings: text, varchar, timestamps, dates, times, uuid


def to_text(value: Any) -> str:
    """COPY text of a decoded value the encoder has no rule for (BATCH files may hold these)."""
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, dict | list):
        raise TypeError("an object or array cannot be loaded into a column that is not jsonb")
    raise TypeError(f"a {type(value).__name__} value cannot be loaded")


def key_columns(plan: StreamPlan) -> list[str]:
    """The key properties as the table's columns (a long name is stored shortened)."""
    renames = plan.renames or {}
    return [renames.get(k, k) for k in plan.key_properties]


def make_encoder(
    plan: StreamPlan,
    columns: list[str],
    pg_types: list[str],
    *,
    metadata: bool,
    nul_policy: str,
    policy: BatchPolicy,
    json_dumps: Callable[[Any], str],
) -> _copyrows.Encoder:
    """An Encoder for one stream's batches, its columns in COPY order."""
    module = _module()
    assert module is not None
    sources = {dest: source for source, dest in (plan.renames or {}).items()}
    envelope = (EXTRACTED_AT, TABLE_VERSION) if metadata else ()
    fields = {sources.get(c, c): i for i, c in enumerate(columns) if c not in envelope}
    keys = tuple(columns.index(k) for k in key_columns(plan)) if plan.merges else ()
    encoder: _copyrows.Encoder = module.Encoder(
        fields,
        tuple(column_kind(t) for t in pg_types),
        keys,
        columns.index(EXTRACTED_AT) if metadata and EXTRACTED_AT in columns else -1,
        columns.index(TABLE_VERSION) if metadata and TABLE_VERSION in columns else -1,
        _NUL_POLICIES.index(nul_policy),
        policy.max_rows,
        policy.max_bytes,
        json_dumps,
        to_text,
        bool(keys),
    )
    return encoder


def make_router() -> _copyrows.Router:
    module = _module()
    assert module is not None
    router: _copyrows.Router = module.Router()
    return router


def dedupe_last(data: bytes, key_at: list[int]) -> bytes:
    """Keep the last row per key of a batch's COPY text (rows hold no raw newline or tab)."""
    latest: dict[tuple[bytes, ...], bytes] = {}
    for row in data.splitlines(keepends=True):
        values = row.rstrip(b"\n").split(b"\t")
        latest.pop(key := tuple(values[i] for i in key_at), None)
        latest[key] = row  # re-inserted: the dict keeps the order of last arrival
    return b"".join(latest.values())
