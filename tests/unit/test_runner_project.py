"""Loading plugins from meltano.yml and runner settings from dpone.yml."""

from __future__ import annotations

from pathlib import Path

import pytest

from dpone_protocol.errors import ConfigError
from dpone_runner.project import EXTRACTORS, LOADERS, load_project, state_backend_uri

MELTANO = """
version: 1
plugins:
  extractors:
  - name: tap-csv
    config:
      base_path: ${DATA_DIR:-data}
      token: ${API_TOKEN}
    select: [customers.*, "!customers.notes"]
    metadata:
      customers: {replication-method: FULL_TABLE}
    settings:
    - {name: token, kind: password}
  loaders:
  - name: target-duckdb
    executable: target-duckdb
    config: {filepath: out.duckdb}
"""


def write(tmp_path: Path, meltano: str = MELTANO, dpone: str | None = None) -> Path:
    (tmp_path / "meltano.yml").write_text(meltano)
    if dpone is not None:
        (tmp_path / "dpone.yml").write_text(dpone)
    return tmp_path


def test_plugins_config_env_expansion_select_metadata_secrets(tmp_path):
    project = load_project(write(tmp_path), env={"API_TOKEN": "t0ken-value"})
    tap = project.plugin("tap-csv", EXTRACTORS)
    assert tap.config == {"base_path": "data", "token": "t0ken-value"}
    assert tap.select == ["customers.*", "!customers.notes"]
    assert tap.metadata == {"customers": {"replication-method": "FULL_TABLE"}}
    assert tap.secret_keys == ["token"]
    assert project.plugin("target-duckdb", LOADERS).executable == "target-duckdb"


def test_missing_env_var_names_the_setting(tmp_path):
    project = load_project(write(tmp_path), env={})
    with pytest.raises(ConfigError, match="tap-csv.config.token: environment variable API_TOKEN is not set"):
        project.plugin("tap-csv", EXTRACTORS)


def test_only_the_plugins_a_command_uses_need_their_variables(tmp_path):
    project = load_project(write(tmp_path), env={})
    assert project.plugin("target-duckdb", LOADERS).executable == "target-duckdb"  # tap-csv's API_TOKEN is unset


def test_unknown_plugin_lists_the_known_ones(tmp_path):
    project = load_project(write(tmp_path), env={"API_TOKEN": "x"})
    with pytest.raises(ConfigError, match="unknown extractor \\(tap\\) 'tap-nope'; known: tap-csv"):
        project.plugin("tap-nope", EXTRACTORS)
    with pytest.raises(ConfigError, match="unknown loader"):
        project.plugin("tap-csv", LOADERS)


def test_dpone_yml_limits_backend_filters(tmp_path):
    dpone = "state_backend: file:///s.json\nlimits: {memory_mb: 512}\nfilters:\n- {type: hash, properties: [email]}\n"
    project = load_project(write(tmp_path, dpone=dpone), env={"API_TOKEN": "x"})
    assert project.state_backend == "file:///s.json"
    assert project.limits.memory_mb == 512 and project.limits.wall_seconds == 0
    assert project.filters == [{"type": "hash", "properties": ["email"]}]


def test_no_project_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no meltano.yml"):
        load_project(tmp_path)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_project(write(tmp_path, "plugins: [unclosed"))


def test_progress_interval_default_setting_and_zero(tmp_path: Path) -> None:
    assert load_project(write(tmp_path), env={"API_TOKEN": "x"}).progress_interval_seconds == 30
    project = load_project(write(tmp_path, dpone="progress_interval_seconds: 0\n"), env={"API_TOKEN": "x"})
    assert project.progress_interval_seconds == 0
    with pytest.raises(ConfigError, match="progress_interval_seconds must be a number of seconds"):
        load_project(write(tmp_path, dpone="progress_interval_seconds: -5\n"), env={"API_TOKEN": "x"})


@pytest.mark.parametrize(
    ("given", "configured", "env", "expected"),
    [
        (None, None, {}, "sqlite:////project/.dpone/state.db"),
        (None, "sqlite:///state/s.db", {}, "sqlite:////project/state/s.db"),
        (None, "file:///", {}, "file:////project/.dpone/state.json"),
        (None, "sqlite:////abs/s.db", {}, "sqlite:////abs/s.db"),
        ("sqlite:///mine.db", "sqlite:///state/s.db", {}, "sqlite:////cwd/mine.db"),
        (None, None, {"DPONE_STATE_BACKEND": "file:///s.json"}, "file:////cwd/s.json"),
        (None, "postgresql://u@h/db", {}, "postgresql://u@h/db"),
    ],
)
def test_state_backend_paths_are_the_projects_unless_typed_here(
    monkeypatch: pytest.MonkeyPatch, given: str | None, configured: str | None, env: dict[str, str], expected: str
) -> None:
    monkeypatch.setattr(Path, "cwd", classmethod(lambda cls: cls("/cwd")))
    assert state_backend_uri(Path("/project"), given, configured, env) == expected
