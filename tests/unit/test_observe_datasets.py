"""Dataset names for lineage, per connector family, from the connectors' own settings: the
namespace from the address (never a user, password or token), the name as the connector
addresses the stream (its table, topic or file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dpone_runner.observe.datasets import Address, Addressing, family

ROOT = Path("/srv/etl")
SECRET = "S3cret-pw-0042"


def source(executable: str, config: dict[str, Any], stream: str) -> Address:
    return Addressing("the-tap", executable, config, ROOT).source(stream)


def destination(executable: str, config: dict[str, Any], stream: str) -> Address:
    return Addressing("the-target", executable, config, ROOT).destination(stream)


PG = {"host": "db.internal", "port": 5433, "database": "app", "user": "etl", "password": SECRET}

SOURCES = [
    ("tap-postgres", PG, "public-orders", ("postgres://db.internal:5433", "app.public.orders")),
    (
        "tap-postgres",
        {**PG, "port": None},
        "sales-order-lines",
        ("postgres://db.internal:5432", "app.sales.order-lines"),
    ),
    (
        "tap-postgres",
        {"dsn": f"postgresql://etl:{SECRET}@pg.example:6432/shop?sslmode=require", "password": SECRET},
        "public-orders",
        ("postgres://pg.example:6432", "shop.public.orders"),
    ),
    (
        "tap-postgres",
        {"dsn": f"host=pg.example port=6543 dbname=shop user=etl password={SECRET}"},
        "public-orders",
        ("postgres://pg.example:6543", "shop.public.orders"),
    ),
    (
        "tap-mssql",
        {"odbc_connection_string": f"Driver={{ODBC Driver 18}};Server=tcp:sql.example,1444;Database=erp;PWD={SECRET}"},
        "dbo-Customers",
        ("sqlserver://sql.example:1444", "erp.dbo.Customers"),
    ),
    (
        "tap-mssql",
        {"host": "sql.example", "database": "erp"},
        "dbo-Customers",
        ("sqlserver://sql.example:1433", "erp.dbo.Customers"),
    ),
    (
        "tap-clickhouse",
        {"host": "ch.example", "password": SECRET},
        "events-clicks",
        ("clickhouse://ch.example:8123", "events.clicks"),
    ),
    (
        "tap-clickhouse",
        {"host": "ch.example", "secure": True},
        "events-clicks",
        ("clickhouse://ch.example:8443", "events.clicks"),
    ),
    (
        "tap-bigquery",
        {"project": "acme", "credentials_json": SECRET},
        "sales-orders",
        ("bigquery", "acme.sales.orders"),
    ),
    (
        "tap-kafka",
        {
            "bootstrap_servers": "SASL_SSL://k1.example:9093,k2.example:9093",
            "sasl_password": SECRET,
            "streams": [{"topic": "orders.v1", "stream": "orders"}],
        },
        "orders",
        ("kafka://k1.example:9093", "orders.v1"),
    ),
    ("tap-kafka", {"bootstrap_servers": "k1.example"}, "clicks", ("kafka://k1.example:9092", "clicks")),
    (
        "tap-csv",
        {"base_path": "data", "files": [{"entity": "people", "path": "people-*.csv"}]},
        "people",
        ("file", "/srv/etl/data/people-*.csv"),
    ),
    (
        "tap-rest",
        {
            "api_url": f"https://etl:{SECRET}@api.example.com:8443/v2",
            "api_key": SECRET,
            "streams": [{"name": "users", "path": "/users"}],
        },
        "users",
        ("https://api.example.com:8443", "/users"),
    ),
    # Unknown programs, and settings a family needs but that are missing: the generic name.
    ("tap-shopify", {"password": SECRET}, "orders", ("dpone://the-tap", "orders")),
    ("tap-postgres", {"password": SECRET}, "public-orders", ("dpone://the-tap", "public-orders")),
    ("tap-csv", {"files": "not a list"}, "people", ("dpone://the-tap", "people")),
]


@pytest.mark.parametrize(("executable", "config", "stream", "expected"), SOURCES)
def test_tap_streams_are_named_from_their_addresses(
    executable: str, config: dict[str, Any], stream: str, expected: tuple[str, str]
) -> None:
    found = source(executable, config, stream)
    assert (found.namespace, found.name) == expected
    assert SECRET not in found.namespace + found.name


DESTINATIONS = [
    (
        "target-postgres",
        {**PG, "default_target_schema": "raw"},
        "public-orders",
        ("postgres://db.internal:5433", "app.raw.public_orders"),
    ),
    (
        "target-postgres",
        {**PG, "table_name_map": {"public-orders": "orders"}},
        "public-orders",
        ("postgres://db.internal:5433", "app.public.orders"),
    ),
    (
        "target-mssql",
        {"host": "sql.example", "database": "dw", "password": SECRET},
        "Orders",
        ("sqlserver://sql.example:1433", "dw.dbo.orders"),
    ),
    (
        "target-clickhouse",
        {"host": "ch.example", "database": "raw"},
        "public-orders",
        ("clickhouse://ch.example:8123", "raw.public_orders"),
    ),
    (
        "target-bigquery",
        {"project": "acme", "dataset": "raw", "credentials_json": SECRET},
        "orders",
        ("bigquery", "acme.raw.orders"),
    ),
    (
        "target-duckdb",
        {"filepath": "warehouse.duckdb"},
        "orders",
        ("duckdb:///srv/etl/warehouse.duckdb", "main.orders"),
    ),
    (
        "target-kafka",
        {"bootstrap_servers": "k.example:9092", "topic": "etl.{stream}"},
        "public-orders",
        ("kafka://k.example:9092", "etl.public-orders"),
    ),
    (
        "target-kafka",
        {"bootstrap_servers": "k.example:9092", "topic_map": {"orders": "orders.v2"}},
        "orders",
        ("kafka://k.example:9092", "orders.v2"),
    ),
    ("target-jsonl", {"destination_path": "/data/out"}, "orders", ("file", "/data/out/orders.jsonl")),
    ("target-jsonl", {}, "a/b", ("file", "/srv/etl/output/a_b.jsonl")),
    ("target-snowflake", {"password": SECRET}, "orders", ("dpone://the-target", "orders")),
]


@pytest.mark.parametrize(("executable", "config", "stream", "expected"), DESTINATIONS)
def test_target_tables_are_named_as_the_targets_name_them(
    executable: str, config: dict[str, Any], stream: str, expected: tuple[str, str]
) -> None:
    found = destination(executable, config, stream)
    assert (found.namespace, found.name) == expected
    assert SECRET not in found.namespace + found.name


@pytest.mark.parametrize(
    ("executable", "plugin", "expected"),
    [
        ("tap-postgres", "tap-postgres--prod", "postgres"),  # a renamed plugin: its program decides
        ("/opt/venvs/pg/bin/target-postgres", "warehouse", "postgres"),
        ("bin/run-tap.sh", "tap-csv", "csv"),  # a wrapper script: the plugin's name then
        ("tap-shopify", "shop", None),
    ],
)
def test_the_family_comes_from_the_program(executable: str, plugin: str, expected: str | None) -> None:
    assert family(executable, plugin) == expected
