"""A BigQuery batch is the stream's RECORD lines as they came: the load job parses them, Python decodes nothing.

- in: the router (ClickHouse's LineRouter, shared) takes the compact RECORD lines of a stream whose
  columns a load job reads exactly as the decoded path would (see `raw_unfit`), whole runs at a time;
  a record that comes another way (decoded by the framework, a BATCH file's bare record) is written
  into the same envelope, `{"record":{...},"version":...,"time_extracted":...}`.
- staging: one table whose schema IS the envelope: `record` a STRUCT of the stream's columns,
  `version` INT64, `time_extracted` TIMESTAMP; `type`, `stream` and properties the schema does not
  name are ignored (`ignore_unknown_values`, as the decoded path ignores them).
- last per key: a load job keeps no row order, so for a merge each line gets `{"_dpone_seq":N,` in
  front of it (one pass over the batch when it loads) and the MERGE keeps the highest per key.
- checks: the values the decoded path checks before upload (INT64 range and fraction, NUMERIC and
  BIGNUMERIC digits, null keys) are found by one regex pass over the batch; only a batch where it
  finds one is decoded, to name the record and column (or, if the value fits after all, load as is).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from dpone.targets.bigquery.type_map import array_item
from dpone.targets.framework.line_batch import Lines
from dpone.targets.framework.loader import StreamPlan
from dpone.targets.framework.sql_dialect import TABLE_VERSION
from dpone_protocol.codec import DEFAULT_CODEC, EXACT_CODEC
from dpone_protocol.errors import DataError
from dpone_protocol.json_schema import Logical

SEQUENCE = "_dpone_seq"
EXTRACTED_AT = "_sdc_extracted_at"
# The metadata the envelope or the move fills, not the record (a record's own values are overwritten
# on the decoded path too); _sdc_deleted_at is the record's (CDC).
STAMPED = ("_sdc_extracted_at", "_sdc_received_at", "_sdc_batched_at", TABLE_VERSION)
_NOW = ("_sdc_received_at", "_sdc_batched_at")
_NUMBERS = (Logical.NUMBER, Logical.DECIMAL)
# Key types a window can partition by (and the decoded path compares by value, as these do).
_KEY_TYPES = frozenset({"INT64", "STRING", "BOOL", "DATE", "TIME", "TIMESTAMP", "NUMERIC", "BIGNUMERIC"})
# A number token that a column of this type may not hold as written, or that a load job may not read
# exactly: 16 digits or more (BigQuery reads bare JSON numbers through a double, exact up to 15
# significant digits and for integers up to 2^53), more decimals than NUMERIC keeps, an exponent, or
# (INT64) a fraction or a quoted value. A match only means "look closer": such a batch is decoded,
# checked, and its wide numbers written as text (rows.py).
_SUSPECT = {
    "INT64": r'"|-?\d*[.eE]|-?\d{16}',
    "NUMERIC": r'"?-?(?:[\d.]{16}|\d*\.\d{10}|[\d.]*[eE])',
    "BIGNUMERIC": r'"?-?(?:[\d.]{16}|[\d.]*[eE])',
}
_SUSPECT_ITEM = {"INT64": r'[.eE"]|\d{16}', "NUMERIC": r"[\d.]{16}|\.\d{10}|[eE]", "BIGNUMERIC": r"[\d.]{16}|[eE]"}


def raw_unfit(plan: StreamPlan, types: Mapping[str, str], exact_json: bool) -> str | None:
    """Why this stream's RECORD lines cannot be loaded as they are (it takes the decoded path), or None."""
    if plan.renames:
        return "properties are renamed into valid column names"
    for key in plan.key_columns:
        if types.get(key) not in _KEY_TYPES:
            return f"key column {key!r} is {types.get(key)}, which a window cannot partition by"
    for name, column in plan.columns.items():
        type_ = types[name]
        item = array_item(type_) or type_
        logical = column.items.logical if column.logical is Logical.ARRAY and column.items else column.logical
        if logical in _NUMBERS and item == "STRING":
            # A load job reads a bare JSON number into STRING through a double: 1.10 becomes "1.1".
            return f"column {name!r} keeps numbers as text"
        if item == "JSON" and not exact_json:
            return f"column {name!r} is JSON and exact_json_numbers is off (the decoded path rounds)"
    return None


def stamped(metadata: bool) -> tuple[str, ...]:
    """The columns the envelope and the move fill (with add_record_metadata), not the record's fields."""
    return STAMPED if metadata else ()


def record_types(types: Mapping[str, str], metadata: bool) -> dict[str, str]:
    """The `record` STRUCT's fields: the stream's columns but the metadata the move fills."""
    skip = stamped(metadata)
    return {name: type_ for name, type_ in types.items() if name not in skip}


def staging_fields(bigquery: Any, fields: list[Any], with_sequence: bool) -> list[Any]:
    """The envelope's schema around the record's fields."""
    envelope = [
        bigquery.SchemaField("record", "RECORD", fields=fields),
        bigquery.SchemaField("version", "INT64"),
        bigquery.SchemaField("time_extracted", "TIMESTAMP"),
    ]
    return [bigquery.SchemaField(SEQUENCE, "INT64"), *envelope] if with_sequence else envelope


