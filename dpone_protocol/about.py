"""The `--about` document every connector prints, as JSON or Markdown."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from dpone_protocol.settings import JSON_SCHEMA_TYPES, Setting

# Meltano setting kinds: a secret is a password (masked by `meltano config`), choices are options.
MELTANO_KINDS = {
    "string": "string",
    "integer": "integer",
    "number": "decimal",
    "boolean": "boolean",
    "array": "array",
    "object": "object",
}

# What `stream_maps` does in a tap that advertises the `stream-maps` capability.
STREAM_MAPS_SUPPORT: dict[str, Any] = {
    "setting": "stream_maps",
    "supported": ["__alias__", "__key_properties__", "__else__: null", "property: null", "property: <source property>"],
    "expressions": False,
    "unsupported": ["__filter__", "__source__", "computed properties", "alias expressions"],
}


def dpone_version() -> str:
    # Imported here: importlib.metadata costs every connector's start-up 20 to 30 ms otherwise.
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

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
    if "stream-maps" in doc["capabilities"]:
        doc["stream_maps"] = STREAM_MAPS_SUPPORT
    if extra:
        doc.update(extra)
    return doc


def meltano_setting(setting: Setting) -> dict[str, Any]:
    """A connector setting as a Meltano plugin `settings` entry.

    Descriptions stay in `--about` (which Meltano Hub reads); meltano.yml keeps what Meltano acts on.
    """
    kind = "password" if setting.secret else "options" if setting.choices else MELTANO_KINDS[setting.kind]
    out: dict[str, Any] = {"name": setting.name, "kind": kind}
    if setting.choices:
        out["options"] = [{"label": c, "value": c} for c in setting.choices]
    if setting.secret:
        out["sensitive"] = True
    return out


def meltano_plugin_settings(settings: Iterable[Setting]) -> dict[str, Any]:
    """The `settings` (and required groups) of a Meltano plugin definition, from a Setting table."""
    settings = list(settings)
    out: dict[str, Any] = {"settings": [meltano_setting(s) for s in settings]}
    required = [s.name for s in settings if s.required]
    if required:
        out["settings_group_validation"] = [required]
    return out


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
        desc = desc.replace("|", "\\|")  # a bare | would end the table cell
        lines.append(
            f"| {name} | {'True' if name in required else 'False'} | {'' if default is None else default} | {desc} |"
        )
    return "\n".join(lines) + "\n"


def render_about(doc: Mapping[str, Any], fmt: str | None) -> str:
    """`--about` output: JSON (the default) or Markdown."""
    if fmt == "markdown":
        return about_markdown(doc)
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
