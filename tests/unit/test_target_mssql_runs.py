"""target-mssql run against a recording pyodbc, up to the wire: the exact call sequences, and every
statement checked by sqlglot's T-SQL parser (the recorder checks each as it is sent).

No SQL Server runs here; test_target_mssql_live.py runs the shared suite when DPONE_TEST_MSSQL_DSN is set.
"""

from __future__ import annotations

import io
import itertools
import json
import re
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dpone.targets.framework.target_cli import run
from dpone.targets.mssql.target import MssqlTarget
from tests.conftest import Run
from tests.tools.recording_odbc import Recorder, odbc_error

CONFIG = {"host": "db.example", "user": "loader", "password": "pa55-w0rd!", "database": "dw"}
DESCRIBE = r"FROM sys\.columns"
STAGE = "[#_dpone_stage_orders]"
COLUMNS = (
    "[id], [amount], [note], [_sdc_extracted_at], [_sdc_received_at], [_sdc_batched_at], [_sdc_deleted_at], "
    "[_sdc_table_version]"
)
SCHEMA = {
    "type": "SCHEMA",
    "stream": "orders",
    "key_properties": ["id"],
    "schema": {
        "properties": {
            "id": {"type": "integer"},
            "amount": {"type": ["string", "null"], "format": "singer.decimal", "precision": 30, "scale": 8},
            "note": {"type": ["string", "null"]},
        }
    },
}
# The table as sys.columns describes it once made: (name, type, max_length, precision, scale, nullable).
EXISTING = [
    ("id", "bigint", 8, 19, 0, False),
    ("amount", "decimal", 17, 30, 8, True),
    ("note", "nvarchar", -1, 0, 0, True),
    ("_sdc_extracted_at", "datetimeoffset", 10, 33, 6, True),
    ("_sdc_received_at", "datetimeoffset", 10, 33, 6, True),
    ("_sdc_batched_at", "datetimeoffset", 10, 33, 6, True),
    ("_sdc_deleted_at", "datetimeoffset", 10, 33, 6, True),
    ("_sdc_table_version", "bigint", 8, 19, 0, True),
]


def record(id_: int, amount: str | None = "1.5", note: str | None = "n", **extra: Any) -> dict[str, Any]:
    return {"type": "RECORD", "stream": "orders", "record": {"id": id_, "amount": amount, "note": note}, **extra}


def state(n: int) -> dict[str, Any]:
    return {"type": "STATE", "value": {"bookmarks": {"orders": {"n": n}}}}


def lines(*messages: dict[str, Any]) -> list[bytes]:
    return [json.dumps(m).encode() + b"\n" for m in messages]


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    return Recorder().install(monkeypatch)


def run_target(tmp_path: Path, messages: Iterable[dict[str, Any]], **config: Any) -> Run:
    path = tmp_path / f"config-{next(_configs)}.json"
    path.write_text(json.dumps({**CONFIG, **config}))
    out, err = io.BytesIO(), io.StringIO()
    rc = run(MssqlTarget, ["--config", str(path)], stdin=iter(lines(*messages)), stdout=out, stderr=err)  # type: ignore[arg-type]
    emitted = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    return Run(rc, out.getvalue(), err.getvalue(), emitted)


_configs = itertools.count()


def moves(recorder: Recorder) -> list[str]:
    """The statements after connecting: what a batch does."""
    seq = recorder.sequence()
    return seq[seq.index("execute SELECT 1 FROM sys.schemas WHERE name = ?") + 1 :]


def existing_table(recorder: Recorder) -> None:
    recorder.on(DESCRIBE, EXISTING)
    recorder.on(r"FROM sys\.schemas", [(1,)])


