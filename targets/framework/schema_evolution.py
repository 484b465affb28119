"""The schema-evolution planner: an incoming SCHEMA against the destination table, under a policy.

Dialect-free: each database target supplies the type rules (:class:`Dialect`) and the table's
current columns; the planner decides what may change. It never drops or renames a destination
column, and it never narrows one: those, and incompatible type changes, stop the load unless the
stream asks for `on_type_change: new_column` (values go to a new `__dpone__nc__<column>`) or
`cast` (the column is converted, only when the dialect knows the conversion keeps every value).
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from dpone_protocol.errors import ConfigError, DataError
from dpone_protocol.json_schema import ColumnType
from dpone_protocol.settings import Setting

NEW_COLUMN_PREFIX = "__dpone__nc__"


class Policy(enum.StrEnum):
    STRICT = "strict"  # any drift stops
    ADDITIVE = "additive"  # new nullable columns are added; anything else stops
    WIDENING = "widening"  # also widen compatible types (the default)


class OnTypeChange(enum.StrEnum):
    FAIL = "fail"
    NEW_COLUMN = "new_column"
    CAST = "cast"


class Action(enum.StrEnum):
    CREATE_TABLE = "create_table"
    ADD_COLUMN = "add_column"
    WIDEN = "widen"
    CAST = "cast"
    NEW_COLUMN = "new_column"  # add __dpone__nc__<column> and route the values there
    ROUTE = "route"  # values go to an existing __dpone__nc__<column>
    RELAX = "drop_not_null"  # a column the source no longer sends must accept NULL
    KEEP = "keep"  # a column the source no longer sends stays as it is
    STOP = "stop"


# Actions that change the destination (DDL); the others only describe.
DDL_ACTIONS = frozenset(
    {Action.CREATE_TABLE, Action.ADD_COLUMN, Action.WIDEN, Action.CAST, Action.NEW_COLUMN, Action.RELAX}
)
SCHEMA_EVOLUTION_SETTING = Setting(
    "schema_evolution",
    "object",
    "How a table follows its stream's schema: policy strict | additive | widening (default), on_type_change "
    'fail (default) | new_column | cast, and per-stream overrides: {"policy": "widening", "streams": '
    '{"public-orders": {"policy": "strict"}}}.',
)


@dataclass(frozen=True, slots=True)
class Evolution:
    """The policy of one stream."""

    policy: Policy = Policy.WIDENING
    on_type_change: OnTypeChange = OnTypeChange.FAIL

    @classmethod
    def for_stream(cls, config: Mapping[str, Any], stream: str) -> Evolution:
        spec = config.get("schema_evolution") or {}
        if not isinstance(spec, Mapping):
            raise ConfigError("schema_evolution must be an object")
        merged: dict[str, Any] = {k: v for k, v in spec.items() if k != "streams"}
        streams = spec.get("streams") or {}
        if not isinstance(streams, Mapping):
            raise ConfigError("schema_evolution.streams must map stream names (or patterns) to policies")
        # An exact name wins over a pattern; among patterns, the first that matches.
        match = streams.get(stream)
        if match is None:
            match = next((v for k, v in streams.items() if fnmatch.fnmatchcase(stream, k)), None)
        if match is not None:
            if not isinstance(match, Mapping):
                raise ConfigError(f"schema_evolution.streams[{stream!r}] must be an object")
            merged.update(match)
        unknown = set(merged) - {"policy", "on_type_change"}
        if unknown:
            raise ConfigError(f"schema_evolution: unknown keys {sorted(unknown)} (use policy, on_type_change)")
        return cls(
            _choice(Policy, merged.get("policy", Policy.WIDENING), "policy"),
            _choice(OnTypeChange, merged.get("on_type_change", OnTypeChange.FAIL), "on_type_change"),
        )


_E = TypeVar("_E", Policy, OnTypeChange)


def _choice(kind: type[_E], value: Any, name: str) -> _E:
    try:
        return kind(str(value))
    except ValueError:
        raise ConfigError(
            f"schema_evolution.{name} must be one of {', '.join(m.value for m in kind)}; got {value!r}"
        ) from None


def _same(name: str) -> str:
    return name


def _never(existing: str, incoming: ColumnType) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class Dialect:
    """A destination's type rules, as its target knows them (functions of its type map)."""

    column_type: Callable[[ColumnType], str]  # the destination type of a logical column
    holds: Callable[[str, str], bool]  # (existing, incoming): every incoming value fits the column
    widens: Callable[[str, str], bool]  # altering existing -> incoming is a widening that keeps every value
    casts: Callable[[str, str], bool]  # converting stored values keeps every one (on_type_change: cast)
    column_name: Callable[[str], str] = _same  # the name the destination stores (e.g. shortened)
    column_key: Callable[[str], str] = _same  # what two names share to be one column (e.g. case-folded)
    # The name an older version stored a column under, where it differs (tables it made still load).
    former_name: Callable[[str], str] | None = None
    # Why an existing column that does not hold the incoming type stays as it is, or None: e.g. a
    # float column made before plain numbers became exact keeps taking them.
    keeps: Callable[[str, ColumnType], str | None] = _never


