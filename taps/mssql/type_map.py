"""SQL Server column types -> JSON Schema, and the SQL that renders each value as that schema promises.

A row is rendered by the server with FOR JSON PATH (render.py). Each column brings, as templates
over `{col}` (the column on whatever alias a query reads it from):

- `value_sql`: the value FOR JSON receives. FOR JSON's own documented conversions are kept where
  they are exact: integers as numbers, bit as true/false, binary as base64, date and time types
  as ISO 8601 strings, uniqueidentifier as a string. Where they are not, the column converts the
  value first: decimals and money as text with every digit (`singer.decimal`), CLR types through
  `.ToString()` (FOR JSON refuses them), text/ntext/xml/sql_variant as nvarchar(max), rowversion
  as a bigint (FOR JSON would send its 8 bytes as base64).
- `text_sql`: the value's JSON text, built outside FOR JSON, for a key array and for a column
  spliced after the FOR JSON object: a float, whose JSON form FOR JSON does not document, goes out
  as CONVERT style 3 (17 significant digits, documented as lossless); a name with a dot in it,
  which FOR JSON PATH would turn into a nested object.
- `param`: how a bookmark or key value comes back as a parameter in the column's own type, so a
  comparison sorts exactly as ORDER BY on the column does (a varchar key against an nvarchar
  parameter would be compared under the Unicode rules, not the column's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dpone.taps.framework.sql_discovery import SqlColumn
from dpone_drivers.sql_names import BRACKETS

COL = "{col}"  # the quoted column name in the templates below

_INTEGERS = {
    "tinyint": (0, 255),
    "smallint": (-(2**15), 2**15 - 1),
    "int": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
_MONEY = {"money": (19, 4), "smallmoney": (10, 4)}
_FLOATS = {"float": "float", "real": "real"}  # x-sql-datatype: a target may keep them in a float column
_CHARS = {"char": "CHAR", "varchar": "VARCHAR", "nchar": "NCHAR", "nvarchar": "NVARCHAR"}
_WIDE = ("nchar", "nvarchar")  # max_length counts bytes: two per character
_LOBS = {"text": "VARCHAR(MAX)", "ntext": "NVARCHAR(MAX)", "xml": "NVARCHAR(MAX)", "sql_variant": "NVARCHAR(MAX)"}
_TEMPORAL = {
    "date": "date",
    "time": "time",
    "datetime": "date-time",
    "datetime2": "date-time",
    "smalldatetime": "date-time",
    "datetimeoffset": "date-time",
}
_SCALED = ("time", "datetime2", "datetimeoffset")  # declared with a fractional-seconds scale
_BINARY = ("binary", "varbinary", "image")
_ROWVERSION = ("timestamp", "rowversion")
_ALIASES = {"sysname": "nvarchar"}  # system alias types that sys.types does not mark user-defined


@dataclass(frozen=True, slots=True)
class MssqlColumn(SqlColumn):
    """`expression` is over the quoted name (the base's contract); the templates hold `{col}` where the
    column goes, so a query puts it on any alias (a table, a change table, a CDC function)."""

    type_name: str = ""  # the (base) type, as sys.types names it
    value_sql: str = COL  # what FOR JSON receives
    text_sql: str = COL  # the value's JSON text; NULL or 'null' when the value is NULL
    key_sql: str = ""  # the value's JSON text in a key array, when not `text_sql` (binary keys go as hex)
    param: str = "?"  # SQL reading a parameter back in the column's type ("?" when it has no order)
    spliced: bool = False  # rendered after the FOR JSON object, from `text_sql`

    @property
    def is_rowversion(self) -> bool:
        return self.type_name in _ROWVERSION

    def ref(self, alias: str) -> str:
        quoted = BRACKETS.q(self.name)
        return f"{alias}.{quoted}" if alias else quoted

    def value_at(self, alias: str) -> str:
        return self.value_sql.replace(COL, self.ref(alias))

    def text_at(self, alias: str) -> str:
        return self.text_sql.replace(COL, self.ref(alias))

    def key_at(self, alias: str) -> str:
        return (self.key_sql or self.text_sql).replace(COL, self.ref(alias))


def _nullable(kind: str | list[str], nullable: bool) -> str | list[str]:
    kinds = [kind] if isinstance(kind, str) else kind
    return [*kinds, "null"] if nullable else kind


def native_text(value: str) -> str:
    """The JSON text FOR JSON gives `value`, cut out of a one-property object (`{"v":...}`).

    Only for values whose text holds no `}` (numbers, dates and times, base64, identifiers)."""
    wrapped = f"(SELECT {value} AS [v] FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES)"
    return f"REPLACE(STUFF({wrapped}, 1, 5, N''), N'}}', N'')"


def string_text(value: str) -> str:
    """A string value as JSON text, escaped as FOR JSON escapes it."""
    return f"N'\"' + STRING_ESCAPE({value}, 'json') + N'\"'"


def quoted_text(value: str) -> str:
    """A value whose text needs no escaping (digits, signs, a decimal point) as a JSON string."""
    return f"N'\"' + {value} + N'\"'"


def _declared(base: str, length: int) -> str:
    """`VARCHAR(20)` from the byte length sys.columns gives (-1 is MAX)."""
    if length < 0:
        return f"{base}(MAX)"
    return f"{base}({length // 2 if base.startswith('N') else length})"


def _spec(
    type_name: str, max_length: int, precision: int, scale: int, nullable: bool, clr: bool
) -> tuple[dict[str, Any], str, str, str, str]:
    """(schema, value, text, param, key text) templates over `{col}`."""
    if clr:
        # geometry, geography, hierarchyid, user CLR types: FOR JSON cannot serialize them.
        value = f"{COL}.ToString()"
        param = "CAST(? AS HIERARCHYID)" if type_name == "hierarchyid" else "?"
        return {"type": _nullable("string", nullable)}, value, string_text(value), param, ""
    if type_name in _INTEGERS:
        lo, hi = _INTEGERS[type_name]
        schema = {"type": _nullable("integer", nullable), "minimum": lo, "maximum": hi}
        return schema, COL, f"CONVERT(VARCHAR(20), {COL})", f"CAST(? AS {type_name.upper()})", ""
    if type_name == "bit":
        text = f"CASE WHEN {COL} = 1 THEN 'true' WHEN {COL} = 0 THEN 'false' END"
        return {"type": _nullable("boolean", nullable)}, COL, text, "CAST(? AS BIT)", ""
    if type_name in ("decimal", "numeric"):
        value = f"CONVERT(VARCHAR(41), {COL})"  # every digit, the scale's trailing zeros kept
        schema = {
            "type": _nullable("string", nullable),
            "format": "singer.decimal",
            "precision": precision,
            "scale": scale,
        }
        return schema, value, quoted_text(value), f"CAST(? AS DECIMAL({precision}, {scale}))", ""
    if type_name in _MONEY:
        digits, places = _MONEY[type_name]
        value = f"CONVERT(VARCHAR(30), {COL}, 2)"  # style 2: no thousands separators, all four decimals
        schema = {"type": _nullable("string", nullable), "format": "singer.decimal", "precision": digits}
        schema["scale"] = places
        return schema, value, quoted_text(value), f"CAST(? AS {type_name.upper()})", ""
    if type_name in _FLOATS:
        schema = {"type": _nullable("number", nullable), "x-sql-datatype": _FLOATS[type_name]}
        return schema, COL, f"CONVERT(VARCHAR(30), {COL}, 3)", f"CAST(? AS {type_name.upper()})", ""
    if type_name in _CHARS:
        declared = _declared(_CHARS[type_name], max_length)
        schema = {"type": _nullable("string", nullable)}
        if max_length > 0:
            schema["maxLength"] = max_length // 2 if type_name in _WIDE else max_length
        return schema, COL, string_text(COL), f"CAST(? AS {declared})", ""
    if type_name in _LOBS:
        value = f"CAST({COL} AS {_LOBS[type_name]})"
        return {"type": _nullable("string", nullable)}, value, string_text(value), "?", ""
    if type_name in _TEMPORAL:
        declared = f"{type_name.upper()}({scale})" if type_name in _SCALED else type_name.upper()
        schema = {"type": _nullable("string", nullable), "format": _TEMPORAL[type_name]}
        return schema, COL, native_text(COL), f"CAST(? AS {declared})", ""
    if type_name == "uniqueidentifier":
        schema = {"type": _nullable("string", nullable), "format": "uuid"}
        text = quoted_text(f"CONVERT(CHAR(36), {COL})")
        return schema, COL, text, "CAST(? AS UNIQUEIDENTIFIER)", ""
    if type_name in _BINARY:
        schema = {"type": _nullable("string", nullable), "contentEncoding": "base64"}
        # A key goes as 0x-hex text, which CONVERT style 1 reads back; the record keeps base64.
        hex_text = quoted_text(f"CONVERT(VARCHAR(MAX), {COL}, 1)")
        param = "?" if type_name == "image" else "CONVERT(VARBINARY(MAX), ?, 1)"
        return schema, COL, native_text(COL), param, hex_text
    if type_name in _ROWVERSION:
        value = f"CAST({COL} AS BIGINT)"  # a database-wide counter; as 8 bytes FOR JSON would send base64
        schema = {"type": _nullable("integer", nullable), "minimum": 0, "maximum": 2**63 - 1}
        return schema, value, f"CONVERT(VARCHAR(20), {value})", "CAST(CAST(? AS BIGINT) AS BINARY(8))", ""
    # Types this map does not know (json, vector, ...): their text form.
    value = f"CONVERT(NVARCHAR(MAX), {COL})"
    return {"type": _nullable("string", nullable)}, value, string_text(value), "?", ""


def column_spec(
    name: str,
    type_name: str,
    max_length: int = 0,
    precision: int = 0,
    scale: int = 0,
    nullable: bool = True,
    clr: bool = False,
) -> MssqlColumn:
    """A column from sys.columns: `type_name` is the system type (an alias type's base type),
    `max_length` in bytes (-1 for MAX), `clr` for CLR types (geometry, geography, hierarchyid, ...)."""
    base = _ALIASES.get(type_name.lower(), type_name.lower())
    schema, value, text, param, key = _spec(base, int(max_length), int(precision), int(scale), nullable, clr)
    return MssqlColumn(
        name,
        schema,
        value.replace(COL, BRACKETS.q(name)),
        type_name=base,
        value_sql=value,
        text_sql=text,
        key_sql=key,
        param=param,
        # FOR JSON PATH reads a dot in an alias as nesting; FOR JSON's float text is not documented.
        spliced=base in _FLOATS or "." in name,
    )