# -- the call sequences ---------------------------------------------------------------------------------------
def test_a_first_load_creates_the_table_and_inserts_in_one_transaction(recorder: Recorder, tmp_path: Path) -> None:
    recorder.on(r"FROM sys\.schemas", [(1,)])
    result = run_target(tmp_path, [SCHEMA, record(1), record(2), state(1)])
    assert result.rc == 0, result.stderr
    assert moves(recorder) == [
        "execute SELECT c.name, ty.name, c.max_length, c.precision, c.scale, c.is_nullable FROM sys.columns AS c "
        "JOIN sys.types AS ty ON ty.user_type_id = c.user_type_id WHERE c.object_id = OBJECT_ID(?) "
        "ORDER BY c.column_id",
        f"execute DROP TABLE IF EXISTS {STAGE}",
        f"execute CREATE TABLE {STAGE} ([id] bigint NULL, [amount] decimal(30,8) NULL, [note] nvarchar(max) NULL, "
        "[_sdc_extracted_at] datetimeoffset(6) NULL, [_sdc_received_at] datetimeoffset(6) NULL, "
        "[_sdc_batched_at] datetimeoffset(6) NULL, [_sdc_deleted_at] datetimeoffset(6) NULL, "
        "[_sdc_table_version] bigint NULL)",
        f"executemany INSERT INTO {STAGE} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        "execute BEGIN TRANSACTION",
        "execute CREATE TABLE [dbo].[orders] ([id] bigint NOT NULL, [amount] decimal(30,8) NULL, "
        "[note] nvarchar(max) NULL, [_sdc_extracted_at] datetimeoffset(6) NULL, [_sdc_received_at] datetimeoffset(6) "
        "NULL, [_sdc_batched_at] datetimeoffset(6) NULL, [_sdc_deleted_at] datetimeoffset(6) NULL, "
        "[_sdc_table_version] bigint NULL, PRIMARY KEY ([id]))",
        # The table is new and staging holds one row per key: no MERGE needed.
        f"execute INSERT INTO [dbo].[orders] ({COLUMNS}) SELECT {COLUMNS} FROM {STAGE}",
        "execute COMMIT TRANSACTION",
        f"execute DROP TABLE IF EXISTS {STAGE}",
        "close",
    ]
    assert result.messages == [state(1)["value"]]
    assert recorder.calls[0].kind == "connect"
    assert [c.sql for c in recorder.calls[1:3]] == ["SET XACT_ABORT ON", "SET ANSI_NULL_DFLT_ON ON"]


def test_a_merge_into_an_existing_table_is_one_merge_with_holdlock(recorder: Recorder, tmp_path: Path) -> None:
    existing_table(recorder)
    result = run_target(tmp_path, [SCHEMA, record(1, note="a"), record(1, note="b"), state(1)])
    assert result.rc == 0, result.stderr
    assert moves(recorder)[4:7] == [
        "execute BEGIN TRANSACTION",
        "execute MERGE INTO [dbo].[orders] WITH (HOLDLOCK) AS t USING [#_dpone_stage_orders] AS s ON t.[id] = s.[id] "
        "WHEN MATCHED THEN UPDATE SET t.[amount] = s.[amount], t.[note] = s.[note], "
        "t.[_sdc_extracted_at] = s.[_sdc_extracted_at], t.[_sdc_received_at] = s.[_sdc_received_at], "
        "t.[_sdc_batched_at] = s.[_sdc_batched_at], t.[_sdc_deleted_at] = s.[_sdc_deleted_at], "
        "t.[_sdc_table_version] = s.[_sdc_table_version] WHEN NOT MATCHED BY TARGET THEN INSERT "
        f"({COLUMNS}) VALUES (s.[id], s.[amount], s.[note], s.[_sdc_extracted_at], s.[_sdc_received_at], "
        "s.[_sdc_batched_at], s.[_sdc_deleted_at], s.[_sdc_table_version]);",
        "execute COMMIT TRANSACTION",
    ]
    staged = next(c for c in recorder.calls if c.kind == "executemany")
    assert [row[2] for row in staged.rows] == ["b"], "the last record per key wins, before staging"


def test_hard_deletes_delete_matched_keys_and_never_insert_deleted_rows(recorder: Recorder, tmp_path: Path) -> None:
    existing_table(recorder)
    gone = record(2)
    gone["record"]["_sdc_deleted_at"] = "2024-01-01T00:00:00Z"
    result = run_target(tmp_path, [SCHEMA, record(1), gone, state(1)], hard_delete=True)
    assert result.rc == 0, result.stderr
    merge = next(s for s in recorder.statements() if s.startswith("MERGE"))
    assert "WHEN MATCHED AND s.[_sdc_deleted_at] IS NOT NULL THEN DELETE WHEN MATCHED THEN UPDATE" in merge
    assert "WHEN NOT MATCHED BY TARGET AND s.[_sdc_deleted_at] IS NULL THEN INSERT" in merge


