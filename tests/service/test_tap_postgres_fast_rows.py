"""tap-postgres's two row paths give the same messages: the C path that encodes rows from `COPY ... TO
STDOUT` text, and the server's `row_to_json` path (the reference, taken with DPONE_PURE_PYTHON=1).

Every scenario reads the same tables twice in-process, reference first, and compares the two outputs
message by message: RECORD, STATE, SCHEMA and ACTIVATE_VERSION (without `time_extracted`; the table
version, a clock reading, must be one per run and is compared as a placeholder), and for BATCH the rows
of each announced file. Lines are decoded with every JSON number kept as written and tagged with its
kind, so `1`, `1.0`, `true` and `-0.0`/`0.0` never compare equal, and neither do two 30-digit integers
that a float would merge (orjson, what the targets decode with, must read every line as well). The
json/jsonb JSON-null warning lines must match too.

Tables are made once per module (edge values, NULLs in every column, and a few hundred rows drawn
from a seeded random.Random) in the module's database, whose TimeZone is UTC; scenarios that need
other session settings set them for the tap's role in that database and reset them afterwards.
`assert_fast` checks that the fast run really took the new path once NEEDS_FAST is switched on.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import gzip
import hashlib
import io
import ipaddress
import itertools
import json
import math
import os
import random
import struct
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from dpone.taps.framework.tap_cli import run as run_tap_cli
from dpone.taps.postgres.tap import PostgresTap
from dpone.targets.postgres import copy_rows
from dpone.targets.postgres.target import PostgresTarget
from dpone_protocol.batch_files import uri_to_path
from dpone_protocol.batch_manifest import MANIFEST_KEY
from dpone_protocol.catalog import Catalog
from dpone_protocol.key_ranges import RANGE_METADATA, KeyRange
from tests.conftest import Run
from tests.service.test_tap_postgres import Server, Source, ok, q

pytestmark = pytest.mark.service

# Flipped to True once the C row path lands: assert_fast then checks that the fast run took it.
NEEDS_FAST = True
FAST_LINE = "rows encoded from COPY text"
SERVER_LINE = "rows rendered as JSON by the server"

SEED = 20250622
RANDOM_ROWS = 300


def assert_fast(run: Run) -> None:
    """The run read its rows through the C path (and not the server's JSON)."""
    if not NEEDS_FAST:
        return
    assert FAST_LINE in run.stderr, run.stderr
    assert SERVER_LINE not in run.stderr, run.stderr


# -- random and edge values, as the text PostgreSQL reads (arrays and composites as literals) ----------

Gen = Callable[[random.Random], Any]
TEXT_POOL = [chr(c) for c in range(1, 32)] + list(
    "\"'\\ ,{}()[]:aZ09NUL\u00e9\u4e2d\u2028\u2029\U0001f600\x7f\u0085\ufeff"
)
XML_POOL = [*"abc \t\n\r<>&\"'", "\u00e9", "\U0001f600"]
JSON_WS = ["", " ", "\n", "\t", "\r\n", " \n\t "]
JSON_NUMBERS = ["0", "-0", "17", "-17", "2.50", "0.10", "1E+2", "1e-7", "-3.5e-10", "123456789012345678901234567890",
                "1.000000000000000000000000001", "9007199254740993", "1.7976931348623157e308", "5e-324"]  # fmt: skip
SPECIAL_FLOATS = ["NaN", "Infinity", "-Infinity", "-0", "0", "1e-320", "5e-324", "1e308", "1.7976931348623157e308",
                  "2.2250738585072014e-308", "0.1", "0.30000000000000004", "123456789012345680000", "1e+22",
                  "-1.5"]  # fmt: skip
EPOCH = dt.datetime(1970, 1, 1)
ENUM_LABELS = ["sad", "ok", "happy", "with space", 'quo"te', "\u00e9t\u00e9"]


def maybe(gen: Gen, nulls: float = 0.1) -> Gen:
    return lambda r: None if r.random() < nulls else gen(r)


def text(limit: int, pool: list[str] = TEXT_POOL) -> Gen:
    def gen(r: random.Random) -> str:
        if limit >= 4 and r.random() < 0.03:
            return "NULL"  # a string, not SQL NULL, wherever it goes (array elements included)
        return "".join(r.choice(pool) for _ in range(r.randint(0, limit)))

    return gen


def integer(low: int, high: int) -> Gen:
    return lambda r: str(r.randint(low, high))


def numeric(int_digits: int, scale: int | None) -> Gen:
    def gen(r: random.Random) -> str:
        if scale is None and r.random() < 0.1:
            return r.choice(["NaN", "Infinity", "-Infinity"])
        whole = "".join(r.choice("0123456789") for _ in range(r.randint(1, int_digits)))
        fraction = "".join(r.choice("00123456789") for _ in range(r.randint(0, 20 if scale is None else scale)))
        return r.choice(["", "-"]) + whole + (f".{fraction}" if fraction else "")

    return gen


def money(r: random.Random) -> str:
    cents = r.randint(-(2**63), 2**63 - 1)
    return f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def double(r: random.Random) -> str:
    pick = r.random()
    if pick < 0.2:
        return r.choice(SPECIAL_FLOATS)
    if pick < 0.6:
        return float_text(struct.unpack("<d", r.getrandbits(64).to_bytes(8, "little"))[0])
    return repr(round(r.uniform(-1e6, 1e6), r.randint(0, 8)))


def single(r: random.Random) -> str:
    if r.random() < 0.2:
        return r.choice(["NaN", "Infinity", "-Infinity", "-0", "1e-45", "3.4028235e38", "0.1", "1.17549435e-38"])
    return float_text(struct.unpack("<f", r.getrandbits(32).to_bytes(4, "little"))[0])


def julian(r: random.Random, wide: int) -> int:
    # Mostly 1858..2132; a fifth anywhere from 4714 BC to the type's last day.
    return r.randint(0, wide) if r.random() < 0.2 else r.randint(2_400_000, 2_500_000)


def clock(r: random.Random) -> str:
    return f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{r.randint(0, 999_999):06d}"


def offset(r: random.Random) -> str:
    seconds = f":{r.randint(0, 59):02d}" if r.random() < 0.2 else ""
    return f"{r.choice('+-')}{r.randint(0, 15):02d}:{r.randint(0, 59):02d}{seconds}"


def date(r: random.Random) -> str:
    return "infinity" if r.random() < 0.02 else f"J{julian(r, 2_147_483_493)}"


def timestamp(r: random.Random) -> str:
    return f"J{julian(r, 109_203_527)} {clock(r)}"


def timestamptz(r: random.Random) -> str:
    # A day away from the type's ends, where an offset would carry the instant out of range.
    return f"J{max(10, julian(r, 109_203_500))} {clock(r)}{offset(r)}"


def timetz(r: random.Random) -> str:
    return clock(r) + offset(r)


def interval(r: random.Random) -> str:
    return (
        f"{r.randint(-1000, 1000)} years {r.randint(-11, 11)} mons {r.randint(-1000, 1000)} days "
        f"{r.randint(-1000, 1000)}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{r.randint(0, 999_999):06d}"
    )


def json_text(r: random.Random, depth: int = 0) -> str:
    """A JSON document written the way people do: any whitespace between tokens, escapes or raw text."""
    kind = r.choice(["object", "array", "string", "number", "literal"] if depth < 3 else ["string", "number"])

    def ws() -> str:
        return r.choice(JSON_WS)

    if kind == "object":
        items = [f"{ws()}{json_string(r)}{ws()}:{ws()}{json_text(r, depth + 1)}{ws()}" for _ in range(r.randint(0, 3))]
        return "{" + (",".join(items) or ws()) + "}"
    if kind == "array":
        return "[" + (",".join(ws() + json_text(r, depth + 1) + ws() for _ in range(r.randint(0, 3))) or ws()) + "]"
    if kind == "string":
        return json_string(r)
    if kind == "number":
        return r.choice(JSON_NUMBERS)
    return r.choice(["true", "false", "null"])


def json_string(r: random.Random) -> str:
    return json.dumps(text(8)(r), ensure_ascii=r.random() < 0.5)


def inet(r: random.Random) -> str:
    if r.random() < 0.5:
        return f"{ipaddress.IPv4Address(r.getrandbits(32))}/{r.randint(0, 32)}"
    return f"{ipaddress.IPv6Address(r.getrandbits(128))}/{r.randint(0, 128)}"


def cidr(r: random.Random) -> str:
    return str(ipaddress.ip_network(inet(r), strict=False))


def xml(r: random.Random) -> str:
    body = text(12, XML_POOL)(r).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'<r n="{r.randint(0, 9)}">{body}</r>'


def finite(r: random.Random) -> str:
    value = double(r)
    return value if value not in ("NaN", "Infinity", "-Infinity") else "1.5"


def bounds(r: random.Random, tz: bool) -> str:
    if r.random() < 0.1:
        return r.choice(["empty", "(,)", "[-infinity,infinity]"])
    low, high = sorted(r.randint(-62_000_000_000, 253_000_000_000) for _ in range(2))  # years 5 to 9987
    zone = "+00" if tz else ""
    first, second = (EPOCH + dt.timedelta(seconds=s) for s in (low, high))
    return f'{r.choice("[(")}"{first.isoformat(sep=" ")}{zone}","{second.isoformat(sep=" ")}{zone}"{r.choice(")]")}'


def int4range(r: random.Random) -> str:
    low, high = sorted(r.randint(-(10**9), 10**9) for _ in range(2))
    return r.choice(["empty", f"[{low},{high})", f"({low},{high}]", f"(,{high}]", f"[{low},)", "(,)"])


def bytea(r: random.Random) -> bytes:
    return bytes(r.getrandbits(8) for _ in range(r.randint(0, 40)))


def bytea_text(r: random.Random) -> str:
    return "\\x" + bytea(r).hex()


def quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def array_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, list):
        return "{" + ",".join(array_literal(v) for v in value) + "}"
    return quoted(value)


