"""The schema-evolution planner on both dialects: every policy against every kind of change."""

from __future__ import annotations

import pytest

from dpone.targets.duckdb.type_map import DUCKDB
from dpone.targets.framework.schema_evolution import (
    NEW_COLUMN_PREFIX,
    Action,
    DestinationColumn,
    Evolution,
    OnTypeChange,
    Policy,
    SchemaDriftError,
    plan_schema,
    render_plan,
)
from dpone.targets.postgres.type_map import POSTGRES, casts
from dpone_protocol.errors import ConfigError, DataError
from dpone_protocol.json_schema import ColumnType, Logical

INT = ColumnType(Logical.INTEGER)
TEXT = ColumnType(Logical.STRING)
DATE = ColumnType(Logical.DATE)


def existing(**columns: str) -> dict[str, DestinationColumn]:
    return {name: DestinationColumn(type_) for name, type_ in columns.items()}


def plan(incoming, table, policy=Policy.WIDENING, on_change=OnTypeChange.FAIL, keys=("id",), dialect=POSTGRES):
    return plan_schema("s", "t", incoming, list(keys), table, dialect, Evolution(policy, on_change))


def actions(p) -> list[tuple[Action, str | None]]:
    return [(c.action, c.column) for c in p.changes]


def test_no_table_creates_it_with_every_column():
    p = plan({"id": INT, "name": TEXT}, None)
    assert actions(p) == [(Action.CREATE_TABLE, None)]
    assert p.table_columns == {"id": "bigint", "name": "text"}
    assert p.creates and not p.stops


def test_a_matching_table_means_no_change():
    p = plan({"id": INT, "name": TEXT}, existing(id="bigint", name="text"), Policy.STRICT)
    assert p.changes == [] and p.to_dict()["status"] == "unchanged"


def test_a_narrower_incoming_type_is_held_by_the_wider_column():
    p = plan({"id": INT, "name": ColumnType(Logical.STRING, max_length=5)}, existing(id="bigint", name="text"))
    assert p.changes == []


@pytest.mark.parametrize(
    ("policy", "expected"),
    [(Policy.WIDENING, Action.ADD_COLUMN), (Policy.ADDITIVE, Action.ADD_COLUMN), (Policy.STRICT, Action.STOP)],
)
def test_new_column_by_policy(policy, expected):
    p = plan({"id": INT, "email": TEXT}, existing(id="bigint"), policy)
    assert actions(p) == [(expected, "email")]


@pytest.mark.parametrize(
    ("current", "incoming", "wanted"),
    [
        ("integer", INT, "bigint"),
        ("character varying(10)", ColumnType(Logical.STRING, max_length=50), "character varying(50)"),
        ("character varying(10)", TEXT, "text"),
        ("date", ColumnType(Logical.TIMESTAMP), "timestamp with time zone"),
        ("bigint", ColumnType(Logical.DECIMAL), "numeric"),
    ],
)
def test_compatible_changes_widen_under_widening_only(current, incoming, wanted):
    widened = plan({"id": INT, "v": incoming}, existing(id="bigint", v=current))
    assert [(c.action, c.current, c.wanted) for c in widened.changes] == [(Action.WIDEN, current, wanted)]
    assert widened.table_columns["v"] == wanted
    for policy in (Policy.ADDITIVE, Policy.STRICT):
        assert actions(plan({"id": INT, "v": incoming}, existing(id="bigint", v=current), policy)) == [
            (Action.STOP, "v")
        ]


def test_an_incompatible_change_stops_and_names_the_way_out():
    p = plan({"id": INT, "v": TEXT}, existing(id="bigint", v="bigint"))
    assert actions(p) == [(Action.STOP, "v")]
    with pytest.raises(SchemaDriftError) as err:
        p.check()
    assert isinstance(err.value, DataError)
    assert "column 'v': is bigint in the table but the stream now sends text" in str(err.value)
    assert "on_type_change" in str(err.value)


def test_new_column_routes_values_to_a_new_typed_column():
    p = plan({"id": INT, "v": TEXT}, existing(id="bigint", v="bigint"), on_change=OnTypeChange.NEW_COLUMN)
    nc = NEW_COLUMN_PREFIX + "v"
    assert actions(p) == [(Action.NEW_COLUMN, nc)]
    assert p.renames == {"v": nc}
    assert p.table_columns == {"id": "bigint", "v": "bigint", nc: "text"}
    assert list(p.load_columns) == ["id", nc]