def suspects(plan: StreamPlan, types: Mapping[str, str]) -> re.Pattern[bytes] | None:
    """`types`: the record's fields (record_types)."""
    """One pattern over the batch for any value the decoded path would check: a key that is null,
    a number an exact column may not hold. `"name":` never occurs inside a JSON string (its quotes
    would be escaped), so only a nested object's member of the same name matches falsely (a closer look)."""
    parts = [f'"{re.escape(k)}":\\s*null' for k in plan.key_columns]
    for name, type_ in types.items():
        item = array_item(type_)
        if item in _SUSPECT_ITEM:
            parts.append(f'"{re.escape(name)}":\\s*\\[[^\\]]*(?:{_SUSPECT_ITEM[item]})')
        elif type_ in _SUSPECT:
            parts.append(f'"{re.escape(name)}":\\s*(?:{_SUSPECT[type_]})')
    if not parts:
        return None
    return re.compile("|".join(parts).encode())


def needs_check(data: bytes | bytearray, rows: int, plan: StreamPlan, pattern: re.Pattern[bytes] | None) -> bool:
    """True when the batch may hold a value the decoded path refuses (then it is decoded and checked)."""
    if pattern is not None and pattern.search(data) is not None:
        return True
    # A key missing from a line: fewer key names than lines (a nested object's name may hide one, so
    # the move's SQL refuses a null key as well).
    return any(data.count(f'"{k}":'.encode()) < rows for k in plan.key_columns)


def sequenced(data: bytes | bytearray) -> bytes:
    """Each line with its position in front: `{"_dpone_seq":N,...}` (a line is an object, so it opens with `{`)."""
    lines = bytes(data).split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return b"\n".join([b'{"_dpone_seq":%d,%s' % (n, line[1:]) for n, line in enumerate(lines, 1)]) + b"\n"


def envelope_lines(data: bytes | bytearray) -> Iterator[tuple[int, dict[str, Any]]]:
    """(position, envelope) of each line, decoded exactly: the check and error paths only."""
    for position, line in enumerate(bytes(data).split(b"\n"), 1):
        if line.strip():
            decoded = EXACT_CODEC.loads(line)
            yield position, decoded if isinstance(decoded, dict) else {}


def checked(plan: StreamPlan, data: bytes | bytearray, convert: Callable[[int, dict[str, Any], str], None]) -> bytes:
    """The decoded path's checks, on a batch whose bytes may hold a value they refuse (a null key,
    an integer beyond INT64 or with a fraction, a decimal NUMERIC/BIGNUMERIC would round) or a
    number a load job would read through a double: the batch again, its wide numbers as text
    (`convert` checks a record's numbers and makes them text where they must be)."""
    bad = malformed(plan, data)
    if bad is not None:
        raise DataError(bad)
    out = []
    for position, line in envelope_lines(data):
        record = line["record"]
        at = where(plan, data, position)
        for key in plan.key_columns:
            if record.get(key) is None:
                raise DataError(f"{at}: record has no value for key property {key!r}")
        convert(position, record, at)
        out.append(DEFAULT_CODEC.dumps(line))
    return b"\n".join(out) + b"\n" if out else b""


def malformed(plan: StreamPlan, data: bytes | bytearray) -> str | None:
    """The first line of the batch that is no RECORD a load job should read: not JSON, a record that
    is no object, a version that is no integer; named by its input line where known."""
    for position, line in enumerate(bytes(data).split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            decoded = EXACT_CODEC.loads(line)
        except ValueError as exc:
            return f"{where(plan, data, position)}: malformed JSON ({exc})"
        if not isinstance(decoded, dict) or not isinstance(decoded.get("record"), dict):
            return f"{where(plan, data, position)}: 'record' must be an object"
        version = decoded.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            return f"{where(plan, data, position)}: 'version' must be an integer"
    return None


def where(plan: StreamPlan, data: bytes | bytearray, position: int) -> str:
    line = data.input_line(position) if isinstance(data, Lines) else None
    if line:
        return f"line {line}, stream {plan.stream!r}"
    return f"stream {plan.stream!r}, record {position} of the batch"


def envelopes(data: bytes | bytearray) -> Iterator[tuple[int, dict[str, Any]]]:
    """(position, record) of each line, decoded exactly."""
    for position, decoded in envelope_lines(data):
        record = decoded.get("record")
        yield position, record if isinstance(record, dict) else {}


def source_sql(ref: str, plan: StreamPlan, types: Mapping[str, str], metadata: bool, q: Any) -> str:
    """Staging as the move's source: the record's fields as columns, the metadata from the envelope
    and the clock, and for a merge the last line of each key (a null key stops the move)."""
    selected = []
    filled = stamped(metadata)
    for name in types:
        if name == EXTRACTED_AT and name in filled:
            selected.append(f"time_extracted AS {q(name)}")
        elif name == TABLE_VERSION and name in filled:
            selected.append(f"version AS {q(name)}")
        elif name in _NOW and name in filled:
            selected.append(f"CURRENT_TIMESTAMP() AS {q(name)}")
        elif name in plan.key_columns:
            # The decoded path refuses a record without its key; a MERGE would insert it every time.
            message = f"stream {plan.stream!r}: a record has no value for key property {name!r}"
            selected.append(f"IF(record.{q(name)} IS NULL, ERROR({_literal(message)}), record.{q(name)}) AS {q(name)}")
        else:
            selected.append(f"record.{q(name)} AS {q(name)}")
    select = f"SELECT {', '.join(selected)} FROM {ref}"
    if plan.merges:
        keys = ", ".join(f"record.{q(k)}" for k in plan.key_columns)
        # BigQuery wants a WHERE (or GROUP BY) with QUALIFY.
        select += f" WHERE TRUE QUALIFY ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY {SEQUENCE} DESC) = 1"
    return f"({select})"


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
