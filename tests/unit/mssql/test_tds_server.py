"""The loopback TDS server (tests/tools/tds_server.py) with the real drivers: msodbcsql18 and FreeTDS.

What a driver puts on the wire is the truth these tests record: where a value is not bound exactly,
the assertion says what is sent and a comment says so.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import socket
import struct
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.tools import tds_wire as w
from tests.tools.tds_server import (
    FREETDS,
    MSODBC18,
    Login,
    ResultSet,
    Rpc,
    Script,
    SqlBatch,
    SqlError,
    TdsServer,
    Transaction,
    driver_libraries,
    odbc_ini_dir,
)

DRIVERS = [MSODBC18, FREETDS]
SQL_SS_TIME2, SQL_SS_TIMESTAMPOFFSET = -154, -155  # pyodbc has SQL_SS_TIME2 but not SQL_SS_TIMESTAMPOFFSET


@pytest.fixture(scope="module")
def odbc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """pyodbc, with ODBCSYSINI at an odbcinst.ini naming both drivers. unixODBC reads its configuration once
    per process: where another test's came first, `connect` names the drivers by their library files."""
    ini = odbc_ini_dir(tmp_path_factory.mktemp("odbc"))
    old = os.environ.get("ODBCSYSINI")
    os.environ["ODBCSYSINI"] = ini
    pyodbc = pytest.importorskip("pyodbc")
    yield pyodbc, ini
    if old is None:
        os.environ.pop("ODBCSYSINI", None)
    else:
        os.environ["ODBCSYSINI"] = old


@pytest.fixture
def server() -> Iterator[TdsServer]:
    with TdsServer() as srv:
        yield srv
        assert srv.errors == []


def connect(odbc: tuple[Any, str], server: TdsServer, driver: str, autocommit: bool = True) -> Any:
    pyodbc = odbc[0]
    if driver not in driver_libraries():
        pytest.skip(f"{driver} is not installed")
    by_path = driver not in pyodbc.drivers()  # another test's odbcinst.ini was read first in this process
    conn = pyodbc.connect(server.connection_string(driver, by_path=by_path), timeout=5, autocommit=autocommit)
    conn.timeout = 5  # a query the server does not answer fails in 5 s (the driver sends an attention)
    return conn


# -- the wire codec on its own ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decl", "value"),
    [
        ("int", -(2**31)),
        ("bigint", 2**63 - 1),
        ("bit", True),
        ("float", -0.0),
        ("decimal(38,10)", Decimal("-9999999999999999999999999999.9999999999")),
        ("decimal(5,2)", Decimal("1.50")),
        ("nvarchar(10)", "𝄞\x00é"),
        ("nvarchar(max)", "x" * 5000),
        ("varbinary(max)", b"\x00\xff" * 10),
        ("varchar(5)", "é"),
        ("date", dt.date(9999, 12, 31)),
        ("time(7)", dt.time(23, 59, 59, 999999)),
        ("datetime2(3)", dt.datetime(2024, 2, 29, 1, 2, 3, 456000)),
        ("datetimeoffset(7)", dt.datetime(1, 1, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=14)))),
        ("uniqueidentifier", uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")),
        ("nvarchar(4)", None),
        ("int", None),
    ],
)
def test_wire_values_round_trip(decl: str, value: Any) -> None:
    ti = w.type_from_declaration(decl)
    param = w.b_varchar("@x") + b"\x00" + w.encode_type_info(ti) + w.encode_value(ti, value)
    (call,) = w.decode_rpc(w.Reader(w.us_varchar("sp_x") + b"\x00\x00" + param))
    (decoded,) = call.params
    assert (decoded.name, decoded.type_info, decoded.value) == ("@x", ti, value)
    if isinstance(value, float):
        assert math.copysign(1, decoded.value) == math.copysign(1, value)


def test_batched_rpcs_and_all_headers_decode() -> None:
    ti = w.type_from_declaration("int")
    one = struct.pack("<HH", 0xFFFF, 12) + b"\x00\x00" + b"\x00\x00" + w.encode_type_info(ti) + w.encode_value(ti, 7)
    headers = struct.pack("<IIH", 22, 18, 2) + struct.pack("<QI", 5, 1)
    r = w.Reader(headers + one + b"\xff" + one + b"\xfe" + one)
    assert w.skip_all_headers(r) == {2: struct.pack("<QI", 5, 1)}
    calls = w.decode_rpc(r)
    assert [(c.proc, c.params[0].value) for c in calls] == [("sp_execute", 7)] * 3