def test_new_column_reuses_an_existing_routing_column():
    nc = NEW_COLUMN_PREFIX + "v"
    table = existing(id="bigint", v="bigint", **{nc: "text"})
    p = plan({"id": INT, "v": TEXT}, table, on_change=OnTypeChange.NEW_COLUMN)
    assert actions(p) == [(Action.ROUTE, nc)] and p.renames == {"v": nc} and not p.ddl
    # The original type again: back into the original column, the routing column is left alone.
    back = plan({"id": INT, "v": INT}, table, on_change=OnTypeChange.NEW_COLUMN)
    assert back.changes == [] and back.renames == {}


def test_new_column_is_allowed_under_additive_but_not_strict():
    table = existing(id="bigint", v="bigint")
    assert (
        actions(plan({"id": INT, "v": TEXT}, table, Policy.ADDITIVE, OnTypeChange.NEW_COLUMN))[0][0]
        is Action.NEW_COLUMN
    )
    assert actions(plan({"id": INT, "v": TEXT}, table, Policy.STRICT, OnTypeChange.NEW_COLUMN)) == [(Action.STOP, "v")]


def test_a_key_column_cannot_move_to_a_new_column():
    p = plan({"id": TEXT}, existing(id="bigint"), on_change=OnTypeChange.NEW_COLUMN)
    assert actions(p) == [(Action.STOP, "id")] and "key column" in p.stops[0].detail


def test_cast_converts_only_when_every_value_survives():
    p = plan({"id": INT, "v": TEXT}, existing(id="bigint", v="bigint"), on_change=OnTypeChange.CAST)
    assert [(c.action, c.current, c.wanted) for c in p.changes] == [(Action.CAST, "bigint", "text")]
    lossy = plan({"id": INT, "v": INT}, existing(id="bigint", v="boolean"), on_change=OnTypeChange.CAST)
    assert actions(lossy) == [(Action.STOP, "v")] and "no lossless cast" in lossy.stops[0].detail
    assert casts("date", "text") and casts("numeric(12,2)", "text") and not casts("text", "bigint")


def test_removed_columns_are_kept_and_made_nullable():
    table = {
        "id": DestinationColumn("bigint", False),
        "a": DestinationColumn("text"),
        "b": DestinationColumn("text", False),
    }
    p = plan({"id": INT}, table)
    assert actions(p) == [(Action.KEEP, "a"), (Action.RELAX, "b")]
    assert p.table_columns == {"id": "bigint", "a": "text", "b": "text"}
    assert [(c.action, c.column) for c in plan({"id": INT}, table, Policy.STRICT).changes][:1] == [(Action.STOP, "a")]


def test_every_stop_is_listed_in_one_message():
    p = plan({"id": INT, "new": TEXT}, existing(id="bigint", old="text"), Policy.STRICT)
    with pytest.raises(SchemaDriftError) as err:
        p.check()
    assert "'new'" in str(err.value) and "'old'" in str(err.value) and "strict" in str(err.value)


def test_duckdb_matches_names_case_insensitively_and_keeps_their_case():
    p = plan({"ID": INT, "Name": TEXT}, existing(id="BIGINT", name="VARCHAR"), dialect=DUCKDB, keys=("ID",))
    assert p.changes == [] and list(p.load_columns) == ["id", "name"] and p.renames == {"ID": "id", "Name": "name"}
    created = plan({"Name": TEXT}, None, dialect=DUCKDB, keys=())
    assert list(created.table_columns) == ["Name"]


def test_duckdb_number_to_text_is_a_type_change_not_a_widening():
    p = plan({"id": INT, "v": TEXT}, existing(id="BIGINT", v="BIGINT"), dialect=DUCKDB)
    assert actions(p) == [(Action.STOP, "v")]
    cast = plan({"id": INT, "v": TEXT}, existing(id="BIGINT", v="BIGINT"), on_change=OnTypeChange.CAST, dialect=DUCKDB)
    assert actions(cast) == [(Action.CAST, "v")]


def test_postgres_long_names_are_compared_as_postgres_stores_them():
    long = "x" * 70
    p = plan({"id": INT, long: TEXT}, existing(id="bigint", **{"x" * 63: "text"}))
    assert p.changes == [] and p.renames == {long: "x" * 63}


def test_policy_comes_from_config_with_per_stream_overrides():
    config = {
        "schema_evolution": {
            "policy": "additive",
            "streams": {"public-*": {"on_type_change": "new_column"}, "public-orders": {"policy": "strict"}},
        }
    }
    assert Evolution.for_stream(config, "other") == Evolution(Policy.ADDITIVE, OnTypeChange.FAIL)
    assert Evolution.for_stream(config, "public-items") == Evolution(Policy.ADDITIVE, OnTypeChange.NEW_COLUMN)
    assert Evolution.for_stream(config, "public-orders") == Evolution(Policy.STRICT, OnTypeChange.FAIL)
    assert Evolution.for_stream({}, "x") == Evolution()


