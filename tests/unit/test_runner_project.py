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


TWO_LOADERS = (
    MELTANO
    + """\
  - name: target-jsonl
    config: {destination_path: out}
"""
)


def test_pipelines_declared_resolved_by_name_or_as_tap_to_target(tmp_path: Path) -> None:
    dpone = "retries: {attempts: 2}\npipelines:\n  orders: {tap: tap-csv, targets: [target-duckdb, target-jsonl]}\n"
    project = load_project(write(tmp_path, TWO_LOADERS, dpone))
    orders = project.pipeline("orders")
    assert (orders.tap, orders.targets, orders.retries.attempts, orders.declared) == (
        "tap-csv",
        ["target-duckdb", "target-jsonl"],
        2,
        True,
    )
    implied = project.pipeline("tap-csv-to-target-duckdb-target-jsonl")
    assert (implied.tap, implied.targets, implied.declared) == ("tap-csv", ["target-duckdb", "target-jsonl"], False)
    with pytest.raises(ConfigError, match="'target-nope' names no loaders of meltano.yml"):
        project.pipeline("tap-csv-to-target-nope")
    with pytest.raises(ConfigError, match="'tap-nope' is no extractor of meltano.yml"):
        project.pipeline("tap-nope-to-target-duckdb")


def test_a_declared_pipeline_named_like_another_pipelines_id_is_refused(tmp_path: Path) -> None:
    # `dpone run tap-csv target-jsonl` keeps its state under tap-csv-to-target-jsonl: a declared
    # pipeline of that name into another target would resume from that state and skip rows.
    dpone = "pipelines:\n  tap-csv-to-target-jsonl: {tap: tap-csv, targets: [target-duckdb]}\n"
    with pytest.raises(ConfigError, match="would share one state; give the pipeline another name"):
        load_project(write(tmp_path, TWO_LOADERS, dpone))
    # Named for what it is, it is just the declared form of the implied pipeline.
    dpone = "pipelines:\n  tap-csv-to-target-jsonl: {tap: tap-csv, targets: [target-jsonl]}\n"
    project = load_project(write(tmp_path, TWO_LOADERS, dpone))
    assert project.implied("tap-csv", ["target-jsonl"]).declared is True


def test_a_run_with_another_pipelines_id_is_refused(tmp_path: Path) -> None:
    dpone = "pipelines:\n  orders: {tap: tap-csv, targets: [target-duckdb]}\n"
    project = load_project(write(tmp_path, TWO_LOADERS, dpone))
    with pytest.raises(ConfigError, match="would share its state: run `dpone run orders`"):
        project.implied("tap-csv", ["target-jsonl"], "orders")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("retires: {attempts: 3}\n", "unknown key(s) retires (did you mean retries?)"),
        ("bogus: 1\n", "unknown key(s) bogus; known: contracts, env, filters"),
        ("pipelines: [a]\n", "pipelines is a mapping"),
        ("pipelines:\n  a: {tap: tap-csv}\n", "pipelines.a.targets must list one or more loaders"),
        ("pipelines:\n  a: {tap: tap-csv, targets: [target-duckdb], wait: 1}\n", "pipelines.a has unknown keys wait"),
        ("retries: {attempts: 0}\n", "retries.attempts must be a whole number of tries, 1 or more"),
        ("metrics: [1]\n", "metrics must be a mapping"),
    ],
)
def test_dpone_yml_mistakes_are_config_errors(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ConfigError) as failed:
        load_project(write(tmp_path, TWO_LOADERS, text))
    assert says in str(failed.value)


def test_state_backend_expands_variables_and_encodes_a_password_for_the_url(tmp_path: Path) -> None:
    dpone = "state_backend: postgresql://dpone:${PW}@${HOST}:5432/state?schema=dpone\n"
    project = load_project(write(tmp_path, dpone=dpone), env={"PW": "p@ss/w#rd:x", "HOST": "db.internal"})
    assert project.state_backend == "postgresql://dpone:p%40ss%2Fw%23rd%3Ax@db.internal:5432/state?schema=dpone"
    with pytest.raises(ConfigError, match="state_backend: environment variable PW is not set"):
        load_project(write(tmp_path, dpone=dpone), env={"HOST": "db.internal"})
