"""tap-postgres's compiled row path: rows read with COPY text and written as JSON lines in C.

On the JSON path the server renders each row with row_to_json, about three times the CPU of a
plain COPY out. Here the server sends each column with its type's own text output (COPY ... TO
STDOUT, text format) and the compiled reader (copyjson/, dpone.taps.postgres._copyjson) turns a
row's fields into the JSON object row_to_json would have written, straight into RECORD lines or
BATCH file lines: no Python object per row or value. It pulls the rows off psycopg's own libpq
connection; this module starts the COPY and collects its final result with psycopg, so errors
arrive as the same psycopg exceptions.

Each column has a kind (SqlColumn.native, from type_map.py) saying how its text becomes the value.
A kind is used only where the text agrees with row_to_json for every value the type can hold;
a column whose text depends on a session setting that is not the one the kind assumes (DateStyle
other than ISO, bytea_output other than hex) is selected as to_json(...) and passed through, as is
every array. The JSON path stays the reference (the differential tests compare the two) and the
fallback: with DPONE_PURE_PYTHON=1, without the compiled module, or with a libpq psycopg did not
load alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import orjson

from dpone.taps.framework.sql_dialect import RowBlock
from dpone.taps.framework.sql_discovery import SqlColumn
from dpone.taps.postgres.dialect import POSTGRES
from dpone_drivers.sql_names import ANSI

log = logging.getLogger(__name__)

PURE_PYTHON_ENV = "DPONE_PURE_PYTHON"
_ISO_KINDS = ("timestamp", "date")  # their text is ISO only under DateStyle ISO
_NOT_LOADED = "unset"
_state: dict[str, Any] = {"module": _NOT_LOADED, "why": ""}


def compiled() -> tuple[ModuleType | None, str]:
    """The compiled reader bound to psycopg's libpq, or None and why not (resolved once per process)."""
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None, f"{PURE_PYTHON_ENV} is set"
    if _state["module"] is _NOT_LOADED:
        _state["module"], _state["why"] = _load()
    return _state["module"], _state["why"]


def _load() -> tuple[ModuleType | None, str]:
    try:
        from dpone.taps.postgres import _copyjson  # noqa: PLC0415 - compiled, optional
    except ImportError:
        return None, (
            "the compiled COPY reader (taps/postgres/copyjson/) was not built when dpone was installed; "
            "install a C compiler and the Python headers (Debian: apt-get install gcc python3-dev) and reinstall"
        )
    paths = _loaded_libpq()
    if len(paths) != 1:
        return None, f"psycopg's libpq cannot be told apart ({len(paths)} libpq libraries are loaded)"
    try:
        _copyjson.load(paths[0])
    except ImportError as exc:
        return None, str(exc)
    return _copyjson, ""


def _loaded_libpq() -> list[str]:
    """The libpq libraries mapped into this process (psycopg's, once it has connected)."""
    found: set[str] = set()
    with contextlib.suppress(OSError), open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
        for line in maps:
            path = line.rstrip("\n").split(maxsplit=5)[-1]
            if os.path.basename(path).startswith("libpq") and ".so" in path:
                found.add(os.path.realpath(path))
    return sorted(found)


