"""Avro values for the Kafka connectors: records <-> Confluent framed Avro (byte 0, the 4-byte
big-endian schema id, the schemaless Avro body). The schemas come from avro_schema.py; a field
marked `"dpone.text"` holds JSON text (or a decimal's digits), which the decoder turns back into the
value. fastavro is imported when an encoder or decoder is built. Neither is safe to share between threads.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import io
import math
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dpone_drivers.avro_schema import PROPERTY_ATTR, TEXT_ATTR
from dpone_protocol.codec import DEFAULT_CODEC, EXACT_CODEC
from dpone_protocol.errors import ConfigError, DataError

if TYPE_CHECKING:
    from dpone_drivers.schema_registry import SchemaRegistry

Convert = Callable[[Any], Any]
MAGIC = 0  # the Confluent wire format's first byte

# --- JSON values -> Avro, for the target -------------------------------------------------------


def _to_datetime(value: Any) -> dt.datetime:
    try:
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError("is not an ISO 8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.date):
        return value.date() if isinstance(value, dt.datetime) else value
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        pass
    try:
        # Taps often write a date as midnight of a date-time; the date as written is the value.
        return dt.datetime.fromisoformat(value).date()
    except (TypeError, ValueError):
        raise ValueError("is not an ISO 8601 date") from None


def _to_time(value: Any) -> dt.time:
    try:
        moment = value if isinstance(value, dt.time) else dt.time.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError("is not an ISO 8601 time") from None
    # Avro's time-* is a time of day with no zone; an offset cannot be applied without a date.
    return moment.replace(tzinfo=None)


def _to_uuid(value: Any) -> str:
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(value))
    except (TypeError, ValueError, AttributeError):
        raise ValueError("is not a UUID") from None


def _exact(value: Any) -> decimal.Decimal:
    """The number a JSON value stands for, without passing through a binary float's rounding twice."""
    if isinstance(value, decimal.Decimal):
        number = value
    elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("is not a number")
    else:
        try:
            # repr() of a float is the shortest text that reads back as it: what the JSON said.
            number = decimal.Decimal(repr(value) if isinstance(value, float) else value)
        except decimal.InvalidOperation:
            raise ValueError("is not a number") from None
    if not number.is_finite():
        raise ValueError("is not a finite number")
    return number


def _decimal_to(precision: int, scale: int) -> Convert:
    quantum = decimal.Decimal(1).scaleb(-scale)
    context = decimal.Context(prec=precision + 2)

    def convert(value: Any) -> decimal.Decimal:
        number = _exact(value)
        if number.as_tuple().exponent < -scale:  # type: ignore[operator]  # finite: an int exponent
            try:
                exact = number.quantize(quantum, context=context)
            except decimal.InvalidOperation:
                raise ValueError(f"does not fit decimal({precision},{scale})") from None
            if exact != number:
                raise ValueError(f"has more than {scale} decimal places")
            number = exact
        if number and number.adjusted() >= precision - scale:
            raise ValueError(f"does not fit decimal({precision},{scale})")
        return number

    return convert


def _to_decimal_text(value: Any) -> str:
    if isinstance(value, str):
        _exact(value)
        return value
    return format(_exact(value), "f")


def _to_json_text(value: Any) -> str:
    try:
        return DEFAULT_CODEC.dumps(value).decode()
    except (TypeError, ValueError):
        raise ValueError("cannot be written as JSON") from None


_TEXT_CONVERTERS: dict[str, Convert] = {"json": _to_json_text, "decimal": _to_decimal_text}
_LOGICAL_CONVERTERS: dict[str, Convert] = {
    "long-timestamp-millis": _to_datetime,
    "long-timestamp-micros": _to_datetime,
    "int-date": _to_date,
    "int-time-millis": _to_time,
    "long-time-micros": _to_time,
    "string-uuid": _to_uuid,
}


def _non_null(avro_type: Any) -> Any:
    if isinstance(avro_type, list):
        branches = [b for b in avro_type if b != "null"]
        return branches[0] if len(branches) == 1 else None
    return avro_type


