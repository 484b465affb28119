"""tap-postgres BATCH output of a FULL_TABLE stream with an integer key: key ranges read over
several connections in one snapshot, straight into the files, announced in key order."""

from __future__ import annotations

import gzip
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.taps.postgres.range_reads import KeyRange, split
from dpone_protocol.batch_files import uri_to_path
from tests.service.test_tap_postgres import ok

pytestmark = pytest.mark.service


def batch_config(tmp_path: Path, compression: str = "none", size: int = 4) -> dict[str, Any]:
    return {
        "encoding": {"format": "jsonl", "compression": compression},
        "storage": {"root": str(tmp_path / "batches")},
        "batch_size": size,
    }


def file_rows(uri: str) -> list[dict[str, Any]]:
    path = uri_to_path(uri)
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return [orjson.loads(line) for line in data.splitlines()]


def test_split_covers_every_key_once():
    assert split(1, 10, 2) == [KeyRange(1, 5), KeyRange(6, 10)]
    assert split(1, 10, 3) == [KeyRange(1, 3), KeyRange(4, 6), KeyRange(7, 10)]
    assert split(5, 6, 4) == [KeyRange(5, 5), KeyRange(6, 6)]
    assert split(7, 7, 2) == [KeyRange(7, 7)]


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_ranges_land_in_key_order_with_a_state_after_each_file(src, tmp_path, compression):
    src.sql(
        "CREATE TABLE items (id bigint PRIMARY KEY, v text, n numeric(12, 2))",
        "INSERT INTO items SELECT g, 'v' || g, g / 4.0 FROM generate_series(1, 21) g",
    )
    stream = src.stream("items")
    config = {"batch_config": batch_config(tmp_path, compression), "batch_read_connections": 3}
    run = ok(src.sync(src.catalog("items"), **config))
    assert not run.of_type("RECORD")
    ids: list[int] = []
    last = 0
    for message in run.messages:
        if message["type"] == "BATCH":
            rows = [r for uri in message["manifest"] for r in file_rows(uri)]
            assert [r["id"] for r in rows] == sorted(r["id"] for r in rows) and rows[0]["id"] > last
            ids += [r["id"] for r in rows]
            last = rows[-1]["id"]
        elif message["type"] == "STATE" and "last_pk" in message["value"]["bookmarks"][stream]:
            assert message["value"]["bookmarks"][stream]["last_pk"] == [last]  # the file just announced
    assert ids == list(range(1, 22))
    assert file_rows(run.of_type("BATCH")[0]["manifest"][0])[0] == {"id": 1, "v": "v1", "n": "0.25"}
    assert "last_pk" not in run.states[-1]["bookmarks"][stream]  # the table is done
    names = {uri_to_path(u).name[:3] for b in run.of_type("BATCH") for u in b["manifest"]}
    assert names == {"r0-", "r1-", "r2-"}  # three readers


def test_a_resumed_read_starts_after_the_committed_key(src, tmp_path):
    src.sql(
        "CREATE TABLE items (id int PRIMARY KEY, v text)",
        "INSERT INTO items SELECT g, 'v' FROM generate_series(1, 30) g",
    )
    stream = src.stream("items")
    catalog = src.catalog("items")
    first = ok(src.sync(catalog, batch_config=batch_config(tmp_path), batch_read_connections=2))
    committed = next(s for s in first.states if s["bookmarks"][stream].get("last_pk") == [8])
    second = ok(src.sync(catalog, committed, batch_config=batch_config(tmp_path), batch_read_connections=2))
    ids = [r["id"] for b in second.of_type("BATCH") for uri in b["manifest"] for r in file_rows(uri)]
    assert ids == list(range(9, 31))


def test_selected_columns_only_and_an_empty_table(src, tmp_path):
    src.sql("CREATE TABLE items (id int PRIMARY KEY, v text, secret text)", "CREATE TABLE empty (id int PRIMARY KEY)")
    src.sql("INSERT INTO items SELECT g, 'v', 's' FROM generate_series(1, 5) g")
    run = ok(src.sync(src.catalog("items", deselect=("secret",)), batch_config=batch_config(tmp_path, size=100)))
    rows = [r for b in run.of_type("BATCH") for uri in b["manifest"] for r in file_rows(uri)]
    assert rows == [{"id": i, "v": "v"} for i in range(1, 6)]
    empty = ok(src.sync(src.catalog("empty"), batch_config=batch_config(tmp_path)))
    assert not empty.of_type("BATCH") and empty.states


def test_all_readers_see_one_snapshot(src, tmp_path, monkeypatch):
    """Rows committed while the ranges are read belong to no reader: they came after the snapshot."""
    from dpone.taps.postgres import range_reads

    src.sql(
        "CREATE TABLE items (id int PRIMARY KEY, v text)",
        "INSERT INTO items SELECT g, 'v' FROM generate_series(1, 40) g",
    )
    started = range_reads.RangeReader._read
    writer = src.connect()
    done = threading.Event()

    def read_after_a_concurrent_change(self: Any) -> None:
        if not done.is_set():
            done.set()
            writer.execute("DELETE FROM items WHERE id IN (2, 39)")
            writer.execute("INSERT INTO items VALUES (41, 'late')")
        started(self)

    monkeypatch.setattr(range_reads.RangeReader, "_read", read_after_a_concurrent_change)
    run = ok(src.sync(src.catalog("items"), batch_config=batch_config(tmp_path, size=100), batch_read_connections=2))
    ids = sorted(r["id"] for b in run.of_type("BATCH") for uri in b["manifest"] for r in file_rows(uri))
    assert ids == list(range(1, 41))  # as of the snapshot: 2 and 39 still there, 41 not yet
    writer.close()


def test_a_text_key_reads_through_one_connection_as_before(src, tmp_path):
    src.sql("CREATE TABLE tags (name text PRIMARY KEY)", "INSERT INTO tags VALUES ('a'), ('b'), ('c')")
    run = ok(src.sync(src.catalog("tags"), batch_config=batch_config(tmp_path, size=2), batch_read_connections=4))
    rows = [r["name"] for b in run.of_type("BATCH") for uri in b["manifest"] for r in file_rows(uri)]
    assert rows == ["a", "b", "c"]


def test_a_failing_reader_stops_the_run_and_announces_nothing_past_it(src, tmp_path, monkeypatch):
    """A range reader's connection drops: the tap exits with the reason, and the last STATE it wrote
    covers only files of the ranges before the failed one, so a resumed run re-reads the rest."""
    import psycopg

    from dpone.taps.postgres import range_reads

    src.sql(
        "CREATE TABLE items (id int PRIMARY KEY, v text)",
        "INSERT INTO items SELECT g, 'v' FROM generate_series(1, 20) g",
    )
    stream = src.stream("items")
    read = range_reads.RangeReader._read

    def second_range_drops(self: Any) -> None:
        if self.part == "r1-":
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        read(self)

    monkeypatch.setattr(range_reads.RangeReader, "_read", second_range_drops)
    run = src.sync(src.catalog("items"), batch_config=batch_config(tmp_path), batch_read_connections=2)
    assert run.rc == 75, run.stderr  # transient: the next run resumes
    assert "reading the table in key ranges" in run.stderr and "server closed the connection" in run.stderr
    announced = [uri_to_path(u).name for b in run.of_type("BATCH") for u in b["manifest"]]
    assert announced and all(name.startswith("r0-") for name in announced)
    marks = [s["bookmarks"][stream].get("last_pk") for s in run.states]
    assert max(m[0] for m in marks if m) <= 10  # never past the first range (ids 1..10)