def decimal_holds(existing: tuple[int, int], incoming: tuple[int, int]) -> bool:
    """A DECIMAL(precision, scale) holds every value of another when it has as many decimals and as
    many integer digits (an Int64 is (19, 0)): a rule every dialect's `holds` shares."""
    return existing[1] >= incoming[1] and existing[0] - existing[1] >= incoming[0] - incoming[1]


INT64_DIGITS = (19, 0)


class DdlText(Protocol):
    """The SQL a target renders for each kind of column change (its ddl module)."""

    def add_column(self, table: str, column: str, type_: str) -> str: ...

    def alter_type(self, table: str, column: str, type_: str) -> str: ...

    def drop_not_null(self, table: str, column: str, type_: str = "") -> str: ...


@dataclass(frozen=True, slots=True)
class DestinationColumn:
    type: str
    nullable: bool = True


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    column: str | None = None
    current: str | None = None  # the destination type now
    wanted: str | None = None  # the type after the change, or the incoming type
    detail: str = ""

    def describe(self) -> str:
        column = f"column {self.column!r}" if self.column else "table"
        match self.action:
            case Action.CREATE_TABLE:
                return "create the table"
            case Action.ADD_COLUMN:
                return f"add {column} {self.wanted} (nullable)"
            case Action.WIDEN:
                return f"widen {column} {self.current} -> {self.wanted}"
            case Action.CAST:
                return f"convert {column} {self.current} -> {self.wanted} (lossless cast of stored values)"
            case Action.NEW_COLUMN:
                return f"add {column} {self.wanted}: {self.detail}"
            case Action.ROUTE | Action.KEEP | Action.RELAX:
                return f"{self.action.value.replace('_', ' ')} {column}: {self.detail}"
        return f"STOP on {column}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "column": self.column,
            "current": self.current,
            "wanted": self.wanted,
            "detail": self.detail,
            "description": self.describe(),
            "effect": "stop" if self.action is Action.STOP else "ddl" if self.action in DDL_ACTIONS else "note",
        }


@dataclass(slots=True)
class SchemaPlan:
    stream: str
    table: str
    evolution: Evolution
    changes: list[Change] = field(default_factory=list)
    # The table's columns once the plan is applied (destination name -> type), in table order.
    table_columns: dict[str, str] = field(default_factory=dict)
    # What each batch loads: destination name -> logical type of the incoming values.
    load_columns: dict[str, ColumnType] = field(default_factory=dict)
    # Incoming property -> destination column, where they differ (new_column routing, truncation).
    renames: dict[str, str] = field(default_factory=dict)

    @property
    def stops(self) -> list[Change]:
        return [c for c in self.changes if c.action is Action.STOP]

    @property
    def ddl(self) -> list[Change]:
        return [c for c in self.changes if c.action in DDL_ACTIONS]

    @property
    def creates(self) -> bool:
        return any(c.action is Action.CREATE_TABLE for c in self.changes)

    def check(self) -> None:
        """Raise the stop, listing every difference that blocks the load."""
        if not self.stops:
            return
        lines = "; ".join(c.describe().removeprefix("STOP on ") for c in self.stops)
        raise SchemaDriftError(
            f"stream {self.stream!r}: the schema changed in a way the {self.evolution.policy.value} policy does "
            f"not apply to table {self.table}: {lines}. Nothing was changed or loaded. See docs/schema-evolution.md"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "table": self.table,
            "policy": self.evolution.policy.value,
            "on_type_change": self.evolution.on_type_change.value,
            "status": "stop" if self.stops else ("change" if self.ddl else "unchanged"),
            "changes": [c.to_dict() for c in self.changes],
            "columns": dict(self.table_columns),
            "renames": dict(self.renames),
        }

    def render_text(self) -> str:
        return render_plan(self.to_dict())


