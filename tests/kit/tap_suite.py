"""The scenarios every tap runs: subclass `TapSuite` and provide one fixture, `tap_kit`.

The kit's two streams share one shape (`id` key, `name`, `updated_at` replication key); each
scenario puts rows into the source, runs the tap through its CLI with a catalog and a state, and
reads the messages it wrote. Nothing here knows how a tap reads its source.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from tests.conftest import Run
from tests.kit.kit import Row, TapKit

FULL_TABLE = "FULL_TABLE"
INCREMENTAL = "INCREMENTAL"


def at(day: int, hour: int = 0) -> str:
    return f"2024-01-{day:02d}T{hour:02d}:00:00+00:00"


def rows(*pairs: tuple[int, str]) -> list[Row]:
    return [{"id": i, "name": f"n{i}", "updated_at": when} for i, when in pairs]


def instant(value: Any) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(str(value))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def ok(run: Run) -> Run:
    assert run.rc == 0, run.stderr
    return run


def records(run: Run, stream: str | None = None) -> list[Row]:
    return [m["record"] for m in run.of_type("RECORD") if stream in (None, m["stream"])]


def ids(run: Run, stream: str | None = None) -> list[int]:
    return [r["id"] for r in records(run, stream)]


def root(entry: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
    return found


def column(entry: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == ["properties", name])
    return found


def select(
    catalog: dict[str, Any],
    stream: str,
    method: str = FULL_TABLE,
    replication_key: str | None = None,
    deselect: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The catalog with only `stream` selected, read with `method`, minus the `deselect` columns."""
    catalog = copy.deepcopy(catalog)
    found = False
    for entry in catalog["streams"]:
        md = root(entry)
        md["selected"] = entry["tap_stream_id"] == stream
        if not md["selected"]:
            continue
        found = True
        md["replication-method"] = method
        if replication_key:
            md["replication-key"] = replication_key
        for name in entry["schema"]["properties"]:
            column(entry, name)["selected"] = name not in deselect
    assert found, f"{stream} not discovered"
    return catalog


def bookmark_value(state: dict[str, Any], stream: str) -> Any:
    return state.get("bookmarks", {}).get(stream, {}).get("replication_key_value")


def applies(kit: TapKit, scenario: str) -> None:
    """Skip a scenario the tap says cannot apply to its source (`TapKit.lacks`), with its reason."""
    if scenario in kit.lacks:
        pytest.skip(f"{kit.name}: {kit.lacks[scenario]}")


