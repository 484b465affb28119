"""TDS 7.4 wire format for the loopback test server (tests/tools/tds_server.py), after MS-TDS.

Packets, the tokens a server sends, TYPE_INFO and values both ways: decoded exactly from what a client
binds (RPC parameters) and encoded for scripted result sets. Values keep what the wire carried: a
decimal its sent scale, a string its supplementary-plane characters, a datetimeoffset its offset; each
parameter keeps its raw value bytes too, so a test can see ticks finer than Python's microseconds
(`Param.ticks`). A well-framed value no Python object can hold (FreeTDS sends 0001-01-01 as day 0xFFFFFF)
decodes to `Undecodable`, and the server records an error for it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import socket
import struct
import uuid
from dataclasses import dataclass
from typing import Any

PT_SQL_BATCH, PT_RPC, PT_TABULAR, PT_ATTENTION, PT_TRANSACTION, PT_LOGIN7, PT_PRELOGIN = 1, 3, 4, 6, 14, 16, 18
DONE_MORE, DONE_ERROR, DONE_INXACT, DONE_COUNT, DONE_ATTN = 0x01, 0x02, 0x04, 0x10, 0x20
TOKEN_DONE, TOKEN_DONEPROC, TOKEN_DONEINPROC = 0xFD, 0xFE, 0xFF
RPC_BATCH_FLAGS = (0x80, 0xFE, 0xFF)  # BatchFlag before TDS 7.2, NoExecFlag, BatchFlag from 7.2
PROC_IDS = {1: "sp_cursor", 2: "sp_cursoropen", 3: "sp_cursorprepare", 4: "sp_cursorexecute",
            5: "sp_cursorprepexec", 6: "sp_cursorunprepare", 7: "sp_cursorfetch", 8: "sp_cursoroption",
            9: "sp_cursorclose", 10: "sp_executesql", 11: "sp_prepare", 12: "sp_execute", 13: "sp_prepexec",
            14: "sp_prepexecrpc", 15: "sp_unprepare"}  # fmt: skip
# SQL_Latin1_General_CP1_CI_AS: LCID 0x0409, flags CI/AI-off/KS/WS, sort id 52.
DEFAULT_COLLATION = bytes.fromhex("0904d00034")

FIXED = {0x1F: ("NULLTYPE", 0), 0x30: ("INT1", 1), 0x32: ("BIT", 1), 0x34: ("INT2", 2), 0x38: ("INT4", 4),
         0x3A: ("DATETIM4", 4), 0x3B: ("FLT4", 4), 0x3C: ("MONEY", 8), 0x3D: ("DATETIME", 8),
         0x3E: ("FLT8", 8), 0x7A: ("MONEY4", 4), 0x7F: ("INT8", 8)}  # fmt: skip
BYTELEN = {0x24: "GUID", 0x26: "INTN", 0x68: "BITN", 0x6D: "FLTN", 0x6E: "MONEYN", 0x6F: "DATETIMN",
           0x6A: "DECIMALN", 0x6C: "NUMERICN", 0x37: "DECIMAL", 0x3F: "NUMERIC"}  # fmt: skip
SCALED = {0x28: "DATEN", 0x29: "TIMEN", 0x2A: "DATETIME2N", 0x2B: "DATETIMEOFFSETN"}
USHORTLEN = {0xA5: "BIGVARBINARY", 0xA7: "BIGVARCHAR", 0xAD: "BIGBINARY", 0xAF: "BIGCHAR", 0xE7: "NVARCHAR",
             0xEF: "NCHAR"}  # fmt: skip
LONGLEN = {0x22: "IMAGE", 0x23: "TEXT", 0x63: "NTEXT"}
CHAR_TYPES = {0xA7, 0xAF, 0xE7, 0xEF, 0x23, 0x63}
NUMERIC_TYPES = {0x6A, 0x6C, 0x37, 0x3F}
PLP_NULL, PLP_UNKNOWN = 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFE
# Collation → code page for (VAR)CHAR values: by sort id when non-zero, else by the LCID's language.
SORT_ID_CP = {30: "cp437", 31: "cp437", 32: "cp437", 33: "cp437", 34: "cp437", 40: "cp850", 41: "cp850",
              42: "cp850", 43: "cp850", 44: "cp850", 49: "cp850", 51: "cp1252", 52: "cp1252", 53: "cp1252",
              54: "cp1252", 55: "cp1252", 56: "cp1252", 57: "cp1252", 58: "cp1252", 59: "cp1252"}  # fmt: skip
LANG_CP = {0x05: "cp1250", 0x0E: "cp1250", 0x15: "cp1250", 0x19: "cp1251", 0x22: "cp1251", 0x08: "cp1253",
           0x1F: "cp1254", 0x0D: "cp1255", 0x01: "cp1256", 0x25: "cp1257", 0x26: "cp1257", 0x27: "cp1257",
           0x2A: "cp1258", 0x1E: "cp874", 0x11: "cp932", 0x12: "cp949"}  # fmt: skip
EPOCH_DATE = dt.date(1, 1, 1)


class Reader:
    """A cursor over a message; reading past its end raises ValueError (never hangs, never pads)."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"truncated message: {n} bytes wanted at offset {self.pos} of {len(self.data)}")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def unpack(self, fmt: str) -> Any:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def u8(self) -> int:
        return int(self.take(1)[0])

    def peek(self) -> int | None:
        return self.data[self.pos] if self.pos < len(self.data) else None

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def b_varchar(self) -> str:
        return utf16(self.take(2 * self.u8()))

    def us_varchar(self) -> str:
        return utf16(self.take(2 * self.unpack("H")))