def test_a_request_it_cannot_decode_is_answered_with_an_error_and_recorded(server: TdsServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(w.packets(w.PT_RPC, b"\x16\x00\x00\x00garbage", 4096))
        reply = sock.recv(4096)
    assert reply[0] == w.PT_TABULAR and reply[8] == 0xAA  # an ERROR token
    errors = server.errors
    assert len(errors) == 1 and "truncated message" in errors[0]
    server.clear()


def test_a_responder_must_reach_the_server_process(server: TdsServer) -> None:
    with pytest.raises(TypeError, match="not picklable"):
        server.responder = lambda sql: None


def test_an_attention_is_answered_with_done_attn(server: TdsServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(w.packets(w.PT_ATTENTION, b"", 4096))
        reply = sock.recv(4096)
    assert reply[8:] == w.done(w.DONE_ATTN)
    assert [type(e).__name__ for e in server.events] == ["Attention"]


# -- the drivers -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
def test_login_and_a_scripted_result_set(odbc: tuple[Any, str], server: TdsServer, driver: str) -> None:
    server.responder = Script().on("SELECT 1", ResultSet([("one", "int")], [(1,)]))
    with connect(odbc, server, driver) as conn:
        assert [tuple(r) for r in conn.execute("SELECT 1").fetchall()] == [(1,)]
    (login,) = server.of_type(Login)
    assert (login.user, login.database, login.password_sent) == ("u", "db", True)
    assert login.tds_version == 0x74000004 and login.encryption == 0  # ENCRYPT_OFF; we answer NOT_SUP: no TLS
    assert server.of_type(SqlBatch)[-1].text == "SELECT 1"


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_scripted_result_set_of_every_type(odbc: tuple[Any, str], server: TdsServer, driver: str) -> None:
    columns = [("i", "int"), ("b", "bigint"), ("s", "nvarchar(50)"), ("m", "nvarchar(max)"), ("v", "varbinary(8)"),
               ("d", "decimal(38,10)"), ("t", "bit"), ("f", "float"), ("dt", "datetime2(7)"),
               ("day", "date")]  # fmt: skip
    row = (7, -(2**63), "𝄞é", "x" * 5000, b"\x00\xff", Decimal("-12345678901234567890.1234567890"), True, 5e-324,
           dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.date(1, 1, 1))  # fmt: skip
    server.responder = Script().on("SELECT everything", ResultSet(columns, [row, (None,) * len(row)]))
    with connect(odbc, server, driver) as conn:
        got = conn.execute("SELECT everything").fetchall()
    assert [tuple(r) for r in got] == [row, (None,) * len(row)]


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_scripted_error_raises(odbc: tuple[Any, str], server: TdsServer, driver: str) -> None:
    pyodbc = odbc[0]
    server.responder = Script().on("SELECT * FROM nope", SqlError(208, "Invalid object name 'nope'.", 1, 16))
    with connect(odbc, server, driver) as conn, pytest.raises(pyodbc.Error) as raised:
        conn.execute("SELECT * FROM nope")
    assert raised.value.args[0] == "42S02"  # both drivers map error 208 to this SQLSTATE
    assert "Invalid object name 'nope'." in raised.value.args[1] and "(208)" in raised.value.args[1]


@pytest.mark.parametrize("driver", DRIVERS)
def test_commit_and_rollback_are_transaction_requests(odbc: tuple[Any, str], server: TdsServer, driver: str) -> None:
    def steps() -> list[Any]:
        wanted = [
            e for e in server.events if isinstance(e, Transaction) or (isinstance(e, SqlBatch) and "INSERT" in e.text)
        ]
        return [(e.kind, e.via, e.begin_new) if isinstance(e, Transaction) else e.text for e in wanted]

    with connect(odbc, server, driver, autocommit=False) as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
        conn.execute("INSERT INTO t VALUES (2)")
        conn.rollback()
        assert steps() == [
            ("begin", "tm", False),  # autocommit off at connect: a transaction-manager BEGIN
            "INSERT INTO t VALUES (1)",
            ("commit", "tm", True),  # a COMMIT that opens the next transaction at once (fBeginXact)
            "INSERT INTO t VALUES (2)",
            ("rollback", "tm", True),
        ]
        server.clear()
    # Leaving the block commits (pyodbc's Connection.__exit__): msodbcsql knows nothing ran since the
    # rollback and sends nothing; FreeTDS sends the COMMIT.
    assert steps() == ([] if driver == MSODBC18 else [("commit", "tm", True)])


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_parameterized_select_is_answered_through_its_rpc(
    odbc: tuple[Any, str], server: TdsServer, driver: str
) -> None:
    server.responder = Script().on(
        re.compile(r"FROM users WHERE id ="), ResultSet([("name", "nvarchar(20)")], [("é",)])
    )
    server.param_types = ["int"]
    with connect(odbc, server, driver) as conn:
        assert [tuple(r) for r in conn.execute("SELECT name FROM users WHERE id = ?", 5).fetchall()] == [("é",)]
    (rpc,) = [e for e in server.of_type(Rpc) if "users" in e.statement]
    assert rpc.proc == "sp_prepexec" and rpc.statement == "SELECT name FROM users WHERE id = @P1"
    assert [p.value for p in rpc.bound()] == [5]


def test_implicit_transactions_in_sql_text(odbc: tuple[Any, str], server: TdsServer) -> None:
    with connect(odbc, server, MSODBC18) as conn:
        conn.execute("SET IMPLICIT_TRANSACTIONS ON")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("IF @@TRANCOUNT > 0 COMMIT TRAN")
    assert [(e.kind, e.via) for e in server.of_type(Transaction)] == [("implicit begin", "sql"), ("commit", "sql")]


# -- parameter arrays: what the driver binds -----------------------------------------------------------------


def _tz(hours: int, minutes: int = 0) -> dt.timezone:
    return dt.timezone(dt.timedelta(hours=hours, minutes=minutes))


D = Decimal
# (setinputsizes entry, declared column type, a column of values for 6 rows)
COLUMNS: list[tuple[tuple[int, int, int], str, list[Any]]] = [
    ((3, 38, 10), "decimal(38,10)",  # SQL_DECIMAL
     [D("12345678901234567890.1234567890"), D("-0.0000000001"), D("9999999999999999999999999999.9999999999"), None,
      D("-9999999999999999999999999999.9999999999"), D("0")]),
    ((-5, 0, 0), "bigint", [-(2**63), 2**63 - 1, 0, None, 1, -1]),  # SQL_BIGINT
    ((8, 0, 0), "float", [1e308, 5e-324, -0.0, None, -1e308, 0.1]),  # SQL_DOUBLE
    ((-7, 0, 0), "bit", [True, False, True, None, False, True]),  # SQL_BIT
    ((-9, 4000, 0), "nvarchar(4000)", ["", "a\\x00b", "𝄞😀", None, "é", "x" * 4000]),  # SQL_WVARCHAR
    ((-9, 0, 0), "nvarchar(max)", ["", "a\\x00b", "x" * 4001, None, "𝄞😀", "é"]),
    ((-3, 0, 0), "varbinary(max)", [b"", b"\\x00\\xff" * 5000, b"\\x00", None, b"\\xff", b"abc"]),  # SQL_VARBINARY
    ((93, 27, 7), "datetime2(7)",  # SQL_TYPE_TIMESTAMP
     [dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.datetime(2024, 2, 29, 12, 0, 0, 1),
      None, dt.datetime(2000, 1, 1), dt.datetime(1970, 1, 1, 0, 0, 0, 500000)]),
    ((SQL_SS_TIMESTAMPOFFSET, 34, 7), "datetimeoffset(7)",
     # pyodbc binds a datetime as SQL_C_TYPE_TIMESTAMP and drops its tzinfo (see the test below); a string
     # 'YYYY-MM-DD hh:mm:ss[.fffffff] +hh:mm' is converted by msodbcsql itself and keeps the offset.
     ["0001-01-01 14:00:00.0000000 +14:00", "9999-12-31 11:59:59.9999999 -12:00", "2024-02-29 23:59:59.1234567 +05:45",
      None, "2000-01-01 00:00:00 +00:00", "1970-01-01 00:00:00.5 -00:30"]),
    ((91, 0, 0), "date", [dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(2024, 2, 29), None, dt.date(2000, 1, 1),
                          dt.date(1970, 1, 1)]),  # SQL_TYPE_DATE
    ((SQL_SS_TIME2, 16, 6), "time(6)",
     [dt.time(0, 0), dt.time(23, 59, 59, 999999), dt.time(12, 34, 56, 789012), None, dt.time(0, 0, 0, 1),
      dt.time(1, 2, 3)]),
    ((-11, 0, 0), "uniqueidentifier",  # SQL_GUID
     [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.UUID("01234567-89ab-cdef-0123-456789abcdef"), None,
      uuid.UUID("00000000-0000-0000-0000-000000000001"), uuid.UUID("ffffffff-0000-0000-0000-000000000000")]),
]  # fmt: skip
ROWS = [tuple(values[n] for _, _, values in COLUMNS) for n in range(6)]
INSERT = f"INSERT INTO #t VALUES ({', '.join('?' * len(COLUMNS))})"


def _offset_datetime(text: str) -> dt.datetime:
    """'YYYY-MM-DD hh:mm:ss[.fffffff] +hh:mm' as the aware datetime it names (to the microsecond)."""
    day, clock, offset = text.split(" ")
    seconds, _, fraction = clock.partition(".")
    return dt.datetime.fromisoformat(f"{day}T{seconds}.{(fraction + '000000')[:6]}{offset}")


def _sizes() -> list[tuple[int, int, int]]:
    return [size for size, _, _ in COLUMNS]


# The TYPE_INFO (name, max length in bytes, precision, scale) msodbcsql sends for each setinputsizes entry.
MSODBC_TYPE_INFO = [
    ("DECIMALN", 17, 38, 10), ("INTN", 8, None, None), ("FLTN", 8, None, None), ("BITN", 1, None, None),
    ("NVARCHAR", 8000, None, None), ("NVARCHAR", 0xFFFF, None, None), ("BIGVARBINARY", 0xFFFF, None, None),
    ("DATETIME2N", 0, None, 7), ("DATETIMEOFFSETN", 0, None, 7), ("DATEN", 3, None, None), ("TIMEN", 0, None, 6),
    ("GUID", 16, None, None),
]  # fmt: skip


def test_msodbcsql_binds_parameter_arrays_exactly(odbc: tuple[Any, str], server: TdsServer) -> None:
    server.param_types = [decl for _, decl, _ in COLUMNS]  # what sp_describe_undeclared_parameters answers
    with connect(odbc, server, MSODBC18) as conn:
        cur = conn.cursor()
        cur.fast_executemany = True
        cur.setinputsizes(_sizes())
        cur.executemany(INSERT, ROWS)

    # The requests: describe (pyodbc's SQLDescribeParam), sp_prepare, then one request of 6 batched sp_execute.
    rpcs = [e for e in server.of_type(Rpc) if not e.proc.endswith("sp_datatype_info_100")]
    assert [(e.proc, e.batch_index) for e in rpcs] == [
        ("sp_describe_undeclared_parameters", 0), ("sp_prepare", 0), *[("sp_execute", n) for n in range(6)]
    ]  # fmt: skip
    # sp_prepare declares the temporal parameters without their scale (so as (7)); the values come as TIMEN(6) etc.
    assert rpcs[1].params[1].value == (
        "@P1 decimal(38,10),@P2 bigint,@P3 float,@P4 bit,@P5 nvarchar(4000),@P6 nvarchar(max),@P7 varbinary(max),"
        "@P8 datetime2,@P9 datetimeoffset,@P10 date,@P11 time,@P12 uniqueidentifier"
    )
    assert [e.separator for e in rpcs[2:]] == [None] + [0xFF] * 5  # BatchFlag between the RPCs of one request
    rows = server.rpc_rows("INSERT INTO #t")
    assert len(rows) == len(ROWS)
    for sent, row in zip(ROWS, rows, strict=True):
        assert [(p.type_name, p.max_length, p.precision, p.scale) for p in row] == MSODBC_TYPE_INFO
        expected = [_offset_datetime(v) if isinstance(v, str) and n == 8 else v for n, v in enumerate(sent)]
        assert [p.value for p in row] == expected
        assert all(p.collation == w.DEFAULT_COLLATION for p in row[4:6])  # the server's collation from login
    # What == cannot see: the sign of -0.0, the scale of a decimal, the 7th digit of a datetimeoffset.
    assert math.copysign(1, rows[2][2].value) == -1
    assert all(p.value is None or p.value.as_tuple().exponent == -10 for p in (row[0] for row in rows))
    assert [row[8].ticks for row in rows] == [0, 863999999999, 656991234567, None, 0, 18005000000]  # UTC, 100 ns
    assert [row[7].ticks for row in rows] == [0, 863999999990, 432000000010, None, 0, 5000000]


def test_msodbcsql_drops_the_offset_of_an_aware_datetime(odbc: tuple[Any, str], server: TdsServer) -> None:
    # NOT exact: pyodbc binds a datetime as SQL_C_TYPE_TIMESTAMP whatever its tzinfo, so the driver sends its
    # wall-clock time with offset +00:00: another instant. Send datetimeoffset values as strings.
    server.param_types = ["datetimeoffset(7)"]
    local = dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=_tz(5, 45))
    with connect(odbc, server, MSODBC18) as conn:
        cur = conn.cursor()
        cur.fast_executemany = True
        cur.setinputsizes([(SQL_SS_TIMESTAMPOFFSET, 34, 7)])
        cur.executemany("INSERT INTO #t VALUES (?)", [(local,), (local.isoformat(" "),)])
    (by_datetime,), (by_string,) = server.rpc_params()
    assert by_datetime == local.replace(tzinfo=dt.UTC) != local
    assert by_string == local and by_string.utcoffset() == dt.timedelta(hours=5, minutes=45)


def test_msodbcsql_refuses_an_offset_datetime_outside_utc_range(odbc: tuple[Any, str], server: TdsServer) -> None:
    # 0001-01-01 00:00 +14:00 is 0000-12-31 10:00 UTC: msodbcsql refuses it before sending (as SQL Server would).
    pyodbc = odbc[0]
    with connect(odbc, server, MSODBC18) as conn:
        cur = conn.cursor()
        cur.fast_executemany = True
        cur.setinputsizes([(SQL_SS_TIMESTAMPOFFSET, 34, 7)])
        with pytest.raises(pyodbc.Error, match="22007"):
            cur.executemany("INSERT INTO #t VALUES (?)", [("0001-01-01 00:00:00.0000000 +14:00",)])
    assert server.rpc_rows("INSERT") == []


def test_without_fast_executemany_pyodbc_cuts_fractions(odbc: tuple[Any, str], server: TdsServer) -> None:
    # NOT exact, and not the driver: pyodbc's row-by-row binding cuts a datetime to the precision of
    # SQLGetTypeInfo(SQL_TYPE_TIMESTAMP)'s first row (SQL Server's datetime: 23, so milliseconds) whatever
    # setinputsizes says, and binds a time as SQL_C_TYPE_TIME, which has no fraction at all.
    server.param_types = ["datetime2(7)", "time(6)"]
    with connect(odbc, server, MSODBC18) as conn:
        cur = conn.cursor()
        cur.setinputsizes([(93, 27, 7), (SQL_SS_TIME2, 16, 6)])
        cur.execute("INSERT INTO #t VALUES (?, ?)", dt.datetime(2024, 2, 29, 1, 2, 3, 456789), dt.time(1, 2, 3, 456789))
    assert server.rpc_params() == [(dt.datetime(2024, 2, 29, 1, 2, 3, 456000), dt.time(1, 2, 3))]


def test_freetds_crashes_on_fast_executemany(odbc: tuple[Any, str], server: TdsServer) -> None:
    # FreeTDS 1.3.17 ignores SQL_ATTR_PARAM_BIND_OFFSET_PTR: it reads pyodbc's parameter array at the bare
    # offset (address 0x10) and the process dies with SIGSEGV inside SQLExecute, before sending anything.
    # So it runs in a child process here.
    if FREETDS not in driver_libraries():
        pytest.skip("FreeTDS is not installed")
    script = textwrap.dedent(f"""
        import pyodbc
        conn = pyodbc.connect({server.connection_string(FREETDS)!r}, timeout=5, autocommit=True)
        cur = conn.cursor()
        cur.fast_executemany = True
        cur.setinputsizes([(-5, 0, 0)])
        cur.executemany("INSERT INTO #t VALUES (?)", [(1,), (2,)])
        print("no crash")
    """)
    env = {**os.environ, "ODBCSYSINI": odbc[1]}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == -11, (done.returncode, done.stdout, done.stderr)
    assert len(server.of_type(Login)) == 1 and server.of_type(Rpc) == []


# FreeTDS without fast_executemany (pyodbc binds row by row), one value at a time: what reaches the server.
# EXACT: the value arrives as given. Otherwise the value sent, or the SQLSTATE the driver raised (nothing sent).
EXACT = object()
FREETDS_DTO = [v and _offset_datetime(v) for v in COLUMNS[8][2]]  # FreeTDS refuses the strings (22018)
FREETDS_OUTCOMES: dict[str, tuple[tuple[Any, ...], list[Any]]] = {
    "decimal(38,10)": (("DECIMALN", 17, 38, 10), [EXACT] * 6),
    "bigint": (("INTN", 8, None, None), [EXACT] * 6),
    "float": (("FLTN", 8, None, None), [EXACT] * 6),
    "bit": (("BITN", 1, None, None), [EXACT] * 6),
    "nvarchar(4000)": (("NVARCHAR", 8000, None, None), [EXACT] * 5 + ["HY090"]),  # 4000 characters: refused
    # (max) = column size 0: NVARCHAR sized to each value (not PLP); more than 4000 characters refused.
    "nvarchar(max)": (("NVARCHAR", None, None, None), [EXACT, EXACT, "HY090", EXACT, EXACT, EXACT]),
    # NOT exact: varbinary(max) is sent as BIGVARBINARY(1) holding NO bytes: b"\x00", b"\xff", b"abc" arrive
    # as b"" (silent loss); 10000 bytes are refused.
    "varbinary(max)": (("BIGVARBINARY", 1, None, None), [EXACT, "HY090", b"", EXACT, b"", b""]),
    # NOT exact: 0001-01-01 is sent as day 0xFFFFFF (no valid date: the server records an error); fractions
    # cut to milliseconds (by pyodbc, see above).
    "datetime2(7)": (("DATETIME2N", 0, None, 7), [
        "undecodable", dt.datetime(9999, 12, 31, 23, 59, 59, 999000), dt.datetime(2024, 2, 29, 12), EXACT, EXACT,
        EXACT]),
    # NOT exact: the offset is dropped (the wall-clock time is sent as UTC), milliseconds only, day 0xFFFFFF again;
    # a NULL datetimeoffset is refused.
    "datetimeoffset(7)": (("DATETIMEOFFSETN", 0, None, 7), [
        "undecodable", dt.datetime(9999, 12, 31, 11, 59, 59, 999000, dt.UTC),
        dt.datetime(2024, 2, 29, 23, 59, 59, 123000, dt.UTC), "07006", EXACT,
        dt.datetime(1970, 1, 1, 0, 0, 0, 500000, dt.UTC)]),
    "date": (("DATEN", 3, None, None), ["undecodable", EXACT, EXACT, EXACT, EXACT, EXACT]),
    # NOT exact: TIMEN(7) without its fraction (pyodbc binds SQL_C_TYPE_TIME); a NULL time is refused.
    "time(6)": (("TIMEN", 0, None, 7), [
        EXACT, dt.time(23, 59, 59), dt.time(12, 34, 56), "07006", dt.time(0, 0), EXACT]),
    "uniqueidentifier": (("GUID", 16, None, None), [EXACT] * 6),
}  # fmt: skip


def test_freetds_binding_row_by_row(odbc: tuple[Any, str], server: TdsServer) -> None:
    pyodbc = odbc[0]
    seen: dict[str, tuple[set[tuple[Any, ...]], list[Any]]] = {}
    with connect(odbc, server, FREETDS) as conn:
        cur = conn.cursor()
        for size, decl, values in COLUMNS:
            server.param_types = [decl]
            types: set[tuple[Any, ...]] = set()
            outcomes: list[Any] = []
            for value in FREETDS_DTO if decl.startswith("datetimeoffset") else values:
                before = len(server.rpc_rows())
                cur.setinputsizes([size])
                try:
                    cur.execute("INSERT INTO #t VALUES (?)", value)
                except pyodbc.Error as exc:
                    outcomes.append(exc.args[0])
                    continue
                (sent,) = server.rpc_rows()[before:]
                p = sent[0]
                types.add((p.type_name, None if decl == "nvarchar(max)" else p.max_length, p.precision, p.scale))
                got = p.value
                outcomes.append("undecodable" if isinstance(got, w.Undecodable) else EXACT if got == value else got)
            seen[decl] = (types, outcomes)
        cur.setinputsizes([(SQL_SS_TIMESTAMPOFFSET, 34, 7)])
        with pytest.raises(pyodbc.Error, match="22018"):
            cur.execute("INSERT INTO #t VALUES (?)", "2000-01-01 00:00:00 +00:00")
    assert seen == {decl: ({info}, outcomes) for decl, (info, outcomes) in FREETDS_OUTCOMES.items()}
    assert [e.split(":")[-1].strip() for e in server.errors] == ["date value out of range"] * 3
    server.clear()
