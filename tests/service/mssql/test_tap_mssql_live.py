"""tap-mssql against a real SQL Server you give it: DPONE_TEST_MSSQL_DSN, an ODBC connection string whose user
may create and drop schemas and tables (DRIVER may be left out: the tap's default driver is used).
Each test works in a schema of its own and drops it.

    export DPONE_TEST_MSSQL_DSN='SERVER=tcp:localhost,1433;UID=sa;PWD=...;DATABASE=tempdb;TrustServerCertificate=yes'
    pytest tests/service/mssql/test_tap_mssql_live.py

The shared tap suite (tests/kit/tap_suite.py) runs on two tables; then every type of the type map is read
back and compared by value (an instant, a number, the bytes), and a Change Tracking round is run where
the user may enable change tracking on the database.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import struct
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dpone.taps.mssql.tap import MssqlTap
from dpone_drivers import mssql
from dpone_protocol.config import Redactor
from tests.kit.kit import TapKit
from tests.kit.tap_suite import TapSuite, ok, records, select

DSN = os.environ.get("DPONE_TEST_MSSQL_DSN", "")

pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(not DSN, reason="DPONE_TEST_MSSQL_DSN is not set: no live SQL Server to read"),
]


class Database:
    """A connection of the test's own and a schema it drops at the end."""

    def __init__(self) -> None:
        self.conn = mssql.connect({"odbc_connection_string": DSN}, Redactor(), "dpone-tests", autocommit=True)
        self.schema = f"dpone_{uuid.uuid4().hex[:12]}"
        self.sql(f"CREATE SCHEMA [{self.schema}]")
        self.tables: list[str] = []

    def sql(self, statement: str, *params: Any) -> None:
        self.conn.execute(statement, *params)

    def table(self, name: str, columns: str) -> str:
        self.sql(f"CREATE TABLE [{self.schema}].[{name}] ({columns})")
        self.tables.append(name)
        return f"{self.schema}-{name}"

    def config(self, **extra: Any) -> dict[str, Any]:
        return {"odbc_connection_string": DSN, "include": [f"{self.schema}.*"], **extra}

    def drop(self) -> None:
        for name in reversed(self.tables):
            self.sql(f"DROP TABLE IF EXISTS [{self.schema}].[{name}]")
        self.sql(f"DROP SCHEMA IF EXISTS [{self.schema}]")
        self.conn.close()


@pytest.fixture
def db() -> Iterator[Database]:
    database = Database()
    try:
        yield database
    finally:
        database.drop()


class TestTapMssql(TapSuite):
    @pytest.fixture
    def tap_kit(self, db: Database, tmp_path: Path) -> TapKit:
        streams = [
            db.table(name, "id INT PRIMARY KEY, name NVARCHAR(100), updated_at DATETIMEOFFSET(0)")
            for name in ("items", "others")
        ]

        def put_rows(stream: str, rows: list[dict[str, Any]]) -> None:
            table = stream.removeprefix(f"{db.schema}-")
            insert = (
                f"INSERT INTO [{db.schema}].[{table}] (id, name, updated_at) "
                "VALUES (?, ?, CAST(? AS DATETIMEOFFSET(0)))"
            )
            cursor = db.conn.cursor()
            cursor.executemany(insert, [(r["id"], r["name"], r["updated_at"]) for r in rows])

        return TapKit(
            tap=MssqlTap,
            config=db.config(),
            streams=(streams[0], streams[1]),
            put_rows=put_rows,
            workdir=tmp_path,
            resumes_full_table=True,
        )


EVERY_TYPE = """
id INT PRIMARY KEY, ti TINYINT, si SMALLINT, bi BIGINT, b BIT, d DECIMAL(38, 10), n NUMERIC(5, 2), m MONEY,
sm SMALLMONEY, f FLOAT, r REAL, c CHAR(4), vc VARCHAR(20), nc NCHAR(3), nvc NVARCHAR(MAX), t TEXT, nt NTEXT,
x XML, dd DATE, tm TIME(7), dt DATETIME, dt2 DATETIME2(7), sdt SMALLDATETIME, dto DATETIMEOFFSET(7),
u UNIQUEIDENTIFIER, bin BINARY(4), vb VARBINARY(MAX), img IMAGE, rv ROWVERSION, h HIERARCHYID,
g GEOMETRY, gg GEOGRAPHY, sv SQL_VARIANT, [a.b] INT
"""
EVERY_VALUE = """
INSERT INTO [{schema}].[every_type] (id, ti, si, bi, b, d, n, m, sm, f, r, c, vc, nc, nvc, t, nt, x, dd, tm, dt, dt2,
  sdt, dto, u, bin, vb, img, h, g, gg, sv, [a.b])
VALUES (1, 255, -32768, -9223372036854775808, 1, -1234567890123456789012345678.0123456789, 0.50,
  922337203685477.5807, -214748.3648, 0.1, 3.4e38, 'ab', 'tab	"q" \\ /', N'é😀', N'line
two', 'text', N'ntext', '<a b="1"/>', '0001-01-01', '23:59:59.9999999', '2024-02-29T12:34:56.997',
  '9999-12-31T23:59:59.9999999', '2024-01-01T10:30:00', '2024-06-30T23:59:59.1234567+05:30',
  '6F9619FF-8B86-D011-B42D-00C04FC964FF', 0x000102FF, 0x00FF, 0x01, '/1/2/', 'POINT (1 2)',
  geography::Point(47.65, -122.34, 4326), CAST(42 AS INT), 7)
"""


