"""Each value on its way into DuckDB, checked where DuckDB would change it without a word.

DuckDB rounds a decimal with more places than its column's scale, rounds 1.5 into a BIGINT,
cuts a timestamp's nanoseconds, drops a TIME's offset and re-reads JSON numbers as doubles. A
converter per column stops such a value (ValueError naming it; the loader adds the line and column)
or turns it into the text DuckDB reads exactly: decimals and JSON documents travel as JSON strings,
and PostgreSQL's `BC` dates into DuckDB's `(BC)` form. Columns DuckDB reads faithfully get none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from dpone.targets.duckdb.type_map import decimal_shape
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.json_schema import ColumnType, Logical

Convert = Callable[[Any], Any]

_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_INTEGER_TEXT = re.compile(r"[+-]?\d+")
# A seventh fractional digit that is not zero: DuckDB keeps microseconds and drops the rest.
_SUB_MICROSECOND = re.compile(r"\.\d{6}\d*[1-9]")
_TIME_OFFSET = re.compile(r"(?:Z|[+-]\d\d(?::?\d\d(?::?\d\d)?)?)$")
_ZERO_OFFSET = re.compile(r"(?:Z|[+-]00(?::?00(?::?00)?)?)$")
_BC_TIMESTAMP = re.compile(r"(\d{4,}-\d\d-\d\d)[T ](.*) BC")
_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1
# Beyond this exponent a number is written in scientific notation rather than with every zero.
_POSITIONAL_LIMIT = 64


def shown(value: Any) -> str:
    """A value for an error message, cut to a readable length."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, Decimal):
        text = number_text(value)  # 1E+400, not its first 80 of 401 digits
    elif value.__class__ is int:
        text = str(value)  # any width (the codec writes 64 bits at most)
    else:
        text = DEFAULT_CODEC.dumps(value).decode()
    text = repr(text) if isinstance(value, str) else text
    return text if len(text) <= 80 else text[:77] + "..."


def number_text(value: Decimal) -> str:
    """A Decimal's exact text, positional unless its exponent is huge (1E+400 is not 401 characters)."""
    if not value.is_finite():
        return "NaN" if value.is_nan() else ("-Infinity" if value.is_signed() else "Infinity")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    return format(value, "f") if abs(exponent) <= _POSITIONAL_LIMIT else str(value)


def _as_decimal(value: Any) -> Decimal:
    cls = value.__class__
    if cls is Decimal:
        return value  # type: ignore[no-any-return]
    if cls is str:
        if _NUMBER_TEXT.fullmatch(value) is None:
            raise ValueError(f"{shown(value)} is not a number")
        return Decimal(value)
    if cls is int:
        return Decimal(value)
    if cls is float:
        return Decimal(repr(value))  # repr: the shortest text that reads back as this double
    raise ValueError(f"{shown(value)} is not a number")


