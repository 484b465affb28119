"""A batch as one newline-delimited JSON file for a load job, and the value a load job refused.

Records are written with the shared codec: exact numbers (Decimal) stay bare JSON numbers inside
JSON columns, and become strings in NUMERIC/BIGNUMERIC/STRING columns, which BigQuery parses
exactly (a bare number could go through a double on the way). A decimal that NUMERIC or BIGNUMERIC
cannot hold stops here, before any upload: BigQuery would round extra decimals.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, BinaryIO

from dpone.targets.bigquery.type_map import SHAPES, array_item
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.errors import DataError

_INT64 = (-(2**63), 2**63 - 1)
# Beyond it a load job may read a bare JSON integer through a double: such values go as text.
_EXACT_BARE = 2**53 - 1


def _fits(value: Decimal, shape: tuple[int, int]) -> bool:
    if not value.is_finite():
        return False
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if -exponent <= shape[1] and len(digits) + exponent <= shape[0]:
        return True  # as written (the usual case); else without its trailing zeros
    _sign, digits, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int)
    return max(-exponent, 0) <= shape[1] and max(len(digits) + exponent, 0) <= shape[0]


def _int64(value: Any, shape: tuple[int, int] | None) -> Any:
    """An INT64 column's value, checked here: a fraction or a value beyond 64 bits stops the batch
    before its upload (a load job would refuse it too, naming only a byte position)."""
    if type(value) is int:
        if -_EXACT_BARE <= value <= _EXACT_BARE:
            return value
        if _INT64[0] <= value <= _INT64[1]:
            return str(value)
        raise ValueError(f"{value} is beyond INT64")
    if isinstance(value, (float, Decimal)) and not isinstance(value, bool) and value == int(value):
        return _int64(int(value), shape)
    raise ValueError(f"{value!r} is not an integer")


def _decimal_text(value: Any, shape: tuple[int, int] | None) -> Any:
    """A number for a NUMERIC/BIGNUMERIC/STRING column as exact text; ValueError when it does not fit."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, float, str)):
        return value  # not a number: the load job refuses it, and `unfit` names it
    try:
        exact = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return value
    if shape is not None and not _fits(exact, shape):
        raise ValueError(f"{value} does not fit ({shape[0]} integer digits, {shape[1]} decimals at most)")
    return str(value) if not isinstance(value, str) else value


Numeric = dict[str, tuple[Any, tuple[int, int] | None, bool]]


def numeric_columns(numbers: Mapping[str, str]) -> Numeric:
    """Number columns (name -> INT64, NUMERIC, BIGNUMERIC, STRING or ARRAY of them) as what checks
    them: name -> (convert, shape, repeated). Integers are checked, exact numbers made text."""
    numeric: Numeric = {}
    for name, type_ in numbers.items():
        item = array_item(type_) or type_
        if item in ("INT64", "NUMERIC", "BIGNUMERIC", "STRING"):
            numeric[name] = (_int64 if item == "INT64" else _decimal_text, SHAPES.get(item), item != type_)
    return numeric


def convert(stream: str, position: int, record: dict[str, Any], numeric: Numeric, where: str = "") -> None:
    """Check (and make text, where a column wants it) a record's numbers in place; a DataError names
    the record (`where`, else its position in the batch) and the column of a value that does not fit."""
    low, high = -_EXACT_BARE, _EXACT_BARE  # integers a load job reads exactly as they are
    for name, (conv, shape, repeated) in numeric.items():
        value = record.get(name)
        kind = type(value)
        if value is None or (kind is int and conv is _int64 and low <= value <= high):
            continue  # the usual integer: nothing to do
        if kind is str and conv is _decimal_text and shape is None:
            continue  # text for a STRING column; a singer.decimal string for NUMERIC is checked like a number
        try:
            if repeated and isinstance(value, list):
                record[name] = [conv(v, shape) for v in value]
            else:
                record[name] = conv(value, shape)
        except (ValueError, OverflowError) as exc:
            at = where or f"stream {stream!r}, record {position} of the batch"
            raise DataError(f"{at}, column {name!r}: {exc}") from None


