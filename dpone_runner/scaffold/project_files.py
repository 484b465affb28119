"""Textual edits of pyproject.toml and meltano.yml that keep each file's own layout and comments.

Each edit inserts lines at the end of one block and is then read back with the file's parser:
an edit that does not read back as intended is refused, never written.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from dpone_protocol.errors import ConfigError

SCRIPTS = "[project.scripts]"
CONNECTORS_TABLE = '[project.entry-points."dpone.connectors"]'


def _block_end(lines: list[str], header: int, inside: Callable[[str], bool]) -> int:
    """The index after the last non-blank line of the block that starts at `header`."""
    end = header + 1
    for i in range(header + 1, len(lines)):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not inside(line):
            break
        end = i + 1
    return end


def add_toml_entries(text: str, entries: Mapping[str, Mapping[str, str]]) -> str:
    """Append `key = "value"` lines to existing tables, each named by its header line."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for table, pairs in entries.items():
        try:
            header = next(i for i, line in enumerate(lines) if line.strip() == table)
        except StopIteration:
            raise ConfigError(f"pyproject.toml has no {table} table to add {', '.join(pairs)} to") from None
        end = _block_end(lines, header, lambda line: not line.lstrip().startswith("["))
        lines[end:end] = [f'{key} = "{value}"\n' for key, value in pairs.items()]
    edited = "".join(lines)
    parsed = tomllib.loads(edited)
    for table, pairs in entries.items():
        got = _toml_table(parsed, table)
        if any(got.get(key) != value for key, value in pairs.items()):
            raise ConfigError(f"pyproject.toml: the lines added to {table} do not read back; add them by hand")
    return edited


def _toml_table(parsed: Mapping[str, Any], header: str) -> Mapping[str, Any]:
    # A header may name nested tables (`[a."b.c"]`): parsed alone, it gives the path of keys.
    probe: Any = tomllib.loads(f"{header}\n")
    node: Any = parsed
    while probe:
        ((key, probe),) = probe.items()
        node = node.get(key, {}) if isinstance(node, Mapping) else {}
    return node if isinstance(node, Mapping) else {}


def toml_keys(text: str, header: str) -> set[str]:
    return set(_toml_table(tomllib.loads(text), header))


def flow(value: Any) -> str:
    """One YAML value on one line, as meltano.yml writes settings and capabilities."""
    if isinstance(value, str) and yaml.safe_load(f"key: {value}") == {"key": value}:
        return value  # plain, as the file writes `pip_url: -e ${MELTANO_PROJECT_ROOT}`
    text = str(yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000))
    return text.removesuffix("\n...\n").strip()


def plugin_lines(entry: Mapping[str, Any]) -> list[str]:
    """A meltano.yml plugin entry in the file's style: scalars, flow lists, one flow map per setting."""
    out: list[str] = []
    for i, (key, value) in enumerate(entry.items()):
        lead = "  - " if i == 0 else "    "
        if key == "settings":
            out.append(f"{lead}settings:\n")
            out.extend(f"    - {flow(setting)}\n" for setting in value)
        elif isinstance(value, Mapping):
            out.append(f"{lead}{key}:\n")
            out.extend(f"      {k}: {flow(v)}\n" for k, v in value.items())
        else:
            out.append(f"{lead}{key}: {flow(value)}\n")
    return out


def add_meltano_plugin(text: str, kind: str, entry: Mapping[str, Any]) -> str:
    """Append a plugin to `plugins.<kind>` (extractors or loaders)."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    try:
        header = next(i for i, line in enumerate(lines) if line.rstrip() == f"  {kind}:")
    except StopIteration:
        raise ConfigError(f"meltano.yml has no plugins.{kind} list to add {entry['name']} to") from None
    end = _block_end(lines, header, lambda line: line.startswith(("  - ", "   ")))
    lines[end:end] = plugin_lines(entry)
    edited = "".join(lines)
    found = [p for p in (yaml.safe_load(edited).get("plugins") or {}).get(kind) or [] if p.get("name") == entry["name"]]
    if found != [dict(entry)]:
        raise ConfigError(f"meltano.yml: the {entry['name']} entry does not read back; add it by hand")
    return edited


def meltano_plugin_names(text: str) -> set[str]:
    plugins = (yaml.safe_load(text) or {}).get("plugins") or {}
    return {str(p.get("name")) for kind in ("extractors", "loaders") for p in plugins.get(kind) or []}
