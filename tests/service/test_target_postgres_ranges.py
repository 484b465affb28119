"""target-postgres loading one key range of a partitioned load (DPONE_RANGE_TOKEN): all or nothing.

The installed target reads Singer lines on stdin as `dpone partitions run` sends them. Every batch of
the range goes into one transaction with the range's ledger row; the cases below are the ways that
transaction must not commit (an input without dpone's end mark, a second load of the same token, a
load method or message that would touch other ranges) and the ways it must (the end mark, a range
with no rows, rows whose keys already exist under upsert). Both paths of the target (its C encoder
and the decoded path) run each case.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone_protocol.key_ranges import RANGE_TOKEN_ENV, range_end_line

pytestmark = pytest.mark.service

TARGET = str(Path(sys.executable).parent / "target-postgres")
SCHEMA = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}}


def lines(ids: range, *, stream: str = "items", end: str | None = None, extra: list[dict[str, Any]] = ()) -> bytes:
    out = [{"type": "SCHEMA", "stream": stream, "schema": SCHEMA, "key_properties": ["id"]}]
    out += [{"type": "RECORD", "stream": stream, "record": {"id": i, "name": f"n{i}"}} for i in ids]
    out += [*extra, {"type": "STATE", "value": {"bookmarks": {stream: {"at": ids.stop}}}}]
    body = b"".join(orjson.dumps(m) + b"\n" for m in out)
    return body + (range_end_line(end) if end else b"")


def target(
    pg: Any, tmp_path: Path, data: bytes, token: str | None, **config: Any
) -> subprocess.CompletedProcess[bytes]:
    path = tmp_path / f"config-{time.monotonic_ns()}.json"
    path.write_bytes(orjson.dumps(pg.config(batch_size_rows=100, **config)))
    env = {**os.environ, **({RANGE_TOKEN_ENV: token} if token else {})}
    return subprocess.run([TARGET, "--config", str(path)], input=data, capture_output=True, env=env, check=False)


def prepare(pg: Any, tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_bytes(b'{"op": "range_ledger", "prepare": true}')
    config = tmp_path / "ops-config.json"
    config.write_bytes(orjson.dumps(pg.config()))
    done = subprocess.run([TARGET, "--config", str(config), "--ops", str(request)], capture_output=True, check=True)
    assert orjson.loads(done.stdout) == {"op": "range_ledger", "supported": True, "committed": False, "rows": None}


def count(pg: Any) -> int:
    return int(pg.scalar("SELECT count(*) FROM items")) if "items" in pg.tables() else 0


@pytest.mark.parametrize("method", ["append-only", "upsert"])
def test_a_range_commits_whole_once_the_end_mark_arrives(pg: Any, path: str, tmp_path: Path, method: str) -> None:
    prepare(pg, tmp_path)
    done = target(pg, tmp_path, lines(range(1, 451), end="t/1"), "t/1", load_method=method)
    assert done.returncode == 0, done.stderr
    assert count(pg) == 450
    assert pg.rows("SELECT token, records FROM _dpone_ranges") == [("t/1", 450)]
    # The state is echoed only after the commit.
    assert orjson.loads(done.stdout.splitlines()[-1]) == {"dpone-range-end": "t/1"}


def test_an_input_without_the_end_mark_commits_nothing(pg: Any, path: str, tmp_path: Path) -> None:
    prepare(pg, tmp_path)
    done = target(pg, tmp_path, lines(range(1, 451)), "t/1")
    assert done.returncode == 74 and b"end-of-range mark" in done.stderr
    assert count(pg) == 0  # 4 batches were written in the range's transaction, then rolled back
    assert pg.rows("SELECT token FROM _dpone_ranges") == []


def test_the_same_range_is_never_loaded_twice(pg: Any, path: str, tmp_path: Path) -> None:
    prepare(pg, tmp_path)
    assert target(pg, tmp_path, lines(range(1, 201), end="t/1"), "t/1", load_method="append-only").returncode == 0
    again = target(pg, tmp_path, lines(range(1, 201), end="t/1"), "t/1", load_method="append-only")
    assert again.returncode == 78 and b"loaded already" in again.stderr
    assert count(pg) == 200


def test_a_second_load_waits_for_the_first_and_then_refuses(pg: Any, path: str, tmp_path: Path) -> None:
    """Two workers both believing they hold a range (a lease that expired under a live worker): the
    destination lets one commit; the other waited on the ledger row and then stands down."""
    prepare(pg, tmp_path)
    config = tmp_path / "slow.json"
    config.write_bytes(orjson.dumps(pg.config(batch_size_rows=100, load_method="append-only")))
    env = {**os.environ, RANGE_TOKEN_ENV: "t/1"}
    first = subprocess.Popen([TARGET, "--config", str(config)], stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert first.stdin is not None
    first.stdin.write(lines(range(1, 301)))  # batches in, the ledger row held, no end yet
    first.stdin.flush()
    deadline = time.monotonic() + 30
    while not pg.scalar("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                        "WHERE c.relname = '_dpone_ranges' AND l.mode = 'RowExclusiveLock'"):  # fmt: skip
        assert time.monotonic() < deadline
        time.sleep(0.05)
    result: dict[str, Any] = {}
    second = threading.Thread(
        target=lambda: result.update(
            done=target(pg, tmp_path, lines(range(1, 301), end="t/1"), "t/1", load_method="append-only")
        )
    )
    second.start()
    time.sleep(1.0)
    assert second.is_alive()  # waiting on the first load's ledger row
    first.stdin.write(range_end_line("t/1"))
    first.stdin.close()
    assert first.wait(timeout=60) == 0
    second.join(timeout=60)
    assert result["done"].returncode == 78 and b"loaded already" in result["done"].stderr
    assert count(pg) == 300


def test_a_range_without_rows_is_recorded(pg: Any, path: str, tmp_path: Path) -> None:
    prepare(pg, tmp_path)
    assert target(pg, tmp_path, lines(range(0), end="t/empty"), "t/empty").returncode == 0
    assert pg.rows("SELECT token, records FROM _dpone_ranges") == [("t/empty", 0)]


def test_upsert_over_existing_keys_merges_inside_the_range(pg: Any, path: str, tmp_path: Path) -> None:
    """The first INSERT of a batch fails on the existing keys and the batch is merged: the failure is
    undone by the batch's savepoint, not by the range's transaction."""
    prepare(pg, tmp_path)
    assert target(pg, tmp_path, lines(range(1, 101), end="t/a"), "t/a", load_method="upsert").returncode == 0
    done = target(pg, tmp_path, lines(range(50, 251), end="t/b"), "t/b", load_method="upsert")
    assert done.returncode == 0, done.stderr
    assert count(pg) == 250 and pg.scalar("SELECT count(DISTINCT id) FROM items") == 250


def test_what_would_touch_other_ranges_is_refused(pg: Any, path: str, tmp_path: Path) -> None:
    prepare(pg, tmp_path)
    overwrite = target(pg, tmp_path, lines(range(1, 10), end="t/1"), "t/1", load_method="overwrite")
    assert overwrite.returncode == 78 and b"overwrite" in overwrite.stderr
    activate = [{"type": "ACTIVATE_VERSION", "stream": "items", "version": 1}]
    done = target(pg, tmp_path, lines(range(1, 10), end="t/2", extra=activate), "t/2")
    assert done.returncode == 78 and b"ACTIVATE_VERSION" in done.stderr
    assert count(pg) == 0 and pg.rows("SELECT token FROM _dpone_ranges") == []


def test_without_a_ledger_the_target_says_what_makes_it(pg: Any, path: str, tmp_path: Path) -> None:
    done = target(pg, tmp_path, lines(range(1, 10), end="t/1"), "t/1")
    assert done.returncode == 78 and b"dpone partitions plan" in done.stderr
