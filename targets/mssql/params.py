"""A batch of records as the typed parameter arrays pyodbc's `fast_executemany` sends.

Each column gets a binding, `(ODBC SQL type, column size, decimal digits)` for
`cursor.setinputsizes`, and a converter that turns a decoded JSON value into the Python value
pyodbc binds exactly, or says why it cannot (a ValueError, which the loader turns into a data
error naming the input line and column). Nothing is rounded or cut here: a decimal with more
digits than its column, a string longer than its nvarchar(n), a number a float would change
stop the load instead.

Text sizes come from the batch: a column's buffer is as wide as its longest value (in UTF-16
code units, which is how SQL Server counts nvarchar), so nvarchar(max) values of ordinary length
go in the parameter array too; only a batch holding a value beyond 4,000 units binds that column
as (max), which the driver streams.

Date-times, times and UUIDs are bound with SQL Server's own types (datetimeoffset(7), time(7),
uniqueidentifier) from their ISO text, which Driver 18 converts exactly, offset and 100 ns digit
included; a Python datetime would lose its offset (pyodbc drops tzinfo). The text is checked here
first, so a bad one is named by its line.
"""

from __future__ import annotations

import binascii
import datetime as dt
import decimal
import math
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dpone.targets.mssql.type_map import FLOAT_NUMBERS, MAX_NVARCHAR
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.json_schema import ColumnType, Logical

# ODBC SQL type codes (sql.h, sqlncli.h): the numbers `setinputsizes` takes.
SQL_WVARCHAR = -9
SQL_VARBINARY = -3
MAX_VARBINARY = 8000  # longer values are varbinary(max), streamed
SQL_BIGINT = -5
SQL_BIT = -7
SQL_DOUBLE = 8
SQL_DECIMAL = 3
SQL_TYPE_DATE = 91
SQL_TYPE_TIMESTAMP = 93
SQL_GUID = -11
SQL_SS_TIME2 = -154  # SQL Server's own types (msodbcsql.h): pyodbc has no names for them
SQL_SS_TIMESTAMPOFFSET = -155

Convert = Callable[[Any], Any]
INT64 = (-(2**63), 2**63 - 1)
_EXACT = decimal.Context(prec=200, traps=[decimal.InvalidOperation])
_TIMESTAMP = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<fraction>\d+))?"
    r"(?P<zone>[Zz]|[+-]\d{2}(?::?\d{2})?)?)?"
)
_TIME = re.compile(r"(?P<time>\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<fraction>\d+))?")
MAX_FRACTION = 7  # SQL Server's date-time types read at most 100 ns


@dataclass(frozen=True, slots=True)
class Binding:
    sql_type: int
    size: int  # characters for text (0: max), precision for decimals
    scale: int = 0
    convert: Convert | None = None  # None: the decoded value binds as it is
    text: bool = False  # sized per batch from its values
    # Values of text read as dates, times and UUIDs: a run of equal ones is converted once (the
    # load-time metadata columns hold one value for a whole batch).
    repeats: bool = False

    def input_size(self, width: int | None = None) -> tuple[int, int, int]:
        """The setinputsizes entry; `width`: the batch's longest value of a text or binary column."""
        limit = MAX_VARBINARY if self.sql_type == SQL_VARBINARY else MAX_NVARCHAR
        if self.text and self.size == 0 and width is not None and width <= limit:
            return (self.sql_type, max(width, 1), 0)
        return (self.sql_type, self.size, self.scale)


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units: a character beyond the BMP takes two (nvarchar counts them so)."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


# -- converters -------------------------------------------------------------------------------
def to_bigint(value: Any) -> int:
    if type(value) is int:
        number = value
    elif isinstance(value, (float, Decimal)) and not isinstance(value, bool) and value == int(value):
        number = int(value)
    else:
        raise ValueError(f"{_shown(value)} is not an integer")
    if not INT64[0] <= number <= INT64[1]:
        raise ValueError(f"{number} is beyond bigint (64 bits); declare the property a number or a decimal")
    return number


def to_bit(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"{_shown(value)} is not a boolean")


