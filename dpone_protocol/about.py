"""The `--about` document every connector prints, as JSON or Markdown."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson

from dpone_protocol.settings import JSON_SCHEMA_TYPES, Setting


def dpone_version() -> str:
    try:
        return version("dpone")
    except PackageNotFoundError:
        return "0+unknown"


def about_document(
    name: str,
    description: str,
    version: str,
    capabilities: Iterable[str],
    settings: Iterable[Setting],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `--about --format json` document, in the shape the Meltano Singer SDK uses."""
    settings = list(settings)
    properties: dict[str, Any] = {}
    for s in settings:
        prop: dict[str, Any] = {
            "type": [JSON_SCHEMA_TYPES[s.kind], "null"] if not s.required else JSON_SCHEMA_TYPES[s.kind]
        }
        if s.description:
            prop["description"] = s.description
        if s.default is not None:
            prop["default"] = s.default
        if s.secret:
            prop["secret"] = True
            prop["writeOnly"] = True
        if s.choices:
            prop["enum"] = list(s.choices)
        properties[s.name] = prop
    doc: dict[str, Any] = {
        "name": name,
        "description": description,
        "version": version,
        "capabilities": list(capabilities),
        "settings": {
            "type": "object",
            "properties": properties,
            "required": [s.name for s in settings if s.required],
        },
    }
    if extra:
        doc.update(extra)
    return doc


def about_markdown(doc: Mapping[str, Any]) -> str:
    lines = [f"# `{doc['name']}`", "", doc["description"], "", f"Version: {doc['version']}", "", "## Capabilities", ""]
    lines += [f"* `{c}`" for c in doc["capabilities"]]
    lines += ["", "## Settings", "", "| Setting | Required | Default | Description |", "|:--|:--:|:--:|:--|"]
    required = set(doc["settings"]["required"])
    for name, prop in doc["settings"]["properties"].items():
        default = prop.get("default")
        desc = prop.get("description", "")
        if prop.get("secret"):
            desc = f"{desc} (secret)".strip()
        lines.append(
            f"| {name} | {'True' if name in required else 'False'} | {'' if default is None else default} | {desc} |"
        )
    return "\n".join(lines) + "\n"


def render_about(doc: Mapping[str, Any], fmt: str | None) -> str:
    """`--about` output: JSON (the default) or Markdown."""
    if fmt == "markdown":
        return about_markdown(doc)
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
