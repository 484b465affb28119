"""Connector settings declared as data: validation and defaults."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dpone_protocol.config import Redactor, load_config
from dpone_protocol.errors import ConfigError

log = logging.getLogger(__name__)

_KIND_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}
JSON_SCHEMA_TYPES = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
}


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    kind: str = "string"  # string | integer | number | boolean | array | object
    description: str = ""
    required: bool = False
    secret: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()


def apply_settings(settings: Iterable[Setting], config: Mapping[str, Any], who: str) -> dict[str, Any]:
    """Check required settings and kinds; fill defaults. Unknown keys pass through (Meltano adds some)."""
    out = dict(config)
    problems: list[str] = []
    for s in settings:
        value = out.get(s.name)
        if value is None:
            if s.required:
                problems.append(f"missing required setting {s.name!r}")
            elif s.default is not None:
                out[s.name] = s.default
            continue
        expected = _KIND_TYPES[s.kind]
        if isinstance(value, bool) and bool not in expected:
            problems.append(f"setting {s.name!r} must be {s.kind}, got boolean")
        elif not isinstance(value, expected):
            problems.append(f"setting {s.name!r} must be {s.kind}, got {type(value).__name__}")
        elif s.choices and value not in s.choices:
            problems.append(f"setting {s.name!r} must be one of {', '.join(s.choices)}; got {value!r}")
    if problems:
        raise ConfigError(f"{who}: " + "; ".join(problems))
    return out


def secret_names(settings: Iterable[Setting]) -> list[str]:
    return [s.name for s in settings if s.secret]


def load_settings(settings: Iterable[Setting], who: str, paths: list[str] | None, redactor: Redactor) -> dict[str, Any]:
    """The connector's validated config from --config files; secrets registered for redaction first."""
    if not paths:
        raise ConfigError("--config FILE is required (see --about for the settings)")
    settings = list(settings)
    raw = load_config(paths)
    redactor.add_config(raw, secret_names(settings), [s.name for s in settings])
    # Not an error (orchestrators add keys of their own), but a typo or a setting another connector
    # has (load_method on a target that only appends) must not pass unnoticed.
    known = {s.name for s in settings}
    unknown = sorted(k for k in raw if k not in known and not k.startswith("_"))
    if unknown:
        log.warning("%s ignores settings it does not have: %s (see --about for its settings)", who, ", ".join(unknown))
    return apply_settings(settings, raw, who)
