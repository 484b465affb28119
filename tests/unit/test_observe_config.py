"""dpone.yml's `metrics:` and `lineage:` sections: what is accepted, what is a config error (and
says what to fix), ${VAR}s, relative paths, and that a project without them loads none of the
exporters' libraries."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone_protocol.errors import ConfigError
from dpone_runner.observe import config, quiet
from dpone_runner.observe.prometheus import textfile_name
from dpone_runner.project import load_project

ROOT = Path("/srv/etl")
ENV = {"OTEL_TOKEN": "tok-123456", "OL_KEY": "key-123456"}


def metrics(**raw: Any) -> config.MetricsSettings:
    return config.metrics_settings(raw, ROOT, ENV)


def lineage(env: str = "", **raw: Any) -> config.LineageSettings:
    return config.lineage_settings(raw, ROOT, ENV, env)


class TestMetrics:
    def test_the_documented_example(self) -> None:
        found = metrics(
            prometheus_textfile_dir="/var/lib/node_exporter/textfile_collector",
            pushgateway_url="http://pushgateway:9091",
            otlp_endpoint="http://otel-collector:4318",
            otlp_headers={"Authorization": "Bearer ${OTEL_TOKEN}"},
            timeout_seconds=5,
        )
        assert found == config.MetricsSettings(
            textfile_dir=Path("/var/lib/node_exporter/textfile_collector"),
            pushgateway_url="http://pushgateway:9091",
            otlp_endpoint="http://otel-collector:4318/v1/metrics",
            otlp_headers={"Authorization": "Bearer tok-123456"},
            timeout_seconds=5.0,
        )

    @pytest.mark.parametrize(
        ("given", "used"),
        [
            ("http://c:4318", "http://c:4318/v1/metrics"),
            ("http://c:4318/", "http://c:4318/v1/metrics"),
            ("https://c/otlp", "https://c/otlp/v1/metrics"),
            ("http://c:4318/v1/metrics", "http://c:4318/v1/metrics"),
            ("https://c/tenant/v1/metrics/", "https://c/tenant/v1/metrics/"),
        ],
    )
    def test_the_signal_path_is_added_unless_given(self, given: str, used: str) -> None:
        assert metrics(otlp_endpoint=given).otlp_endpoint == used

    def test_a_relative_textfile_dir_is_the_projects(self) -> None:
        assert metrics(prometheus_textfile_dir="metrics").textfile_dir == ROOT / "metrics"

    @pytest.mark.parametrize(
        ("raw", "says"),
        [
            ({"prometheus_textfile_dir": "m", "pushgateway": "http://g"}, "unknown key(s) pushgateway"),
            ({"timeout_seconds": 5}, "at least one of prometheus_textfile_dir, pushgateway_url, otlp_endpoint"),
            ({"pushgateway_url": "pushgateway:9091"}, "metrics.pushgateway_url must be an http:// or https:// URL"),
            ({"otlp_endpoint": "grpc://c:4317"}, "metrics.otlp_endpoint must be an http:// or https:// URL"),
            (
                {"otlp_endpoint": "http://c", "timeout_seconds": 0},
                "timeout_seconds must be a number of seconds above 0",
            ),
            ({"otlp_endpoint": "http://c", "timeout_seconds": "5"}, "timeout_seconds must be a number"),
            ({"otlp_endpoint": "http://c", "otlp_headers": ["a"]}, "otlp_headers is a mapping"),
            ({"prometheus_textfile_dir": "m", "otlp_headers": {"a": "b"}}, "otlp_headers needs metrics.otlp_endpoint"),
            ({"prometheus_textfile_dir": 7}, "prometheus_textfile_dir must be a string"),
            (
                {"otlp_endpoint": "http://c", "otlp_headers": {"A": "${NOT_SET_ANYWHERE}"}},
                "NOT_SET_ANYWHERE is not set",
            ),
        ],
    )
    def test_a_bad_section_is_a_config_error_that_says_what_to_fix(self, raw: dict[str, Any], says: str) -> None:
        with pytest.raises(ConfigError, match=re.escape(says)):
            metrics(**raw)

    @pytest.mark.parametrize("password", ["pw#tail", "pw?tail", "pw/tail"])
    def test_a_raw_url_delimiter_in_the_password_asks_for_encoding(self, password: str) -> None:
        # Raw, it would end the URL's authority early and leave the password's tail in the host.
        with pytest.raises(ConfigError, match="percent-encode the user and password") as caught:
            metrics(pushgateway_url=f"http://u:{password}@gw:9091")
        assert "tail" not in str(caught.value)

    def test_a_password_in_a_bad_url_is_not_repeated(self) -> None:
        with pytest.raises(ConfigError) as caught:
            metrics(pushgateway_url="ftp://u:hunter2-secret@gw")
        assert "hunter2-secret" not in str(caught.value)


class TestLineage:
    def test_the_namespace_defaults_to_the_env(self) -> None:
        assert lineage(env="prod", file="l.jsonl").namespace == "dpone-prod"
        assert lineage(file="l.jsonl").namespace == "dpone"
        assert lineage(env="prod", file="l.jsonl", namespace="etl").namespace == "etl"

    def test_file_url_and_api_key(self) -> None:
        found = lineage(file=".dpone/lineage.jsonl", url="http://marquez:5000", api_key="${OL_KEY}")
        assert found.file == ROOT / ".dpone/lineage.jsonl"
        assert (found.url, found.endpoint, found.api_key) == ("http://marquez:5000", "api/v1/lineage", "key-123456")

    @pytest.mark.parametrize(
        ("raw", "says"),
        [
            ({"namespace": "x"}, "lineage needs a file"),
            ({"file": "l", "transport": "http"}, "unknown key(s) transport"),
            ({"file": "l", "api_key": "k"}, "api_key needs lineage.url"),
            ({"url": "marquez:5000"}, "lineage.url must be an http:// or https:// URL"),
            ({"file": "l", "timeout_seconds": -1}, "lineage.timeout_seconds must be"),
        ],
    )
    def test_a_bad_section_is_a_config_error(self, raw: dict[str, Any], says: str) -> None:
        with pytest.raises(ConfigError, match=re.escape(says)):
            lineage(**raw)


@pytest.mark.parametrize(
    ("pipeline", "name"),
    [
        ("tap-csv-to-target-jsonl", "dpone_tap-csv-to-target-jsonl.prom"),
        ("nightly orders/v2", "dpone_nightly_orders_v2.prom"),
    ],
)
def test_the_textfile_is_named_after_the_pipeline(pipeline: str, name: str) -> None:
    assert textfile_name(pipeline) == name


def write_project(root: Path, settings: dict[str, Any] | None) -> Path:
    loaders = [{"name": "target-jsonl", "executable": "target-jsonl"}]
    project = {"plugins": {"extractors": [{"name": "tap-csv", "executable": "tap-csv"}], "loaders": loaders}}
    (root / "meltano.yml").write_bytes(orjson.dumps(project))
    if settings is not None:
        (root / "dpone.yml").write_bytes(orjson.dumps(settings))
    return root


LIBRARIES = ("prometheus_client", "opentelemetry", "openlineage", "requests")


def loaded_by_observers_for(root: Path) -> tuple[int, set[str]]:
    code = (
        "import sys\n"
        "from dpone_runner.observe import observers_for\n"
        "from dpone_runner.project import load_project\n"
        f"found = observers_for(load_project({str(root)!r}))\n"
        f"print(len(found)); print(' '.join(m for m in sys.modules if m.split('.')[0] in {LIBRARIES!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    return int(out[0]), set(out[1].split())


def test_no_section_no_observer_and_no_library(tmp_path: Path) -> None:
    assert loaded_by_observers_for(write_project(tmp_path, {"env": "prod"})) == (0, set())


def test_observers_are_built_without_importing_their_libraries(tmp_path: Path) -> None:
    # The import happens when a run starts, on a thread: building them (before the lock) costs nothing.
    settings = {"metrics": {"prometheus_textfile_dir": "m", "otlp_endpoint": "http://c"}, "lineage": {"file": "l"}}
    count, loaded = loaded_by_observers_for(write_project(tmp_path, settings))
    assert count == 3
    assert {m.split(".")[0] for m in loaded} <= {"opentelemetry", "openlineage"}  # namespace packages, found
    assert not any(m.startswith(("openlineage.client", "opentelemetry.sdk", "prometheus_client")) for m in loaded)


def test_observers_for_reads_the_project(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path, {"metrics": {"prometheus_textfile_dir": "m"}}))
    from dpone_runner.observe import observers_for

    (found,) = observers_for(project)
    assert type(found).__name__ == "PrometheusObserver"
    bad = load_project(write_project(tmp_path, {"metrics": {"textfile": "m"}}))
    with pytest.raises(ConfigError, match="metrics has unknown key"):
        observers_for(bad)


def documented_yaml(section: str) -> dict[str, Any]:
    """The first YAML example under `## <section>` of docs/operations.md."""
    import yaml

    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    part = text.split(f"\n## {section}\n", 1)[1]
    block = part.split("```yaml\n", 1)[1].split("```", 1)[0]
    found: dict[str, Any] = yaml.safe_load(block)
    return found


def test_the_documented_examples_are_valid() -> None:
    metrics_doc = documented_yaml("Metrics")
    found = config.metrics_settings(metrics_doc["metrics"], ROOT, ENV)
    assert found.otlp_endpoint == "http://otel-collector:4318/v1/metrics"
    assert found.otlp_headers == {"Authorization": "Bearer tok-123456"}
    lineage_doc = documented_yaml("Lineage")
    settings = config.lineage_settings(lineage_doc["lineage"], ROOT, ENV, lineage_doc["env"])
    assert (settings.namespace, settings.url, settings.api_key) == ("dpone-prod", "http://marquez:5000", "key-123456")


@pytest.mark.parametrize(
    ("said", "gist"),
    [
        (
            "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: /api/v1/lineage (Caused by "
            "NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=9): Failed to establish a new connection: "
            '[Errno 111] Connection refused"))',
            "Connection refused",
        ),
        (
            "HTTPConnectionPool(host='127.0.0.1', port=4318): Read timed out. (read timeout=1.0)",
            "Read timed out. (read timeout=1.0)",
        ),
        ("Transient error Service Unavailable encountered while exporting metrics batch", "Service Unavailable"),
        (
            "400 Client Error: Bad Request for url: http://m/api/v1/lineage",
            "400 Client Error: Bad Request for url: http://m/api/v1/lineage",
        ),
    ],
)
def test_a_librarys_failure_is_told_by_its_gist(said: str, gist: str) -> None:
    assert quiet.gist(said) == gist


def test_a_password_in_a_shown_url_is_masked() -> None:
    assert quiet.shown_url("http://u:hunter2-secret@gw:9091/x") == "http://u:***@gw:9091/x"
    assert quiet.shown_url("http://gw:9091") == "http://gw:9091"
