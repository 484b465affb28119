"""The ClickHouse benchmark's own processes: the floor, the limit, and the check of a loaded table.

    python bench/target_clickhouse_bench.py floor DSN DATABASE
    python bench/target_clickhouse_bench.py limit DSN DATABASE TABLE 'CREATE TABLE ...' FILE.jsonl
    python bench/target_clickhouse_bench.py check DSN DATABASE TABLE
    python bench/target_clickhouse_bench.py drop DSN DATABASE

bench/target_clickhouse.py runs each as a process of its own (the embedded engine lets one process
at a time open a data directory). This module imports nothing but clickhouse-connect and the
standard library, so the floor and the limit carry no weight a bare client would not.
"""

from __future__ import annotations

import json
import sys
from itertools import islice
from typing import Any

import clickhouse_connect

BATCH_ROWS = 100_000  # our target's default batch_size_rows
READ_SETTINGS = {"date_time_input_format": "best_effort"}  # ISO 8601 with an offset, as the records carry it

# Sums over every column the table was loaded with; FINAL: what a reader of an upsert table sees.
CHECK_SQL = (
    "SELECT count(), sum(id), toInt64(sum(amount) * 100), count(parent_id), sum(parent_id), countIf(active), "
    "sum(length(name)), sum(length(email)), sum(length(country)), sum(toInt128(toUnixTimestamp64Micro(updated_at))), "
    "sum(toInt32(birth_date)), sum(score) FROM {table}{final}"
)
CHECK_NAMES = (
    "rows", "sum_id", "amount_cents", "parents", "sum_parent_id", "active", "name_bytes", "email_bytes",
    "country_bytes", "updated_at_us", "birth_days", "sum_score",
)  # fmt: skip


def floor(client: Any, database: str) -> None:
    """The least a process with the engine open does: a table and two rows."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(f"CREATE TABLE {database}.floor (id Int64, name String) ENGINE = MergeTree ORDER BY id")
    # SQL, not insert(): insert() imports pandas (+45 MB, +0.2 s), which is no part of the engine's cost.
    client.command(f"INSERT INTO {database}.floor VALUES (1, 'a'), (2, 'b')")
    print(client.query("SELECT version()").result_rows[0][0])


def limit(client: Any, database: str, table: str, create: str, path: str) -> None:
    """The rows already rendered as JSONEachRow, sent as they are: ClickHouse's parser is all the work."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(create)
    with open(path, "rb") as fh:
        while chunk := b"".join(islice(fh, BATCH_ROWS)):
            client.raw_insert(f"{database}.{table}", None, chunk, fmt="JSONEachRow", settings=READ_SETTINGS)


def check(client: Any, database: str, table: str) -> None:
    """The table's engine, column types and sums, as one JSON line."""
    engine = client.query(
        "SELECT engine FROM system.tables WHERE database = {d:String} AND name = {t:String}",
        parameters={"d": database, "t": table},
    ).result_rows
    if not engine:
        print(json.dumps({"engine": None}))
        return
    columns = client.query(
        "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = {t:String} ORDER BY position",
        parameters={"d": database, "t": table},
    ).result_rows
    final = " FINAL" if "Replacing" in engine[0][0] else ""
    sums = client.query(CHECK_SQL.format(table=f"{database}.{table}", final=final)).result_rows[0]
    found = {name: (float(v) if name == "sum_score" else int(v)) for name, v in zip(CHECK_NAMES, sums, strict=True)}
    print(json.dumps({"engine": engine[0][0], "columns": dict(columns), "sums": found}))


def drop(client: Any, database: str) -> None:
    client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
    print(client.query("SELECT version()").result_rows[0][0])


def main(argv: list[str]) -> int:
    mode, dsn, database, *rest = argv
    client = clickhouse_connect.get_client(dsn=dsn)
    try:
        if mode == "floor":
            floor(client, database)
        elif mode == "limit":
            limit(client, database, *rest)
        elif mode == "check":
            check(client, database, *rest)
        elif mode == "drop":
            drop(client, database)
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
