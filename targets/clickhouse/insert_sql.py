"""The one INSERT ... SELECT that loads a batch: ClickHouse parses the RECORD lines itself.

A batch is the stream's RECORD lines as they arrived (`{"type":"RECORD",...,"record":{...},
"version":N,"time_extracted":"..."}`), read by the server as JSONEachRow with a structure that
names only what it needs: the record as a named Tuple, the version and time_extracted. Python
never decodes a value. The SELECT turns each value into its column's type, fills the metadata
columns and the ReplacingMergeTree version, and checks what ClickHouse's parser would let
through silently (an integer that wraps, decimal digits beyond the scale, a Float64 that does not
give the number back, 2024-02-30, a null in a column that takes none): a failed check stops the
whole INSERT before it writes anything (`throwIf`), and the loader then names the row and column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dpone.targets.clickhouse.ddl import DELETED_FLAG, SQL, VERSION_COLUMN
from dpone.targets.clickhouse.type_map import (
    FLOAT_NUMBERS,
    ROUNDED_NUMBERS,
    TIMESTAMP,
    base_type,
    decimal_shape,
)
from dpone.targets.framework.loader import StreamPlan
from dpone.targets.framework.sql_dialect import DELETED_AT, TABLE_VERSION
from dpone_protocol.json_schema import ColumnType, Logical

EXTRACTED_AT, RECEIVED_AT, BATCHED_AT = "_sdc_extracted_at", "_sdc_received_at", "_sdc_batched_at"
BAD_VALUES = "dpone: a value does not fit its column"
# How the server reads the batch: our structure decides the types, unknown keys are skipped,
# numbers and objects can be read as text (then converted and checked by the SELECT).
READ_SETTINGS: dict[str, str | int] = {
    "input_format_skip_unknown_fields": 1,
    "input_format_json_ignore_unknown_keys_in_named_tuple": 1,
    "input_format_json_read_numbers_as_strings": 1,
    "input_format_json_read_bools_as_strings": 1,
    "input_format_json_read_objects_as_strings": 1,
    "input_format_json_read_arrays_as_strings": 1,
    "input_format_json_named_tuples_as_objects": 1,
    "input_format_defaults_for_omitted_fields": 1,
    "date_time_input_format": "best_effort",
    # One pipeline after the (still parallel) parsing: rows keep their order, so versions follow arrival.
    "max_threads": 1,
}


_NOT_UTF8 = "not UTF-8 text"
# Date, then time to the microsecond (zeros past it allowed), then an offset: as ISO 8601 writes them.
_ISO_DATE_TIME = (
    "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    "([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\\\.[0-9]{1,6}0*)?)?)?"
    "(Z|z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?$"
)
_DECIMAL_DIGITS = (9, 18, 38, 76)
_DECIMAL_BITS = ("toDecimal32OrNull", "toDecimal64OrNull", "toDecimal128OrNull", "toDecimal256OrNull")


@dataclass(frozen=True, slots=True)
class ColumnLoad:
    """How one incoming property reaches its column."""

    input_type: str  # its type in the structure the server parses
    value: str  # the converted value (may be NULL when the input does not convert)
    check: str | None  # true when a non-null input converted without loss
    why: str  # what a failed check means, for the error


def column_load(column: ColumnType, v: str, numbers: str, objects: str) -> ColumnLoad:
    """`v` is the expression of the raw input value."""
    natural = base_type(column, numbers, objects)
    text = "Nullable(String)"
    if natural == "Int64":
        # 3.0 is an integer to JSON Schema: its zeros go before the cast (only where there is a dot).
        whole = f"replaceRegexpOne({v}, '\\\\.0+$', '')"
        value = f"if(position({v}, '.') = 0, accurateCastOrNull({v}, 'Int64'), accurateCastOrNull({whole}, 'Int64'))"
        return ColumnLoad(text, value, f"{value} IS NOT NULL", "not an integer that fits Int64")
    if natural.startswith("Decimal("):
        shape = decimal_shape(natural)
        assert shape is not None
        precision, scale = shape
        convert = _DECIMAL_BITS[next(i for i, p in enumerate(_DECIMAL_DIGITS) if precision <= p)]
        value = f"{convert}({v}, {scale})"
        # Plain notation within the digits: one regex. Anything else (an exponent, more decimals, all
        # zeros or not) is read again with more decimals: equal only when no digit was dropped.
        fits = f"^-?0*[0-9]{{0,{precision - scale}}}(\\\\.[0-9]{{0,{scale}}}0*)?$"
        finer = max(scale, 76 - (precision - scale))
        bound = "1" + "0" * (precision - scale)
        exact = f"{value} = toDecimal256OrNull({v}, {finer}) AND abs({value}) < toDecimal256('{bound}', 0)"
        check = f"{value} IS NOT NULL AND (match({v}, '{fits}') OR {exact})"
        return ColumnLoad(text, value, check, f"not a number, or more digits than {natural} holds")
    if natural == "Float64" and column.logical in (Logical.NUMBER, Logical.DECIMAL) and not column.bits:
        value = f"toFloat64OrNull({v})"
        # Beyond a Float64's range a number becomes inf or 0: never what was sent.
        in_range = f"isFinite({value}) AND ({value} != 0 OR match({v}, '^-?[0.]*([eE].*)?$'))"
        if numbers == ROUNDED_NUMBERS:
            return ColumnLoad(text, value, f"{value} IS NOT NULL AND {in_range}", "not a number a Float64 holds")
        assert numbers == FLOAT_NUMBERS
        # Up to 15 significant digits a double gives every number back; past that, only when its
        # shortest form is the number's own text (exponent spelled as ClickHouse spells it).
        shortest = f"toString({value})"
        same = f"({shortest} = {v} OR {shortest} = replaceRegexpOne({v}, '[eE]\\\\+?(-?)0*([0-9])', 'e\\\\1\\\\2'))"
        check = f"{value} IS NOT NULL AND {in_range} AND (length({v}) < 16 OR {same})"
        why = "not a number, or one a Float64 would not give back (see unbounded_numbers)"
        return ColumnLoad(text, value, check, why)
    if natural in ("Float64", "Float32"):
        # NaN and infinities come as strings (JSON has no such number); a number past the range would
        # become one silently.
        value = f"toFloat64OrNull({v})"
        named = f"lower({v}) IN ('nan', 'infinity', '-infinity', 'inf', '-inf')"
        check = f"{value} IS NOT NULL AND (isFinite({value}) OR {named})"
        return ColumnLoad(text, value, check, "not a number a Float64 holds")
    if natural == "Date32":
        value = f"toDate32OrNull({v})"
        return ColumnLoad(text, value, f"toString({value}) = {v}", "not a date (YYYY-MM-DD) Date32 holds")
    if natural == TIMESTAMP:
        # ClickHouse's best-effort reader takes 12:61 as 13:01 and 01/02/2025 as the 1st of February:
        # only ISO 8601 it reads as written, to the microsecond.
        value = f"parseDateTime64BestEffortOrNull({v}, 6, 'UTC')"
        check = f"{value} IS NOT NULL AND match({v}, '{_ISO_DATE_TIME}')"
        return ColumnLoad(text, value, check, "not an ISO 8601 date-time that exists (to the microsecond)")
    if natural == "JSON":
        return ColumnLoad(text, f"CAST(ifNull({v}, '{{}}'), 'JSON')", f"isValidUTF8({v})", _NOT_UTF8)
    if natural in ("Bool", "UUID") or natural.startswith("Array("):
        return ColumnLoad(natural if natural.startswith("Array(") else f"Nullable({natural})", v, None, "")
    return ColumnLoad(text, v, f"isValidUTF8({v})", _NOT_UTF8)


@dataclass(frozen=True, slots=True)
class BatchInsert:
    structure: str  # the input's structure, for input() or file()
    columns: list[str]  # the table's columns the SELECT fills, in order
    select: str  # the SELECT list
    where: str  # the check, or ""
    checks: dict[str, tuple[str, str, str]]  # column -> (its check, its raw value, why) for diagnosis

    def statement(self, table: str, source: str, version_base: int | None = None) -> str:
        select = self.select.replace("{version_base}", str(int(version_base or 0)))
        where = f" WHERE {self.where}" if self.where else ""
        return f"INSERT INTO {table} ({SQL.column_list(self.columns)}) SELECT {select} FROM {source}{where}"


def batch_insert(
    plan: StreamPlan,
    table_columns: Mapping[str, str],
    keys: list[str],
    numbers: str,
    objects: str,
) -> BatchInsert:
    """The INSERT of a batch of `plan`'s stream into a table (staging) with `table_columns` (name ->
    type); it fills the ReplacingMergeTree's version and delete flag too, which a move into a plain
    MergeTree leaves out."""
    sources = {dest: src for src, dest in (plan.renames or {}).items()}
    fields: list[str] = []
    columns: list[str] = []
    values: list[str] = []
    checks: dict[str, tuple[str, str, str]] = {}
    for dest, column in plan.columns.items():
        if dest not in table_columns:
            continue  # the planner adds every loaded column first; a kept one stays out
        meta = _metadata(dest)
        if meta is not None:
            columns.append(dest)
            values.append(meta)
            continue
        prop = sources.get(dest, dest)
        raw = f"tupleElement(record, {SQL.literal(prop)})"
        load = column_load(column, raw, numbers, objects)
        fields.append(f"{SQL.q(prop)} {load.input_type}")
        required = dest in keys or not table_columns[dest].startswith(("Nullable(", "LowCardinality(Nullable("))
        never_null = table_columns[dest].startswith(("Array(", "JSON", "Map("))
        value = load.value if never_null or not required else f"assumeNotNull({load.value})"
        columns.append(dest)
        values.append(value)
        ok = load.check
        if required and not never_null:
            present = f"{load.value} IS NOT NULL" if load.check is None else load.check
            checks[dest] = (present, raw, load.why or "no value (null or missing) for a column that takes none")
        elif ok is not None:
            checks[dest] = (f"({raw} IS NULL OR {ok})", raw, load.why)
    columns += [VERSION_COLUMN, DELETED_FLAG]
    values.append("{version_base} + rowNumberInAllBlocks()")
    deleted = sources.get(DELETED_AT, DELETED_AT)
    hard = plan.hard_delete and DELETED_AT in plan.columns
    values.append(f"toUInt8(tupleElement(record, {SQL.literal(deleted)}) IS NOT NULL)" if hard else "0")
    tuple_fields = ", ".join(fields) or "`_dpone_none` Nullable(String)"
    structure = f"record Tuple({tuple_fields}), version Nullable(Int64), time_extracted Nullable(String)"
    where = ""
    if checks:
        every = " AND ".join(f"ifNull({c[0]}, 0)" for c in checks.values())
        where = f"throwIf(NOT ({every}), {SQL.literal(BAD_VALUES)}) = 0"
    return BatchInsert(structure, columns, ", ".join(values), where, checks)


def _metadata(name: str) -> str | None:
    """The value of a metadata column the envelope or the server gives (not the record)."""
    if name == EXTRACTED_AT:
        return "parseDateTime64BestEffortOrNull(time_extracted, 6, 'UTC')"
    if name in (RECEIVED_AT, BATCHED_AT):
        return "now64(6, 'UTC')"
    if name == TABLE_VERSION:
        return "version"
    return None