def test_an_overwrite_fills_a_shadow_and_swaps_it_in_with_sp_rename_in_one_transaction(
    recorder: Recorder, tmp_path: Path
) -> None:
    existing_table(recorder)
    messages = [SCHEMA, {"type": "ACTIVATE_VERSION", "stream": "orders", "version": 7}, record(1, version=7)]
    closing = {"type": "ACTIVATE_VERSION", "stream": "orders", "version": 7}
    result = run_target(tmp_path, [*messages, state(1), closing], load_method="overwrite")
    assert result.rc == 0, result.stderr
    seq = recorder.sequence()
    shadow = "[dbo].[orders__dpone_new]"
    create = seq.index(f"execute DROP TABLE IF EXISTS {shadow}")
    assert seq[create - 1] == "execute BEGIN TRANSACTION" and seq[create + 2] == "execute COMMIT TRANSACTION"
    assert seq[create + 1].startswith(f"execute CREATE TABLE {shadow} ([id] bigint NOT NULL")
    swap = seq.index("execute DROP TABLE IF EXISTS [dbo].[orders]")
    assert seq[swap - 1 : swap + 3] == [
        "execute BEGIN TRANSACTION",
        "execute DROP TABLE IF EXISTS [dbo].[orders]",
        "execute EXEC sp_rename N'[dbo].[orders__dpone_new]', N'orders'",
        "execute COMMIT TRANSACTION",
    ]
    merge = next(s for s in seq if s.startswith("execute MERGE"))
    assert seq.index(merge) < swap and f"MERGE INTO {shadow}" in merge
    assert result.messages == [state(1)["value"]], "STATE is held until the swap committed"


def test_a_failed_batch_rolls_back_and_emits_no_state(recorder: Recorder, tmp_path: Path) -> None:
    existing_table(recorder)
    recorder.on(
        r"^MERGE", odbc_error("23000", "Violation of PRIMARY KEY constraint 'PK__orders'.", 2627, "IntegrityError")
    )
    result = run_target(tmp_path, [state(0), SCHEMA, record(1), state(1)])
    assert result.rc == 65, result.stderr
    seq = recorder.sequence()
    merge = next(i for i, s in enumerate(seq) if s.startswith("execute MERGE"))
    assert seq[merge + 1] == "execute ROLLBACK TRANSACTION"
    assert "execute COMMIT TRANSACTION" not in seq[merge:]
    assert result.messages == [state(0)["value"]], "only the STATE before the batch"
    assert "Violation of PRIMARY KEY constraint" in result.stderr and "pa55-w0rd!" not in result.stderr


def test_a_deadlock_is_retried_and_the_batch_commits_once(recorder: Recorder, tmp_path: Path) -> None:
    existing_table(recorder)
    recorder.on(r"^MERGE", odbc_error("40001", "Transaction was deadlocked ... Rerun the transaction.", 1205), times=1)
    result = run_target(tmp_path, [SCHEMA, record(1), state(1)], max_retries=2)
    assert result.rc == 0, result.stderr
    seq = recorder.sequence()
    assert seq.count("execute COMMIT TRANSACTION") == 1
    assert sum(1 for s in seq if s.startswith("execute MERGE")) == 2
    assert result.messages == [state(1)["value"]]


def test_activate_version_retires_older_rows_softly_or_hard(recorder: Recorder, tmp_path: Path) -> None:
    existing_table(recorder)
    version = {"type": "ACTIVATE_VERSION", "stream": "orders", "version": 9}
    assert run_target(tmp_path, [SCHEMA, record(1, version=9), version, state(1)], load_method="upsert").rc == 0
    assert (
        "UPDATE [dbo].[orders] SET [_sdc_deleted_at] = SYSUTCDATETIME() WHERE ([_sdc_table_version] IS NULL OR "
        "[_sdc_table_version] < 9) AND [_sdc_deleted_at] IS NULL"
    ) in recorder.statements()
    assert run_target(tmp_path, [SCHEMA, record(1, version=9), version], load_method="upsert", hard_delete=True).rc == 0
    assert (
        "DELETE FROM [dbo].[orders] WHERE ([_sdc_table_version] IS NULL OR [_sdc_table_version] < 9)"
        in recorder.statements()
    )


