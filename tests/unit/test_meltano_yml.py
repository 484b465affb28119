"""meltano.yml declares every connector exactly as the connector describes itself.

When a connector's Setting table or capabilities change, this fails and prints the entry to paste.
"""

from __future__ import annotations

import importlib
import tomllib
from typing import Any

import pytest
import yaml

from dpone.taps.csv.tap import CsvTap
from dpone.taps.framework.tap import Tap
from dpone.targets.framework.target import Target
from dpone_protocol.about import meltano_plugin_settings
from dpone_runner.project import load_project
from tests.tools import ROOT

# The driver extra each connector installs with; a connector not named here needs none.
EXTRAS = {
    "tap-postgres": "postgres",
    "tap-clickhouse": "clickhouse",
    "target-duckdb": "duckdb",
    "target-postgres": "postgres",
    "target-clickhouse": "clickhouse",
    "tap-kafka": "kafka",
    "target-kafka": "kafka",
    "tap-rest": "rest",
    "tap-bigquery": "bigquery",
    "target-bigquery": "bigquery",
    "tap-mssql": "mssql",
    "target-mssql": "mssql",
}


def _connectors() -> dict[str, tuple[str, type[Tap] | type[Target], str]]:
    """Every connector of the `dpone.connectors` entry points, so a new one (`dpone connectors new`) is checked too."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["dpone.connectors"]
    found: dict[str, tuple[str, type[Tap] | type[Target], str]] = {}
    for name, value in declared.items():
        module, _, attr = value.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        found[name] = ("extractors" if name.startswith("tap-") else "loaders", cls, EXTRAS.get(name, ""))
    return found


CONNECTORS = _connectors()


def meltano_yml() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "meltano.yml").read_text()))


def plugin(name: str) -> dict[str, Any]:
    kind = CONNECTORS[name][0]
    (entry,) = [p for p in meltano_yml()["plugins"][kind] if p["name"] == name]
    return dict(entry)


def capabilities(cls: type[Tap] | type[Target]) -> list[str]:
    caps = cls.capabilities
    return list(caps) if isinstance(caps, tuple) else list(caps.singer_capabilities())


def test_every_console_script_is_a_meltano_plugin():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    connectors = {s for s in scripts if s.startswith(("tap-", "target-"))}
    assert connectors == set(CONNECTORS)
    declared = {p["name"] for kind in ("extractors", "loaders") for p in meltano_yml()["plugins"][kind]}
    assert declared == connectors


@pytest.mark.parametrize("name", sorted(CONNECTORS))
def test_settings_match_the_connector(name):
    _, cls, _ = CONNECTORS[name]
    entry = plugin(name)
    expected = meltano_plugin_settings(cls.all_settings())
    got = {"settings": entry.get("settings")}
    if "settings_group_validation" in entry or "settings_group_validation" in expected:
        got["settings_group_validation"] = entry.get("settings_group_validation")
    snippet = yaml.safe_dump(expected, default_flow_style=None, sort_keys=False, width=200)
    assert got == expected, f"meltano.yml {name}: settings differ from {cls.__name__}; expected:\n{snippet}"


@pytest.mark.parametrize("name", sorted(CONNECTORS))
def test_plugin_identity_capabilities_and_pip_url(name):
    _, cls, extra = CONNECTORS[name]
    entry = plugin(name)
    assert entry["executable"] == name == cls.name
    assert entry["namespace"] == name.replace("-", "_")
    assert entry["capabilities"] == capabilities(cls)
    # Meltano expands ${MELTANO_PROJECT_ROOT} when it installs: a copy of the project installs itself.
    assert entry["pip_url"] == "-e ${MELTANO_PROJECT_ROOT}" + (f"[{extra}]" if extra else "")
    if extra:
        optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        assert extra in optional


def test_secrets_are_sensitive_and_have_no_value_in_the_file():
    for name, (_, cls, _) in CONNECTORS.items():
        entry = plugin(name)
        secrets = {s.name for s in cls.all_settings() if s.secret}
        sensitive = {s["name"] for s in entry["settings"] if s.get("sensitive")}
        assert sensitive == secrets
        assert all(s["kind"] == "password" for s in entry["settings"] if s["name"] in secrets)
        assert not secrets & set(entry.get("config") or {}), f"{name}: a secret's value is in meltano.yml"


def test_jobs_and_schedules_refer_to_declared_plugins_and_jobs():
    data = meltano_yml()
    names = {p["name"] for kind in ("extractors", "loaders") for p in data["plugins"][kind]}
    jobs = {j["name"]: j for j in data["jobs"]}
    for job in jobs.values():
        for task in job["tasks"]:
            assert set(task.split()) <= names, task
    assert data["schedules"]
    for schedule in data["schedules"]:
        assert schedule["job"] in jobs
        assert schedule["interval"].startswith("@") or len(schedule["interval"].split()) == 5


def test_the_dpone_runner_reads_the_same_file():
    project = load_project(ROOT, env={})
    assert set(project.plugins) == set(CONNECTORS)
    duckdb = project.plugin("target-duckdb", "loaders")
    assert duckdb.config["filepath"] == ".dpone/quickstart.duckdb"  # no ${VAR:-default}: Meltano can't expand it
    assert set(project.plugin("tap-postgres", "extractors").secret_keys) == {"password", "dsn"}
    assert project.plugin("tap-csv", "extractors").capabilities == capabilities(CsvTap)