def array(element: Gen) -> Gen:
    """Arrays of 1 to 3 dimensions, rectangular as PostgreSQL requires (a 1-D one may be empty), with
    some elements NULL."""

    def gen(r: random.Random) -> str:
        dims = r.choice([1, 1, 1, 2, 2, 3])
        shape = [r.randint(0 if dims == 1 else 1, 3) for _ in range(dims)]

        def build(level: int) -> list[Any]:
            if level == dims - 1:
                return [None if r.random() < 0.15 else element(r) for _ in range(shape[level])]
            return [build(level + 1) for _ in range(shape[level])]

        return array_literal(build(0))

    return gen


def composite(fields: list[Gen]) -> Gen:
    def gen(r: random.Random) -> str:
        values = [None if r.random() < 0.15 else f(r) for f in fields]
        return "(" + ",".join("" if v is None else quoted(v) for v in values) + ")"

    return gen


PAIR_FIELDS: list[Gen] = [text(6), numeric(20, None), timestamptz, bytea_text, double, date, interval]

# Column -> (type, generator of a random value). `id` is the key; c_citext joins when the extension exists.
COLUMNS: dict[str, tuple[str, Gen]] = {
    "c_i2": ("smallint", integer(-(2**15), 2**15 - 1)),
    "c_i4": ("integer", integer(-(2**31), 2**31 - 1)),
    "c_i8": ("bigint", integer(-(2**63), 2**63 - 1)),
    "c_num": ("numeric", numeric(40, None)),
    "c_num_ps": ("numeric(40,10)", numeric(30, 10)),
    "c_money": ("money", money),
    "c_f4": ("real", single),
    "c_f8": ("double precision", double),
    "c_bool": ("boolean", lambda r: r.choice(["t", "f"])),
    "c_text": ("text", text(30)),
    "c_varchar": ("varchar(12)", text(12)),
    "c_char": ("char(5)", text(5)),
    "c_citext": ("citext", text(10)),
    "c_uuid": ("uuid", lambda r: str(uuid.UUID(int=r.getrandbits(128)))),
    "c_date": ("date", date),
    "c_time": ("time", clock),
    "c_timetz": ("timetz", timetz),
    "c_ts": ("timestamp", timestamp),
    "c_tstz": ("timestamptz", timestamptz),
    "c_interval": ("interval", interval),
    "c_json": ("json", json_text),
    "c_jsonb": ("jsonb", json_text),
    "c_bytea": ("bytea", bytea),
    "c_inet": ("inet", inet),
    "c_cidr": ("cidr", cidr),
    "c_macaddr": ("macaddr", lambda r: ":".join(f"{r.getrandbits(8):02x}" for _ in range(6))),
    "c_bit": ("bit(8)", lambda r: "".join(r.choice("01") for _ in range(8))),
    "c_varbit": ("varbit", lambda r: "".join(r.choice("01") for _ in range(r.randint(0, 20)))),
    "c_enum": ("mood", lambda r: r.choice(ENUM_LABELS)),
    "c_posint": ("posint", integer(1, 2**31 - 1)),
    "c_label": ("label", text(10)),
    "c_amount": ("amount", numeric(8, 2)),
    "c_xml": ("xml", xml),
    "c_point": ("point", lambda r: f"({finite(r)},{finite(r)})"),
    "c_box": ("box", lambda r: f"({finite(r)},{finite(r)}),({finite(r)},{finite(r)})"),
    "c_int4range": ("int4range", int4range),
    "c_tsrange": ("tsrange", lambda r: bounds(r, tz=False)),
    "c_tstzrange": ("tstzrange", lambda r: bounds(r, tz=True)),
    "c_pair": ("pair", composite(PAIR_FIELDS)),
    "a_i4": ("integer[]", array(integer(-(2**31), 2**31 - 1))),
    "a_i8": ("bigint[]", array(integer(-(2**63), 2**63 - 1))),
    "a_text": ("text[]", array(text(8))),
    "a_num": ("numeric[]", array(numeric(25, None))),
    "a_f4": ("real[]", array(single)),
    "a_f8": ("double precision[]", array(double)),
    "a_bool": ("boolean[]", array(lambda r: r.choice(["t", "f"]))),
    "a_date": ("date[]", array(date)),
    "a_ts": ("timestamp[]", array(timestamp)),
    "a_tstz": ("timestamptz[]", array(timestamptz)),
    "a_uuid": ("uuid[]", array(lambda r: str(uuid.UUID(int=r.getrandbits(128))))),
    "a_json": ("json[]", array(json_text)),
    "a_jsonb": ("jsonb[]", array(json_text)),
    "a_bytea": ("bytea[]", array(bytea_text)),
    "a_enum": ("mood[]", array(lambda r: r.choice(ENUM_LABELS))),
    "a_interval": ("interval[]", array(interval)),
}
TYPES_DDL = [
    "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'with space', 'quo\"te', '\u00e9t\u00e9')",
    "CREATE DOMAIN posint AS integer CHECK (VALUE > 0)",
    "CREATE DOMAIN label AS text",
    "CREATE DOMAIN amount AS numeric(10,2)",
    "CREATE TYPE pair AS (t text, n numeric, ts timestamptz, b bytea, f double precision, d date, iv interval)",
]
ALL_CONTROL = "".join(chr(c) for c in range(1, 32))
# Rows of edge values; a column a row leaves out is NULL there. The first row is NULL everywhere.
EDGE_ROWS: list[dict[str, Any]] = [
    {},
    {  # highs, NaN, infinities, empty values
        "c_i2": "32767",
        "c_i4": "2147483647",
        "c_i8": "9223372036854775807",
        "c_num": "NaN",
        "c_num_ps": "999999999999999999999999999999.9999999999",
        "c_money": "92233720368547758.07",
        "c_f4": "NaN",
        "c_f8": "NaN",
        "c_bool": "t",
        "c_text": ALL_CONTROL,
        "c_varchar": "",
        "c_char": "",
        "c_date": "infinity",
        "c_time": "24:00:00",
        "c_timetz": "24:00:00-15:59",
        "c_ts": "infinity",
        "c_tstz": "infinity",
        "c_interval": "178000000 years",
        "c_json": " null ",
        "c_jsonb": "null",
        "c_bytea": b"",
        "c_inet": "0.0.0.0/0",
        "c_cidr": "::/0",
        "c_bit": "00000000",
        "c_varbit": "",
        "c_enum": 'quo"te',
        "c_posint": "2147483647",
        "c_label": "",
        "c_xml": "<a/>",
        "c_int4range": "empty",
        "c_tsrange": "[-infinity,infinity]",
        "c_tstzrange": "(,)",
        "c_pair": "(,,,,,,)",
        "a_i4": "{}",
        "a_text": "{}",
        "a_num": "{NaN,Infinity,-Infinity}",
        "a_f8": "{NaN,Infinity,-Infinity,-0,1e-320}",
        "a_f4": "{NaN,-0,1e-45}",
        "a_jsonb": '{"null",NULL}',
        "a_json": '{" null ",NULL}',
    },
    {  # lows
        "c_i2": "-32768",
        "c_i4": "-2147483648",
        "c_i8": "-9223372036854775808",
        "c_num": "Infinity",
        "c_num_ps": "-999999999999999999999999999999.9999999999",
        "c_money": "-92233720368547758.08",
        "c_f4": "Infinity",
        "c_f8": "Infinity",
        "c_bool": "f",
        "c_text": "quotes ' \" back\\slash \\\\ tab\t nl\n cr\r \U0001f600 \u2028 \u2029 end",
        "c_date": "-infinity",
        "c_time": "00:00:00",
        "c_timetz": "00:00:00+15:59",
        "c_ts": "-infinity",
        "c_tstz": "-infinity",
        "c_interval": "-178000000 years",
        "c_json": '{\n\t"a" :\r\n [1,\n2.50]\t, "s": "line\\nbreak\\ttab\\r\\u0000", "a": "dup"\r}',
        "c_jsonb": '{"nested": {"deep": [1, {"k": null}, [[]], {}]}, "big": 123456789012345678901234567890, '
        '"exact": 1.000000000000000000000000001, "e": 1E+2, "neg0": -0, "s": "\\u2028\\ud83d\\ude00"}',
        "c_bytea": bytes(range(256)),
        "c_enum": "\u00e9t\u00e9",
        "c_posint": "1",
        "a_i4": "[0:1]={7,8}",
        "a_text": '{"",NULL,"NULL","a\\"b","back\\\\slash","x,y","{}"}',
        "a_i8": "{{-9223372036854775808,NULL},{9223372036854775807,0}}",
    },
    {  # infinities below, BC, the first and last days
        "c_num": "-Infinity",
        "c_num_ps": "123456789012345678901234567890.1000000000",
        "c_f4": "-Infinity",
        "c_f8": "-Infinity",
        "c_text": "",
        "c_date": "0044-03-15 BC",
        "c_ts": "4713-11-24 00:00:00 BC",
        "c_tstz": "0001-12-31 23:59:59.999999+00 BC",
        "c_time": "23:59:59.999999",
        "a_date": "{4713-11-24 BC,5874897-12-31,infinity}",
        "a_ts": "{{4713-11-24 00:00:00 BC,294276-12-31 23:59:59.999999},{infinity,-infinity}}",
    },
    {  # negative zero, tiny and huge values, year 10000 and beyond
        "c_num": "1234567890123456789012345678901234567890.0000000000",
        "c_f4": "-0",
        "c_f8": "-0",
        "c_date": "5874897-12-31",
        "c_ts": "294276-12-31 23:59:59.999999",
        "c_tstz": "294276-12-31 23:59:59.999999+00",
    },
    {"c_num": "0.0000000000000000000000000000000000001000", "c_f4": "1e-45", "c_f8": "1e-320", "c_ts": "10000-01-01"},
    {"c_num": "-0", "c_f4": "3.4028235e38", "c_f8": "1e308", "c_tstz": "10000-01-01 00:00:00.000001+00"},
    {"c_f4": "0.1", "c_f8": "0.1", "c_tstz": "2024-01-15 12:00:00+00"},  # St John's winter: -03:30
    {"c_f4": "1.17549435e-38", "c_f8": "0.30000000000000004", "c_tstz": "2024-07-15 12:00:00+00"},  # summer: -02:30
    {"c_f8": "5e-324", "c_tstz": "2024-03-10 05:29:59.999999+00"},  # a microsecond before St John's DST starts
    {"c_f8": "1.7976931348623157e308", "c_tstz": "2024-03-10 05:30:00+00"},
    {"c_f8": "2.2250738585072014e-308", "c_tstz": "1900-06-01 12:00:00+00"},  # Amsterdam: +00:19:32 (LMT)
    {"c_f8": "123456789012345680000", "c_tstz": "1950-06-01 12:00:00+00"},  # Monrovia: -00:44:30
    {  # the values the session-setting tests look for
        "c_interval": "1 year 2 mons 3 days 04:05:06",
        "c_tsrange": "[2024-02-01 10:00, 2024-03-01)",
        "c_tstzrange": "[2024-02-01 10:00+00, 2024-03-01 00:00+00)",
        "c_pair": '(t,1.50,"2024-02-01 10:00+00","\\\\x00ff",0.30000000000000004,2024-02-01,'
        '"1 year 2 mons 3 days 04:05:06")',
        "a_tstz": "{2024-01-15 12:00+00,2024-07-15 12:00+00,1900-06-01 12:00+00}",
        "a_interval": '{"1 year 2 mons 3 days 04:05:06",NULL}',
        "a_bytea": '{"\\\\x00ff",NULL,"\\\\x"}',
    },
]