def render_plan(plan: Mapping[str, Any]) -> str:
    """A plan (as from :meth:`SchemaPlan.to_dict`) for people: + changes, ~ notes, ! stops."""
    head = (
        f"stream {plan['stream']} -> table {plan['table']} "
        f"(policy {plan['policy']}, on_type_change {plan['on_type_change']})"
    )
    if not plan["changes"]:
        return f"{head}\n  no changes: the table matches the stream\n"
    marks = {"stop": "!", "ddl": "+", "note": "~"}
    body = "".join(f"  {marks[c['effect']]} {c['description']}\n" for c in plan["changes"])
    verdict = "the load would STOP" if plan["status"] == "stop" else "the load would proceed"
    return f"{head}\n{body}  => {verdict}\n"


class SchemaDriftError(DataError):
    """The incoming schema drifted in a way the stream's policy does not allow."""


def change_statements(schema: SchemaPlan, table: str, ddl: DdlText) -> list[str]:
    """The DDL of a plan's changes to an existing `table` (creating a table is the target's own)."""
    statements = []
    for change in schema.ddl:
        if change.column is None:
            continue  # CREATE TABLE
        if change.action in (Action.ADD_COLUMN, Action.NEW_COLUMN):
            statements.append(ddl.add_column(table, change.column, str(change.wanted)))
        elif change.action in (Action.WIDEN, Action.CAST):
            statements.append(ddl.alter_type(table, change.column, str(change.wanted)))
        elif change.action is Action.RELAX:
            statements.append(ddl.drop_not_null(table, change.column, str(change.current or "")))
    return statements


def plan_schema(
    stream: str,
    table: str,
    incoming: Mapping[str, ColumnType],
    key_properties: list[str],
    existing: Mapping[str, DestinationColumn] | None,
    dialect: Dialect,
    evolution: Evolution,
) -> SchemaPlan:
    """Compare `incoming` (the stream's columns) with `existing` (None: no table yet)."""
    plan = SchemaPlan(stream, table, evolution)
    if _same_column(plan, incoming, dialect):
        return plan
    if existing is None:
        plan.changes.append(Change(Action.CREATE_TABLE))
        for name, column in incoming.items():
            dest = dialect.column_name(name)
            plan.table_columns[dest] = dialect.column_type(column)
            plan.load_columns[dest] = column
            if dest != name:
                plan.renames[name] = dest
        return plan

    by_key = {dialect.column_key(name): name for name in existing}
    former = _former_columns(incoming, by_key, dialect)
    plan.table_columns = {name: col.type for name, col in existing.items()}
    policy = evolution.policy
    sent: set[str] = set()
    for name, column in incoming.items():
        key = dialect.column_key(name)
        wanted = dialect.column_type(column)
        current_name = by_key.get(key) or former.get(name)
        sent.add(key)
        if current_name is None:
            _add(plan, name, dialect.column_name(name), column, wanted, policy)
            continue
        sent.add(dialect.column_key(current_name))
        current = existing[current_name].type
        if dialect.holds(current, wanted):
            _load(plan, name, current_name, column)
        elif (why := dialect.keeps(current, column)) is not None:
            plan.changes.append(Change(Action.KEEP, current_name, current, wanted, why))
            _load(plan, name, current_name, column)
        elif policy is Policy.WIDENING and dialect.widens(current, wanted):
            plan.changes.append(Change(Action.WIDEN, current_name, current, wanted))
            plan.table_columns[current_name] = wanted
            _load(plan, name, current_name, column)
        else:
            _type_change(plan, name, current_name, current, column, wanted, key_properties, existing, dialect)
    for name, col in existing.items():
        if dialect.column_key(name) in sent or name.startswith(NEW_COLUMN_PREFIX):
            continue
        if policy is Policy.STRICT:
            plan.changes.append(Change(Action.STOP, name, col.type, None, "the stream no longer sends this column"))
        elif not col.nullable:
            detail = "the stream no longer sends it; kept, and made nullable so new rows can leave it empty"
            plan.changes.append(Change(Action.RELAX, name, col.type, col.type, detail))
        else:
            plan.changes.append(Change(Action.KEEP, name, col.type, col.type, "the stream no longer sends it; kept"))
    return plan


def _same_column(plan: SchemaPlan, incoming: Mapping[str, ColumnType], dialect: Dialect) -> bool:
    """Stop when two incoming properties would become one column: one value of each row would be lost."""
    seen: dict[str, str] = {}
    for name in incoming:
        other = seen.setdefault(dialect.column_key(name), name)
        if other != name:
            dest = dialect.column_name(name)
            why = f"{other!r} and {name!r} would both be column {dest!r}; rename one (e.g. a stream map)"
            plan.changes.append(Change(Action.STOP, dest, None, None, why))
    return bool(plan.stops)