def test_a_new_column_is_added_in_the_batchs_transaction(recorder: Recorder, tmp_path: Path) -> None:
    existing_table(recorder)
    wider = json.loads(json.dumps(SCHEMA))
    wider["schema"]["properties"]["tags"] = {"type": ["array", "null"], "items": {"type": "string"}}
    wider["schema"]["properties"]["seen"] = {"type": ["string", "null"], "format": "date"}
    result = run_target(tmp_path, [wider, record(1), state(1)], json_check=True)
    assert result.rc == 0, result.stderr
    seq = recorder.sequence()
    begin = seq.index("execute BEGIN TRANSACTION")
    assert seq[begin + 1 : begin + 3] == [
        "execute ALTER TABLE [dbo].[orders] ADD [tags] nvarchar(max) NULL",
        "execute ALTER TABLE [dbo].[orders] ADD [seen] date NULL",
    ]
    assert re.fullmatch(
        r"execute ALTER TABLE \[dbo\]\.\[orders\] ADD CONSTRAINT \[tags_isjson_[0-9a-f]{8}\] "
        r"CHECK \(ISJSON\(\[tags\]\) = 1\)",
        seq[begin + 3],
    )
    assert seq[begin + 4].startswith("execute MERGE") and seq[begin + 5] == "execute COMMIT TRANSACTION"


@pytest.mark.parametrize("method", ["upsert", "overwrite"])
def test_json_checks_go_on_json_columns_only(recorder: Recorder, tmp_path: Path, method: str) -> None:
    recorder.on(r"FROM sys\.schemas", [(1,)])
    with_json = json.loads(json.dumps(SCHEMA))
    with_json["schema"]["properties"]["doc"] = {"type": ["object", "null"]}
    messages = [with_json, record(1), state(1)]
    assert run_target(tmp_path, messages, json_check=True, load_method=method).rc == 0
    checks = [s for s in recorder.statements() if "ISJSON" in s]
    table = "[dbo].[orders__dpone_new]" if method == "overwrite" else "[dbo].[orders]"
    # [note] is plain text in nvarchar(max) too: no check on it.
    assert len(checks) == 1 and checks[0].startswith(f"ALTER TABLE {table} ADD CONSTRAINT [doc_isjson_")
    assert checks[0].endswith("CHECK (ISJSON([doc]) = 1)")


def test_a_widened_string_column_is_altered_in_place(recorder: Recorder, tmp_path: Path) -> None:
    recorder.on(DESCRIBE, [("note", "nvarchar", 40, 0, 0, True) if row[0] == "note" else row for row in EXISTING])
    result = run_target(tmp_path, [SCHEMA, record(1), state(1)])
    assert result.rc == 0, result.stderr
    assert "ALTER TABLE [dbo].[orders] ALTER COLUMN [note] nvarchar(max)" in recorder.statements()


# -- the cross product: load method x message order x new/existing table x deletes ------------------------------
ORDERS = {
    "records-then-version": lambda v: [
        record(1, version=v),
        record(2, version=v),
        {"type": "ACTIVATE_VERSION", "stream": "orders", "version": v},
    ],
    "version-first": lambda v: [
        {"type": "ACTIVATE_VERSION", "stream": "orders", "version": v},
        record(1, version=v),
        {"type": "ACTIVATE_VERSION", "stream": "orders", "version": v},
    ],
    "no-version": lambda v: [record(1), record(2)],
    "empty-version": lambda v: [{"type": "ACTIVATE_VERSION", "stream": "orders", "version": v}],
}


