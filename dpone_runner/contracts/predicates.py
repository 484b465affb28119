"""Rule predicates: each takes one non-null value and says whether it passes.

Built once per column from its spec (dpone_runner.contracts.spec). The record-level logic (null
and absent values, several columns, keys) is in rules.py.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Callable, Sequence
from typing import Any

from dpone_runner.contracts.spec import Bound, ColumnSpec

Predicate = Callable[[Any], bool]
_NUMBER = frozenset((int, float))
_SCALAR = frozenset((str, int, float, bool))
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _is_integer(v: Any) -> bool:
    t = type(v)
    return t is int or (t is float and v.is_integer())


def _is_number(v: Any) -> bool:
    return type(v) in _NUMBER


def _is_date_time(v: Any) -> bool:
    if type(v) is not str or len(v) < 16 or v[10] not in "Tt ":
        return False
    try:
        dt.datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


def _is_date(v: Any) -> bool:
    if type(v) is not str or len(v) != 10:
        return False
    try:
        dt.date.fromisoformat(v)
    except ValueError:
        return False
    return True


def _is_decimal(v: Any) -> bool:
    t = type(v)
    return t in _NUMBER or (t is str and _DECIMAL.fullmatch(v) is not None)


TYPE_TESTS: dict[str, Predicate] = {
    "integer": _is_integer,
    "number": _is_number,
    "string": lambda v: type(v) is str,
    "boolean": lambda v: type(v) is bool,
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "date-time": _is_date_time,
    "date": _is_date,
    "decimal": _is_decimal,
}


def _as_number(v: Any) -> int | float | decimal.Decimal | None:
    t = type(v)
    if t is int or t is float:
        return v  # type: ignore[no-any-return]
    if t is str and _DECIMAL.fullmatch(v):
        return decimal.Decimal(v)
    return None


def _allowed(values: Sequence[str | int | float | bool]) -> Predicate:
    allowed = frozenset(values)
    has_bool = any(type(a) is bool for a in values)
    has_number = any(type(a) in _NUMBER for a in values)
    if not has_bool:
        # True == 1 in Python: keep booleans out of a set of numbers and strings.
        return lambda v: type(v) in _NUMBER_OR_STR and v in allowed
    if not has_number:
        return lambda v: type(v) in _BOOL_OR_STR and v in allowed
    exact = frozenset((type(a) is bool, a) for a in values)
    return lambda v: type(v) in _SCALAR and (type(v) is bool, v) in exact


_NUMBER_OR_STR = frozenset((int, float, str))
_BOOL_OR_STR = frozenset((bool, str))


def _minimum(bound: Bound) -> Predicate:
    if isinstance(bound, str):
        return lambda v: type(v) is str and v >= bound

    def at_least(v: Any) -> bool:
        t = type(v)
        if t is int or t is float:
            return bool(v >= bound)
        n = _as_number(v)
        return n is not None and n >= bound

    return at_least


def _maximum(bound: Bound) -> Predicate:
    if isinstance(bound, str):
        return lambda v: type(v) is str and v <= bound

    def at_most(v: Any) -> bool:
        t = type(v)
        if t is int or t is float:
            return bool(v <= bound)
        n = _as_number(v)
        return n is not None and n <= bound

    return at_most


def value_rules(spec: ColumnSpec) -> tuple[tuple[str, Predicate, str], ...]:
    """(rule, predicate, what a failure means) for every rule that looks at a non-null value."""
    rules: list[tuple[str, Predicate, str]] = []
    if spec.type is not None:
        rules.append(("type", TYPE_TESTS[spec.type], f"is not of type {spec.type}"))
    if spec.allowed is not None:
        rules.append(("allowed", _allowed(spec.allowed), "is not one of the allowed values"))
    if spec.pattern is not None:
        fullmatch = spec.pattern.fullmatch
        rules.append(("pattern", lambda v: type(v) is str and fullmatch(v) is not None, "does not match the pattern"))
    if spec.min is not None:
        rules.append(("min", _minimum(spec.min), f"is below min {spec.min!r} (or not comparable)"))
    if spec.max is not None:
        rules.append(("max", _maximum(spec.max), f"is above max {spec.max!r} (or not comparable)"))
    if spec.max_length is not None:
        n = spec.max_length
        rules.append(("max_length", lambda v: type(v) is str and len(v) <= n, f"is not a string of <= {n} chars"))
    return tuple(rules)


EXACT_TYPES: dict[str, frozenset[type]] = {
    "integer": frozenset((int,)),  # an integral float (3.0) takes the slow path, where it passes
    "number": _NUMBER,
    "string": frozenset((str,)),
    "boolean": frozenset((bool,)),
    "object": frozenset((dict,)),
    "array": frozenset((list,)),
}


def range_of(low: Bound | None, high: Bound | None) -> Predicate | None:
    """min and max as one call on the fast path."""
    if low is None or high is None:
        return _minimum(low) if low is not None else _maximum(high) if high is not None else None
    if isinstance(low, str):
        return lambda v: type(v) is str and low <= v <= high  # type: ignore[operator]
    at_least, at_most = _minimum(low), _maximum(high)

    def between(v: Any) -> bool:
        t = type(v)
        if t is int or t is float:
            return bool(low <= v <= high)
        return at_least(v) and at_most(v)

    return between