def every_type_columns(citext: bool) -> dict[str, tuple[str, Gen]]:
    return {name: spec for name, spec in COLUMNS.items() if citext or name != "c_citext"}


def random_rows(columns: dict[str, tuple[str, Gen]], count: int) -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    return [{name: maybe(gen)(rng) for name, (_, gen) in columns.items()} for _ in range(count)]


# -- the module's tables ------------------------------------------------------------------------------------

WEIRD = 'Weird "Names" \u00fc'
WEIRD_COLUMNS = {
    'Key "K"': "integer PRIMARY KEY",
    "UPPER": "text",
    "with space": "numeric(12,3)",
    "back\\slash": "jsonb",
    'quote"d': "double precision[]",
    "\u00fcn\u00efc\u00f8d\u00e9 \u2713": "timestamptz",
    "dot.ted": "json",
    "tab\there": "text[]",
}


def fill(src: Source, citext: bool) -> int:
    """Every table the scenarios read; the number of rows of every_type."""
    columns = every_type_columns(citext)
    src.sql(*TYPES_DDL)
    src.sql(
        "CREATE TABLE every_type (id integer PRIMARY KEY, "
        + ", ".join(f"{c} {t}" for c, (t, _) in columns.items())
        + ")"
    )
    rows = [{c: v for c, v in row.items() if c in columns} for row in EDGE_ROWS] + random_rows(columns, RANDOM_ROWS)
    names = list(columns)
    with src.conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO every_type (id, {', '.join(names)}) VALUES (%s, {', '.join(['%s'] * len(names))})",
            [[i, *(row.get(c) for c in names)] for i, row in enumerate(rows, 1)],
        )
    rng = random.Random(SEED + 1)
    src.sql(
        "CREATE TABLE inc (id integer PRIMARY KEY, k_int integer, k_tstz timestamptz, k_text text, k_num numeric, "
        "v text)",
        "CREATE TABLE xm (id integer PRIMARY KEY, x bigint NOT NULL DEFAULT txid_current(), v text)",
        "CREATE TABLE tkey (k text, t timestamptz, v jsonb, n numeric, PRIMARY KEY (k, t))",
        "CREATE TABLE nokey (v text, n numeric, d date, j json, a double precision[])",
        "CREATE TABLE jnull (id integer PRIMARY KEY, j json, jb jsonb, ajb jsonb[])",
        "CREATE TABLE numkey (k numeric PRIMARY KEY, v text)",
        "INSERT INTO numkey VALUES (0.29999999999999999991, 'a'), (0.29999999999999999992, 'b'), (0.5, 'c')",
        f"CREATE TABLE {q(WEIRD)} ({', '.join(f'{q(c)} {t}' for c, t in WEIRD_COLUMNS.items())})",
    )
    instants = [
        "2024-01-01 10:00+00",
        "2024-01-01 15:30+05:30",  # the same instant as the one before, written in another zone
        "2024-06-01 00:00:00.000001+00",
        "1900-01-01 00:00+00",
        "0001-01-01 00:00+00 BC",
        "infinity",
        "-infinity",
    ]
    texts = ["a", "B", "a b", "\u00e9", "\x01ctl", "\U0001f600", "", "a\nb", "'"]
    nums = ["1.10", "1.1", "1.100", "-0", "0", "1e-30", "123456789012345678901234567890.000000001", "NaN", "-7.5"]

    def pick(values: list[str]) -> str | None:
        return None if rng.random() < 0.1 else rng.choice(values)

    with src.conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO inc VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (i, pick([str(n) for n in range(1, 9)]), pick(instants), pick(texts), pick(nums), text(6)(rng))
                for i in range(1, 61)
            ],
        )
        cur.executemany(
            "INSERT INTO tkey VALUES (%s, %s, %s, %s)",
            [
                (f"{rng.choice(texts)}{i % 5}", timestamptz(rng), json_text(rng), numeric(30, None)(rng))
                for i in range(40)
            ],
        )
        cur.executemany(
            "INSERT INTO nokey VALUES (%s, %s, %s, %s, %s)",
            [(text(8)(rng), numeric(20, None)(rng), date(rng), json_text(rng), array(double)(rng)) for _ in range(30)]
            + [("dup", "1.0", "2024-01-01", "[]", "{}")] * 3,
        )
        cur.executemany(
            f"INSERT INTO {q(WEIRD)} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (i, text(6)(rng), numeric(9, 3)(rng).lstrip("-")[:9], json_text(rng), array(double)(rng))
                + (maybe(timestamptz)(rng), json_text(rng), array(text(4))(rng))
                for i in range(1, 26)
            ],
        )
    for batch in range(5):  # five transactions: five xmin values, four rows each
        src.sql(f"INSERT INTO xm (id, v) SELECT g, 'v' || g FROM generate_series({batch * 4 + 1}, {batch * 4 + 4}) g")
    src.sql(
        "INSERT INTO jnull VALUES (1, 'null', '{\"k\": null}', NULL), (2, ' null ', 'null', '{null}'), "
        "(3, NULL, NULL, '{NULL}'), (4, '[null]', 'null', NULL), (5, '{\"a\": 1}', '1', '{\"null\",\"[null]\"}'), "
        "(6, '\nnull\n', '{}', NULL)"
    )
    return len(rows)