@pytest.mark.parametrize("method", ["append-only", "upsert", "overwrite"])
@pytest.mark.parametrize("order", list(ORDERS))
@pytest.mark.parametrize("exists", [False, True], ids=["new-table", "existing-table"])
@pytest.mark.parametrize("hard_delete", [False, True], ids=["soft", "hard"])
def test_every_method_order_and_table_commits_before_its_state(
    recorder: Recorder, tmp_path: Path, method: str, order: str, exists: bool, hard_delete: bool
) -> None:
    if exists:
        existing_table(recorder)
    result = run_target(tmp_path, [SCHEMA, *ORDERS[order](5), state(1)], load_method=method, hard_delete=hard_delete)
    assert result.rc == 0, result.stderr
    seq = recorder.sequence()
    assert result.messages == [state(1)["value"]]
    # Nothing ever empties the live table: a DROP of it happens only in a swap, right before the shadow's rename.
    for i, statement in enumerate(seq):
        if statement == "execute DROP TABLE IF EXISTS [dbo].[orders]":
            assert method == "overwrite"
            assert seq[i + 1] == "execute EXEC sp_rename N'[dbo].[orders__dpone_new]', N'orders'"
        assert not statement.startswith("execute TRUNCATE")
    commits = [i for i, s in enumerate(seq) if s == "execute COMMIT TRANSACTION"]
    begins = [i for i, s in enumerate(seq) if s == "execute BEGIN TRANSACTION"]
    assert len(commits) == len(begins) and all(b < c for b, c in zip(begins, commits, strict=True))
    assert all(recorder.checked), "every statement passed the T-SQL check"


# -- values ---------------------------------------------------------------------------------------------------------
def test_values_reach_the_parameter_arrays_exactly(recorder: Recorder, tmp_path: Path) -> None:
    recorder.on(r"FROM sys\.schemas", [(1,)])
    schema = {
        "type": "SCHEMA",
        "stream": "t",
        "key_properties": ["id"],
        "schema": {
            "properties": {
                "id": {"type": "integer"},
                "d": {"type": ["number", "null"], "multipleOf": 1e-8},
                "s": {"type": ["string", "null"], "maxLength": 10},
                "m": {"type": ["string", "null"]},
                "ts": {"type": ["string", "null"], "format": "date-time"},
                "day": {"type": ["string", "null"], "format": "date"},
                "tm": {"type": ["string", "null"], "format": "time"},
                "u": {"type": ["string", "null"], "format": "uuid"},
                "b": {"type": ["boolean", "null"]},
                "f": {"type": ["number", "null"], "format": "double"},
                "j": {"type": ["object", "null"]},
                "bin": {"type": ["string", "null"], "contentEncoding": "base64"},
            }
        },
    }
    big = "123456789012345678901.12345678"  # 29 digits: a float keeps 17
    # Written by hand: numbers as the source wrote them, which json.dumps would not.
    text = (
        f'{{"type":"RECORD","stream":"t","record":{{"id":-9223372036854775808,"d":{big},'
        '"s":"a\\u0000b\\ud834\\udd1e\u00e9","m":"' + "x" * 4001 + '","ts":"2024-02-29T23:59:59.1234567-12:00",'
        '"day":"0001-01-01","tm":"23:59:59.999999","u":"6F9619FF-8B86-D011-B42D-00C04FC964FF","b":false,'
        '"f":5e-324,"j":{"n":123456789012345678901234567890.5,"a":[1,"two"]},"bin":"AP8A"}}'
    )
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**CONFIG, "add_record_metadata": False}))
    source = [json.dumps(schema).encode() + b"\n", text.encode() + b"\n"]
    out, err = io.BytesIO(), io.StringIO()
    assert run(MssqlTarget, ["--config", str(path)], stdin=iter(source), stdout=out, stderr=err) == 0, err.getvalue()  # type: ignore[arg-type]
    staged = next(c for c in recorder.calls if c.kind == "executemany")
    assert staged.fast
    assert staged.inputsizes == [
        (-5, 0, 0),  # bigint
        (3, 38, 8),  # decimal(38,8): multipleOf gives the scale
        (-9, 10, 0),  # nvarchar(10): its declared size
        (-9, 0, 0),  # nvarchar(max) holding a value beyond 4,000: streamed
        (-155, 34, 7),  # datetimeoffset(7), from ISO text the driver converts
        (91, 0, 0),  # date
        (-154, 16, 7),  # time(7), from ISO text
        (-11, 0, 0),  # uniqueidentifier, from its text
        (-7, 0, 0),  # bit
        (8, 0, 0),  # float
        (-9, 52, 0),  # JSON text sized from the batch
        (-3, 3, 0),  # varbinary(max) bytes, sized from the batch
    ]
    (values,) = staged.rows
    assert values[0] == -(2**63)
    assert values[1] == Decimal(big) and str(values[1]) == big
    assert values[2] == "a\x00b𝄞é"
    assert values[3] == "x" * 4001
    assert values[4] == "2024-02-29 23:59:59.1234567 -12:00"
    assert str(values[5]) == "0001-01-01"
    assert values[6] == "23:59:59.999999"
    assert values[7] == "6f9619ff-8b86-d011-b42d-00c04fc964ff"  # the driver packs it (see test_target_mssql_wire)
    assert values[8] is False and values[9] == 5e-324
    assert values[10] == '{"n":123456789012345678901234567890.5,"a":[1,"two"]}'
    assert values[11] == b"\x00\xff\x00"