def decimal_converter(precision: int, scale: int) -> Convert:
    quantum = Decimal(1).scaleb(-scale)
    limit = Decimal(10) ** (precision - scale)

    def to_decimal(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
            raise ValueError(f"{_shown(value)} is not a number")
        try:
            number = value if isinstance(value, Decimal) else Decimal(str(value) if isinstance(value, float) else value)
        except (decimal.InvalidOperation, ValueError):
            raise ValueError(f"{_shown(value)} is not a decimal number") from None
        if not number.is_finite():
            raise ValueError(f"{_shown(value)} is not a finite number (SQL Server's decimal has no NaN or infinity)")
        if abs(number) >= limit:
            raise ValueError(f"{_shown(value)} does not fit decimal({precision},{scale})")
        exact = number.quantize(quantum, context=_EXACT)
        if exact != number:
            raise ValueError(
                f"{_shown(value)} has more than {scale} decimals (decimal({precision},{scale}) would round it)"
            )
        return exact

    return to_decimal


def float_converter(numbers: str, declared_float: bool) -> Convert:
    exact = numbers == FLOAT_NUMBERS and not declared_float

    def to_float(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise ValueError(f"{_shown(value)} is not a number")
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{_shown(value)} is beyond a float's range (SQL Server's float has no infinity)")
        if exact and not isinstance(value, float) and Decimal(repr(number)) != value:
            raise ValueError(
                f"{_shown(value)} would change in a float column (to {number!r}); set number_type to decimal to keep it"
            )
        return number

    return to_float


def text_converter(max_units: int | None) -> Convert:
    def to_text(value: Any) -> str:
        text = value if isinstance(value, str) else _as_text(value)
        if not text.isascii():
            _check_characters(text)
        if max_units is not None and len(text) > max_units // 2 and utf16_length(text) > max_units:
            raise ValueError(
                f"a string of {utf16_length(text)} UTF-16 units (as SQL Server counts) is longer than "
                f"nvarchar({max_units})"
            )
        return text

    return to_text


def _check_characters(text: str) -> None:
    """Refuse a lone UTF-16 surrogate (JSON can spell one, `\\ud800`; no character is one)."""
    try:
        text.encode("utf-16-le")
    except UnicodeEncodeError as exc:
        bad = f"\\u{ord(text[exc.start]):04x}"
        raise ValueError(f"a string holds a lone surrogate {bad}, which is not a character") from None


def to_bytes(value: Any) -> bytes:
    """base64 text (contentEncoding base64) as the bytes it encodes; anything else is refused."""
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, TypeError, ValueError):
        raise ValueError(f"{_shown(value)} is not base64 text") from None


def to_json_text(value: Any) -> str:
    return DEFAULT_CODEC.dumps(value).decode()


def _timestamp_parts(value: Any) -> tuple[str, str, str, str]:
    """(date, HH:MM:SS, fraction of up to 7 digits, ±HH:MM) of an ISO 8601 date-time, checked."""
    match = _TIMESTAMP.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{_shown(value)} is not an ISO 8601 date-time")
    date, time, fraction, zone = match.group("date", "time", "fraction", "zone")
    time = "00:00:00" if time is None else time + ":00" if len(time) == 5 else time
    if zone in (None, "Z", "z"):
        zone = "+00:00"  # no offset means UTC, as in every dpone target
    elif len(zone) == 3:
        zone += ":00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    try:  # the calendar, checked here so a bad value is named by its line
        moment = dt.datetime.fromisoformat(f"{date}T{time}{zone}")
    except ValueError:
        raise ValueError(f"{_shown(value)} is not a valid date-time") from None
    try:  # SQL Server keeps a date-time's UTC time: it must fall in years 1 to 9999 too
        moment.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(f"{_shown(value)} is outside years 1 to 9999 in UTC, which SQL Server cannot hold") from None
    if int(zone[1:3]) * 60 + int(zone[4:]) > 14 * 60:
        raise ValueError(f"{_shown(value)} has an offset beyond SQL Server's ±14:00")
    return date, time, (fraction or "")[:MAX_FRACTION], zone


def to_timestamp_text(value: Any) -> str:
    """Text SQL Server reads into datetimeoffset exactly (its column rounds to its own precision)."""
    date, time, fraction, zone = _timestamp_parts(value)
    return f"{date} {time}{'.' + fraction if fraction else ''} {zone}"


def to_utc_datetime(value: Any) -> dt.datetime:
    """The UTC wall time of a date-time, for a datetime2 column (microseconds: pyodbc's datetime)."""
    date, time, fraction, zone = _timestamp_parts(value)
    moment = dt.datetime.fromisoformat(f"{date}T{time}.{(fraction + '000000')[:6]}{zone}")
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def to_date(value: Any) -> dt.date:
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{_shown(value)} is not an ISO 8601 date (YYYY-MM-DD)")


def to_time_text(value: Any) -> str:
    match = _TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{_shown(value)} is not a time of day (HH:MM:SS[.ffffff], no offset)")
    time, fraction = match.group("time", "fraction")
    time = time if len(time) == 8 else time + ":00"
    try:
        dt.time.fromisoformat(time)
    except ValueError:
        raise ValueError(f"{_shown(value)} is not a valid time of day") from None
    return f"{time}.{fraction[:MAX_FRACTION]}" if fraction else time


