"""Kafka as the bus between taps and targets, as docs/kafka.md shows it: `dpone run` in a project directory.

tap-postgres (LOG_BASED) -> target-kafka -> a topic per table -> tap-kafka -> target-postgres (upsert), over
two runs with inserts, updates (one of them changing a key) and deletes in between; a re-sent snapshot that
leaves the keyed table as it was; a lagging consumer (a second tap-kafka pipeline, first run at the end) that
gets everything from offsets of its own; the fan-out `dpone run tap-postgres target-kafka target-postgres`
with tombstones for deletes; and a FULL_TABLE stream refused before anything is sent.

The broker is the session's mock cluster (`kafka_cluster`, topics named with `kafka_prefix`); each test has
a source and a destination database of its own on the session PostgreSQL server, and a replication slot of
its own, dropped afterwards.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from dpone.taps.framework.tap import Tap
from dpone.taps.kafka.tap import KafkaTap
from dpone.targets.framework.target import Target
from dpone.targets.kafka.target import KafkaTarget
from tests.service.conftest import PostgresServer
from tests.tools.kafka_mock import MockKafka

pytestmark = pytest.mark.service

BIN = Path(sys.executable).parent
DPONE = str(BIN / "dpone")
DOCS = Path(__file__).resolve().parents[2] / "docs"
EXIT_CONFIG = 78

CUSTOMERS_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["null", "string"]},
        "email": {"type": ["null", "string"]},
        "balance": {"type": ["null", "string"], "format": "singer.decimal", "precision": 12, "scale": 2},
        "updated_at": {"type": ["null", "string"], "format": "date-time"},
    },
}
CUSTOMERS = "SELECT id, name, email, balance::text, updated_at FROM {schema}customers ORDER BY id"
LINES = "SELECT order_id, line, sku, qty FROM {schema}{table} ORDER BY order_id, line"


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Bus:
    """A project directory whose meltano.yml declares the doc's plugins, pointed at this test's databases."""

    server: PostgresServer
    kafka: MockKafka
    prefix: str
    source: str
    warehouse: str
    slot: str
    project: Path

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.server.user}@{self.server.host}:{self.server.port}/{database}"

    def sql(self, *statements: str) -> None:
        with psycopg.connect(self.dsn(self.source), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def rows(self, database: str, query: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn(database)) as conn:
            return list(conn.execute(query).fetchall())

    def source_rows(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        return (
            self.rows(self.source, CUSTOMERS.format(schema="")),
            self.rows(self.source, LINES.format(schema="", table="order_lines")),
        )

    def loaded_rows(self, schema: str, lines_table: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        return (
            self.rows(self.warehouse, CUSTOMERS.format(schema=f"{q(schema)}.")),
            self.rows(self.warehouse, LINES.format(schema=f"{q(schema)}.", table=q(lines_table))),
        )

    def dpone(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "DPONE_LOG_LEVEL": "WARNING",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        proc = subprocess.run(
            [DPONE, *args, "--project", str(self.project)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert proc.returncode == expect, f"dpone {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
        return proc

    def run(self, tap: str, *targets: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        return self.dpone("run", tap, *targets, "--no-progress", expect=expect)

    def state(self, pipeline: str) -> dict[str, Any]:
        return dict(json.loads(self.dpone("state", "get", pipeline).stdout))

    def topic(self, stream: str) -> str:
        return f"{self.prefix}{stream}"

    def end_offsets(self, topic: str) -> dict[str, int]:
        """Partition -> high watermark, for every partition of the topic ({} when it does not exist)."""
        consumer = Consumer({"bootstrap.servers": self.kafka.bootstrap, "group.id": f"check-{uuid.uuid4().hex}"})
        try:
            metadata = consumer.list_topics(timeout=10)
            if topic not in metadata.topics:
                return {}
            partitions = sorted(metadata.topics[topic].partitions)
            return {str(p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        finally:
            consumer.close()

    def messages(self, topic: str) -> list[tuple[bytes | None, bytes | None, dict[str, bytes]]]:
        """(key, value, headers) of every message of the topic, partition by partition."""
        ends = self.end_offsets(topic)
        consumer = Consumer({"bootstrap.servers": self.kafka.bootstrap, "group.id": f"check-{uuid.uuid4().hex}"})
        found: list[tuple[bytes | None, bytes | None, dict[str, bytes]]] = []
        try:
            for p, high in ends.items():
                if not high:
                    continue
                consumer.assign([TopicPartition(topic, int(p), 0)])
                taken = 0
                while taken < high:
                    # As many as are left: consume() returns as soon as it has them.
                    batch = consumer.consume(high - taken, 5.0)
                    assert batch, f"topic {topic} partition {p}: only {taken} of {high} messages could be read"
                    for message in batch:
                        assert message.error() is None, message.error()
                        found.append((message.key(), message.value(), headers_of(message)))
                        taken += 1
                consumer.unassign()
        finally:
            consumer.close()
        return found


def headers_of(message: Any) -> dict[str, bytes]:
    return {str(name): value for name, value in message.headers() or [] if isinstance(value, bytes)}


@pytest.fixture
def bus(postgres_server: PostgresServer, kafka_cluster: MockKafka, kafka_prefix: str, tmp_path: Path) -> Iterator[Bus]:
    tag = uuid.uuid4().hex[:10]
    bus = Bus(
        postgres_server, kafka_cluster, kafka_prefix, f"bus_src_{tag}", f"bus_dw_{tag}", f"dpone_bus_{tag}", tmp_path
    )
    with psycopg.connect(postgres_server.dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {q(bus.source)}")
        admin.execute(f"CREATE DATABASE {q(bus.warehouse)}")
        admin.execute(f"ALTER DATABASE {q(bus.source)} SET timezone TO 'UTC'")
    bus.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text, "
        "balance numeric(12,2) NOT NULL, updated_at timestamptz NOT NULL)",
        "INSERT INTO customers SELECT i, 'customer ' || i, CASE WHEN i % 4 = 0 THEN NULL ELSE 'c' || i || "
        "'@example.com' END, i * 10.25, timestamptz '2025-01-01 00:00+00' + i * interval '1 hour' "
        "FROM generate_series(1, 40) AS i",
        "CREATE TABLE order_lines (order_id int, line int, sku text, qty int NOT NULL, PRIMARY KEY (order_id, line))",
        "INSERT INTO order_lines SELECT o, l, 'sku-' || (o * l), l FROM generate_series(1, 20) AS o, "
        "generate_series(1, 3) AS l",
    )
    write_project(bus)
    try:
        yield bus
    finally:
        with psycopg.connect(postgres_server.dsn, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                (bus.slot,),
            )
            for database in (bus.source, bus.warehouse):
                admin.execute(f"DROP DATABASE IF EXISTS {q(database)} WITH (FORCE)")


def write_project(bus: Bus) -> None:
    """docs/kafka.md's meltano.yml, with this test's databases, slot and topic prefix."""
    server = bus.server
    source = {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": "",
        "database": bus.source,
        "include": ["public.customers", "public.order_lines"],
        "replication_slot": bus.slot,
    }
    kafka = {"bootstrap_servers": bus.kafka.bootstrap}

    def warehouse(schema: str) -> dict[str, Any]:
        return {
            "host": server.host,
            "port": server.port,
            "user": server.user,
            "password": "",
            "database": bus.warehouse,
            "default_target_schema": schema,
            "load_method": "upsert",
            "hard_delete": True,
        }

    def loader(name: str, executable: str, config: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "namespace": name.replace("-", "_"), "executable": executable, "config": config}

    log_based = {"replication-method": "LOG_BASED"}
    project = {
        "version": 1,
        "default_environment": "dev",
        "environments": [{"name": "dev"}],
        "plugins": {
            "extractors": [
                {
                    "name": "tap-postgres",
                    "namespace": "tap_postgres",
                    "executable": "tap-postgres",
                    "config": source,
                    "metadata": {"public-customers": log_based, "public-order_lines": log_based},
                },
                # The same tables with the default method, FULL_TABLE: what target-kafka refuses.
                {
                    "name": "tap-postgres-full",
                    "namespace": "tap_postgres_full",
                    "executable": "tap-postgres",
                    "config": {**source, "include": ["public.customers"]},
                },
                {
                    "name": "tap-kafka",
                    "namespace": "tap_kafka",
                    "executable": "tap-kafka",
                    "config": {
                        **kafka,
                        "streams": [
                            # Declared: the columns keep their types (numeric(12,2), timestamptz).
                            {
                                "topic": bus.topic("public-customers"),
                                "stream": "customers",
                                "key_properties": ["id"],
                                "schema": CUSTOMERS_SCHEMA,
                            },
                            # Inferred from the topic's messages; the key from the message keys.
                            {"topic": bus.topic("public-order_lines"), "stream": "order_lines"},
                        ],
                    },
                },
            ],
            "loaders": [
                loader("target-kafka", "target-kafka", {**kafka, "topic": bus.topic("{stream}")}),
                loader("target-postgres", "target-postgres", warehouse("bus")),
                # A second consumer of the same topics, run at its own pace, into its own schema.
                loader("target-postgres-lagging", "target-postgres", warehouse("lagging")),
                # The fan-out's direct copy, beside the topic.
                loader(
                    "target-postgres-direct",
                    "target-postgres",
                    {**warehouse("direct"), "table_name_map": {"public-customers": "customers"}},
                ),
            ],
        },
    }
    (bus.project / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))


def change_the_source(bus: Bus) -> None:
    """Inserts, updates (one of them moves a key) and deletes, in both tables."""
    bus.sql(
        "INSERT INTO customers SELECT i, 'customer ' || i, NULL, i, now() FROM generate_series(41, 45) AS i",
        "UPDATE customers SET balance = balance + 0.01, updated_at = now() WHERE id % 7 = 0",
        "UPDATE customers SET name = 'renamed', email = NULL WHERE id = 2",
        "DELETE FROM customers WHERE id % 10 = 3",
        "UPDATE customers SET id = 1000 WHERE id = 1",
        "INSERT INTO order_lines VALUES (21, 1, 'new', 5), (5, 9, 'added', 1)",
        "UPDATE order_lines SET qty = qty * 2 WHERE order_id = 5",
        "DELETE FROM order_lines WHERE line = 2",
    )


def test_postgres_to_kafka_to_postgres_over_two_runs_and_a_lagging_consumer(bus: Bus) -> None:
    bus.run("tap-postgres", "target-kafka")
    bus.run("tap-kafka", "target-postgres")
    customers, lines = bus.source_rows()
    assert len(customers) == 40 and len(lines) == 60
    assert bus.loaded_rows("bus", "order_lines") == (customers, lines)
    first_offsets = bus.state("tap-kafka-to-target-postgres")["bookmarks"]["customers"]["partitions"]
    assert sum(first_offsets.values()) == 40

    change_the_source(bus)
    bus.run("tap-postgres", "target-kafka")
    bus.run("tap-kafka", "target-postgres")
    customers, lines = bus.source_rows()
    assert 1000 in [row[0] for row in customers] and 1 not in [row[0] for row in customers]
    assert bus.loaded_rows("bus", "order_lines") == (customers, lines)
    # Declared types survive the topic; the inferred stream got its key from the message keys.
    types = dict(
        bus.rows(
            bus.warehouse,
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'bus' AND column_name IN ('balance', 'updated_at', 'qty')",
        )
    )
    assert types == {
        "customers.balance": "numeric",
        "customers.updated_at": "timestamp with time zone",
        "order_lines.qty": "bigint",
    }

    # Every delete went through the topic as a message of its own, keyed like the row.
    deletes = [
        (key, value)
        for key, value, headers in bus.messages(bus.topic("public-customers"))
        if headers.get("dpone-op") == b"delete"
    ]
    assert sorted(json.loads(key or b"")["id"] for key, _ in deletes) == [1, 3, 13, 23, 33, 43]
    assert all(json.loads(value or b"")["_sdc_deleted_at"] for _, value in deletes)

    # At-least-once into the topic: a snapshot sent again appends every row again ...
    before = sum(bus.end_offsets(bus.topic("public-customers")).values())
    bus.run("tap-postgres", "target-kafka", "--full-refresh")
    assert sum(bus.end_offsets(bus.topic("public-customers")).values()) == before + len(customers)
    # ... and the keyed table downstream still holds each row once.
    bus.run("tap-kafka", "target-postgres")
    assert bus.loaded_rows("bus", "order_lines") == (customers, lines)

    # A consumer that never ran reads the whole log from its own (empty) state, and ends where the topic ends.
    bus.run("tap-kafka", "target-postgres-lagging")
    assert bus.loaded_rows("lagging", "order_lines") == (customers, lines)
    lagging = bus.state("tap-kafka-to-target-postgres-lagging")["bookmarks"]
    punctual = bus.state("tap-kafka-to-target-postgres")["bookmarks"]
    for stream, table in (("customers", "public-customers"), ("order_lines", "public-order_lines")):
        assert lagging[stream] == {"topic": bus.topic(table), "partitions": bus.end_offsets(bus.topic(table))}
        assert punctual[stream] == lagging[stream]

    # Nothing new: both consumers read nothing and keep their offsets.
    report = bus.run("tap-kafka", "target-postgres-lagging").stdout
    assert "state: unchanged" in report and "customers" not in report, report
    assert bus.state("tap-kafka-to-target-postgres-lagging")["bookmarks"] == lagging


def test_fan_out_loads_the_topic_and_the_warehouse_in_one_run(bus: Bus, tmp_path: Path) -> None:
    tombstones = tmp_path / "tombstones.json"
    tombstones.write_text('{"delete_mode": "tombstone"}')
    fan_out = ("tap-postgres", "target-kafka", "target-postgres-direct", "--target-config", str(tombstones))
    pipeline = "tap-postgres-to-target-kafka-target-postgres-direct"

    bus.run(*fan_out)
    first = bus.state(pipeline)["bookmarks"]
    assert set(first) == {"public-customers", "public-order_lines"}
    change_the_source(bus)
    bus.run(*fan_out)
    second = bus.state(pipeline)["bookmarks"]
    assert all(second[s]["lsn"] > first[s]["lsn"] for s in first)

    customers, lines = bus.source_rows()
    assert bus.loaded_rows("direct", "public_order_lines") == (customers, lines)

    # The topic holds the same changes: deletes are tombstones (a key, no value), which tap-kafka reads as
    # deletes of that key.
    tombstoned = [key for key, value, _ in bus.messages(bus.topic("public-customers")) if value is None]
    assert sorted(json.loads(key or b"")["id"] for key in tombstoned) == [1, 3, 13, 23, 33, 43]
    bus.run("tap-kafka", "target-postgres")
    assert bus.loaded_rows("bus", "order_lines") == (customers, lines)


def test_a_full_table_stream_is_refused_before_anything_is_sent(bus: Bus) -> None:
    proc = bus.run("tap-postgres-full", "target-kafka", expect=EXIT_CONFIG)
    assert "sent ACTIVATE_VERSION" in proc.stderr and "is never replaced" in proc.stderr, proc.stderr
    assert "Replicate the stream INCREMENTAL or LOG_BASED" in proc.stderr
    assert not any(bus.end_offsets(bus.topic("public-customers")).values())
    listed = bus.dpone("state", "list").stdout
    assert "tap-postgres-full-to-target-kafka" not in listed


@pytest.mark.parametrize(("page", "cls"), [("target-kafka", KafkaTarget), ("tap-kafka", KafkaTap)])
def test_the_docs_settings_table_lists_every_setting(page: str, cls: type[Tap] | type[Target]) -> None:
    doc = (DOCS / "connectors" / f"{page}.md").read_text()
    section = doc.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE)
    names = [s.name for s in cls.all_settings()]
    assert rows == names, f"docs/connectors/{page}.md: the settings table is out of date"
