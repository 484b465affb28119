"""Column rules compiled into closures, once per stream, at SCHEMA time.

Two ways to run the same closures: :meth:`Checker.check` answers pass/fail as cheaply as
Python allows (the path every good record takes), :meth:`Checker.explain` lists every rule a
failing record breaks (the path only bad records take).

Semantics worth knowing: an absent property fails `required`; an absent or null one fails
`not_null`; every other rule skips null and absent values (they are the presence rules' job).
A value of the wrong kind for a rule (a number against `pattern`) fails that rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from dpone_runner.contracts.predicates import EXACT_TYPES, range_of, value_rules
from dpone_runner.contracts.spec import ColumnSpec

RecordCheck = Callable[[dict[str, Any]], bool]
UNIQUE_KEY = "unique_key"
VALUE_WIDTH = 40


class _Missing:
    """The value of a property the record does not have (distinct from JSON null)."""

    def __repr__(self) -> str:
        return "<absent>"


MISSING: Any = _Missing()


@dataclass(frozen=True, slots=True)
class Violation:
    column: str | None  # None for the stream-level unique_key rule
    rule: str
    value: Any
    detail: str

    @property
    def name(self) -> str:
        """How a rule is named in reports and quarantine rows: `email.pattern`, `unique_key`."""
        return self.rule if self.column is None else f"{self.column}.{self.rule}"

    def reason(self) -> str:
        """Without the value: safe for a log line or a table column."""
        return self.detail if self.column is None else f"column {self.column!r} {self.detail}"

    def describe(self) -> str:
        """The reason with the value, cut to VALUE_WIDTH characters."""
        return f"{self.reason()} (value {render_value(self.value)})"


def render_value(value: Any) -> str:
    if value is MISSING:
        return "absent"
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def _column_check(spec: ColumnSpec) -> RecordCheck:
    """The fast check of one column. It may say no where explain() says yes (an integral float
    for `integer`); the pump then asks explain(), which has the last word, so only rare values
    pay for the exact rules."""
    name = spec.name
    null_ok = not spec.not_null
    absent_ok = null_ok and not spec.required
    exact = EXACT_TYPES.get(spec.type or "")
    rules = [
        test for rule, test, _ in value_rules(spec) if rule not in ("min", "max") and not (exact and rule == "type")
    ]
    between = range_of(spec.min, spec.max)
    tests = (*rules, between) if between is not None else tuple(rules)

    if not tests:

        def typed(record: dict[str, Any]) -> bool:
            v = record.get(name, MISSING)
            if v is None:
                return null_ok
            if v is MISSING:
                return absent_ok
            return exact is None or type(v) in exact

        return typed
    if len(tests) == 1:
        (test,) = tests

        def one(record: dict[str, Any]) -> bool:
            v = record.get(name, MISSING)
            if v is None:
                return null_ok
            if v is MISSING:
                return absent_ok
            return (exact is None or type(v) in exact) and test(v)

        return one

    def many(record: dict[str, Any]) -> bool:
        v = record.get(name, MISSING)
        if v is None:
            return null_ok
        if v is MISSING:
            return absent_ok
        if exact is not None and type(v) not in exact:
            return False
        for test in tests:  # noqa: SIM110 - all() over a generator costs more than the rules it runs
            if not test(v):
                return False
        return True

    return many


def _all_of(checks: Sequence[RecordCheck]) -> RecordCheck:
    """One call running every check in order, unrolled for the usual few (a loop costs more)."""
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda r: a(r) and b(r)
    if len(checks) == 3:
        a, b, c = checks
        return lambda r: a(r) and b(r) and c(r)
    if len(checks) == 4:
        a, b, c, d = checks
        return lambda r: a(r) and b(r) and c(r) and d(r)
    every = tuple(checks)

    def each(record: dict[str, Any]) -> bool:
        for check in every:  # noqa: SIM110 - as above
            if not check(record):
                return False
        return True

    return each


class KeyTracker:
    """Keys seen in the current batch (the records since the last STATE)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = tuple(keys)
        self.seen: set[Any] = set()
        if len(self.keys) == 1:
            (only,) = self.keys
            self.key_of: Callable[[dict[str, Any]], Any] = lambda record: record.get(only)
        else:
            keys_ = self.keys
            self.key_of = lambda record: tuple(record.get(k) for k in keys_)

    def _hashable(self, key: Any) -> Any:
        try:
            hash(key)
        except TypeError:
            return orjson.dumps(key, option=orjson.OPT_SORT_KEYS)
        return key

    def contains(self, record: dict[str, Any]) -> bool:
        return self._hashable(self.key_of(record)) in self.seen

    def add(self, record: dict[str, Any]) -> None:
        self.seen.add(self._hashable(self.key_of(record)))

    def first_time(self) -> RecordCheck:
        """A check that passes a record whose key is new, and remembers the key."""
        seen, add, key_of, hashable = self.seen, self.seen.add, self.key_of, self._hashable

        def first(record: dict[str, Any]) -> bool:
            key = key_of(record)
            try:
                if key in seen:
                    return False
                add(key)
            except TypeError:  # an object or array in the key: compare its JSON
                key = hashable(key)
                if key in seen:
                    return False
                add(key)
            return True

        return first

    def reset(self) -> None:
        # clear(), not a new set: the closures from first_time() hold this one.
        self.seen.clear()


class Checker:
    """A stream's compiled rules."""

    def __init__(self, columns: Sequence[ColumnSpec], keys: KeyTracker | None) -> None:
        self.columns = tuple(columns)
        self.keys = keys
        self._explained = tuple((c, value_rules(c)) for c in self.columns)
        self.check = self._compile()

    def _compile(self) -> RecordCheck:
        checks = [_column_check(c) for c in self.columns]
        if self.keys is not None:
            checks.append(self.keys.first_time())  # last: a key is remembered only for a record that passes
        return _all_of(checks) if checks else lambda record: True

    def explain(self, record: dict[str, Any]) -> list[Violation]:
        """Every rule the record breaks; the key is looked up, not remembered."""
        found: list[Violation] = []
        for spec, rules in self._explained:
            v = record.get(spec.name, MISSING)
            if v is MISSING and spec.required:
                found.append(Violation(spec.name, "required", v, "is missing"))
            elif (v is None or v is MISSING) and spec.not_null:
                found.append(Violation(spec.name, "not_null", v, "is null"))
            elif v is not None and v is not MISSING:
                found.extend(Violation(spec.name, rule, v, text) for rule, test, text in rules if not test(v))
        if self.keys is not None and self.keys.contains(record):
            key = self.keys.key_of(record)
            found.append(Violation(None, UNIQUE_KEY, key, f"key {list(self.keys.keys)} seen before in this batch"))
        return found