def _former_columns(incoming: Mapping[str, ColumnType], by_key: Mapping[str, str], dialect: Dialect) -> dict[str, str]:
    """Incoming property -> the existing column an older version named for it, where that is certain:
    no column under today's name, and no other property (or column of that exact name) shares it."""
    if dialect.former_name is None:
        return {}
    claims: dict[str, list[str]] = {}
    for name in incoming:
        old = dialect.former_name(name)
        if old != name:
            claims.setdefault(dialect.column_key(old), []).append(name)
    keys = {dialect.column_key(name) for name in incoming}
    found: dict[str, str] = {}
    for old_key, names in claims.items():
        if len(names) == 1 and old_key in by_key and old_key not in keys and dialect.column_key(names[0]) not in by_key:
            found[names[0]] = by_key[old_key]
    return found


def _load(plan: SchemaPlan, name: str, dest: str, column: ColumnType) -> None:
    plan.load_columns[dest] = column
    if dest != name:
        plan.renames[name] = dest


def _add(plan: SchemaPlan, name: str, dest: str, column: ColumnType, wanted: str, policy: Policy) -> None:
    if policy is Policy.STRICT:
        plan.changes.append(Change(Action.STOP, name, None, wanted, f"new column ({wanted}) not in the table"))
        return
    plan.changes.append(Change(Action.ADD_COLUMN, dest, None, wanted))
    plan.table_columns[dest] = wanted
    _load(plan, name, dest, column)


def _type_change(
    plan: SchemaPlan,
    name: str,
    current_name: str,
    current: str,
    column: ColumnType,
    wanted: str,
    keys: list[str],
    existing: Mapping[str, DestinationColumn],
    dialect: Dialect,
) -> None:
    policy, on_change = plan.evolution.policy, plan.evolution.on_type_change
    blocked = f"is {current} in the table but the stream now sends {wanted}, which it cannot hold"
    if policy is Policy.STRICT:
        plan.changes.append(Change(Action.STOP, current_name, current, wanted, blocked))
        return
    if on_change is OnTypeChange.CAST and policy is Policy.WIDENING and dialect.casts(current, wanted):
        plan.changes.append(Change(Action.CAST, current_name, current, wanted))
        plan.table_columns[current_name] = wanted
        _load(plan, name, current_name, column)
        return
    if on_change is OnTypeChange.NEW_COLUMN and name not in keys:
        routed = _route_to_new_column(plan, name, current, column, wanted, existing, dialect)
        if routed and not existing[current_name].nullable:
            detail = "its new values go to another column; made nullable so new rows can leave it empty"
            plan.changes.append(Change(Action.RELAX, current_name, current, current, detail))
        return
    if on_change is OnTypeChange.NEW_COLUMN:
        why = f"{blocked}; a key column cannot move to a new column"
    elif on_change is OnTypeChange.CAST:
        why = (
            f"{blocked}; no lossless cast from {current} to {wanted}"
            if policy is Policy.WIDENING
            else f"{blocked}; cast needs the widening policy"
        )
    else:
        why = f"{blocked} (on_type_change: new_column or cast may apply)"
    plan.changes.append(Change(Action.STOP, current_name, current, wanted, why))


def _route_to_new_column(
    plan: SchemaPlan,
    name: str,
    current: str,
    column: ColumnType,
    wanted: str,
    existing: Mapping[str, DestinationColumn],
    dialect: Dialect,
) -> bool:
    target = dialect.column_name(NEW_COLUMN_PREFIX + name)
    key = dialect.column_key(target)
    found = next((n for n in existing if dialect.column_key(n) == key), None)
    if found is None:
        detail = f"{name!r} is {current}; its new {wanted} values go here, old values stay in {name!r}"
        plan.changes.append(Change(Action.NEW_COLUMN, target, None, wanted, detail))
        plan.table_columns[target] = wanted
        _load(plan, name, target, column)
        return True
    held = existing[found].type
    if dialect.holds(held, wanted):
        plan.changes.append(Change(Action.ROUTE, found, held, wanted, f"{name!r} values ({wanted}) go here"))
    elif plan.evolution.policy is Policy.WIDENING and dialect.widens(held, wanted):
        plan.changes.append(Change(Action.WIDEN, found, held, wanted))
        plan.table_columns[found] = wanted
    else:
        why = f"{name!r} now sends {wanted}, which neither {name!r} ({current}) nor {found!r} ({held}) can hold"
        plan.changes.append(Change(Action.STOP, found, held, wanted, why))
        return False
    _load(plan, name, found, column)
    return True