# -- running both paths and comparing what they wrote ---------------------------------------------------------


@contextlib.contextmanager
def pure_python(on: bool) -> Iterator[None]:
    """DPONE_PURE_PYTHON=1 (the server's JSON, and target-postgres's decoded path) or unset."""
    before = os.environ.get(copy_rows.PURE_PYTHON_ENV)
    if on:
        os.environ[copy_rows.PURE_PYTHON_ENV] = "1"
    else:
        os.environ.pop(copy_rows.PURE_PYTHON_ENV, None)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(copy_rows.PURE_PYTHON_ENV, None)
        else:
            os.environ[copy_rows.PURE_PYTHON_ENV] = before


def _no_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")


def exact(line: bytes, readable: bool = True) -> Any:
    """A JSON line decoded with every number as written, tagged with its kind (1, 1.0 and true differ)."""
    if readable:
        orjson.loads(line)  # the targets' decoder must read it too
    return json.loads(
        line,
        parse_int=lambda s: ("int", int(s)),
        parse_float=lambda s: ("number", str(Decimal(s))),
        parse_constant=_no_constant,
    )


def batch_files(manifest: dict[str, Any], uris: list[str], readable: bool) -> list[Any]:
    """The rows of each file of a BATCH, once the file is checked against its manifest entry."""
    assert [f["uri"] for f in manifest["files"]] == uris
    compression = manifest["compression"]
    files = []
    for tagged in manifest["files"]:
        entry = {k: v[1] if isinstance(v, tuple) else v for k, v in tagged.items()}  # numbers untagged
        data = uri_to_path(entry["uri"]).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()) == (
            entry["size"],
            entry["sha256"],
            entry["md5"],
        ), entry["uri"]
        assert (data[:2] == b"\x1f\x8b") is (compression == "gzip"), entry["uri"]
        lines = (gzip.decompress(data) if compression == "gzip" else data).splitlines()
        assert len(lines) == entry["rows"], entry["uri"]
        files.append([exact(line, readable) for line in lines])
    return files


