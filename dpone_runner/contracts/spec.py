"""The `contracts:` section of dpone.yml, checked and turned into frozen specs.

Everything that can be wrong in the settings is found here, before any process starts, and
named by stream pattern, column and rule, so a typo never turns into a silently unchecked rule.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpone_protocol.errors import ConfigError

ENFORCE, QUARANTINE, WARN = "enforce", "quarantine", "warn"
MODES = (ENFORCE, QUARANTINE, WARN)
FILE, TABLE = "file", "table"
SINKS = (FILE, TABLE)
DEFAULT_QUARANTINE_PATH = Path(".dpone") / "quarantine"
TYPES = ("integer", "number", "string", "boolean", "object", "array", "date-time", "date", "decimal")
RULES = ("required", "not_null", "type", "allowed", "pattern", "min", "max", "max_length")
_STREAM_KEYS = ("mode", "quarantine", "quarantine_path", "unique_key", "columns")

Bound = int | float | str


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    required: bool = False
    not_null: bool = False
    type: str | None = None
    allowed: tuple[str | int | float | bool, ...] | None = None
    pattern: re.Pattern[str] | None = None
    min: Bound | None = None
    max: Bound | None = None
    max_length: int | None = None


@dataclass(frozen=True, slots=True)
class StreamContract:
    pattern: str  # the stream glob it was declared under
    mode: str = ENFORCE
    quarantine: str = FILE
    quarantine_path: Path = DEFAULT_QUARANTINE_PATH
    unique_key: bool | tuple[str, ...] = False  # True: the SCHEMA's key_properties
    columns: tuple[ColumnSpec, ...] = ()

    def forced_to_file_quarantine(self) -> StreamContract:
        """The same rules, with bad rows going to a quarantine file (what a replay does)."""
        return StreamContract(self.pattern, QUARANTINE, FILE, self.quarantine_path, self.unique_key, self.columns)


@dataclass(frozen=True, slots=True)
class ContractSet:
    contracts: tuple[StreamContract, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.contracts)

    def for_stream(self, stream: str) -> StreamContract | None:
        """The first contract whose pattern matches, in the order dpone.yml lists them."""
        for contract in self.contracts:
            if fnmatch.fnmatchcase(stream, contract.pattern):
                return contract
        return None

    def quarantine_paths(self) -> list[Path]:
        return sorted({c.quarantine_path for c in self.contracts})


def parse_contracts(raw: Any, project_root: Path) -> ContractSet:
    """`contracts:` from dpone.yml; a relative quarantine_path is under the project root."""
    if raw is None:
        return ContractSet()
    if not isinstance(raw, dict):
        raise ConfigError("dpone.yml: contracts must map stream names (or glob patterns) to settings")
    return ContractSet(tuple(_stream(str(pattern), spec, project_root) for pattern, spec in raw.items()))


def _stream(pattern: str, spec: Any, root: Path) -> StreamContract:
    where = f"contracts.{pattern}"
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be a mapping of settings")
    unknown = sorted(set(spec) - set(_STREAM_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown setting {unknown[0]!r} (use {', '.join(_STREAM_KEYS)})")
    mode = spec.get("mode", ENFORCE)
    if mode not in MODES:
        raise ConfigError(f"{where}.mode: {mode!r} is not one of {', '.join(MODES)}")
    sink = spec.get("quarantine", FILE)
    if sink not in SINKS:
        raise ConfigError(f"{where}.quarantine: {sink!r} is not one of {', '.join(SINKS)}")
    path_value = spec.get("quarantine_path", str(DEFAULT_QUARANTINE_PATH))
    if not isinstance(path_value, str) or not path_value:
        raise ConfigError(f"{where}.quarantine_path: must be a directory path")
    columns = spec.get("columns") or {}
    if not isinstance(columns, dict):
        raise ConfigError(f"{where}.columns: must map column names to rules")
    return StreamContract(
        pattern=pattern,
        mode=mode,
        quarantine=sink,
        quarantine_path=root / Path(path_value).expanduser(),
        unique_key=_unique_key(spec.get("unique_key", False), where),
        columns=tuple(_column(str(name), rules, f"{where}.columns.{name}") for name, rules in columns.items()),
    )


def _unique_key(value: Any, where: str) -> bool | tuple[str, ...]:
    if isinstance(value, bool):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ConfigError(f"{where}.unique_key: use true (the stream's key properties) or a list of column names")


def _column(name: str, rules: Any, where: str) -> ColumnSpec:
    if not isinstance(rules, dict):
        raise ConfigError(f"{where}: must be a mapping of rules, e.g. {{not_null: true}}")
    unknown = sorted(set(rules) - set(RULES))
    if unknown:
        raise ConfigError(f"{where}: unknown rule {unknown[0]!r} (rules: {', '.join(RULES)})")
    low, high = _bound(rules, "min", where), _bound(rules, "max", where)
    if low is not None and high is not None:
        if isinstance(low, str) != isinstance(high, str):
            raise ConfigError(f"{where}: min and max must both be numbers or both be strings")
        if low > high:  # type: ignore[operator]  # same kind, checked just above
            raise ConfigError(f"{where}: min {low!r} is greater than max {high!r}")
    return ColumnSpec(
        name=name,
        required=_flag(rules, "required", where),
        not_null=_flag(rules, "not_null", where),
        type=_type(rules, where),
        allowed=_allowed(rules, where),
        pattern=_pattern(rules, where),
        min=low,
        max=high,
        max_length=_max_length(rules, where),
    )


def _flag(rules: dict[str, Any], rule: str, where: str) -> bool:
    value = rules.get(rule, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{rule}: must be true or false, not {value!r}")
    return value


def _type(rules: dict[str, Any], where: str) -> str | None:
    value = rules.get("type")
    if value is not None and value not in TYPES:
        raise ConfigError(f"{where}.type: {value!r} is not one of {', '.join(TYPES)}")
    return value


def _allowed(rules: dict[str, Any], where: str) -> tuple[str | int | float | bool, ...] | None:
    if "allowed" not in rules:
        return None
    values = rules["allowed"]
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}.allowed: must be a non-empty list of values")
    for value in values:
        if value is None:
            raise ConfigError(f"{where}.allowed: null is always allowed unless not_null is set; remove it")
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"{where}.allowed: {value!r} is not a string, number or boolean")
    return tuple(values)


def _pattern(rules: dict[str, Any], where: str) -> re.Pattern[str] | None:
    if "pattern" not in rules:
        return None
    text = rules["pattern"]
    if not isinstance(text, str):
        raise ConfigError(f"{where}.pattern: must be a regular expression string")
    try:
        return re.compile(text)
    except re.error as exc:
        raise ConfigError(f"{where}.pattern: invalid regular expression {text!r}: {exc}") from None


def _bound(rules: dict[str, Any], rule: str, where: str) -> Bound | None:
    value = rules.get(rule)
    if value is None:
        return None
    # YAML reads an unquoted 2024-01-01 as a date; the rule compares ISO strings.
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{where}.{rule}: must be a number or a string (e.g. an ISO date), not {value!r}")
    return value


def _max_length(rules: dict[str, Any], where: str) -> int | None:
    value = rules.get("max_length")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}.max_length: must be a whole number >= 0, not {value!r}")
    return value
