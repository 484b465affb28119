"""A row and a key as JSON text, built by the server: the SELECT expressions every read uses.

A row is one FOR JSON PATH object, as a scalar subquery: FOR JSON at the top level of a query
splits its result into rows of 2,033 characters, a subquery's value is one nvarchar(max). Columns
FOR JSON cannot render as the schema promises (`MssqlColumn.spliced`: floats, dotted names) are
appended to that object as `,"name":<text>` before its closing brace; the object is computed once
per row in a CROSS APPLY for that. A key is a JSON array built by concatenation of each column's
JSON text. Nothing here reaches a client-side JSON encoder: the tap frames these texts as they come.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from dpone.taps.mssql.type_map import MssqlColumn
from dpone_drivers.sql_names import BRACKETS

FOR_JSON = "FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES"
ROW = "_dpone_row"  # the CROSS APPLY that holds a row's FOR JSON object when columns are spliced in


def literal(text: str) -> str:
    """A Unicode string literal (N'...'): names may hold any character."""
    return "N" + BRACKETS.literal(text)


def property_name(name: str) -> str:
    """`"name":` as JSON writes it, as a literal."""
    return orjson.dumps(name).decode() + ":"


def for_json(pairs: Sequence[tuple[str, str]]) -> str:
    """The FOR JSON object of (expression, property name) pairs, as a scalar subquery."""
    selected = ", ".join(f"{expression} AS {BRACKETS.q(name)}" for expression, name in pairs)
    return f"(SELECT {selected} {FOR_JSON})"


def row_json(plain: Sequence[tuple[str, str]], spliced: Sequence[tuple[str, str]], row: str = ROW) -> tuple[str, str]:
    """The select expression of a row's JSON object, and the CROSS APPLY it needs ("" if none).

    `plain` pairs go through FOR JSON; `spliced` pairs are (JSON text expression, property name)."""
    if not spliced:
        return (for_json(plain) if plain else "N'{}'"), ""
    pieces = [
        f"{literal(('' if i == 0 and not plain else ',') + property_name(name))} + ISNULL({text}, N'null')"
        for i, (text, name) in enumerate(spliced)
    ]
    tail = " + ".join([*pieces, "N'}'"])
    if not plain:
        return f"CAST(N'{{' AS NVARCHAR(MAX)) + {tail}", ""
    # The FOR JSON object without its closing brace, then the spliced properties and the brace.
    joins = f" CROSS APPLY (SELECT {for_json(plain)} AS [j]) AS {row}"
    return f"STUFF({row}.[j], LEN({row}.[j]), 1, {tail})", joins


def columns_json(
    columns: Sequence[MssqlColumn], alias: str, extra: Sequence[tuple[str, str]] = (), row: str = ROW
) -> tuple[str, str]:
    """A row of `columns` on `alias` (plus `extra` (expression, name) pairs for FOR JSON)."""
    plain = [(c.value_at(alias), c.name) for c in columns if not c.spliced]
    spliced = [(c.text_at(alias), c.name) for c in columns if c.spliced]
    return row_json([*plain, *extra], spliced, row)


def key_json(texts: Sequence[str]) -> str:
    """A JSON array of JSON texts (`[null]` for none), e.g. `[42,"eu"]`."""
    if not texts:
        return "N'[null]'"
    inner = " + N',' + ".join(f"ISNULL({text}, N'null')" for text in texts)
    return f"N'[' + {inner} + N']'"