def view(run: Run, tie: Callable[[dict[str, Any]], Any] | None = None, readable: bool = True) -> list[dict[str, Any]]:
    """The run's messages to compare: no time_extracted, the table version as "V" (one per run), a
    BATCH as its manifest without file names and digests (checked here) and the rows of its files;
    records that tie on `tie` put in a fixed order."""
    messages = [exact(line, readable) for line in run.stdout.splitlines() if line.strip()]
    versions: set[Any] = set()
    for message in messages:
        message.pop("time_extracted", None)
        if "version" in message:
            versions.add(message["version"])
            message["version"] = "V"
        if message["type"] == "STATE":
            for bookmark in message["value"].get("bookmarks", {}).values():
                if "version" in bookmark:
                    versions.add(bookmark["version"])
                    bookmark["version"] = "V"
        if message["type"] == "BATCH":
            manifest = message.pop(MANIFEST_KEY)
            message["manifest"] = batch_files(manifest, message["manifest"], readable)
            message[MANIFEST_KEY] = {k: v for k, v in manifest.items() if k not in ("uri", "files")}
    assert len(versions) <= 1, f"more than one table version in one run: {versions}"
    if tie is not None:
        at = [i for i, m in enumerate(messages) if m["type"] == "RECORD"]
        rows = [messages[i] for i in at]
        ordered = [
            m for _, group in itertools.groupby(rows, key=lambda m: tie(m["record"])) for m in sorted(group, key=repr)
        ]
        for i, message in zip(at, ordered, strict=True):
            messages[i] = message
    return messages


def warnings(run: Run) -> list[str]:
    return [line[line.index("WARNING") :] for line in run.stderr.splitlines() if "WARNING" in line]