def _converter_for(avro_type: Any) -> Convert | None:
    """What makes a JSON value of this type writable by fastavro; None where it already is."""
    t = _non_null(avro_type)
    if t == "double":
        return _to_double
    if not isinstance(t, dict):
        return None
    if t.get("type") == "array":
        each = _converter_for(t.get("items"))
        return None if each is None else (lambda items: [None if v is None else each(v) for v in items])
    if t.get("logicalType") == "decimal" and t.get("type") == "bytes":
        return _decimal_to(int(t["precision"]), int(t.get("scale", 0)))
    return _LOGICAL_CONVERTERS.get(f"{t.get('type')}-{t.get('logicalType')}")


def _to_double(value: Any) -> float:
    """A number for a double field, refused when the double would not give its digits back (a
    plain JSON number may carry any digits: DESIGN rule 7, exact or stop)."""
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        raise TypeError("is not a number")
    number = float(value)
    if not isinstance(value, float) and math.isfinite(number) and decimal.Decimal(repr(number)) != value:
        raise ValueError(
            "has more digits than an Avro double keeps; declare the property with multipleOf, minimum and "
            "maximum to send it as an exact decimal"
        )
    return number


def _coerce_number(value: Any, avro_type: Any) -> Any:
    """Numbers of the exact codec (Decimal) and integral floats, as the float or int fastavro wants."""
    t = _non_null(avro_type)
    kind = t.get("type") if isinstance(t, dict) else t
    if kind == "array" and isinstance(value, list):
        return [_coerce_number(v, t.get("items")) for v in value]
    if kind in ("double", "float") and isinstance(value, decimal.Decimal):
        return float(value)
    if kind in ("long", "int") and isinstance(value, (decimal.Decimal, float)):
        whole = value.is_finite() if isinstance(value, decimal.Decimal) else math.isfinite(value)
        return int(value) if whole and value == int(value) else value
    return value


def _describe(avro_type: Any) -> str:
    t = _non_null(avro_type)
    if isinstance(t, dict):
        if t.get("type") == "array":
            return f"array of {_describe(t.get('items'))}"
        return str(t.get("logicalType") or t.get("type"))
    return str(t)


class AvroEncoder:
    """Records -> Confluent-framed Avro for one schema id. Fields needing no conversion pass through."""

    def __init__(self, avro_schema: dict[str, Any], schema_id: int) -> None:
        from fastavro import parse_schema, schemaless_writer  # noqa: PLC0415 - lazy driver import

        try:
            self._parsed = parse_schema(avro_schema)
        except Exception as exc:
            raise ConfigError(f"not a valid Avro schema: {exc}") from None
        self._write = schemaless_writer
        self._parse = parse_schema
        self._header = bytes([MAGIC]) + schema_id.to_bytes(4, "big")
        self._fields: list[tuple[str, str, Any]] = []
        self._special: list[tuple[str, str, Convert | None]] = []
        for field in avro_schema.get("fields") or []:
            name = field["name"]
            source = field.get(PROPERTY_ATTR) or name
            self._fields.append((name, source, field["type"]))
            text = field.get(TEXT_ATTR)
            convert = _TEXT_CONVERTERS.get(text) if isinstance(text, str) else _converter_for(field["type"])
            if convert is not None or source != name:
                self._special.append((name, source, convert))
        self._buffer = io.BytesIO()

    def encode(self, record: dict[str, Any]) -> bytes:
        payload = record
        if self._special:
            payload = dict(record)
            for name, source, convert in self._special:
                value = record.get(source)
                if value is not None and convert is not None:
                    try:
                        value = convert(value)
                    except (ValueError, TypeError, ArithmeticError) as exc:
                        raise DataError(f"field {source!r}: {type(value).__name__} value {exc}") from None
                payload[name] = value
        try:
            return self._framed(payload)
        except Exception:
            # A second try for numbers the exact codec made Decimal; fastavro's own error shows the value
            # (maybe long, maybe private), so a failure names the field and the value's type instead.
            payload = {name: _coerce_number(payload.get(name), t) for name, _, t in self._fields}
            try:
                return self._framed(payload)
            except Exception:
                raise self._locate(payload) from None

    def _framed(self, payload: dict[str, Any]) -> bytes:
        buffer = self._buffer
        buffer.seek(0)
        buffer.truncate()
        buffer.write(self._header)
        self._write(buffer, self._parsed, payload)
        return buffer.getvalue()

    def _locate(self, payload: dict[str, Any]) -> DataError:
        for name, source, avro_type in self._fields:
            value = payload.get(name)
            try:
                self._write(io.BytesIO(), self._parse(avro_type), value)
            except Exception:
                return DataError(
                    f"field {source!r}: {type(value).__name__} value does not fit Avro {_describe(avro_type)}"
                )
        return DataError("the record does not fit its Avro schema")