class BatchFile:
    """Writes records into a local NDJSON file (gzip or plain) for one load job."""

    def __init__(self, numbers: Mapping[str, str], directory: str | None, compress: bool) -> None:
        self.numeric = numeric_columns(numbers)
        self.compress = compress
        self.digest = ""  # SHA-256 of the rows written: the same batch retried has the same one
        fd, self.path = tempfile.mkstemp(
            prefix="dpone-bigquery-", suffix=".jsonl.gz" if compress else ".jsonl", dir=directory
        )
        os.close(fd)

    def write(self, stream: str, records: list[dict[str, Any]]) -> None:
        dumps = DEFAULT_CODEC.dumps
        numeric = self.numeric
        opener: Any = gzip.open if self.compress else open
        with opener(self.path, "wb", **({"compresslevel": 1} if self.compress else {})) as fh:
            out: BinaryIO = fh
            digest = hashlib.sha256()
            chunk: list[bytes] = []
            for position, record in enumerate(records, 1):
                if numeric:
                    convert(stream, position, record, numeric)
                chunk.append(dumps(record))
                if len(chunk) >= 4096:
                    block = b"\n".join(chunk) + b"\n"
                    digest.update(block)
                    out.write(block)
                    chunk.clear()
            block = b"\n".join(chunk) + b"\n" if chunk else b""
            digest.update(block)
            out.write(block)
        self.digest = digest.hexdigest()

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


# -- the error path: which value a load job refused ------------------------------------------------
def _shown(value: Any) -> str:
    return str(value) if isinstance(value, Decimal) else repr(value)


def _scalar_ok(type_: str, value: Any) -> bool:
    if type_ == "INT64":
        if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
            value = int(value)  # the error path decodes wide integers exactly, as Decimal
        return isinstance(value, int) and not isinstance(value, bool) and _INT64[0] <= value <= _INT64[1]
    if type_ in SHAPES:
        try:
            return not isinstance(value, bool) and _fits(Decimal(str(value)), SHAPES[type_])
        except InvalidOperation:
            return False
    if type_ == "FLOAT64":
        return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
    if type_ == "BOOL":
        return isinstance(value, bool)
    if type_ == "STRING":
        return isinstance(value, (str, int, float, Decimal)) and not isinstance(value, bool)
    if type_ == "TIMESTAMP":
        return _parses(dt.datetime.fromisoformat, value)
    if type_ == "DATE":
        return _parses(dt.date.fromisoformat, value)
    if type_ == "TIME":
        return _parses(dt.time.fromisoformat, value)
    return True  # JSON holds anything


def _parses(parse: Any, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse(value.replace("Z", "+00:00") if value.endswith(("Z", "z")) else value)
    except ValueError:
        return False
    return True


def unfit(
    stream: str,
    columns: Mapping[str, str],
    keys: list[str],
    records: list[dict[str, Any]],
    where_of: Callable[[int], str] | None = None,
) -> str | None:
    """`stream 's', record N of the batch (key), column 'c': 'v' is not a T` (or where `where_of(N)`
    says, e.g. the input line), for the first value its column cannot hold; None when every value
    looks right (the job's own error is then reported)."""
    for position, record in enumerate(records, 1):
        for name, type_ in columns.items():
            value = record.get(name)
            if value is None:
                continue
            item = array_item(type_)
            if item is not None:
                good = isinstance(value, list) and all(v is not None and _scalar_ok(item, v) for v in value)
            else:
                good = _scalar_ok(type_, value)
            if not good:
                key = ", ".join(f"{k}={record.get(k)!r}" for k in keys)
                at = where_of(position) if where_of else f"stream {stream!r}, record {position} of the batch"
                where = at + (f" ({key})" if key else "")
                return f"{where}, column {name!r}: {_shown(value)} is not a value a {type_} column holds"
    return None