def utf16(data: bytes) -> str:
    # surrogatepass: a lone surrogate is kept as sent instead of failing; pairs become one character.
    return data.decode("utf-16-le", "surrogatepass")


def b_varchar(text: str) -> bytes:
    data = text.encode("utf-16-le", "surrogatepass")
    return bytes([len(data) // 2]) + data


def us_varchar(text: str) -> bytes:
    data = text.encode("utf-16-le", "surrogatepass")
    return struct.pack("<H", len(data) // 2) + data


def code_page(collation: bytes | None) -> str:
    if not collation:
        return "cp1252"
    info, sort_id = struct.unpack("<IB", collation)
    if info & (1 << 26):  # fUTF8 (SQL Server 2019 _UTF8 collations)
        return "utf-8"
    return SORT_ID_CP.get(sort_id, "cp1252") if sort_id else LANG_CP.get(info & 0x3FF, "cp1252")


@dataclass(frozen=True)
class TypeInfo:
    """A TYPE_INFO: the MS-TDS type name, its byte id, max length (bytes; 0xFFFF means PLP), precision, scale."""

    type_id: int
    length: int = 0
    precision: int | None = None
    scale: int | None = None
    collation: bytes | None = None

    @property
    def name(self) -> str:
        for table in (BYTELEN, SCALED, USHORTLEN, LONGLEN):
            if self.type_id in table:
                return table[self.type_id]
        return FIXED[self.type_id][0] if self.type_id in FIXED else f"0x{self.type_id:02X}"

    @property
    def plp(self) -> bool:
        return self.type_id in USHORTLEN and self.length == 0xFFFF


@dataclass(frozen=True)
class Undecodable:
    """A value the wire carried that no Python value can hold (the server records an error for it too)."""

    type_name: str
    raw: bytes
    reason: str


@dataclass(frozen=True)
class Param:
    """One RPC parameter as bound: name, status (0x01 output), TYPE_INFO, decoded value and its raw bytes."""

    name: str
    type_name: str
    value: Any
    is_output: bool
    status: int
    type_info: TypeInfo
    raw: bytes | None

    @property
    def max_length(self) -> int:
        return self.type_info.length

    @property
    def precision(self) -> int | None:
        return self.type_info.precision

    @property
    def scale(self) -> int | None:
        return self.type_info.scale

    @property
    def collation(self) -> bytes | None:
        return self.type_info.collation

    @property
    def ticks(self) -> int | None:
        """TIMEN/DATETIME2N/DATETIMEOFFSETN: the time of day as sent, in 10**-scale s (finer than `value` keeps)."""
        if self.raw is None or self.type_name not in ("TIMEN", "DATETIME2N", "DATETIMEOFFSETN"):
            return None
        return int.from_bytes(self.raw[: time_length(self.scale or 0)], "little")


@dataclass(frozen=True)
class RpcCall:
    proc: str  # a name, or the well-known name of ProcID (sp_executesql, ...), or "procid:N"
    proc_id: int | None
    option_flags: int
    params: tuple[Param, ...]
    separator: int | None = None  # the batch flag before it (0xFF BatchFlag, 0xFE NoExecFlag, 0x80 before 7.2)


def decode_type_info(r: Reader) -> TypeInfo:
    tid = r.u8()
    if tid in FIXED:
        return TypeInfo(tid, FIXED[tid][1])
    if tid in BYTELEN:
        length = r.u8()
        if tid in NUMERIC_TYPES:
            precision, scale = r.u8(), r.u8()
            return TypeInfo(tid, length, precision, scale)
        return TypeInfo(tid, length)
    if tid in SCALED:
        return TypeInfo(tid, 3) if tid == 0x28 else TypeInfo(tid, 0, scale=r.u8())
    if tid in USHORTLEN:
        length = r.unpack("H")
        return TypeInfo(tid, length, collation=r.take(5) if tid in CHAR_TYPES else None)
    if tid in LONGLEN:
        length = r.unpack("I")
        return TypeInfo(tid, length, collation=r.take(5) if tid in CHAR_TYPES else None)
    raise ValueError(f"unsupported TYPE_INFO type 0x{tid:02X}")


def _read_plp(r: Reader) -> bytes | None:
    total = r.unpack("Q")
    if total == PLP_NULL:
        return None
    chunks = []
    while size := r.unpack("I"):
        chunks.append(r.take(size))
    data = b"".join(chunks)
    if total != PLP_UNKNOWN and total != len(data):
        raise ValueError(f"PLP value announced {total} bytes, sent {len(data)}")
    return data


def read_value_bytes(r: Reader, ti: TypeInfo) -> bytes | None:
    """The value's bytes without its length prefix; None for NULL."""
    if ti.type_id in FIXED:
        return None if ti.type_id == 0x1F else r.take(ti.length)
    if ti.plp:
        return _read_plp(r)
    if ti.type_id in USHORTLEN:
        n = r.unpack("H")
        return None if n == 0xFFFF else r.take(n)
    if ti.type_id in LONGLEN:
        n = r.unpack("I")
        return None if n == 0xFFFFFFFF else r.take(n)
    n = r.u8()
    return None if n == 0 else r.take(n)


def _time(data: bytes, scale: int) -> dt.timedelta:
    # 10**-scale second units; Python keeps microseconds, so finer ticks are floored here (raw keeps them).
    ticks = int.from_bytes(data, "little")
    return dt.timedelta(microseconds=ticks * 10**6 // 10**scale)


def _days(data: bytes) -> dt.date:
    return EPOCH_DATE + dt.timedelta(days=int.from_bytes(data, "little"))


def convert_value(ti: TypeInfo, data: bytes | None) -> Any:
    if data is None:
        return None
    tid, name = ti.type_id, ti.name
    if name in ("INT1", "INT2", "INT4", "INT8", "INTN"):
        return int.from_bytes(data, "little", signed=len(data) > 1)
    if name in ("BIT", "BITN"):
        return data != b"\x00"
    if name in ("FLT4", "FLT8", "FLTN"):
        return struct.unpack("<f" if len(data) == 4 else "<d", data)[0]
    if tid in NUMERIC_TYPES:
        digits = tuple(int(c) for c in str(int.from_bytes(data[1:], "little")))
        return decimal.Decimal((0 if data[0] == 1 else 1, digits, -(ti.scale or 0)))
    if name in ("MONEY", "MONEY4", "MONEYN"):
        if len(data) == 8:  # the high 4 bytes first
            data = data[4:] + data[:4]
        return decimal.Decimal(int.from_bytes(data, "little", signed=True)).scaleb(-4)
    if name in ("DATETIME", "DATETIM4", "DATETIMN"):
        if len(data) == 4:
            days, minutes = struct.unpack("<HH", data)
            return dt.datetime(1900, 1, 1) + dt.timedelta(days=days, minutes=minutes)
        days, ticks = struct.unpack("<iI", data)
        return dt.datetime(1900, 1, 1) + dt.timedelta(days=days, milliseconds=ticks * 10 / 3)
    if name == "GUID":
        return uuid.UUID(bytes_le=data)
    if name == "DATEN":
        return _days(data)
    if name in ("TIMEN", "DATETIME2N", "DATETIMEOFFSETN"):
        scale = ti.scale or 0
        tlen = time_length(scale)
        clock = _time(data[:tlen], scale)
        if name == "TIMEN":
            return (dt.datetime.min + clock).time()
        moment = dt.datetime.combine(_days(data[tlen : tlen + 3]), dt.time()) + clock
        if name == "DATETIME2N":
            return moment
        offset = dt.timezone(dt.timedelta(minutes=struct.unpack("<h", data[tlen + 3 :])[0]))
        try:
            return moment.replace(tzinfo=dt.UTC).astimezone(offset)
        except OverflowError:  # a local time before 0001-01-01 or after 9999-12-31: its UTC instant (raw has all)
            return moment.replace(tzinfo=dt.UTC)
    if name in ("NVARCHAR", "NCHAR", "NTEXT"):
        return utf16(data)
    if name in ("BIGVARCHAR", "BIGCHAR", "TEXT"):
        return data.decode(code_page(ti.collation))
    return bytes(data)


def time_length(scale: int) -> int:
    return 3 if scale <= 2 else 4 if scale <= 4 else 5


def decode_param(r: Reader) -> Param:
    name = r.b_varchar()
    status = r.u8()
    if status & 0x08:
        raise ValueError(f"parameter {name!r} is encrypted (Always Encrypted), not supported")
    ti = decode_type_info(r)
    raw = read_value_bytes(r, ti)
    try:
        value = convert_value(ti, raw)
    except (ValueError, OverflowError) as exc:  # well framed, but no Python value holds it (a day past 9999)
        value = Undecodable(ti.name, raw or b"", str(exc))
    return Param(name, ti.name, value, bool(status & 0x01), status, ti, raw)


def skip_all_headers(r: Reader) -> dict[int, bytes]:
    """ALL_HEADERS (TDS 7.2+): {header type: data}; 2 is the transaction descriptor + request count."""
    start, total = r.pos, r.unpack("I")
    headers = {}
    while r.pos < start + total:
        length, kind = r.unpack("I"), r.unpack("H")
        headers[kind] = r.take(length - 6)
    return headers


def decode_rpc(r: Reader) -> list[RpcCall]:
    """An RPC request after ALL_HEADERS: one or more RPCs separated by batch flags."""
    calls: list[RpcCall] = []
    separator: int | None = None
    while not r.at_end():
        name_len = r.unpack("H")
        if name_len == 0xFFFF:
            proc_id: int | None = r.unpack("H")
            proc = PROC_IDS.get(proc_id or 0, f"procid:{proc_id}")
        else:
            proc_id, proc = None, utf16(r.take(2 * name_len))
        flags = r.unpack("H")
        params = []
        while not r.at_end() and r.peek() not in RPC_BATCH_FLAGS:
            params.append(decode_param(r))
        calls.append(RpcCall(proc, proc_id, flags, tuple(params), separator))
        separator = r.u8() if not r.at_end() else None
    return calls


# -- declared types of scripted result sets ---------------------------------------------------------------

_DECL = re.compile(r"^\s*(\w+)\s*(?:\(\s*(max|\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$", re.IGNORECASE)


def type_from_declaration(decl: str) -> TypeInfo:
    """int, bigint, smallint, tinyint, bit, float, real, date, uniqueidentifier, nvarchar/varchar/varbinary[(n|max)],
    decimal(p,s), time/datetime2/datetimeoffset[(s)]."""
    m = _DECL.match(decl)
    if not m:
        raise ValueError(f"cannot read the column type {decl!r}")
    base, arg, arg2 = m.group(1).lower(), m.group(2), m.group(3)
    size = 0xFFFF if arg and arg.lower() == "max" else int(arg) if arg else None
    simple = {"int": TypeInfo(0x26, 4), "bigint": TypeInfo(0x26, 8), "smallint": TypeInfo(0x26, 2),
              "tinyint": TypeInfo(0x26, 1),
              "bit": TypeInfo(0x68, 1), "float": TypeInfo(0x6D, 8), "real": TypeInfo(0x6D, 4),
              "date": TypeInfo(0x28, 3), "uniqueidentifier": TypeInfo(0x24, 16)}  # fmt: skip
    if base in simple:
        return simple[base]
    if base in ("nvarchar", "nchar"):
        return TypeInfo(0xE7, 0xFFFF if size == 0xFFFF else 2 * (size or 4000), collation=DEFAULT_COLLATION)
    if base in ("varchar", "char"):
        return TypeInfo(0xA7, size or 8000, collation=DEFAULT_COLLATION)
    if base in ("varbinary", "binary"):
        return TypeInfo(0xA5, size or 8000)
    if base in ("decimal", "numeric"):
        precision, scale = size or 18, int(arg2 or 0)
        return TypeInfo(0x6A, 5 if precision <= 9 else 9 if precision <= 19 else 13 if precision <= 28 else 17,
                        precision, scale)  # fmt: skip
    if base in ("time", "datetime2", "datetimeoffset"):
        return TypeInfo(
            {"time": 0x29, "datetime2": 0x2A, "datetimeoffset": 0x2B}[base], 0, scale=7 if size is None else size
        )
    raise ValueError(f"unsupported column type {decl!r}")


# sys.types ids of the declarations above, for sp_describe_undeclared_parameters' answer.
SYSTEM_TYPE_IDS = {"int": 56, "bigint": 127, "smallint": 52, "tinyint": 48, "bit": 104, "float": 62, "real": 59,
                   "date": 40, "uniqueidentifier": 36, "nvarchar": 231, "nchar": 239, "varchar": 167, "char": 175,
                   "varbinary": 165, "binary": 173, "decimal": 106, "numeric": 108, "time": 41, "datetime2": 42,
                   "datetimeoffset": 43}  # fmt: skip


def describe_parameter(ordinal: int, decl: str) -> tuple[Any, ...]:
    """A row of sp_describe_undeclared_parameters for a parameter of declared type `decl`."""
    ti = type_from_declaration(decl)
    base = decl.split("(", maxsplit=1)[0].strip().lower()
    scale = ti.scale or 0
    digits = scale + 1 if scale else 0
    precision = {"int": 10, "bigint": 19, "smallint": 5, "tinyint": 3, "bit": 1, "float": 53, "real": 24,
                 "date": 10, "time": 8 + digits, "datetime2": 19 + digits,
                 "datetimeoffset": 26 + digits}.get(base, ti.precision or 0)  # fmt: skip
    size = {"DATEN": 3, "TIMEN": time_length(scale), "DATETIME2N": time_length(scale) + 3,
            "DATETIMEOFFSETN": time_length(scale) + 5}.get(ti.name, ti.length)  # fmt: skip
    max_length = -1 if ti.plp else size
    name = decl.strip().lower() if "(" in decl or base in ("time", "datetime2", "datetimeoffset") else base
    if base in ("time", "datetime2", "datetimeoffset") and "(" not in name:
        name = f"{base}({scale})"
    fixed = base not in ("nvarchar", "varchar", "varbinary")
    user_type, nothing = SYSTEM_TYPE_IDS[base], (None,) * 8
    return (ordinal, f"@P{ordinal}", SYSTEM_TYPE_IDS[base], name, max_length, precision, scale, user_type, *nothing,
            False, False, fixed, True, False, f"@P{ordinal}", ti.type_id, size)  # fmt: skip


DESCRIBE_COLUMNS = [
    ("parameter_ordinal", "int"), ("name", "nvarchar(128)"), ("suggested_system_type_id", "int"),
    ("suggested_system_type_name", "nvarchar(256)"), ("suggested_max_length", "smallint"),
    ("suggested_precision", "tinyint"), ("suggested_scale", "tinyint"), ("suggested_user_type_id", "int"),
    ("suggested_user_type_database", "nvarchar(128)"), ("suggested_user_type_schema", "nvarchar(128)"),
    ("suggested_user_type_name", "nvarchar(128)"), ("suggested_assembly_qualified_type_name", "nvarchar(4000)"),
    ("suggested_xml_collection_id", "int"), ("suggested_xml_collection_database", "nvarchar(128)"),
    ("suggested_xml_collection_schema", "nvarchar(128)"), ("suggested_xml_collection_name", "nvarchar(128)"),
    ("suggested_is_xml_document", "bit"), ("suggested_is_case_sensitive", "bit"),
    ("suggested_is_fixed_length_type", "bit"), ("suggested_is_input", "bit"), ("suggested_is_output", "bit"),
    ("formal_parameter_name", "nvarchar(128)"), ("suggested_tds_type_id", "int"), ("suggested_tds_length", "int"),
]  # fmt: skip


# sp_datatype_info_100's columns and SQL Server's first rows for the types pyodbc asks about on connect
# (it keeps the PRECISION column: varchar, nvarchar and varbinary lengths and datetime's precision).
DATATYPE_INFO_COLUMNS = [
    (name, "smallint" if decl == "s" else "int" if decl == "i" else decl)
    for name, decl in [
        ("TYPE_NAME", "nvarchar(128)"), ("DATA_TYPE", "s"), ("PRECISION", "i"), ("LITERAL_PREFIX", "varchar(32)"),
        ("LITERAL_SUFFIX", "varchar(32)"), ("CREATE_PARAMS", "varchar(32)"), ("NULLABLE", "s"),
        ("CASE_SENSITIVE", "s"), ("SEARCHABLE", "s"), ("UNSIGNED_ATTRIBUTE", "s"), ("MONEY", "s"),
        ("AUTO_INCREMENT", "s"), ("LOCAL_TYPE_NAME", "nvarchar(128)"), ("MINIMUM_SCALE", "s"),
        ("MAXIMUM_SCALE", "s"), ("SQL_DATA_TYPE", "s"), ("SQL_DATETIME_SUB", "s"), ("NUM_PREC_RADIX", "i"),
        ("INTERVAL_PRECISION", "s"), ("USERTYPE", "s"),
    ]
]  # fmt: skip
DATATYPE_INFO_ROWS: dict[int, list[tuple[Any, ...]]] = {
    12: [("varchar", 12, 8000, "'", "'", "max length", 1, 0, 3, None, 0, None, "varchar", None, None, 12, None,
          None, None, 2)],
    -9: [("nvarchar", -9, 4000, "N'", "'", "max length", 1, 0, 3, None, 0, None, "nvarchar", None, None, -9, None,
          None, None, 0)],
    -3: [("varbinary", -3, 8000, "0x", None, "max length", 1, 0, 2, None, 0, None, "varbinary", None, None, -3,
          None, None, None, 4)],
    93: [("datetime", 93, 23, "'", "'", None, 1, 0, 3, None, 0, None, "datetime", 3, 3, 9, 3, None, None, 12),
         ("datetime2", 93, 27, "'", "'", "scale", 1, 0, 3, None, 0, None, "datetime2", 0, 7, 9, 3, None, None, 0)],
}  # fmt: skip


def encode_type_info(ti: TypeInfo) -> bytes:
    tid = bytes([ti.type_id])
    if ti.type_id in NUMERIC_TYPES:
        return tid + bytes([ti.length, ti.precision or 0, ti.scale or 0])
    if ti.type_id in BYTELEN:
        return tid + bytes([ti.length])
    if ti.type_id in SCALED:
        return tid if ti.type_id == 0x28 else tid + bytes([ti.scale or 0])
    if ti.type_id in USHORTLEN:
        collation = (ti.collation or DEFAULT_COLLATION) if ti.type_id in CHAR_TYPES else b""
        return tid + struct.pack("<H", ti.length) + collation
    raise ValueError(f"cannot encode TYPE_INFO {ti.name}")


def _value_bytes(ti: TypeInfo, value: Any) -> bytes:
    name = ti.name
    if name == "INTN":
        return int(value).to_bytes(ti.length, "little", signed=True)
    if name == "BITN":
        return b"\x01" if value else b"\x00"
    if name == "FLTN":
        return struct.pack("<d" if ti.length == 8 else "<f", value)
    if name == "GUID":
        return uuid.UUID(str(value)).bytes_le
    if ti.type_id in NUMERIC_TYPES:
        exact = decimal.Context(prec=80, rounding=decimal.ROUND_HALF_EVEN)
        units = int(decimal.Decimal(value).scaleb(ti.scale or 0, exact).to_integral_value(context=exact))
        return bytes([0 if units < 0 else 1]) + abs(units).to_bytes(ti.length - 1, "little")
    if name == "DATEN":
        days: int = (value - EPOCH_DATE).days
        return days.to_bytes(3, "little")
    if name in ("TIMEN", "DATETIME2N", "DATETIMEOFFSETN"):
        scale = ti.scale or 0
        offset = 0
        if name == "DATETIMEOFFSETN":
            offset = int(value.utcoffset().total_seconds() // 60)
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        clock = value if name == "TIMEN" else value.time()
        micros: int = ((clock.hour * 60 + clock.minute) * 60 + clock.second) * 10**6 + clock.microsecond
        data: bytes = (micros * 10**scale // 10**6).to_bytes(time_length(scale), "little")
        if name != "TIMEN":
            days = (value.date() - EPOCH_DATE).days
            data += days.to_bytes(3, "little")
        return data + (struct.pack("<h", offset) if name == "DATETIMEOFFSETN" else b"")
    if name in ("NVARCHAR", "NCHAR"):
        return str(value).encode("utf-16-le", "surrogatepass")
    if name in ("BIGVARCHAR", "BIGCHAR"):
        return str(value).encode(code_page(ti.collation))
    return bytes(value)


def encode_value(ti: TypeInfo, value: Any) -> bytes:
    """A value as a ROW or RETURNVALUE carries it (length prefix included; PLP in one chunk)."""
    if ti.plp:
        if value is None:
            return struct.pack("<Q", PLP_NULL)
        data = _value_bytes(ti, value)
        return struct.pack("<QI", len(data), len(data)) + data + (struct.pack("<I", 0) if data else b"")
    if ti.type_id in USHORTLEN:
        if value is None:
            return b"\xff\xff"
        data = _value_bytes(ti, value)
        if len(data) > ti.length:
            raise ValueError(f"{len(data)} bytes do not fit {ti.name}({ti.length})")
        return struct.pack("<H", len(data)) + data
    if value is None:
        return b"\x00"
    data = _value_bytes(ti, value)
    return bytes([len(data)]) + data


# -- tokens ------------------------------------------------------------------------------------------------


def done(status: int = 0, count: int = 0, token: int = TOKEN_DONE, cur_cmd: int = 0) -> bytes:
    return struct.pack("<BHHQ", token, status, cur_cmd, count)


def envchange(kind: int, new: bytes, old: bytes) -> bytes:
    body = bytes([kind]) + new + old
    return struct.pack("<BH", 0xE3, len(body)) + body


def message(number: int, text: str, state: int = 1, severity: int = 16, server: str = "tds_server") -> bytes:
    """ERROR (0xAA) from severity 11 up, else INFO (0xAB)."""
    body = struct.pack("<iBB", number, state, severity) + us_varchar(text) + b_varchar(server) + b_varchar("")
    body += struct.pack("<i", 1)
    return struct.pack("<BH", 0xAA if severity > 10 else 0xAB, len(body)) + body


def loginack(tds_version: int = 0x74000004, prog: str = "Microsoft SQL Server") -> bytes:
    body = b"\x01" + struct.pack(">I", tds_version) + b_varchar(prog) + bytes([16, 0, 0x03, 0xE8])
    return struct.pack("<BH", 0xAD, len(body)) + body


def colmetadata(columns: list[tuple[str, TypeInfo]]) -> bytes:
    out = struct.pack("<BH", 0x81, len(columns))
    for name, ti in columns:
        out += struct.pack("<IH", 0, 0x0001) + encode_type_info(ti) + b_varchar(name)
    return out


def row(types: list[TypeInfo], values: Any) -> bytes:
    values = tuple(values)
    if len(values) != len(types):
        raise ValueError(f"a row of {len(values)} values for {len(types)} columns")
    return b"\xd1" + b"".join(encode_value(ti, v) for ti, v in zip(types, values, strict=True))


def returnstatus(value: int) -> bytes:
    return struct.pack("<Bi", 0x79, value)


def returnvalue(ordinal: int, name: str, ti: TypeInfo, value: Any) -> bytes:
    return (
        struct.pack("<BH", 0xAC, ordinal) + b_varchar(name) + struct.pack("<BIH", 0x01, 0, 0x0001)
        + encode_type_info(ti) + encode_value(ti, value)
    )  # fmt: skip


def packets(ptype: int, payload: bytes, size: int) -> bytes:
    """A message split into packets of at most `size` bytes, the last one flagged end-of-message."""
    step, out = size - 8, []
    chunks = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
    for n, chunk in enumerate(chunks):
        status = 0x01 if n == len(chunks) - 1 else 0x00
        out.append(struct.pack(">BBHHBB", ptype, status, len(chunk) + 8, 0, (n + 1) % 256, 0) + chunk)
    return b"".join(out)


def read_message(sock: socket.socket) -> tuple[int, bytes] | None:
    """One message (its packets up to end-of-message) as (packet type, payload); None once the client closed."""
    parts, ptype = [], 0
    while True:
        header = _recv_exactly(sock, 8)
        if header is None:
            return None
        ptype, status, length = struct.unpack(">BBH", header[:4])
        body = _recv_exactly(sock, length - 8)
        if body is None:
            return None
        parts.append(body)
        if status & 0x01:
            return ptype, b"".join(parts)


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


# -- PRELOGIN and LOGIN7 -----------------------------------------------------------------------------------


def decode_prelogin(payload: bytes) -> dict[int, bytes]:
    """{option: data}: 0 VERSION, 1 ENCRYPTION (0 off, 1 on, 2 not supported, 3 required), 4 MARS, ..."""
    r, options = Reader(payload), {}
    while (option := r.u8()) != 0xFF:
        offset, length = struct.unpack(">HH", r.take(4))
        options[option] = payload[offset : offset + length]
    return options


def prelogin_response() -> bytes:
    """VERSION 16.0.1000, ENCRYPTION 2 (not supported: no TLS at all), INSTOPT "", THREADID (none), MARS off."""
    options = [(0, bytes([16, 0, 0x03, 0xE8, 0, 0])), (1, b"\x02"), (2, b"\x00"), (3, b""), (4, b"\x00")]
    offset, head, body = 5 * len(options) + 1, b"", b""
    for option, data in options:
        head += struct.pack(">BHH", option, offset + len(body), len(data))
        body += data
    return head + b"\xff" + body


def decode_login7(payload: bytes) -> dict[str, Any]:
    """LOGIN7's fields (the password is not decoded: only whether one was sent)."""
    _, tds_version, packet_size = struct.unpack_from("<III", payload)

    def text(at: int) -> str:
        offset, chars = struct.unpack_from("<HH", payload, at)
        return utf16(payload[offset : offset + 2 * chars])

    features: list[int] = []
    ext_offset, ext_len = struct.unpack_from("<HH", payload, 56)
    if payload[27] & 0x10 and ext_len >= 4:  # fExtension: ibExtension points at the FeatureExt offset
        r = Reader(payload, struct.unpack_from("<I", payload, ext_offset)[0])
        while (feature := r.u8()) != 0xFF:
            features.append(feature)
            r.take(r.unpack("I"))
    return {"host_name": text(36), "user": text(40), "password_sent": struct.unpack_from("<H", payload, 46)[0] > 0,
            "app_name": text(48), "server_name": text(52), "library": text(60), "language": text(64),
            "database": text(68), "tds_version": tds_version, "packet_size": packet_size,
            "features": tuple(features)}  # fmt: skip


def login_response(database: str, packet_size: int, feature_ack: bool) -> bytes:
    """What SQL Server answers a LOGIN7 with: database, collation, language, LOGINACK, packet size, DONE."""
    size = b_varchar(str(packet_size))
    out = envchange(1, b_varchar(database), b_varchar("master"))
    out += message(5701, f"Changed database context to '{database}'.", 2, 0)
    out += envchange(7, bytes([5]) + DEFAULT_COLLATION, b"\x00")
    out += envchange(2, b_varchar("us_english"), b_varchar(""))
    out += message(5703, "Changed language setting to us_english.", 1, 0)
    out += loginack() + (b"\xae\xff" if feature_ack else b"")  # FEATUREEXTACK acknowledging no feature
    return out + envchange(4, size, size) + done()