# --- Avro -> JSON values, for the tap ----------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        # local-timestamp-* come naive: a wall-clock reading with no zone to convert from.
        return value.astimezone(dt.UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _from_json_text(value: Any) -> Any:
    try:
        return EXACT_CODEC.loads(value)  # every digit of the numbers inside
    except (ValueError, TypeError):
        return value  # not written by dpone after all: the text is still a JSON value


_PLAIN = {"null", "boolean", "int", "long", "float", "double", "string"}


def _needs_conversion(avro_type: Any) -> bool:
    if isinstance(avro_type, str):
        return avro_type not in _PLAIN  # bytes, or a named type defined elsewhere
    if isinstance(avro_type, list):
        return any(_needs_conversion(b) for b in avro_type)
    if not isinstance(avro_type, dict):
        return True
    if avro_type.get("logicalType"):
        # fastavro's Decimal is what the codec writes exactly; every other logical value needs a conversion.
        return not (avro_type["logicalType"] == "decimal" and isinstance(avro_type.get("precision"), int))
    kind = avro_type.get("type")
    if kind == "enum":
        return False
    if kind in ("record", "error"):
        return any(_needs_conversion(f.get("type")) for f in avro_type.get("fields") or [])
    if kind == "array":
        return _needs_conversion(avro_type.get("items"))
    if kind == "map":
        return _needs_conversion(avro_type.get("values"))
    return _needs_conversion(kind)


class _Reader:
    def __init__(self, schema: dict[str, Any], parsed: Any) -> None:
        self.parsed = parsed
        fields = schema.get("fields") or []
        self.renamed = any(PROPERTY_ATTR in f for f in fields)
        self.fields: list[tuple[str, str, Convert | None]] = []
        for field in fields:
            convert = (
                _from_json_text
                if field.get(TEXT_ATTR) == "json"
                else (_jsonable if _needs_conversion(field["type"]) else None)
            )
            if convert is not None or self.renamed:
                self.fields.append((field["name"], field.get(PROPERTY_ATTR) or field["name"], convert))

    def output(self, datum: dict[str, Any]) -> dict[str, Any]:
        out = {} if self.renamed else datum
        for name, target, convert in self.fields:
            value = datum.get(name)
            out[target] = value if value is None or convert is None else convert(value)
        return out


class AvroDecoder:
    """Confluent-framed Avro -> JSON-ready records, the writer's schema fetched once per id."""

    def __init__(self, registry: SchemaRegistry) -> None:
        from fastavro import parse_schema, schemaless_reader  # noqa: PLC0415 - lazy driver import

        self._registry = registry
        self._parse = parse_schema
        self._read = schemaless_reader
        self._readers: dict[int, _Reader] = {}

    def decode(self, value: bytes) -> dict[str, Any]:
        if len(value) < 5:
            raise ValueError(f"{len(value)} bytes: too short for a Confluent-framed Avro value")
        if value[0] != MAGIC:
            raise ValueError(f"first byte is {value[0]}, not 0: not a Confluent-framed Avro value")
        schema_id = int.from_bytes(value[1:5], "big")
        reader = self._readers.get(schema_id) or self._reader(schema_id)
        body = io.BytesIO(value)
        body.seek(5)
        try:
            datum = self._read(body, reader.parsed, None)
        except Exception as exc:
            raise ValueError(f"the payload does not decode with schema id {schema_id} ({type(exc).__name__})") from None
        if not isinstance(datum, dict):
            raise ValueError(f"schema id {schema_id} does not give a record")
        if body.tell() != len(value):
            raise ValueError(f"{len(value) - body.tell()} bytes left over after a record of schema id {schema_id}")
        return reader.output(datum)

    def _reader(self, schema_id: int) -> _Reader:
        schema = self._registry.schema_by_id(schema_id)
        if schema.get("type") not in ("record", "error"):
            raise ConfigError(f"schema id {schema_id} is not an Avro record; records are read from record values")
        try:
            parsed = self._parse(schema)
        except Exception as exc:
            raise ConfigError(f"schema id {schema_id} is not a valid Avro schema: {exc}") from None
        reader = self._readers[schema_id] = _Reader(schema, parsed)
        return reader
