"""Every load method x ACTIVATE_VERSION order x new/existing table x database target, run twice.

The class behind the worst defect so far (overwrite + ACTIVATE_VERSION after the records swapped an
empty table in, exit 0): each run sends ids 2..4 under a new table version, and the live rows of the
table are checked against what the method promises after each run. Then tap-postgres's FULL_TABLE
streams (ACTIVATE_VERSION before the first sync's rows and after every sync's) into both targets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.conftest import Run, lines, record, schema, state
from tests.service.destinations import Destination

pytestmark = pytest.mark.service

PROPS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}
METHODS = ("append-only", "upsert", "overwrite")
ORDERS = ("before", "after", "both", "absent")
OLD = [(1, "old"), (2, "old"), (3, "old")]


def activate(stream: str, version: int) -> dict[str, Any]:
    return {"type": "ACTIVATE_VERSION", "stream": stream, "version": version}


def one_run(stream: str, version: int, name: str, order: str) -> bytes:
    records = [record(stream, {"id": i, "name": name}, version=version) for i in (2, 3, 4)]
    before = [activate(stream, version)] if order in ("before", "both") else []
    after = [activate(stream, version)] if order in ("after", "both") else []
    return lines(schema(stream, PROPS), *before, *records, *after, state({"version": version}))


def expected_live(method: str, order: str, existing: bool, runs: int) -> list[tuple[int, str]]:
    """The live rows (not soft-deleted) after `runs` runs, sorted."""
    latest = [(i, f"run{runs}") for i in (2, 3, 4)]
    if method == "overwrite" or order != "absent":
        return latest  # a full refresh, or older versions deactivated
    old = OLD if existing else []
    if method == "upsert":
        return sorted([r for r in old if r[0] not in (2, 3, 4)] + latest)
    every_run = [(i, f"run{n}") for n in range(1, runs + 1) for i in (2, 3, 4)]
    return sorted(old + every_run)


def run_ok(run_target: Callable[..., Run], dest: Destination, config: dict[str, Any], data: bytes) -> Run:
    result: Run = run_target(dest.target, config, data)
    assert result.rc == 0, result.stderr
    return result


@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("method", METHODS)
def test_load_method_x_activate_version_order(run_target, dest, method, order, existing, hard):
    config = dest.config(load_method=method, hard_delete=hard)
    if existing:
        old = lines(schema("users", PROPS), *[record("users", {"id": i, "name": n}, version=1) for i, n in OLD])
        run_ok(run_target, dest, dest.config(load_method="append-only"), old)
    for n in (1, 2):
        version = 100 + n
        result = run_ok(run_target, dest, config, one_run("users", version, f"run{n}", order))
        assert result.states == [{"version": version}]
        live = sorted(dest.rows("SELECT id, name FROM users WHERE _sdc_deleted_at IS NULL"))
        assert live == expected_live(method, order, existing, n), f"run {n}"
        if hard:
            assert dest.rows("SELECT count(*) FROM users WHERE _sdc_deleted_at IS NOT NULL") == [(0,)]
        assert dest.tables() == {"users"}  # no shadow or staging left behind


@pytest.mark.parametrize("order", ["before", "both", "absent"])
def test_overwrite_of_an_empty_source_empties_the_table(run_target, dest, order):
    config = dest.config(load_method="overwrite")
    run_ok(run_target, dest, config, one_run("users", 1, "run1", "after"))
    before = [activate("users", 2)] if order in ("before", "both") else []
    after = [activate("users", 2)] if order == "both" else []
    data = lines(schema("users", PROPS), *before, *after, state({"empty": True}))
    assert run_ok(run_target, dest, config, data).states == [{"empty": True}]
    assert dest.rows("SELECT count(*) FROM users") == [(0,)]


def test_activating_the_same_version_again_keeps_the_table(run_target, dest):
    config = dest.config(load_method="overwrite")
    data = one_run("users", 7, "run1", "after") + lines(activate("users", 7), state({"again": 1}))
    assert run_ok(run_target, dest, config, data).states[-1] == {"again": 1}
    assert sorted(dest.rows("SELECT id, name FROM users")) == [(2, "run1"), (3, "run1"), (4, "run1")]


# -- tap-postgres FULL_TABLE streams: ACTIVATE_VERSION before the first sync's rows, after every sync's --


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize("method", METHODS)
def test_tap_postgres_full_table_into_every_method(run_target, dest, src, method, existing):
    src.sql(
        "CREATE TABLE lm (id integer PRIMARY KEY, name text)",
        "INSERT INTO lm SELECT g, 'v1' FROM generate_series(1, 30) g",
    )
    stream = src.stream("lm")
    config = dest.config(load_method=method, table_name_map={stream: "lm"})
    if existing:
        pre = lines(schema(stream, PROPS), *[record(stream, {"id": i, "name": "stale"}) for i in range(20, 41)])
        run_ok(run_target, dest, dest.config(load_method="append-only", table_name_map={stream: "lm"}), pre)
    catalog = src.catalog("lm")
    saved: dict[str, Any] | None = None
    for n in (1, 2):
        if n == 2:
            src.sql("DELETE FROM lm WHERE id > 25", "UPDATE lm SET name = 'v2'")
        tap = src.sync(catalog, state=saved)
        assert tap.rc == 0, tap.stderr
        result = run_ok(run_target, dest, config, tap.stdout)
        assert result.states, "the sync's state is echoed"
        saved = result.states[-1]
        live = sorted(dest.rows("SELECT id, name FROM lm WHERE _sdc_deleted_at IS NULL"))
        assert live == sorted(src.rows("SELECT id, name FROM lm")), f"sync {n}"


# -- a refresh whose final state was lost: the tap resumes the version already swapped in ----------


def test_a_version_live_already_is_never_replaced_by_an_empty_or_partial_refresh(run_target, dest):
    config = dest.config(load_method="overwrite")
    run_ok(run_target, dest, config, one_run("users", 7, "run1", "after"))
    # The same version again, with no rows: a tap resuming after its last key, nothing left to send.
    again = lines(schema("users", PROPS), activate("users", 7), state({"resumed": 1}))
    assert run_ok(run_target, dest, config, again).states[-1] == {"resumed": 1}
    assert sorted(dest.rows("SELECT id, name FROM users")) == [(2, "run1"), (3, "run1"), (4, "run1")]
    # The same version with its tail re-sent: merged in, not swapped in alone.
    tail = lines(schema("users", PROPS), record("users", {"id": 4, "name": "tail"}, version=7), activate("users", 7))
    run_ok(run_target, dest, config, tail)
    assert sorted(dest.rows("SELECT id, name FROM users")) == [(2, "run1"), (3, "run1"), (4, "tail")]
    assert dest.tables() == {"users"}


@pytest.mark.parametrize("cut_after", ["ACTIVATE_VERSION", "a mid-stream STATE"])
def test_tap_postgres_full_table_cut_then_resumed_keeps_every_row(run_target, dest, src, cut_after):
    src.sql(
        "CREATE TABLE lm (id integer PRIMARY KEY, name text)",
        "INSERT INTO lm SELECT g, 'v1' FROM generate_series(1, 30) g",
    )
    stream = src.stream("lm")
    config = dest.config(load_method="overwrite", table_name_map={stream: "lm"})
    catalog = src.catalog("lm")
    tap = src.sync(catalog, state_every_rows=10)
    assert tap.rc == 0, tap.stderr
    out = tap.stdout.splitlines(keepends=True)
    kinds = [orjson.loads(line).get("type") for line in out]
    if cut_after == "ACTIVATE_VERSION":
        at = len(kinds) - 1 - kinds[::-1].index("ACTIVATE_VERSION")  # the one after the rows
    else:
        at = kinds.index("STATE", kinds.index("RECORD"))
    first = run_target(dest.target, config, b"".join(out[: at + 1]) + b'{"type":"STA')
    assert first.rc == 74, first.stderr
    saved = first.states[-1] if first.states else None
    resumed = src.sync(catalog, state=saved, state_every_rows=10)
    assert resumed.rc == 0, resumed.stderr
    run_ok(run_target, dest, config, resumed.stdout)
    assert sorted(dest.rows("SELECT id, name FROM lm")) == sorted(src.rows("SELECT id, name FROM lm"))
