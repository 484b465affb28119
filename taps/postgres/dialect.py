"""PostgreSQL as a SQL stream source: row_to_json over lossless expressions, streamed with COPY.

COPY in CSV form with 0x1F as the delimiter and 0x1E as the quote gives each row as one line,
`<row JSON>\\x1f<key JSON>[\\x1f<t|f>]`, with nothing to unquote: JSON text holds neither byte
raw (JSON escapes control characters), and the key array and flag are plain text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from dpone.taps.framework.sql_dialect import CompiledRows, SqlDialect
from dpone.taps.framework.sql_discovery import SqlColumn, SqlTable, TableFilter
from dpone.taps.postgres.discovery import tables
from dpone_drivers.postgres import classify, connect, driver_errors
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DponeError

APPLICATION_NAME = "dpone-tap-postgres"
COPY_OUT = "(FORMAT csv, DELIMITER E'\\x1f', QUOTE E'\\x1e')"
_ROW = "_dpone_row"  # the alias of the selected columns, which row_to_json renders


class PostgresDialect(SqlDialect):
    name = "PostgreSQL"
    json_columns = "json/jsonb"
    key_ranges = True

    def connect(self, config: Mapping[str, Any], redactor: Redactor) -> Any:
        conn = connect(config, redactor, APPLICATION_NAME, autocommit=True)
        try:
            # Floats in their shortest exact form, whatever the role's extra_float_digits (0 rounds them to
            # 15 digits); and no JIT: compiling the reads' expressions costs seconds and saves nothing.
            conn.execute(
                "SELECT set_config('extra_float_digits', '3', false), "
                "set_config('jit', 'off', false) WHERE current_setting('jit', true) IS NOT NULL"
            )
        except driver_errors() as exc:
            conn.close()
            raise classify(exc, redactor, "setting up the session") from None
        return conn

    def driver_errors(self) -> tuple[type[Exception], ...]:
        return driver_errors()

    def error(self, exc: Exception, redactor: Redactor, doing: str) -> DponeError:
        return classify(exc, redactor, doing)

    def read_error(self, exc: Exception, table: SqlTable, redactor: Redactor) -> DponeError:
        doing = f"reading {table.schema}.{table.name}"
        if "permission denied" in str(exc):
            text = redactor(" ".join(str(exc).split()))
            return ConfigError(f"{doing}: {text} (GRANT SELECT ON {table.qualified} TO the tap's user)")
        return classify(exc, redactor, doing)

    def tables(self, conn: Any, wanted: TableFilter) -> list[SqlTable]:
        return tables(conn, wanted)

    def row_json(self, columns: Sequence[tuple[str, str]]) -> tuple[str, str]:
        selected = ", ".join(f"{expression} AS {self.quoting.q(name)}" for expression, name in columns)
        # `alias.*`: a column of the table named like the alias cannot make it ambiguous.
        return f"row_to_json({_ROW}.*)::text", f" CROSS JOIN LATERAL (SELECT {selected}) AS {_ROW}"

    def key_json(self, expressions: Sequence[str]) -> str:
        return f"json_build_array({', '.join(expressions) or 'NULL'})::text"

    def compiled_rows(
        self, conn: Any, columns: Sequence[SqlColumn], keys: Sequence[tuple[str, SqlColumn | None]], alias: str
    ) -> tuple[CompiledRows | None, str]:
        from dpone.taps.postgres.copy_lines import CopyLines, compiled  # noqa: PLC0415 - only reads need it

        module, why = compiled()
        if module is None:
            return None, why
        untyped = [c.name for c in columns if c.native is None]
        if untyped:
            return None, f"no compiled rendering for columns {untyped}"
        settings = conn.execute("SELECT current_setting('DateStyle'), current_setting('bytea_output')").fetchone()
        key_json = self.key_json([e if c is None else self.key_value(c, e) for e, c in keys])
        return CopyLines(module, columns, keys, alias, settings, key_json), ""

    def key_value(self, column: SqlColumn, expression: str) -> str:
        if column.schema.get("format") == "singer.decimal":
            return f"{expression}::numeric::text"  # every digit: a JSON number would come back a float
        return expression

    def json_null_test(self, column: SqlColumn, expression: str) -> str | None:
        if "object" not in (column.schema.get("type") or []):
            return None
        # jsonb renders as itself; json goes through its line-break rewrite (see type_map).
        if column.expression == self.quoting.q(column.name):
            return f"{expression} = 'null'::jsonb"
        return f"json_typeof({expression}) = 'null'"

    @contextlib.contextmanager
    def rows(self, conn: Any, sql: str, params: Sequence[Any]) -> Iterator[Iterable[Any]]:
        with conn.cursor() as cur, cur.copy(f"COPY ({sql}) TO STDOUT {COPY_OUT}", params or None) as copy:
            yield copy


POSTGRES = PostgresDialect()