def to_uuid_text(value: Any) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"{_shown(value)} is not a UUID") from None


def _as_text(value: Any) -> str:
    """A non-string value bound for a text column (a union with number, an object): its JSON text."""
    return DEFAULT_CODEC.dumps(value).decode()


def _shown(value: Any) -> str:
    """A value as its JSON text (how the input spelled it), cut to a readable length."""
    try:
        text = DEFAULT_CODEC.dumps(value).decode()
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- bindings per column ----------------------------------------------------------------------------
def binding(column: ColumnType, type_: str, numbers: str) -> Binding:
    """How a column of destination type `type_` (from type_map) is bound."""
    if type_ == "bigint":
        return Binding(SQL_BIGINT, 0, 0, to_bigint)
    if type_ == "bit":
        return Binding(SQL_BIT, 0, 0, to_bit)
    if type_ == "float":
        return Binding(SQL_DOUBLE, 0, 0, float_converter(numbers, bool(column.bits)))
    if type_.startswith("decimal("):
        precision, scale = (int(n) for n in type_[8:-1].split(","))
        return Binding(SQL_DECIMAL, precision, scale, decimal_converter(precision, scale))
    if type_.startswith("datetimeoffset"):
        return Binding(SQL_SS_TIMESTAMPOFFSET, 34, 7, to_timestamp_text, repeats=True)
    if type_.startswith("datetime2"):
        return Binding(SQL_TYPE_TIMESTAMP, 27, 7, to_utc_datetime, repeats=True)
    if type_ == "date":
        return Binding(SQL_TYPE_DATE, 0, 0, to_date, repeats=True)
    if type_.startswith("time"):
        return Binding(SQL_SS_TIME2, 16, 7, to_time_text, repeats=True)
    if type_ == "uniqueidentifier":
        return Binding(SQL_GUID, 0, 0, to_uuid_text)
    if type_ == "varbinary(max)":
        return Binding(SQL_VARBINARY, 0, 0, to_bytes, text=True)
    if column.logical in (Logical.OBJECT, Logical.ARRAY, Logical.JSON):
        return Binding(SQL_WVARCHAR, 0, 0, to_json_text, text=True)
    declared = None if type_.endswith("(max)") else int(type_[type_.index("(") + 1 : -1])
    return Binding(SQL_WVARCHAR, declared or 0, 0, text_converter(declared), text=True)


@dataclass(slots=True)
class ParameterArrays:
    rows: list[tuple[Any, ...]]
    input_sizes: list[tuple[int, int, int]]


class Unfit(ValueError):
    """A value its column cannot take unchanged: which record (0-based), which column, why."""

    def __init__(self, index: int, column: str, reason: str) -> None:
        super().__init__(reason)
        self.index = index
        self.column = column
        self.reason = reason


def parameter_arrays(records: Sequence[dict[str, Any]], columns: Sequence[tuple[str, Binding]]) -> ParameterArrays:
    """The rows (one tuple per record, in `columns` order) and the input sizes of the batch.

    Built column by column: one list comprehension per column is far cheaper in CPython than a
    loop over records calling a function per value."""
    values: list[list[Any]] = []
    sizes: list[tuple[int, int, int]] = []
    for name, bind in columns:
        column = [r.get(name) for r in records]
        if bind.convert is not None:
            convert = bind.convert
            try:
                column = _runs(column, convert) if bind.repeats else [None if v is None else convert(v) for v in column]
            except ValueError:
                _raise_unfit(column, name, convert)
        width = None
        if bind.text:
            measure = len if bind.sql_type == SQL_VARBINARY else utf16_length
            width = max((measure(v) for v in column if v is not None), default=0)
        sizes.append(bind.input_size(width))
        values.append(column)
    return ParameterArrays(list(zip(*values, strict=True)) if values else [() for _ in records], sizes)


def _runs(column: list[Any], convert: Convert) -> list[Any]:
    """`convert` over a column of text values, once per run of equal values."""
    out: list[Any] = []
    append = out.append
    last: Any = None
    result: Any = None
    for value in column:
        if value is None:
            append(None)
            continue
        if value != last:  # the converters take only text: equal values are equal texts
            result = convert(value)
            last = value
        append(result)
    return out


def _raise_unfit(column: list[Any], name: str, convert: Convert) -> None:
    """Find the first value of `column` that `convert` refuses (the fast path only knows one did)."""
    for index, value in enumerate(column):
        if value is not None:
            try:
                convert(value)
            except ValueError as exc:
                raise Unfit(index, name, str(exc)) from None
    raise AssertionError("a converter refused a value once and accepted it again")