class TapSuite:
    """Subclass it in a test module and define the fixture `tap_kit` returning a `TapKit`."""

    # -- discovery ---------------------------------------------------------------------------------------

    @pytest.mark.certifies("catalog")
    def test_discovery_gives_a_catalog_of_every_stream(self, tap_kit: TapKit) -> None:
        kit = tap_kit
        for stream in kit.streams:
            kit.put_rows(stream, rows((1, at(1))))
        catalog = kit.discover()
        entries = {e["tap_stream_id"]: e for e in catalog["streams"]}
        assert set(kit.streams) <= set(entries), sorted(entries)
        for stream in kit.streams:
            entry = entries[stream]
            assert entry["stream"] and entry["schema"]["type"] == "object"
            props = entry["schema"]["properties"]
            # The source's column order, then what the tap adds.
            assert list(props) == ["id", "name", "updated_at", *kit.added_properties]
            assert "integer" in props["id"]["type"]
            assert "string" in props["name"]["type"]
            assert props["updated_at"]["format"] == "date-time"
            md = root(entry)
            keys = ["id"] if kit.has_keys else []
            assert entry.get("key_properties", md.get("table-key-properties")) == keys
            assert md.get("table-key-properties", keys) == keys
            for name in props:
                inclusion = column(entry, name)["inclusion"]
                if name == md.get("replication-key"):
                    assert inclusion in ("automatic", "available"), (name, inclusion)
                else:
                    assert inclusion == ("automatic" if name in keys else "available"), (name, inclusion)
            assert kit.replication_key in md.get("valid-replication-keys", [kit.replication_key])

    # -- selection ---------------------------------------------------------------------------------------

    @pytest.mark.certifies("catalog")
    def test_only_selected_streams_and_columns_are_emitted(self, tap_kit: TapKit) -> None:
        kit = tap_kit
        wanted, other = kit.streams
        kit.put_rows(wanted, rows((1, at(1)), (2, at(2))))
        kit.put_rows(other, rows((7, at(1))))
        # The key cannot be deselected: it comes all the same.
        catalog = select(kit.discover(), wanted, kit.read_method, deselect=("name", "id"))
        run = ok(kit.sync(catalog))
        assert {m["stream"] for m in run.messages if "stream" in m} == {wanted}
        (schema,) = run.of_type("SCHEMA")
        expected = ["id", "updated_at"] if kit.has_keys else ["updated_at"]
        assert list(schema["schema"]["properties"]) == [*expected, *kit.added_properties]
        emitted = records(run)
        assert [sorted(set(r) - set(kit.added_properties)) for r in emitted] == [sorted(expected)] * len(emitted)
        assert sorted(instant(r["updated_at"]) for r in records(run)) == [instant(at(1)), instant(at(2))]
        if kit.has_keys:
            assert sorted(ids(run)) == [1, 2]
        assert all(m["stream"] == wanted for m in run.of_type("STATE") if "stream" in m)
        assert set(run.states[-1].get("bookmarks", {})) <= {wanted}

    @pytest.mark.certifies("catalog")
    def test_no_catalog_syncs_every_discovered_stream(self, tap_kit: TapKit) -> None:
        kit = tap_kit
        first, second = kit.streams
        kit.put_rows(first, rows((1, at(1))))
        kit.put_rows(second, rows((2, at(2))))
        order = [e["tap_stream_id"] for e in kit.discover()["streams"] if e["tap_stream_id"] in kit.streams]
        run = ok(kit.sync())
        assert [m["stream"] for m in run.of_type("SCHEMA") if m["stream"] in kit.streams] == order
        assert ids(run, first) == [1] and ids(run, second) == [2]

    # -- bookmarks ---------------------------------------------------------------------------------------

    @pytest.mark.certifies("replication_method:INCREMENTAL")
    def test_incremental_resumes_at_the_bookmark_and_resends_ties(self, tap_kit: TapKit) -> None:
        kit = tap_kit
        applies(kit, "incremental")
        stream = kit.streams[0]
        kit.put_rows(stream, rows((1, at(1)), (2, at(2)), (3, at(3)), (4, at(3)), (5, at(3))))
        catalog = select(kit.discover(), stream, INCREMENTAL, kit.replication_key)
        first = ok(kit.sync(catalog))
        assert sorted(ids(first)) == [1, 2, 3, 4, 5]
        assert first.of_type("SCHEMA")[0]["bookmark_properties"] == [kit.replication_key]
        final = first.states[-1]
        assert final["bookmarks"][stream] == {"replication_key": kit.replication_key, "replication_key_value": at(3)}

        # A row at the bookmark value arrives late, one after it, and one backdated before it.
        kit.put_rows(stream, rows((6, at(3)), (7, at(4)), (8, at(1, 12))))
        # A saved STATE message works as --state as well as its bare value.
        second = ok(kit.sync(catalog, {"type": "STATE", "value": final}))
        # Every row sharing the bookmark value comes again (at-least-once): none at the boundary is lost.
        assert sorted(ids(second)) == [3, 4, 5, 6, 7]
        assert instant(bookmark_value(second.states[-1], stream)) == instant(at(4))

        # Nothing new: only the rows at the bookmark, and the same state.
        third = ok(kit.sync(catalog, second.states[-1]))
        assert ids(third) == [7]
        assert third.states[-1] == second.states[-1]

    # -- resume ------------------------------------------------------------------------------------------

    @pytest.mark.certifies("replication_method:FULL_TABLE")
    def test_an_interrupted_full_table_resumes_after_its_last_state(self, tap_kit: TapKit) -> None:
        kit = tap_kit
        applies(kit, "full_table_resume")
        if not kit.resumes_full_table:
            pytest.skip(f"{kit.name} reads a FULL_TABLE stream whole every time")
        stream = kit.streams[0]
        kit.put_rows(stream, rows(*((i, at(1 + i % 3)) for i in range(1, 11))))
        catalog = select(kit.discover(), stream)
        first = ok(kit.sync(catalog, state_every_rows=3))
        sent = ids(first)
        assert sorted(sent) == list(range(1, 11))
        # The target committed up to the second checkpoint; then the pipeline died.
        kinds = [m["type"] for m in first.messages]
        second_state = [i for i, k in enumerate(kinds) if k == "STATE"][1]
        done = kinds[:second_state].count("RECORD")
        committed = first.messages[second_state]["value"]

        resumed = ok(kit.sync(catalog, committed, state_every_rows=3))
        assert ids(resumed) == sent[done:]
        assert sorted(sent[:done] + ids(resumed)) == list(range(1, 11))
        versions = {m.get("version") for m in first.of_type("RECORD")}
        assert {m.get("version") for m in resumed.of_type("RECORD")} == versions  # the same table version
        kinds = [m["type"] for m in resumed.messages]
        # A version is not activated before the rest of its rows have come.
        assert "ACTIVATE_VERSION" not in kinds[: kinds.index("RECORD")]
        assert resumed.states[-1] == first.states[-1]

    # -- state cadence -----------------------------------------------------------------------------------

    @pytest.mark.certifies("replication_method:{tap_kit.read_method}", incremental=False)
    @pytest.mark.certifies("replication_method:INCREMENTAL", incremental=True)
    @pytest.mark.parametrize("incremental", [False, True], ids=[FULL_TABLE, INCREMENTAL])
    def test_state_comes_every_n_records_and_the_last_covers_everything(
        self, tap_kit: TapKit, incremental: bool
    ) -> None:
        kit = tap_kit
        if incremental:
            applies(kit, "incremental")
        method = INCREMENTAL if incremental else kit.read_method
        stream = kit.streams[0]
        kit.put_rows(stream, rows(*((i, at(1, i)) for i in range(1, 11))))
        rk = kit.replication_key if method == INCREMENTAL else None
        run = ok(kit.sync(select(kit.discover(), stream, method, rk), state_every_rows=3))
        assert sorted(ids(run)) == list(range(1, 11))
        since = 0
        newest: dt.datetime | None = None
        for message in run.messages:
            if message["type"] == "RECORD":
                since += 1
                assert since <= 3, "more than state_every_rows records without a STATE"
                value = instant(message["record"]["updated_at"])
                newest = value if newest is None or value > newest else newest
            elif message["type"] == "STATE":
                since = 0
                promised = bookmark_value(message["value"], stream)
                if promised is not None:  # a state never promises rows not sent yet
                    assert newest is not None and instant(promised) <= newest, (promised, newest)
        assert run.messages[-1]["type"] == "STATE"
        if method == INCREMENTAL:
            assert instant(bookmark_value(run.states[-1], stream)) == instant(at(1, 10))
            again = ok(kit.sync(select(kit.discover(), stream, method, rk), run.states[-1]))
            assert ids(again) == [10]  # only the row at the bookmark