@pytest.mark.certifies("types", connector="tap-mssql")
def test_every_type_arrives_with_its_value(db: Database, tmp_path: Path) -> None:
    stream = db.table("every_type", EVERY_TYPE)
    db.sql(EVERY_VALUE.format(schema=db.schema))
    kit = TapKit(tap=MssqlTap, config=db.config(), streams=(stream, stream), put_rows=lambda *_: None, workdir=tmp_path)
    run = ok(kit.sync(select(kit.discover(), stream)))
    (row,) = records(run)
    assert row["ti"] == 255 and row["si"] == -32768 and row["bi"] == -(2**63) and row["b"] is True
    assert row["d"] == "-1234567890123456789012345678.0123456789" and row["n"] == "0.50"
    assert (row["m"], row["sm"]) == ("922337203685477.5807", "-214748.3648")
    assert row["f"] == 0.1  # CONVERT style 3: the double itself
    assert struct.pack("<f", row["r"]) == struct.pack("<f", 3.4e38)  # the same single-precision value
    assert row["c"] == "ab  " and row["vc"] == 'tab\t"q" \\ /' and row["nc"] == "é😀" and row["nvc"] == "line\ntwo"
    assert (row["t"], row["nt"], row["x"]) == ("text", "ntext", '<a b="1"/>')
    assert row["dd"] == "0001-01-01" and row["tm"].startswith("23:59:59.9999999")
    assert dt.datetime.fromisoformat(row["dt"]) == dt.datetime(2024, 2, 29, 12, 34, 56, 997000)
    assert dt.datetime.fromisoformat(row["dt2"][:26]) == dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
    assert dt.datetime.fromisoformat(row["sdt"]) == dt.datetime(2024, 1, 1, 10, 30)
    offset = dt.timezone(dt.timedelta(hours=5, minutes=30))
    assert dt.datetime.fromisoformat(row["dto"][:26] + row["dto"][27:]) == dt.datetime(
        2024, 6, 30, 23, 59, 59, 123456, offset
    )
    assert row["u"].upper() == "6F9619FF-8B86-D011-B42D-00C04FC964FF"
    assert [base64.b64decode(row[k]) for k in ("bin", "vb", "img")] == [b"\x00\x01\x02\xff", b"\x00\xff", b"\x01"]
    assert isinstance(row["rv"], int) and row["rv"] > 0
    assert (row["h"], row["g"], row["sv"], row["a.b"]) == ("/1/2/", "POINT (1 2)", "42", 7)
    assert row["gg"].startswith("POINT (-122.34 47.65")
    assert Decimal(row["d"]) == Decimal("-1234567890123456789012345678.0123456789")


@pytest.mark.certifies("replication_method:CHANGE_TRACKING", connector="tap-mssql")
def test_change_tracking_round(db: Database, tmp_path: Path) -> None:
    stream = db.table("tracked", "id INT PRIMARY KEY, name NVARCHAR(20)")
    enabled = db.conn.execute("SELECT COUNT(*) FROM sys.change_tracking_databases WHERE database_id = DB_ID()")
    try:
        if not enabled.fetchone()[0]:
            db.sql("ALTER DATABASE CURRENT SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 1 DAYS, AUTO_CLEANUP = ON)")
        db.sql(f"ALTER TABLE [{db.schema}].[tracked] ENABLE CHANGE_TRACKING")
    except Exception as exc:  # the user may not alter the database
        pytest.skip(f"cannot enable change tracking here: {exc}")
    db.sql(f"INSERT INTO [{db.schema}].[tracked] VALUES (1, N'a'), (2, N'b')")
    kit = TapKit(tap=MssqlTap, config=db.config(), streams=(stream, stream), put_rows=lambda *_: None, workdir=tmp_path)
    catalog = select(kit.discover(), stream, "CHANGE_TRACKING")
    first = ok(kit.sync(catalog))
    assert sorted(r["id"] for r in records(first)) == [1, 2]
    db.sql(f"UPDATE [{db.schema}].[tracked] SET name = N'bb' WHERE id = 2")
    db.sql(f"DELETE FROM [{db.schema}].[tracked] WHERE id = 1")
    second = ok(kit.sync(catalog, first.states[-1]))
    by_id = {r["id"]: r for r in records(second)}
    assert by_id[2]["name"] == "bb" and by_id[2]["_sdc_deleted_at"] is None
    assert set(by_id[1]) == {"id", "_sdc_deleted_at"} and by_id[1]["_sdc_deleted_at"]
    assert (
        second.states[-1]["bookmarks"][stream]["change_version"]
        > first.states[-1]["bookmarks"][stream]["change_version"]
    )
    db.sql(f"ALTER TABLE [{db.schema}].[tracked] DISABLE CHANGE_TRACKING")