def difference(a: Any, b: Any, where: str = "") -> str | None:
    """Where two decoded values first differ, for a readable failure."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{where}.{key}: only in {'reference' if key in a else 'fast'}"
            found = difference(a[key], b[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None if len(a) == len(b) else f"{where}: {len(a)} items (reference) vs {len(b)} (fast)"
    return None if a == b else f"{where}: reference {a!r} vs fast {b!r}"


@dataclasses.dataclass
class Pair:
    reference: Run  # DPONE_PURE_PYTHON=1: the server's row_to_json
    fast: Run  # the C path where it applies


def same(pair: Pair, tie: Callable[[dict[str, Any]], Any] | None = None, readable: bool = True) -> list[dict[str, Any]]:
    """Both runs wrote the same messages (and the same warnings); the reference's, decoded. With
    `readable` false a line need not decode with orjson (numbers past a double's range)."""
    reference, fast = view(pair.reference, tie, readable), view(pair.fast, tie, readable)
    for i, (a, b) in enumerate(zip(reference, fast, strict=False)):
        if a != b:
            pytest.fail(f"message {i} ({a.get('type')}) differs: {difference(a, b)}")
    assert len(reference) == len(fast), (len(reference), len(fast))
    assert warnings(pair.reference) == warnings(pair.fast)
    return reference


def records(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["record"] for m in messages if m["type"] == "RECORD"]


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@dataclasses.dataclass
class Lab:
    """The module's tables (in `src`'s schema), their discovered catalog, and runs of both paths."""

    src: Source
    discovered: dict[str, Any]
    tmp: Path
    citext: bool
    rows: int
    runs: Iterator[int] = dataclasses.field(default_factory=itertools.count)

    def catalog(
        self,
        table: str,
        method: str = "FULL_TABLE",
        key: str | None = None,
        keep: tuple[str, ...] | None = None,
        key_range: KeyRange | None = None,
    ) -> Catalog:
        """The catalog with only `table` selected: its columns in `keep` (all by default), one key range."""
        catalog = Catalog.from_dict(copy.deepcopy(self.discovered))
        entry = catalog.get(self.src.stream(table))
        assert entry is not None, table
        deselect = () if keep is None else tuple(c for c in entry.schema["properties"] if c not in keep)
        catalog = self.src.catalog(table, method, key, deselect, catalog)
        if key_range is not None:
            chosen = catalog.get(self.src.stream(table))
            assert chosen is not None
            chosen.stream_metadata()[RANGE_METADATA] = key_range.to_metadata()
        return catalog

    def pair(
        self,
        catalog: Catalog,
        state: dict[str, Any] | None = None,
        batch: str | None = None,
        batch_size: int = 40,
        **config: Any,
    ) -> Pair:
        """The same read by both paths, the reference first; `batch` (a compression) asks for BATCH files."""
        runs = []
        for pure in (True, False):
            extra = dict(config)
            if batch is not None:
                root = self.tmp / f"batches-{next(self.runs)}"
                extra["batch_config"] = {
                    "encoding": {"format": "jsonl", "compression": batch},
                    "storage": {"root": root.as_uri()},
                    "batch_size": batch_size,
                }
            with pure_python(pure):
                runs.append(ok(self.src.sync(catalog, state, **extra)))
        reference, fast = runs
        assert FAST_LINE not in reference.stderr, "DPONE_PURE_PYTHON=1 must read through the server's JSON"
        return Pair(reference, fast)

    @contextlib.contextmanager
    def setting(self, name: str, value: str) -> Iterator[None]:
        """A session setting of every new connection of the tap's role to the module's database."""
        target = f"ROLE CURRENT_USER IN DATABASE {q(self.src.database)}"
        self.src.sql(f"ALTER {target} SET {name} = '{value}'")
        try:
            yield
        finally:
            self.src.sql(f"ALTER {target} RESET {name}")


def tap_in_process(tmp: Path) -> Callable[..., Run]:
    """The tap's CLI in-process with stdio captured (as tap_runner), leaving `messages` empty where a
    line is past what orjson reads: view() decodes stdout itself."""
    configs = itertools.count()

    def go(cls: type[PostgresTap], config: dict[str, Any], *args: str) -> Run:
        path = tmp / f"tap-config-{next(configs)}.json"
        path.write_bytes(orjson.dumps(config))
        out, err = io.BytesIO(), io.StringIO()
        rc = run_tap_cli(cls, ["--config", str(path), *args], stdout=out, stderr=err)
        try:
            messages = [orjson.loads(line) for line in out.getvalue().splitlines() if line]
        except orjson.JSONDecodeError:
            messages = []
        return Run(rc, out.getvalue(), err.getvalue(), messages)

    return go


@pytest.fixture(scope="module")
def lab(server: Server, database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("fast_rows")
    src = Source(server.dsn(database), server.config(database), tap_in_process(tmp), tmp)
    try:
        try:
            src.sql("CREATE EXTENSION IF NOT EXISTS citext")
            citext = True
        except (psycopg.errors.FeatureNotSupported, psycopg.errors.UndefinedFile):
            citext = False
        rows = fill(src, citext)
        # The tap's array expressions make the planner expect costly rows: with JIT on, each read of
        # every_type would spend 1-2 s compiling (see the report), which says nothing about values.
        src.sql(f"ALTER DATABASE {q(database)} SET jit = off", "ANALYZE")
        yield Lab(src, src.discover().to_dict(), tmp, citext, rows)
    finally:
        src.close()


@pytest.fixture(scope="module")
def every_type(lab: Lab) -> Pair:
    """The all-types table read whole by both paths (a STATE every 50 rows), shared by the scenarios."""
    return lab.pair(lab.catalog("every_type"), state_every_rows=50)


# -- 1. every type, edge and random values ----------------------------------------------------------------


def test_every_type_gives_the_same_records_on_both_paths(lab: Lab, every_type: Pair) -> None:
    messages = same(every_type)
    assert_fast(every_type.fast)
    rows = records(messages)
    assert len(rows) == lab.rows
    columns = every_type_columns(lab.citext)
    assert set(rows[0]) == {"id", *columns}
    for column in columns:  # the data reaches every column: a NULL and some values in each
        assert any(r[column] is None for r in rows), column
        assert len({repr(r[column]) for r in rows if r[column] is not None}) > 1, column
    assert rows[1]["c_text"] == ALL_CONTROL and rows[1]["c_json"] is None and rows[1]["c_jsonb"] is None
    assert "rows held JSON null in a json/jsonb column" in "\n".join(warnings(every_type.reference))


# -- 2. session settings that change how PostgreSQL writes values ------------------------------------------

# (setting, value, text some value must then hold, whether the C path must keep reading the rows)
SETTINGS = [
    ("TimeZone", "Asia/Kolkata", "+05:30", True),
    ("TimeZone", "America/St_Johns", "-02:30", True),
    ("TimeZone", "America/St_Johns", "-03:30", True),
    ("TimeZone", "Europe/Amsterdam", "+00:19:32", True),
    ("TimeZone", "Africa/Monrovia", "-00:44:30", True),
    ("DateStyle", "ISO, DMY", "2024-02-01 10:00:00", True),
    ("DateStyle", "SQL, DMY", "01/02/2024 10:00:00", False),
    ("DateStyle", "German", "01.02.2024 10:00:00", False),
    ("IntervalStyle", "sql_standard", "+1-2 +3 +4:05:06", True),
    ("IntervalStyle", "iso_8601", "P1Y2M3DT4H5M6S", True),
    ("bytea_output", "escape", "\\\\000\\\\377", True),
    # extra_float_digits 0 the tap overrides (test_floats_stay_exact_when_the_role_sets_extra_float_digits_0).
    ("extra_float_digits", "3", ",0.30000000000000004,", True),
]


@pytest.mark.parametrize(("name", "value", "witness", "fast"), SETTINGS, ids=[f"{s[0]}={s[1]}" for s in SETTINGS])
def test_session_settings_give_the_same_records(lab: Lab, name: str, value: str, witness: str, fast: bool) -> None:
    with lab.setting(name, value):
        pair = lab.pair(lab.catalog("every_type"))
    rows = records(same(pair))
    # The setting reached the tap's sessions: a value is written the way it says.
    assert any(witness in s for r in rows for s in strings(r)), f"no value holds {witness!r}"
    if fast:
        assert_fast(pair.fast)


def test_floats_stay_exact_when_the_role_sets_extra_float_digits_0(lab: Lab, every_type: Pair) -> None:
    # The tap sets extra_float_digits itself: at 0 PostgreSQL would round floats to 15 digits (and write
    # 1.79769313486232e+308, past a double's range).
    with lab.setting("extra_float_digits", "0"):
        pair = lab.pair(lab.catalog("every_type", keep=("c_f4", "c_f8", "a_f4", "a_f8", "c_point")))
    expected = [
        {k: r[k] for k in ("id", "c_f4", "c_f8", "a_f4", "a_f8", "c_point")}
        for r in records(view(every_type.reference))
    ]
    for run in (pair.reference, pair.fast):
        assert records(view(run, readable=False)) == expected


# -- 3. replication methods ----------------------------------------------------------------------------------


def test_full_table_resumes_from_a_saved_last_pk_the_same_way(lab: Lab, every_type: Pair) -> None:
    stream = lab.src.stream("every_type")
    saved = [s for s in every_type.reference.states if "last_pk" in s["bookmarks"][stream]]
    assert len(saved) >= 4
    state = saved[2]
    pair = lab.pair(lab.catalog("every_type"), state, state_every_rows=50)
    rows = records(same(pair))
    assert_fast(pair.fast)
    after = state["bookmarks"][stream]["last_pk"][0]
    assert [r["id"] for r in rows] == [("int", i) for i in range(after + 1, lab.rows + 1)]


def test_full_table_resumes_on_a_text_and_timestamptz_key(lab: Lab) -> None:
    catalog = lab.catalog("tkey")
    first = lab.pair(catalog, state_every_rows=7)
    same(first)
    stream = lab.src.stream("tkey")
    saved = [s for s in first.reference.states if "last_pk" in s["bookmarks"][stream]]
    second = lab.pair(catalog, saved[len(saved) // 2], state_every_rows=7)
    assert records(same(second))
    assert_fast(first.fast)
    assert_fast(second.fast)


def test_full_table_resume_after_a_numeric_key_loses_no_row(lab: Lab) -> None:
    # A numeric key goes into the key array as text: as a JSON number it came back a float, and last_pk
    # 0.29999999999999999991 saved as 0.3 made the resumed read skip 0.29999999999999999992.
    catalog = lab.catalog("numkey")
    first = lab.pair(catalog, state_every_rows=1)
    same(first)
    stream = lab.src.stream("numkey")
    after_a = next(s for s in first.reference.states if s["bookmarks"][stream].get("last_pk"))
    second = lab.pair(catalog, after_a, state_every_rows=1)
    assert [r["v"] for r in records(same(second))] == ["b", "c"]


def _numeric_tie(value: Any) -> Any:
    return None if value is None else Decimal(value)


@pytest.mark.parametrize("key", ["k_int", "k_tstz", "k_text", "k_num"])
def test_incremental_from_scratch_and_from_a_bookmark(lab: Lab, key: str) -> None:
    def tie(record: dict[str, Any]) -> Any:
        return _numeric_tie(record[key]) if key == "k_num" else repr(record[key])

    catalog = lab.catalog("inc", "INCREMENTAL", key)
    first = lab.pair(catalog, state_every_rows=7)
    rows = records(same(first, tie))
    assert len(rows) == 60
    stream = lab.src.stream("inc")
    saved = [s for s in first.reference.states if "replication_key_value" in s["bookmarks"][stream]]
    assert len(saved) > 3
    second = lab.pair(catalog, saved[len(saved) // 2], state_every_rows=7)
    assert 0 < len(records(same(second, tie))) < 60
    assert_fast(first.fast)
    assert_fast(second.fast)


def test_xmin_first_and_second_run(lab: Lab) -> None:
    def tie(record: dict[str, Any]) -> Any:
        return record["x"]  # the transaction that wrote the row: its rows tie on xmin

    catalog = lab.catalog("xm", "XMIN")
    first = lab.pair(catalog, state_every_rows=3)
    assert len(records(same(first, tie))) == 20
    lab.src.sql(
        "UPDATE xm SET v = v || '!', x = txid_current() WHERE id % 3 = 0",
        "INSERT INTO xm (id, v) VALUES (21, 'new'), (22, 'new')",
    )
    second = lab.pair(catalog, first.reference.states[-1], state_every_rows=3)
    ids = sorted(r["id"][1] for r in records(same(second, tie)))
    assert {3, 6, 21, 22} <= set(ids)
    assert_fast(first.fast)
    assert_fast(second.fast)


# -- 4. BATCH output -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "none"])
@pytest.mark.parametrize("table", ["every_type", "nokey", "tkey"])
def test_batch_files_hold_the_same_rows(lab: Lab, table: str, compression: str) -> None:
    # every_type has an integer key: read in three key ranges over three connections.
    pair = lab.pair(lab.catalog(table), batch=compression, batch_read_connections=3, batch_size=40)
    messages = same(pair)
    assert not records(messages)
    batches = [m for m in messages if m["type"] == "BATCH"]
    assert batches and all(m["encoding"] == {"format": "jsonl", "compression": compression} for m in batches)
    rows = sum(len(f) for m in batches for f in m["manifest"])
    assert rows == lab.src.scalar(f"SELECT count(*) FROM {q(table)}")
    assert_fast(pair.fast)


# -- 5. key ranges of a partitioned load ---------------------------------------------------------------------

RANGES = [
    KeyRange("id", "integer", "10", "120"),
    KeyRange("id", "integer", None, "40", nulls=True),
    KeyRange("c_text", "text", "A", "z", nulls=True),
    KeyRange("c_tstz", "timestamp with time zone", "1900-01-01 00:00+00", "2100-01-01 00:00+00"),
    KeyRange("c_num", "numeric", "-1000", "1e30"),
]


@pytest.mark.parametrize("key_range", RANGES, ids=[r.describe() for r in RANGES])
def test_key_range_reads_give_the_same_rows(lab: Lab, key_range: KeyRange) -> None:
    pair = lab.pair(lab.catalog("every_type", key_range=key_range))
    messages = same(pair, tie=lambda _: 0)  # a range's rows come in no particular order
    assert not [m for m in messages if m["type"] == "ACTIVATE_VERSION"]
    condition = f"{q(key_range.column)} >= %s" if key_range.low is not None else "TRUE"
    params = [key_range.low] if key_range.low is not None else []
    if key_range.high is not None:
        condition += f" AND {q(key_range.column)} < %s"
        params.append(key_range.high)
    if key_range.nulls:
        condition = f"({condition}) OR {q(key_range.column)} IS NULL"
    expected = lab.src.scalar(f"SELECT count(*) FROM every_type WHERE {condition}", params)
    assert 0 < len(records(messages)) == expected
    assert_fast(pair.fast)


def test_key_range_in_batch_output(lab: Lab) -> None:
    catalog = lab.catalog("every_type", key_range=KeyRange("id", "integer", "50", "250"))
    pair = lab.pair(catalog, batch="gzip", batch_size=30)
    messages = same(pair)
    rows = [row for m in messages if m["type"] == "BATCH" for f in m["manifest"] for row in f]
    assert sorted(r["id"][1] for r in rows) == list(range(50, 250))
    assert_fast(pair.fast)


# -- 6. column selection and names that need quoting ---------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "keep"),
    [
        ("every_type", ("c_text", "c_jsonb", "c_json", "a_f8", "c_pair", "c_tstz", "c_bytea")),
        (WEIRD, None),
        (WEIRD, ("UPPER", 'quote"d', "back\\slash", "tab\there")),
    ],
    ids=["every_type-some", "weird-all", "weird-some"],
)
def test_selected_columns_and_quoted_names(lab: Lab, table: str, keep: tuple[str, ...] | None) -> None:
    pair = lab.pair(lab.catalog(table, keep=keep), state_every_rows=10)
    rows = records(same(pair))
    key = "id" if table == "every_type" else 'Key "K"'
    assert rows and set(rows[0]) == ({key, *keep} if keep else set(WEIRD_COLUMNS))
    assert_fast(pair.fast)


# -- 7. JSON null in json/jsonb: sent as null, counted and warned the same way ---------------------------------


@pytest.mark.parametrize("batch", [None, "gzip"], ids=["records", "batch-ranges"])
def test_json_null_is_counted_and_warned_the_same_way(lab: Lab, batch: str | None) -> None:
    pair = lab.pair(lab.catalog("jnull"), batch=batch, batch_read_connections=2, batch_size=2)
    same(pair)
    stream = lab.src.stream("jnull")
    expected = (
        f"WARNING dpone.taps.postgres.streams: stream {stream}: 4 rows held JSON null in a json/jsonb column; "
        "it is sent as null and lands as SQL NULL"
    )
    assert warnings(pair.reference) == [expected]
    assert_fast(pair.fast)


# -- 8. the round trip into target-postgres -------------------------------------------------------------------

# An array of bytea lands as a JSON array of base64 strings: compared as its shape (every element
# replaced by x) and its elements in order, since SQL has no map over an array that keeps dimensions.
_SHAPE = "regexp_replace({}::text, '\"[^\"]*\"|null', 'x', 'g')"
BYTEA_ARRAY_SOURCE = (
    "CASE WHEN a_bytea IS NULL THEN NULL ELSE jsonb_build_array("
    + _SHAPE.format("to_jsonb(a_bytea::text[])")
    + ", (SELECT coalesce(jsonb_agg(translate(encode(e, 'base64'), E'\\n', '') ORDER BY n), '[]') "
    "FROM unnest(a_bytea) WITH ORDINALITY AS u(e, n))) END"
)
BYTEA_ARRAY_DEST = (
    "CASE WHEN a_bytea IS NULL THEN NULL ELSE jsonb_build_array("
    + _SHAPE.format("a_bytea")
    + ", jsonb_path_query_array(a_bytea, 'strict $.** ? (@.type() != \"array\")')) END"
)
# (source expression, destination expression) per column of every_type: both sides in one type, as
# target-postgres maps them (bigint for integers, double precision for real, timestamptz for timestamp,
# jsonb for json and arrays, base64 text for bytea, text for the types it has no match for).
ROUND_TRIP: dict[str, tuple[str, str]] = {
    "id": ("id::bigint", "id"),
    "c_i2": ("c_i2::bigint", "c_i2"),
    "c_i4": ("c_i4::bigint", "c_i4"),
    "c_i8": ("c_i8", "c_i8"),
    "c_num": ("c_num::text", "c_num::text"),  # as text: the scale (trailing zeros) must match too
    "c_num_ps": ("c_num_ps::text", "c_num_ps::text"),
    "c_money": ("c_money::numeric::text", "c_money::text"),
    "c_f4": ("c_f4::text", "c_f4::real::text"),  # as text: -0 stays -0
    "c_f8": ("c_f8::text", "c_f8::text"),
    "c_bool": ("c_bool", "c_bool"),
    "c_text": ("c_text", "c_text"),
    "c_varchar": ("c_varchar::text", "c_varchar::text"),
    "c_char": ("c_char::text", "c_char::text"),
    "c_citext": ("c_citext::text", "c_citext"),
    "c_uuid": ("c_uuid", "c_uuid"),
    "c_date": ("c_date", "c_date"),
    "c_time": ("c_time", "c_time"),
    "c_timetz": ("c_timetz::text", "c_timetz"),
    "c_ts": ("c_ts", "c_ts AT TIME ZONE 'UTC'"),  # a date-time without offset is read as UTC
    "c_tstz": ("c_tstz", "c_tstz"),
    "c_interval": ("c_interval::text", "c_interval"),
    # jsonb holds no U+0000, which target-postgres strips by default (nul_character_policy); a top-level
    # JSON null is sent as null and lands as SQL NULL (documented, counted and warned).
    "c_json": ("nullif(replace(c_json::text, '\\u0000', '')::jsonb, 'null')", "c_json"),
    "c_jsonb": ("nullif(c_jsonb, 'null')", "c_jsonb"),
    "c_bytea": ("c_bytea", "decode(c_bytea, 'base64')"),
    "c_inet": ("c_inet::text", "c_inet"),
    "c_cidr": ("c_cidr::text", "c_cidr"),
    "c_macaddr": ("c_macaddr::text", "c_macaddr"),
    "c_bit": ("c_bit::text", "c_bit"),
    "c_varbit": ("c_varbit::text", "c_varbit"),
    "c_enum": ("c_enum::text", "c_enum"),
    "c_posint": ("c_posint::bigint", "c_posint"),
    "c_label": ("c_label::text", "c_label"),
    "c_amount": ("c_amount::numeric::text", "c_amount::text"),
    "c_xml": ("c_xml::text", "c_xml"),
    "c_point": ("c_point::text", "c_point"),
    "c_box": ("c_box::text", "c_box"),
    "c_int4range": ("c_int4range::text", "c_int4range"),
    "c_tsrange": ("c_tsrange::text", "c_tsrange"),
    "c_tstzrange": ("c_tstzrange::text", "c_tstzrange"),
    "c_pair": ("c_pair::text", "c_pair"),
    "a_i4": ("to_jsonb(a_i4)", "a_i4"),
    "a_i8": ("to_jsonb(a_i8)", "a_i8"),
    "a_text": ("to_jsonb(a_text)", "a_text"),
    "a_num": ("to_jsonb(a_num::text[])", "a_num"),
    "a_f4": ("to_jsonb(a_f4)", "a_f4"),
    "a_f8": ("to_jsonb(a_f8)", "a_f8"),
    "a_bool": ("to_jsonb(a_bool)", "a_bool"),
    "a_date": ("to_jsonb(a_date)", "a_date"),
    "a_ts": ("to_jsonb(a_ts)", "a_ts"),
    "a_tstz": ("to_jsonb(a_tstz)", "a_tstz"),
    "a_uuid": ("to_jsonb(a_uuid)", "a_uuid"),
    "a_json": ("to_jsonb(a_json)", "a_json"),
    "a_jsonb": ("to_jsonb(a_jsonb)", "a_jsonb"),
    "a_bytea": (BYTEA_ARRAY_SOURCE, BYTEA_ARRAY_DEST),
    "a_enum": ("to_jsonb(a_enum::text[])", "a_enum"),
    "a_interval": ("to_jsonb(a_interval::text[])", "a_interval"),
}


def differing_columns(src: Source, compared: dict[str, tuple[str, str]], dest: str) -> list[tuple[Any, ...]]:
    """Per column, the ids whose source and destination values differ (for a readable failure)."""
    found = []
    for column, (s, d) in compared.items():
        ids = src.rows(
            f"SELECT coalesce(s.id, d.id) FROM (SELECT id, {s} AS v FROM every_type) s "
            f"FULL JOIN (SELECT id, {d} AS v FROM {dest}) d USING (id) WHERE s.v IS DISTINCT FROM d.v"
        )
        if ids:
            found.append((column, [i[0] for i in ids][:10]))
    return found


@pytest.mark.parametrize("pure", [True, False], ids=["pure-python", "compiled"])
def test_round_trip_into_target_postgres(lab: Lab, run_target: Any, pure: bool) -> None:
    """Every column of every_type lands as it left (DPONE_PURE_PYTHON=1 turns off both C paths)."""
    src = lab.src
    compared = {c: e for c, e in ROUND_TRIP.items() if lab.citext or c != "c_citext"}
    assert set(compared) == {"id", *every_type_columns(lab.citext)}  # every column, none left out
    dest = f"{src.schema}_rt_{'pure' if pure else 'compiled'}"
    config = {k: v for k, v in src.config().items() if k != "include"}
    config |= {"default_target_schema": dest, "table_name_map": {src.stream("every_type"): "every_type"}}
    with pure_python(pure):
        assert copy_rows.available() is not pure
        tapped = ok(src.sync(lab.catalog("every_type")))
        loaded = run_target(PostgresTarget, config, tapped.stdout)
    assert loaded.rc == 0, loaded.stderr
    if not pure:
        assert_fast(tapped)
    table = f"{q(dest)}.every_type"
    source_sql = ", ".join(s for s, _ in compared.values())
    dest_sql = ", ".join(d for _, d in compared.values())
    counts = [
        src.scalar(f"SELECT count(*) FROM (SELECT {a} FROM {x} EXCEPT ALL SELECT {b} FROM {y}) AS missing")
        for a, x, b, y in ((source_sql, "every_type", dest_sql, table), (dest_sql, table, source_sql, "every_type"))
    ]
    assert counts == [0, 0], differing_columns(src, compared, table)
    assert src.scalar(f"SELECT count(*) FROM {table}") == lab.rows