@pytest.mark.parametrize(
    ("prop", "value", "says"),
    [
        ({"type": "integer"}, 2**63, "beyond bigint"),
        ({"type": "string", "format": "singer.decimal", "precision": 10, "scale": 2}, "1.005", "more than 2 decimals"),
        (
            {"type": "string", "format": "singer.decimal", "precision": 4, "scale": 2},
            "123.4",
            "does not fit decimal(4,2)",
        ),
        ({"type": "number"}, 9007199254740993, "would change in a float column"),
        ({"type": "string", "maxLength": 3}, "abcd", "longer than nvarchar(3)"),
        ({"type": "string", "maxLength": 3}, "ab😀", "longer than nvarchar(3)"),
        ({"type": "string", "format": "date-time"}, "2024-02-30T00:00:00Z", "not a valid date-time"),
        ({"type": "string", "format": "date-time"}, "yesterday", "not an ISO 8601 date-time"),
        ({"type": "string", "format": "date-time"}, "2024-01-01T00:00:00+15:00", "beyond SQL Server's ±14:00"),
        ({"type": "string", "format": "uuid"}, "not-a-uuid", "not a UUID"),
        ({"type": "boolean"}, 1, "not a boolean"),
        ({"type": "integer"}, True, "true is not an integer"),
        ({"type": "string", "format": "date-time"}, "9999-12-31T23:59:59-05:00", "outside years 1 to 9999 in UTC"),
        ({"type": "string", "format": "date-time"}, "0001-01-01T00:30:00+01:00", "outside years 1 to 9999 in UTC"),
        ({"type": "string"}, "lone \ud800 surrogate", "a string holds a lone surrogate \\ud800"),
        ({"type": "string", "format": "singer.decimal", "precision": 10, "scale": 2}, "NaN", "not a finite number"),
    ],
)
def test_a_value_its_column_cannot_take_stops_the_load_naming_line_and_column(
    recorder: Recorder, tmp_path: Path, prop: dict[str, Any], value: Any, says: str
) -> None:
    schema = {"type": "SCHEMA", "stream": "t", "key_properties": [], "schema": {"properties": {"v": prop}}}
    result = run_target(
        tmp_path,
        [
            schema,
            {"type": "RECORD", "stream": "t", "record": {"v": None}},
            {"type": "RECORD", "stream": "t", "record": {"v": value}},
        ],
    )
    assert result.rc == 65, result.stderr
    assert "line 3, stream 't', column 'v': " in result.stderr and says in result.stderr, result.stderr
    assert not any(c.kind == "executemany" for c in recorder.calls), "nothing of the batch was sent"


def test_the_password_is_never_in_a_message(recorder: Recorder, tmp_path: Path) -> None:
    recorder.on(
        r"SET XACT_ABORT",
        odbc_error("28000", "Login failed for user 'loader'. PWD=pa55-w0rd!", 18456, "InterfaceError"),
    )
    result = run_target(tmp_path, [SCHEMA, record(1)])
    assert result.rc == 78, result.stderr
    assert "Login failed for user 'loader'" in result.stderr and "pa55-w0rd!" not in result.stderr


# -- bcp ----------------------------------------------------------------------------------------------------------
FAKE_BCP = """#!/bin/sh
# Records its arguments and the data file, as the real tool would have read them.
printf '%s\\n' "$@" > "$0.args"
cp "$3" "$0.data"
{tail}
"""


def fake_bcp(tmp_path: Path, name: str = "bcp", tail: str = "exit 0") -> Path:
    tool = tmp_path / name
    tool.write_text(FAKE_BCP.replace("{tail}", tail))
    tool.chmod(0o755)
    return tool