@pytest.mark.parametrize(
    "spec",
    [{"policy": "loose"}, {"on_type_change": "drop"}, {"polcy": "strict"}, "strict", {"streams": ["a"]}],
)
def test_bad_policy_config_is_a_config_error(spec):
    with pytest.raises(ConfigError):
        Evolution.for_stream({"schema_evolution": spec}, "s")


def test_plans_render_for_people_and_machines():
    p = plan({"id": INT, "v": TEXT, "w": DATE}, existing(id="bigint", v="bigint", gone="text"))
    doc = p.to_dict()
    assert doc["status"] == "stop"
    assert [c["effect"] for c in doc["changes"]] == ["stop", "ddl", "note"]
    text = render_plan(doc)
    assert "! STOP on column 'v'" in text and "+ add column 'w' date" in text and "~ keep column 'gone'" in text
    assert text.endswith("=> the load would STOP\n")


# -- long names (PostgreSQL keeps 63 bytes of an identifier) and plain numbers -------------------------

LONG_A = "p" * 63 + "_alpha"
LONG_B = "p" * 63 + "_bravo"
NUMBER = ColumnType(Logical.NUMBER)


def test_postgres_long_names_sharing_63_bytes_become_two_columns():
    p = plan({"id": INT, LONG_A: TEXT, LONG_B: INT}, None)
    a, b = p.renames[LONG_A], p.renames[LONG_B]
    assert a != b and len(a.encode()) == len(b.encode()) == 63
    assert a.startswith("p" * 54 + "_") and p.table_columns == {"id": "bigint", a: "text", b: "bigint"}
    # The next run finds both under the same names: nothing changes.
    again = plan({"id": INT, LONG_A: TEXT, LONG_B: INT}, existing(id="bigint", **{a: "text", b: "bigint"}))
    assert again.changes == [] and again.renames == {LONG_A: a, LONG_B: b}


def test_postgres_legacy_cut_column_is_kept_when_two_long_names_would_share_it():
    legacy = "p" * 63
    p = plan({"id": INT, LONG_A: TEXT, LONG_B: TEXT}, existing(id="bigint", **{legacy: "text"}))
    added = [c.column for c in p.changes if c.action is Action.ADD_COLUMN]
    assert sorted(added) == sorted([p.renames[LONG_A], p.renames[LONG_B]]) and legacy not in added
    assert (Action.KEEP, legacy) in actions(p)  # nobody's values go there now; it is left as it was


def test_an_incoming_name_equal_to_a_cut_is_not_taken_for_a_legacy_column():
    cut = "p" * 63
    p = plan({"id": INT, cut: TEXT, LONG_A: TEXT}, existing(id="bigint", **{cut: "text"}))
    assert p.renames == {LONG_A: p.renames[LONG_A]} and p.renames[LONG_A] != cut
    assert actions(p) == [(Action.ADD_COLUMN, p.renames[LONG_A])]


def test_two_properties_that_would_be_one_column_stop():
    p = plan({"ID": INT, "id": INT}, None, dialect=DUCKDB, keys=())
    assert actions(p) == [(Action.STOP, "id")]
    with pytest.raises(SchemaDriftError, match="'ID' and 'id' would both be column"):
        p.check()


def test_postgres_plain_number_is_numeric_and_widens_a_bigint():
    assert plan({"id": INT, "v": NUMBER}, None).table_columns["v"] == "numeric"
    p = plan({"id": INT, "v": NUMBER}, existing(id="bigint", v="bigint"))
    assert [(c.action, c.current, c.wanted) for c in p.changes] == [(Action.WIDEN, "bigint", "numeric")]


def test_postgres_double_precision_column_keeps_taking_plain_numbers():
    p = plan({"id": INT, "v": NUMBER}, existing(id="bigint", v="double precision"), Policy.STRICT)
    assert [(c.action, c.current) for c in p.changes] == [(Action.KEEP, "double precision")]
    assert not p.stops and not p.ddl and list(p.load_columns) == ["id", "v"]
    assert "number_type" in p.changes[0].detail


def test_postgres_real_column_is_not_silently_kept_for_plain_numbers():
    p = plan({"id": INT, "v": NUMBER}, existing(id="bigint", v="real"))
    assert actions(p) == [(Action.STOP, "v")]


def test_postgres_numeric_column_holds_numbers_declared_as_floats():
    double = ColumnType(Logical.NUMBER, bits=64)
    assert plan({"id": INT, "v": double}, existing(id="bigint", v="numeric")).changes == []
