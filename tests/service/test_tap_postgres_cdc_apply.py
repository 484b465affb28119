"""LOG_BASED end to end: after `tap-postgres | target-postgres`, the destination's live rows equal the
source's, column by column, whatever the changes were.

One class of changes, each kind on its own and several in one transaction: inserts, updates of a
non-key column, updates of the key, updates that leave a TOASTed value unchanged (wal2json then does
not send it), deletes and TRUNCATE; with REPLICA IDENTITY DEFAULT and FULL. Every run's output is
loaded twice: once soft-deleting (live rows are those with `_sdc_deleted_at IS NULL`) and once with
`hard_delete` (every row is live).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dpone.targets.postgres.target import PostgresTarget
from tests.service.test_tap_postgres import ok, q, records
from tests.service.test_tap_postgres_cdc import Cdc

pytestmark = pytest.mark.service
SOURCE = Cdc  # the `src` fixture (tests/service/conftest.py) makes one

COLUMNS = "id, n, big, note, amount"


def big(seed: int) -> str:
    """12,800 characters that do not compress much: stored out of line (TOAST)."""
    return f"SELECT string_agg(md5(g::text || '-{seed}'), '') FROM generate_series(1, 400) AS g"


class Pipeline:
    """The tap's LOG_BASED runs, each loaded into two destination schemas; the state the targets echo."""

    def __init__(self, src: Cdc, run_target: Any) -> None:
        self.src = src
        self.run_target = run_target
        self.catalog = src.log_catalog("t")
        self.state: dict[str, Any] | None = None

    def target_config(self, suffix: str, hard: bool) -> dict[str, Any]:
        config = {k: v for k, v in self.src.config().items() if k not in ("include", "replication_slot")}
        return {
            **config,
            "default_target_schema": f"{self.src.schema}_{suffix}",
            "table_name_map": {self.src.stream("t"): "t"},
            "hard_delete": hard,
        }

    def run(self) -> Any:
        tapped = ok(self.src.sync(self.catalog, self.state))
        echoed = None
        for suffix, hard in (("soft", False), ("hard", True)):
            loaded = self.run_target(PostgresTarget, self.target_config(suffix, hard), tapped.stdout)
            assert loaded.rc == 0, loaded.stderr
            echoed = loaded.states[-1]
        self.state = echoed
        return tapped

    def assert_same(self) -> None:
        src = self.src
        source = src.rows(f"SELECT {COLUMNS} FROM t ORDER BY id")
        soft = src.rows(f"SELECT {COLUMNS} FROM {q(src.schema + '_soft')}.t WHERE _sdc_deleted_at IS NULL ORDER BY id")
        hard = src.rows(f"SELECT {COLUMNS} FROM {q(src.schema + '_hard')}.t ORDER BY id")
        for name, dest in (("soft-delete", soft), ("hard_delete", hard)):
            assert [r[0] for r in dest] == [r[0] for r in source], name
            for want, got in zip(source, dest, strict=True):
                for column, a, b in zip(COLUMNS.split(", "), want, got, strict=True):
                    assert a == b, f"{name}: row {want[0]}, column {column}: {str(b)[:40]!r} != {str(a)[:40]!r}"


@pytest.mark.parametrize("identity", ["DEFAULT", "FULL"])
def test_destination_live_rows_equal_the_source_after_every_kind_of_change(
    src: Cdc, run_target: Any, identity: str
) -> None:
    src.sql(
        "CREATE TABLE t (id int PRIMARY KEY, n int NOT NULL, big text, note text, amount numeric(10,2))",
        "ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL",
        f"ALTER TABLE t REPLICA IDENTITY {identity}",
    )
    for i in range(1, 26):
        src.sql(f"INSERT INTO t VALUES ({i}, 0, ({big(i)}), 'row {i}', {i}.25)")
    assert src.scalar("SELECT min(length(big)) FROM t") == 12_800
    pipeline = Pipeline(src, run_target)
    pipeline.run()  # the snapshot
    pipeline.assert_same()

    src.spacer()
    src.sql(
        f"INSERT INTO t VALUES (26, 0, ({big(26)}), 'new', NULL)",
        "UPDATE t SET note = 'changed' WHERE id = 2",  # a non-key column; big unchanged (TOAST)
        "UPDATE t SET n = n + 1",  # every row; big unchanged (TOAST)
        "UPDATE t SET id = 5000 WHERE id = 21",  # the key; big unchanged (TOAST)
        f"UPDATE t SET id = 5001, big = ({big(99)}) WHERE id = 22",  # the key and the large value
        "DELETE FROM t WHERE id = 3",
    )
    with src.conn.transaction():  # several changes, one transaction
        src.sql(
            f"INSERT INTO t VALUES (27, 7, ({big(27)}), 'tx', 1.50)",
            "UPDATE t SET n = 99 WHERE id = 4",
            "UPDATE t SET id = 5005 WHERE id = 5",
            "DELETE FROM t WHERE id = 6",
            "UPDATE t SET id = 6 WHERE id = 7",  # a key that was just deleted, taken again
            "UPDATE t SET note = NULL WHERE id = 27",
        )
    changes = pipeline.run()
    kinds = [(r["id"], r["_sdc_deleted_at"] is not None) for r in records(changes)]
    assert (21, True) in kinds and (5000, False) in kinds  # the old key goes, the new one comes
    assert all(r.get("big") is not None for r in records(changes) if r["_sdc_deleted_at"] is None)
    pipeline.assert_same()

    src.spacer()
    src.sql("TRUNCATE t", f"INSERT INTO t VALUES (100, 1, ({big(100)}), 'after', 2.00)", "UPDATE t SET n = 2")
    truncated = pipeline.run()
    assert [m["type"] for m in truncated.messages].count("ACTIVATE_VERSION") == 1
    assert "TRUNCATE at LSN" in truncated.stderr
    pipeline.assert_same()

    src.spacer()
    with src.conn.transaction():  # rows before the TRUNCATE in its transaction go, rows after it stay
        src.sql(
            f"INSERT INTO t VALUES (200, 0, ({big(200)}), 'gone', NULL)",
            "TRUNCATE t",
            f"INSERT INTO t VALUES (201, 0, ({big(201)}), 'kept', NULL)",
            "UPDATE t SET n = 5 WHERE id = 201",
        )
    pipeline.run()
    pipeline.assert_same()
    assert src.rows("SELECT id FROM t") == [(201,)]

    # Nothing new: the next run changes nothing downstream.
    again = pipeline.run()
    assert records(again) == []
    pipeline.assert_same()


def test_truncate_in_batch_mode_stops_with_a_clear_error(src: Cdc, tmp_path: Path) -> None:
    src.sql("CREATE TABLE t (id int PRIMARY KEY, v text)", "INSERT INTO t VALUES (1, 'a')")
    batch = {"encoding": {"format": "jsonl", "compression": "gzip"}, "storage": {"root": (tmp_path / "b").as_uri()}}
    catalog = src.log_catalog("t")
    first = ok(src.sync(catalog, batch_config=batch))
    src.spacer()
    src.sql("TRUNCATE t")
    second = src.sync(catalog, first.states[-1], batch_config=batch)
    assert second.rc == 78, second.stderr
    assert "was truncated" in second.stderr and "BATCH output cannot carry" in second.stderr
    # The bookmark did not move past the TRUNCATE.
    assert all(s == first.states[-1] for s in second.states)