def test_bcp_loads_a_global_temp_table_from_a_utf16_file(recorder: Recorder, tmp_path: Path) -> None:
    existing_table(recorder)
    tool = fake_bcp(tmp_path)
    result = run_target(
        tmp_path,
        [
            SCHEMA,
            record(1, amount="12345678901234567890.12345678", note=""),
            record(2, amount=None, note="é𝄞"),
            state(1),
        ],
        bulk_method="bcp",
        bcp_path=str(tool),
        trust_server_certificate=True,
        add_record_metadata=False,
    )
    assert result.rc == 0, result.stderr
    args = (tmp_path / "bcp.args").read_text().split("\n")
    stage = next(s for s in recorder.statements() if s.startswith("CREATE TABLE [##_dpone_stage_orders_"))
    table = stage.split()[2].strip("[]")
    assert args[:2] == [table, "in"] and args[2].endswith("batch.dat")
    assert args[3:9] == ["-S", "tcp:db.example,1433", "-U", "loader", "-P", "pa55-w0rd!"]
    assert args[9:] == ["-w", "-t", "\x1f", "-r", "\x1e", "-b", "100000", "-h", "TABLOCK", "-d", "dw", "-u", ""]
    data = (tmp_path / "bcp.data").read_bytes().decode("utf-16-le")
    # NULL is an empty field, the empty string a lone NUL: bcp's own convention.
    assert data == "1\x1f12345678901234567890.12345678\x1f\x00\x1e2\x1f\x1fé𝄞\x1e"
    assert not any(c.kind == "executemany" for c in recorder.calls)
    assert any(
        s.startswith(f"MERGE INTO [dbo].[orders] WITH (HOLDLOCK) AS t USING [{table}]") for s in recorder.statements()
    )


def test_bcp_hands_a_batch_it_cannot_write_to_the_parameter_arrays(recorder: Recorder, tmp_path: Path) -> None:
    existing_table(recorder)
    tool = fake_bcp(tmp_path)
    result = run_target(tmp_path, [SCHEMA, record(1, note="a\x1fb"), state(1)], bulk_method="bcp", bcp_path=str(tool))
    assert result.rc == 0, result.stderr
    assert not (tmp_path / "bcp.args").exists()
    assert [c.rows[0][2] for c in recorder.calls if c.kind == "executemany"] == ["a\x1fb"]


def test_a_failed_bcp_is_a_data_error_without_the_password(recorder: Recorder, tmp_path: Path) -> None:
    existing_table(recorder)
    tool = fake_bcp(
        tmp_path, tail='echo "SQLState = 22003, NativeError = 8115 Error = Arithmetic overflow; -P $9"; exit 1'
    )
    result = run_target(tmp_path, [SCHEMA, record(1), state(1)], bulk_method="bcp", bcp_path=str(tool))
    assert result.rc == 65, result.stderr
    assert "bcp failed: SQLState = 22003" in result.stderr and "pa55-w0rd!" not in result.stderr
    assert result.messages == []


def test_bcp_without_a_tool_or_with_entra_id_is_a_config_error(recorder: Recorder, tmp_path: Path) -> None:
    result = run_target(tmp_path, [SCHEMA, record(1)], bulk_method="bcp", bcp_path=str(tmp_path / "nothing"))
    assert result.rc == 78 and "no bcp tool found" in result.stderr
    result = run_target(tmp_path, [SCHEMA, record(1)], bulk_method="bcp", authentication="ActiveDirectoryMsi")
    assert result.rc == 78 and "needs host, port, user and password settings" in result.stderr


def test_kept_staging_is_a_real_table_in_the_schema(recorder: Recorder, tmp_path: Path) -> None:
    existing_table(recorder)
    assert run_target(tmp_path, [SCHEMA, record(1), state(1)], keep_staging=True).rc == 0
    statements = recorder.statements()
    assert "DROP TABLE IF EXISTS [dbo].[_dpone_stage_orders]" in statements
    assert any(s.startswith("CREATE TABLE [dbo].[_dpone_stage_orders] (") for s in statements)
    assert not any(s.startswith("DROP TABLE IF EXISTS [dbo].[_dpone_stage_orders]") for s in statements[-3:])