def _digits(value: Decimal) -> tuple[int, int]:
    """(digits before the point, decimal places) the value needs; trailing zeros need no place."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if digits == (0,):
        return 0, 0
    count = len(digits)
    places = 0
    if exponent < 0:
        zeros = 0
        while zeros < -exponent and digits[count - 1 - zeros] == 0:
            zeros += 1
        places = -exponent - zeros
    return max(count + exponent, 0), places


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def decimal_converter(precision: int, scale: int, unbounded: bool) -> Convert:
    declared = f"DECIMAL({precision},{scale})"
    hint = f" ({_KEEP_EVERY_DIGIT})" if unbounded else ""
    int_digits = precision - scale
    # Plain text that surely fits goes through as is; anything else is measured digit by digit.
    fraction = rf"(?:\.\d{{1,{scale}}})?" if scale else ""
    whole = rf"-?\d{{1,{int_digits}}}" if int_digits > 0 else r"-?0?"
    fits = re.compile(whole + fraction if int_digits > 0 else whole + rf"\.\d{{1,{scale}}}")

    def convert(value: Any) -> str:
        cls = value.__class__
        if cls is str and fits.fullmatch(value):
            return str(value)
        if cls is float and fits.fullmatch(text := repr(value)):
            return text  # the shortest text of the double, which the decoding found exact
        number = _as_decimal(value)
        if not number.is_finite():
            raise ValueError(f"{shown(value)} does not fit {declared}: a DuckDB DECIMAL holds no NaN or Infinity{hint}")
        before, places = _digits(number)
        if places > scale:
            raise ValueError(
                f"{shown(value)} has {_count(places, 'decimal place')}; {declared} keeps {scale} "
                f"and would round it{hint}"
            )
        if before > int_digits:
            raise ValueError(
                f"{shown(value)} has {_count(before, 'digit')} before the point; {declared} holds {int_digits}{hint}"
            )
        return format(number, "f")

    return convert


_KEEP_EVERY_DIGIT = "unbounded_numbers: varchar keeps every number as text"
_DOUBLE_EXACT = 2**53  # every integer up to this is a double
_DOUBLE_LIMIT = 2**1024  # no double reaches it (float() of a larger integer overflows)


def exact_double(value: Any) -> Any:
    """A number for a DOUBLE column that must give it back exactly: the double nearest the value,
    when reading that double back gives the value (12.5, 0.1, 0.30000000000000004, 1e-300) or the
    double is the value itself (2**63), else a ValueError (18 significant digits, 2**63 - 1).
    NaN and the infinities are doubles."""
    cls = value.__class__
    if cls is float:
        return value  # decoded as a double already (the schema declared no need to check)
    if cls is int:
        if -_DOUBLE_EXACT <= value <= _DOUBLE_EXACT:
            return value
        if abs(value) < _DOUBLE_LIMIT and float(value) == value:
            return float(value)  # the same number, and one the staging file can hold at any width
    else:
        number = _as_decimal(value)
        if not number.is_finite():
            return number_text(number)
        nearest = float(number)
        # The shortest text of the double (0.1), or its exact value (an integer beyond 2**53 it holds).
        if math.isfinite(nearest) and (Decimal(repr(nearest)) == number or Decimal(nearest) == number):
            return nearest
    raise ValueError(f"{shown(value)} would be rounded by a DOUBLE column ({_KEEP_EVERY_DIGIT})")


def number_as_text(value: Any) -> str:
    """A number kept as its text in a VARCHAR column: every digit, and NaN or Infinity."""
    cls = value.__class__
    if cls is str:
        if _NUMBER_TEXT.fullmatch(value) is None:
            raise ValueError(f"{shown(value)} is not a number")
        return value  # type: ignore[no-any-return]
    if cls is int:
        return str(value)
    if cls is float:
        return repr(value) if math.isfinite(value) else number_text(Decimal(value))
    return number_text(_as_decimal(value))


def to_bigint(value: Any) -> int:
    cls = value.__class__
    if cls is int:
        number: int = value
    elif (
        (cls is Decimal and value.is_finite() and value == value.to_integral_value())
        or (cls is float and value.is_integer())
        or (cls is str and _INTEGER_TEXT.fullmatch(value))
    ):
        number = int(value)
    else:
        raise ValueError(f"{shown(value)} is not an integer")
    if not _BIGINT_MIN <= number <= _BIGINT_MAX:
        raise ValueError(f"{shown(value)} is outside BIGINT's range")
    return number


def to_text(value: Any) -> str:
    """Non-string values of a VARCHAR column as their JSON text, which DuckDB would otherwise re-render."""
    if value.__class__ is str:
        return value
    if isinstance(value, Decimal):
        return number_text(value)
    return DEFAULT_CODEC.dumps(value).decode()


def to_json_text(value: Any) -> str:
    """The document as JSON text: DuckDB keeps text it is given, but parses numbers it reads to doubles."""
    return DEFAULT_CODEC.dumps(value).decode()


def _no_sub_microseconds(value: str, kind: str) -> None:
    dot = value.find(".")
    # The regex runs only when a seventh digit follows the point (rare): this is on every value.
    if dot >= 0 and len(value) > dot + 7 and value[dot + 7].isdigit() and _SUB_MICROSECOND.search(value):
        raise ValueError(f"{shown(value)} has digits beyond microseconds, which a DuckDB {kind} would drop")


def to_timestamp(value: Any) -> Any:
    if value.__class__ is not str:
        return value  # DuckDB refuses it; the loader then names it
    if value.endswith(" BC"):
        match = _BC_TIMESTAMP.fullmatch(value)
        if match:
            value = f"{match.group(1)} (BC) {match.group(2)}"
    _no_sub_microseconds(value, "TIMESTAMP WITH TIME ZONE")
    return value


def to_date(value: Any) -> Any:
    if value.__class__ is str and value.endswith(" BC"):
        return value[:-3] + " (BC)"
    return value


def to_time(value: Any) -> Any:
    if value.__class__ is not str:
        return value
    _no_sub_microseconds(value, "TIME")
    if len(value) > 8 and _TIME_OFFSET.search(value) and not _ZERO_OFFSET.search(value):
        raise ValueError(f"{shown(value)} has a UTC offset, which a DuckDB TIME does not keep")
    return value


def converter(column: ColumnType, duck_type: str, rounding: bool = False) -> Convert | None:
    """What each value of a column goes through before the staging file; None when nothing needs to.
    `rounding`: the user chose a DOUBLE that rounds what it cannot hold (unbounded_numbers)."""
    if duck_type == "DOUBLE" and not rounding and column.logical in (Logical.NUMBER, Logical.DECIMAL):
        return None if column.bits else exact_double  # a declared double is exact in a DOUBLE
    if duck_type == "VARCHAR":
        return number_as_text if column.logical in (Logical.NUMBER, Logical.DECIMAL) else to_text
    shape = decimal_shape(duck_type)
    if shape is not None:
        unbounded = column.logical is Logical.NUMBER or column.precision is None or column.precision > 38
        return decimal_converter(*shape, unbounded)
    return {
        "BIGINT": to_bigint,
        "JSON": to_json_text,
        "TIMESTAMP WITH TIME ZONE": to_timestamp,
        "DATE": to_date,
        "TIME": to_time,
    }.get(duck_type)


def read_as(duck_type: str) -> str:
    """The type read_json reads a converted column as: text for what travels as text."""
    return "VARCHAR" if duck_type in ("VARCHAR", "JSON") else duck_type