class CopyLines:
    """One read's select list and how the compiled reader renders it.

    `columns` are the selected columns in record order; `keys` the bookmark key's expressions, each
    with its column when it is a plain column (XMIN's is not), in the order the JSON path's key array has.
    """

    def __init__(
        self,
        module: ModuleType,
        columns: Sequence[SqlColumn],
        keys: Sequence[tuple[str, SqlColumn | None]],
        alias: str,
        settings: tuple[str, str],
        key_json: str,
    ) -> None:
        self.module = module
        date_style, bytea_output = settings
        fields, kinds, prefixes = [], [], []
        for i, column in enumerate(columns):
            assert column.native is not None
            expression, kind = column.native
            if (kind in _ISO_KINDS and not date_style.upper().startswith("ISO")) or (
                kind == "bytea" and bytea_output != "hex"
            ):
                # Text that would need the setting's own rules: the server's JSON, passed through.
                expression, kind = f"to_json({column.expression})", "json"
            fields.append(POSTGRES.on_alias(expression, column.name, alias))
            kinds.append(self._kind(kind))
            prefixes.append((b"{" if i == 0 else b",") + orjson.dumps(column.name) + b":")
        plain_ints = all(
            c is not None and c.native == (ANSI.q(c.name), "int") and e == f"{alias}.{ANSI.q(c.name)}" for e, c in keys
        )
        if not keys:
            self.key_mode, key_fields = module.KEY_NONE, 0
        elif plain_ints:
            self.key_mode, key_fields = module.KEY_INTS, len(keys)
            fields += [e for e, _ in keys]
        else:
            # The JSON path's own key array, so bookmarks come out byte for byte the same.
            self.key_mode, key_fields = module.KEY_JSON, 1
            fields.append(key_json)
        self.select_list = ", ".join(fields) or "NULL"
        self.prefixes = tuple(prefixes)
        self.kinds = bytes(kinds)
        self.key_fields = key_fields

    def _kind(self, name: str) -> int:
        kind: int = {
            "int": self.module.K_INT,
            "float": self.module.K_FLOAT,
            "bool": self.module.K_BOOL,
            "text": self.module.K_TEXT,
            "date": self.module.K_TEXT,
            "timestamp": self.module.K_TIMESTAMP,
            "bytea": self.module.K_BYTEA,
            "json": self.module.K_JSON,
            "json_doc": self.module.K_JSON_DOC,
        }[name]
        return kind

    @contextlib.contextmanager
    def open(self, conn: Any, sql: str, params: Sequence[Any]) -> Iterator[CopyOut]:
        """`COPY (sql) TO STDOUT` on `conn`, its rows read in blocks; the COPY's end is checked on leaving."""
        copy = CopyOut(self, conn, sql, params)
        try:
            yield copy
        except BaseException:
            copy.abandon()
            raise
        copy.finish()


class CopyOut:
    """A COPY in progress on psycopg's connection, driven through its libpq connection."""

    def __init__(self, lines: CopyLines, conn: Any, sql: str, params: Sequence[Any]) -> None:
        import psycopg  # noqa: PLC0415 - a driver: imported only where a read runs

        self.conn = conn
        self.pgconn = conn.pgconn
        self.psycopg = psycopg
        query = psycopg.ClientCursor(conn).mogrify(f"COPY ({sql}) TO STDOUT", params or None)
        self.pgconn.send_query(query.encode())
        while self.pgconn.flush():
            select.select([], [self.pgconn.socket], [])
        result = self._result()
        if result is None or result.status != psycopg.pq.ExecStatus.COPY_OUT:
            self._raise(result)
        self.reader = lines.module.Reader(
            self.pgconn.pgconn_ptr, lines.prefixes, lines.kinds, lines.key_mode, lines.key_fields
        )
        self.status = 0

    def read(self, head: bytes, tail: bytes, max_rows: int, max_bytes: int) -> RowBlock | None:
        """Up to `max_rows` rows as lines (fewer once `max_bytes` are written or the server is slow);
        None once the COPY has ended."""
        if self.status:
            return None
        data, rows, last_key, nulls, self.status = self.reader.read(head, tail, max(1, max_rows), max_bytes)
        if self.status == 2:
            self._raise(self._result())
        return RowBlock(data, rows, last_key, nulls) if rows or not self.status else None

    def finish(self) -> None:
        """The COPY's final result, after its last row: raises what the server reported."""
        while self.status == 0:
            self.read(b"", b"", 1 << 30, 1 << 30)  # the caller stopped early: drain
        failed = None
        while (result := self._result()) is not None:
            if result.status != self.psycopg.pq.ExecStatus.COMMAND_OK:
                failed = result
        if failed is not None:
            self._raise(failed)

    def abandon(self) -> None:
        """The read stopped midway (an error, a closed generator): the connection cannot be reused."""
        if self.status == 0:
            with contextlib.suppress(Exception):
                self.conn.close()

    def _result(self) -> Any:
        """The next result, waiting without holding the GIL while the server works."""
        pgconn = self.pgconn
        while True:
            pgconn.consume_input()
            if not pgconn.is_busy():
                return pgconn.get_result()
            select.select([pgconn.socket], [], [])

    def _raise(self, result: Any) -> None:
        errors = self.psycopg.errors
        if result is not None and result.status == self.psycopg.pq.ExecStatus.FATAL_ERROR:
            raise errors.error_from_result(result, encoding="utf-8")
        message = self.reader.error() if hasattr(self, "reader") else self.pgconn.error_message.decode(errors="replace")
        raise self.psycopg.OperationalError(message.strip() or "the COPY ended unexpectedly")
