"""target-mssql through the real Microsoft ODBC Driver 18, to a TDS endpoint that decodes the wire.

No SQL Server runs here. tests/tools/tds_server.py logs the real driver in over loopback and
records every request with its parameters decoded from TDS: so what these tests compare is what a
server would have received, bound by the driver from the parameter arrays the target built.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dpone.targets.framework.target_cli import run
from dpone.targets.mssql.target import MssqlTarget
from tests.tools.tds_server import ResultSet, Rpc, Script, SqlBatch, SqlError, TdsServer

SCHEMA = {
    "type": "SCHEMA",
    "stream": "edge",
    "key_properties": ["id"],
    "schema": {
        "properties": {
            "id": {"type": "integer"},
            "d30": {"type": ["string", "null"], "format": "singer.decimal", "precision": 38, "scale": 8},
            "f": {"type": ["number", "null"], "format": "double"},
            "ok": {"type": ["boolean", "null"]},
            "s": {"type": ["string", "null"]},
            "s10": {"type": ["string", "null"], "maxLength": 10},
            "ts": {"type": ["string", "null"], "format": "date-time"},
            "day": {"type": ["string", "null"], "format": "date"},
            "tm": {"type": ["string", "null"], "format": "time"},
            "u": {"type": ["string", "null"], "format": "uuid"},
            "bin": {"type": ["string", "null"], "contentEncoding": "base64"},
            "doc": {"type": ["object", "null"]},
        }
    },
}
# Written by hand: numbers as a source writes them (json.dumps would go through floats).
RECORDS = [
    '{"id":-9223372036854775808,"d30":"123456789012345678901234567890.12345678","f":1e308,"ok":true,'
    '"s":"a\\u0000b","s10":"\\ud834\\udd1e\\ud83d\\ude00\\u00e9","ts":"0001-01-01T00:00:00Z","day":"0001-01-01",'
    '"tm":"00:00:00","u":"6F9619FF-8B86-D011-B42D-00C04FC964FF","bin":"","doc":{"n":123456789012345678901234567890.5}}',
    '{"id":9223372036854775807,"d30":"-0.00000001","f":5e-324,"ok":false,"s":"' + "x" * 4001 + '",'
    '"s10":"","ts":"9999-12-31T23:59:59.9999999+14:00","day":"9999-12-31","tm":"23:59:59.999999",'
    '"u":"00000000-0000-0000-0000-000000000000","bin":"AP8A/w==","doc":{"a":[1,"two",null]}}',
    '{"id":0,"d30":null,"f":-0.0,"ok":null,"s":"","s10":null,"ts":"2024-02-29T12:34:56.123456-12:00",'
    '"day":null,"tm":null,"u":null,"bin":null,"doc":null}',
]
NO_OFFSET = dt.timezone(dt.timedelta(0))


def new_tables() -> Script:
    """A database whose schema exists and where no table does: the target creates each."""
    described = [("name", "nvarchar"), ("type", "nvarchar"), ("max_length", "int")]
    described += [("precision", "int"), ("scale", "int"), ("is_nullable", "bit")]
    return (
        Script()
        .on(re.compile(r"FROM sys\.schemas"), ResultSet([("one", "int")], [(1,)]))
        .on(re.compile(r"FROM sys\.columns"), ResultSet(described, []))
    )


@pytest.fixture(scope="module")
def server() -> Iterator[TdsServer]:
    with TdsServer(responder=new_tables()) as running:
        yield running


def run_target(server: TdsServer, tmp_path: Path, lines: list[str], **config: Any) -> tuple[int, str, str]:
    settings = {
        "host": "127.0.0.1",
        "port": server.port,
        "user": "u",
        "password": "p4ss-w0rd",
        "database": "db",
        "encrypt": "no",
        "add_record_metadata": False,
        **config,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(settings))
    source = [json.dumps(SCHEMA).encode() + b"\n"] + [
        b'{"type":"RECORD","stream":"edge","record":' + line.encode() + b"}\n" for line in lines
    ]
    out, err = io.BytesIO(), io.StringIO()
    rc = run(MssqlTarget, ["--config", str(path)], stdin=iter(source), stdout=out, stderr=err)  # type: ignore[arg-type]
    return rc, out.getvalue().decode(), err.getvalue()


def test_every_edge_value_reaches_the_wire_exactly(server: TdsServer, tmp_path: Path) -> None:
    server.clear()
    rc, _, err = run_target(server, tmp_path, RECORDS)
    assert rc == 0, err
    assert server.errors == []
    rows = server.rpc_rows("INSERT INTO [#_dpone_stage_edge]")
    assert len(rows) == 3
    by_id = {row[0].value: row for row in rows}
    low, high, mixed = by_id[-(2**63)], by_id[2**63 - 1], by_id[0]
    assert [p.type_name for p in high] == [
        "INTN",
        "DECIMALN",
        "FLTN",
        "BITN",
        "NVARCHAR",  # (max): 4,001 characters, streamed
        "NVARCHAR",  # nvarchar(10)
        "DATETIMEOFFSETN",
        "DATEN",
        "TIMEN",
        "GUID",
        "BIGVARBINARY",
        "NVARCHAR",
    ]
    assert high[5].max_length == 20 and high[6].scale == 7 and high[8].scale == 7
    assert low[1].precision == 38 and low[1].scale == 8

    assert low[1].value == Decimal("123456789012345678901234567890.12345678")
    assert high[1].value == Decimal("-0.00000001")
    assert mixed[1].value is None
    assert low[2].value == 1e308 and high[2].value == 5e-324
    assert str(mixed[2].value) == "-0.0", "the sign of zero is kept"
    assert (low[3].value, high[3].value, mixed[3].value) == (True, False, None)
    assert low[4].value == "a\x00b" and high[4].value == "x" * 4001 and mixed[4].value == ""
    assert low[5].value == "𝄞😀é" and high[5].value == ""
    assert low[9].value == uuid.UUID("6f9619ff-8b86-d011-b42d-00c04fc964ff") and mixed[9].value is None
    assert low[10].value in (b"", "") and high[10].value == b"\x00\xff\x00\xff"
    assert json.loads(low[11].value) == {"n": 123456789012345678901234567890.5}
    assert '"n":123456789012345678901234567890.5' in low[11].value, "every digit of a number in JSON"


def test_date_times_keep_their_offset_and_every_fraction_digit(server: TdsServer, tmp_path: Path) -> None:
    server.clear()
    rc, _, err = run_target(server, tmp_path, RECORDS)
    assert rc == 0, err
    by_id = {row[0].value: row for row in server.rpc_rows("INSERT INTO [#_dpone_stage_edge]")}
    low, high, mixed = by_id[-(2**63)], by_id[2**63 - 1], by_id[0]
    assert low[6].value == dt.datetime(1, 1, 1, tzinfo=NO_OFFSET)
    plus14 = dt.timezone(dt.timedelta(hours=14))
    assert high[6].value == dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=plus14)
    assert high[6].ticks % 10 == 9, "the 100 ns digit is sent too"
    minus12 = dt.timezone(dt.timedelta(hours=-12))
    assert mixed[6].value == dt.datetime(2024, 2, 29, 12, 34, 56, 123456, tzinfo=minus12)
    assert low[7].value == dt.date(1, 1, 1) and high[7].value == dt.date(9999, 12, 31)
    assert low[8].value == dt.time(0, 0) and high[8].value == dt.time(23, 59, 59, 999999)


def test_the_batch_moves_in_one_transaction_after_staging(server: TdsServer, tmp_path: Path) -> None:
    server.clear()
    rc, _, err = run_target(server, tmp_path, RECORDS[:1])
    assert rc == 0, err
    batches = [e.text for e in server.events if isinstance(e, SqlBatch)]
    begin = batches.index("BEGIN TRANSACTION")
    assert batches[begin + 1].startswith("CREATE TABLE [dbo].[edge] (")
    assert batches[begin + 2].startswith("INSERT INTO [dbo].[edge] (")
    assert batches[begin + 3] == "COMMIT TRANSACTION"
    inserts = [e for e in server.events if isinstance(e, Rpc) and "#_dpone_stage_edge" in e.statement]
    assert inserts and all(
        server.events.index(i)
        < server.events.index(
            next(e for e in server.events if isinstance(e, SqlBatch) and e.text == "BEGIN TRANSACTION")
        )
        for i in inserts
    )


def test_a_refused_move_rolls_back_and_emits_no_state(tmp_path: Path) -> None:
    refused = SqlError(515, "Cannot insert the value NULL into column 'id'.")
    script = new_tables().on(re.compile(r"^INSERT INTO \[dbo\]"), refused)
    with TdsServer(responder=script) as server:
        state = '{"type":"STATE","value":{"n":1}}'
        settings = {"host": "127.0.0.1", "port": server.port, "user": "u", "password": "p4ss-w0rd", "encrypt": "no"}
        path = tmp_path / "config.json"
        path.write_text(json.dumps(settings))
        source = [json.dumps(SCHEMA).encode() + b"\n"] + [
            b'{"type":"RECORD","stream":"edge","record":' + RECORDS[0].encode() + b"}\n",
            state.encode() + b"\n",
        ]
        out, err = io.BytesIO(), io.StringIO()
        rc = run(MssqlTarget, ["--config", str(path)], stdin=iter(source), stdout=out, stderr=err)  # type: ignore[arg-type]
        batches = [e.text for e in server.events if isinstance(e, SqlBatch)]
    assert rc == 65, err.getvalue()
    assert "Cannot insert the value NULL into column 'id'" in err.getvalue() and "p4ss-w0rd" not in err.getvalue()
    assert out.getvalue() == b""
    insert = next(i for i, text in enumerate(batches) if text.startswith("INSERT INTO [dbo]"))
    assert batches[insert + 1] == "ROLLBACK TRANSACTION"
    assert "COMMIT TRANSACTION" not in batches