def test_freetds_loads_only_through_freebcp(recorder: Recorder, tmp_path: Path) -> None:
    # FreeTDS 1.3's ODBC driver crashes on parameter arrays and drops offsets, fractions and binary
    # values row by row (tests/unit/mssql/test_tds_server.py shows it on the wire).
    result = run_target(tmp_path, [SCHEMA, record(1)], driver="FreeTDS")
    assert result.rc == 78 and "needs bulk_method: bcp" in result.stderr
    existing_table(recorder)
    tool = fake_bcp(tmp_path, name="freebcp")
    result = run_target(
        tmp_path, [SCHEMA, record(1), state(1)], driver="FreeTDS", bulk_method="bcp", bcp_path=str(tool)
    )
    assert result.rc == 0, result.stderr
    args = (tmp_path / "freebcp.args").read_text().split("\n")
    assert args[3:5] == ["-S", "dpone"] and "-c" in args and args[-3:-1] == ["-D", "dw"]
    result = run_target(
        tmp_path, [SCHEMA, record(1, note="a\x1eb")], driver="FreeTDS", bulk_method="bcp", bcp_path=str(tool)
    )
    assert result.rc == 65 and "load this stream with Microsoft ODBC Driver 18" in result.stderr


def test_names_beyond_sql_servers_limit_are_cut_with_a_hash(recorder: Recorder, tmp_path: Path) -> None:
    recorder.on(r"FROM sys\.schemas", [(1,)])
    stream, prop = "s" * 150, "c" * 140
    schema = {
        "type": "SCHEMA",
        "stream": stream,
        "key_properties": [],
        "schema": {"properties": {prop: {"type": "string"}}},
    }
    result = run_target(tmp_path, [schema, {"type": "RECORD", "stream": stream, "record": {prop: "v"}}, state(1)])
    assert result.rc == 0, result.stderr
    create = next(s for s in recorder.statements() if s.startswith("CREATE TABLE [dbo]."))
    table, column = re.findall(r"\[([^\]]+)\]", create)[1:3]
    assert len(table) <= 114 and table.startswith("s" * 90) and len(column) <= 114 and column.startswith("c" * 90)
    staged = next(c for c in recorder.calls if c.kind == "executemany")
    assert staged.rows[0][0] == "v", "the value reaches its shortened column"


@pytest.mark.parametrize(
    ("config", "server", "extra"),
    [
        ({"host": "db", "port": 1444, "encrypt": "no"}, "tcp:db,1444", ["-Yo"]),
        ({"host": "db\\SQLEXPRESS", "encrypt": "strict"}, "db\\SQLEXPRESS", ["-Ys"]),
        ({"host": "db", "trust_server_certificate": True}, "tcp:db,1433", ["-u"]),
    ],
)
def test_microsofts_bcp_is_told_the_server_and_encryption(
    tmp_path: Path, config: dict[str, Any], server: str, extra: list[str]
) -> None:
    from dpone.targets.mssql.bcp import BcpTool
    from dpone_protocol.config import Redactor

    tool = BcpTool.find({**config, "user": "u", "password": "p", "bcp_path": str(fake_bcp(tmp_path))}, Redactor())
    args = tool.command("##t", "/x/batch.dat")
    assert args[4:6] == ["-S", server] and args[-len(extra) :] == extra


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"insert_chunk_rows": 0}, "setting 'insert_chunk_rows' must be a positive integer; got 0"),
        ({"connect_timeout": 0}, "setting 'connect_timeout' must be a positive integer; got 0"),
        ({"port": 0}, "the port must be a number from 1 to 65535"),
        ({"odbc_connection_string": "DRIVER={FreeTDS};Server=db;UID=u;PWD=p"}, "needs bulk_method: bcp"),
        ({"driver": "/nowhere/libdriver.so"}, "no ODBC driver library at /nowhere/libdriver.so"),
    ],
)
def test_settings_that_cannot_work_stop_before_anything_is_sent(
    recorder: Recorder, tmp_path: Path, config: dict[str, Any], says: str
) -> None:
    result = run_target(tmp_path, [SCHEMA, record(1)], **config)
    assert result.rc == 78 and says in result.stderr, result.stderr
    assert not any(c.kind == "executemany" for c in recorder.calls)
