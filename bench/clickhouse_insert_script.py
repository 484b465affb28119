"""What other Singer targets do to load ClickHouse, at best: decode each line, build row tuples, insert().

    python bench/clickhouse_insert_script.py DSN DATABASE TABLE 'CREATE TABLE ...' < singer.jsonl

The "script" row of bench/target_clickhouse.py. clickhouse-connect's insert() encodes the tuples
(Native format) every 100,000 rows; the last STATE read is echoed once the rows before it are in.
"""

from __future__ import annotations

import datetime as dt
import sys
from decimal import Decimal
from typing import Any

import clickhouse_connect
import orjson

BATCH_ROWS = 100_000
COLUMNS = ("id", "name", "email", "country", "score", "amount", "active", "updated_at", "birth_date", "parent_id")


def row(r: dict[str, Any]) -> tuple[Any, ...]:
    # insert() takes Decimal, datetime and date objects for those columns, not the JSON's float and strings.
    amount, updated, born = r.get("amount"), r.get("updated_at"), r.get("birth_date")
    return (
        r["id"], r.get("name"), r.get("email"), r.get("country"), r.get("score"),
        None if amount is None else Decimal(repr(amount)),  # repr: the digits that were sent, not the binary float
        r.get("active"),
        None if updated is None else dt.datetime.fromisoformat(updated),
        None if born is None else dt.date.fromisoformat(born),
        r.get("parent_id"),
    )  # fmt: skip


def main() -> int:
    dsn, database, table, create = sys.argv[1:5]
    client = clickhouse_connect.get_client(dsn=dsn)
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(create)
    rows: list[tuple[Any, ...]] = []
    state: bytes | None = None
    for line in sys.stdin.buffer:
        message = orjson.loads(line)
        kind = message.get("type")
        if kind == "RECORD":
            rows.append(row(message["record"]))
            if len(rows) >= BATCH_ROWS:
                client.insert(table, rows, column_names=COLUMNS, database=database)
                rows = []
                if state is not None:  # every record before it is in the table now
                    sys.stdout.buffer.write(state)
                    state = None
        elif kind == "STATE":
            state = orjson.dumps(message["value"]) + b"\n"
    if rows:
        client.insert(table, rows, column_names=COLUMNS, database=database)
    if state is not None:
        sys.stdout.buffer.write(state)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
