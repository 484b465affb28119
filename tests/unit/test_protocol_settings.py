"""Settings as data: validation, defaults, and the `--about` document and its markdown."""

from __future__ import annotations

from typing import Any

import pytest

from dpone_protocol.about import about_document, about_markdown, dpone_version
from dpone_protocol.errors import ConfigError
from dpone_protocol.settings import Setting, apply_settings, secret_names

SETTINGS = [
    Setting("host", required=True, description="Server host name"),
    Setting("port", "integer", default=5432),
    Setting("password", secret=True, description="Login password"),
    Setting("ratio", "number", default=0.5),
    Setting("ssl", "boolean", default=False),
    Setting("tables", "array"),
    Setting("options", "object"),
    Setting("mode", choices=("append", "merge"), default="append"),
]


def test_defaults_fill_missing_and_null_settings() -> None:
    out = apply_settings(SETTINGS, {"host": "h", "port": None, "extra_meltano_key": 1}, "tap-x")
    assert out == {
        "host": "h",
        "port": 5432,
        "ratio": 0.5,
        "ssl": False,  # a False default is a value; only None means "no default"
        "mode": "append",
        "extra_meltano_key": 1,
    }


def test_given_values_are_kept() -> None:
    config = {
        "host": "h",
        "port": 6543,
        "password": "pw",
        "ratio": 2,
        "ssl": True,
        "tables": ["a"],
        "options": {"k": "v"},
        "mode": "merge",
    }
    assert apply_settings(SETTINGS, config, "tap-x") == config


def test_input_mapping_is_not_modified() -> None:
    config = {"host": "h"}
    apply_settings(SETTINGS, config, "tap-x")
    assert config == {"host": "h"}


def test_missing_required_setting() -> None:
    with pytest.raises(ConfigError, match=r"^tap-x: missing required setting 'host'$"):
        apply_settings(SETTINGS, {}, "tap-x")
    with pytest.raises(ConfigError, match=r"^tap-x: missing required setting 'host'$"):
        apply_settings(SETTINGS, {"host": None}, "tap-x")


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("port", "5432", "setting 'port' must be integer, got str"),
        ("port", True, "setting 'port' must be integer, got boolean"),
        ("port", 5432.0, "setting 'port' must be integer, got float"),
        ("ratio", False, "setting 'ratio' must be number, got boolean"),
        ("ratio", "0.5", "setting 'ratio' must be number, got str"),
        ("ssl", 1, "setting 'ssl' must be boolean, got int"),
        ("ssl", "true", "setting 'ssl' must be boolean, got str"),
        ("tables", "a,b", "setting 'tables' must be array, got str"),
        ("options", [], "setting 'options' must be object, got list"),
        ("host", 5, "setting 'host' must be string, got int"),
        ("mode", "upsert", "setting 'mode' must be one of append, merge; got 'upsert'"),
    ],
)
def test_wrong_kinds_and_choices(key: str, value: Any, text: str) -> None:
    config = {"host": "h", key: value}
    with pytest.raises(ConfigError) as info:
        apply_settings(SETTINGS, config, "target-y")
    assert str(info.value) == f"target-y: {text}"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        apply_settings(SETTINGS, {"port": "x", "mode": "nope"}, "tap-x")
    assert str(info.value) == (
        "tap-x: missing required setting 'host'; setting 'port' must be integer, got str; "
        "setting 'mode' must be one of append, merge; got 'nope'"
    )


def test_secret_names() -> None:
    assert secret_names(SETTINGS) == ["password"]


def _about() -> dict[str, Any]:
    return about_document(
        "tap-x",
        "Reads X.",
        "1.2.3",
        ["catalog", "discover", "state"],
        [*SETTINGS[:3], SETTINGS[-1]],
        extra={"supported_python_versions": ["3.11"]},
    )


def test_about_document_shape_and_secret_marking() -> None:
    doc = _about()
    assert doc["name"] == "tap-x"
    assert doc["description"] == "Reads X."
    assert doc["version"] == "1.2.3"
    assert doc["capabilities"] == ["catalog", "discover", "state"]
    assert doc["supported_python_versions"] == ["3.11"]
    assert doc["settings"] == {
        "type": "object",
        "properties": {
            "host": {"type": "string", "description": "Server host name"},
            "port": {"type": ["integer", "null"], "default": 5432},
            "password": {
                "type": ["string", "null"],
                "description": "Login password",
                "secret": True,
                "writeOnly": True,
            },
            "mode": {"type": ["string", "null"], "default": "append", "enum": ["append", "merge"]},
        },
        "required": ["host"],
    }


def test_dpone_version_is_a_version_string() -> None:
    version = dpone_version()
    assert isinstance(version, str)
    assert version


def test_about_markdown_renders_a_settings_table() -> None:
    text = about_markdown(_about())
    assert text.startswith("# `tap-x`\n\nReads X.\n\nVersion: 1.2.3\n")
    assert "## Capabilities\n\n* `catalog`\n* `discover`\n* `state`\n" in text
    assert text.endswith(
        "## Settings\n\n"
        "| Setting | Required | Default | Description |\n"
        "|:--|:--:|:--:|:--|\n"
        "| host | True |  | Server host name |\n"
        "| port | False | 5432 |  |\n"
        "| password | False |  | Login password (secret) |\n"
        "| mode | False | append |  |\n"
    )


def test_a_setting_the_connector_does_not_have_is_named_in_a_warning(tmp_path, caplog) -> None:
    from dpone_protocol.config import Redactor
    from dpone_protocol.settings import load_settings

    path = tmp_path / "config.json"
    path.write_text('{"host": "h", "load_metod": "upsert", "_meltano_extra": 1}')
    with caplog.at_level("WARNING"):
        config = load_settings(SETTINGS, "target-y", [str(path)], Redactor())
    assert config["load_metod"] == "upsert"  # passed through, as before
    assert "target-y ignores settings it does not have: load_metod (see --about" in caplog.text
    assert "_meltano_extra" not in caplog.text
