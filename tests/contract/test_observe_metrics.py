"""Metrics of real `dpone run`s (tap-csv into target-jsonl): the Prometheus textfile, a Pushgateway
push and OTLP over HTTP, each read back with the official parsers and checked against the run's
own report (`--format json`).

The Pushgateway and the OTLP collector are real HTTP servers on 127.0.0.1 started by the tests;
the textfile is parsed with prometheus_client's parser, the push body too, and the OTLP body
decoded as the protobuf ExportMetricsServiceRequest a collector receives.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from dpone_runner.observe.series import METRICS
from tests.tools.http_receiver import Receiver, Silent, refused_url
from tests.tools.observe_project import PIPELINE, ROWS, SECRET, ObserveProject

RUN_LABELS = {"env": "test", "pipeline": PIPELINE, "tap": "tap-csv", "target": "target-jsonl"}
RUN_METRICS = {
    "dpone_run_success",
    "dpone_run_duration_seconds",
    "dpone_run_last_end_timestamp_seconds",
    "dpone_run_attempts",
    "dpone_run_input_bytes",
    "dpone_run_rows_per_second",
    "dpone_run_states_received",
    "dpone_run_state_saved",
}
STREAM_METRICS = {
    "dpone_stream_rows_in",
    "dpone_stream_rows_out",
    "dpone_stream_quarantined_rows",
    "dpone_stream_rows_per_second",
}
OTLP_METRICS = {
    "dpone.runs",
    "dpone.run.success",
    "dpone.run.duration",
    "dpone.run.attempts",
    "dpone.run.input_bytes",
    "dpone.run.states_received",
    "dpone.stream.rows_in",
    "dpone.stream.rows_out",
    "dpone.stream.quarantined_rows",
}
BOUND_SECONDS = 20  # a run whose exporters are down or hung still ends well within this


@pytest.fixture
def project(tmp_path: Path) -> ObserveProject:
    return ObserveProject(tmp_path)


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Metric name -> [(labels, value)], through prometheus_client's own parser."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return found


def one(found: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    (only,) = found[name]
    return only[1]


def textfile(project: ObserveProject, pipeline: str = PIPELINE) -> dict[str, list[tuple[dict[str, str], float]]]:
    return parse((project.root / "metrics" / f"dpone_{pipeline}.prom").read_text())


def test_metric_names_follow_prometheus_conventions() -> None:
    for metric in METRICS:
        if metric.name:
            assert metric.name.startswith("dpone_") and metric.name.islower(), metric.name
            assert not metric.name.endswith("_total"), "gauges of the last run, not counters"
        if metric.otel:
            assert metric.otel.startswith("dpone."), metric.otel


class TestTextfile:
    def test_a_run_writes_its_report_as_gauges(self, project: ObserveProject) -> None:
        project.settings({"env": "test", "metrics": {"prometheus_textfile_dir": "metrics"}})
        res = project.run()
        assert res.rc == 0, res.err
        report = res.report()
        found = textfile(project)
        assert set(found) == RUN_METRICS | STREAM_METRICS | {
            "dpone_run_last_success_timestamp_seconds",
            "dpone_connector_exit_code",
        }
        for name in RUN_METRICS:
            assert [labels for labels, _ in found[name]] == [RUN_LABELS], name
        assert one(found, "dpone_run_success") == 1
        assert one(found, "dpone_run_duration_seconds") == pytest.approx(report["duration_seconds"])
        assert one(found, "dpone_run_input_bytes") == report["bytes_in"]
        assert one(found, "dpone_run_states_received") == report["states_received"]
        assert one(found, "dpone_run_state_saved") == 1
        assert one(found, "dpone_run_attempts") == 1
        assert one(found, "dpone_run_last_success_timestamp_seconds") == one(
            found, "dpone_run_last_end_timestamp_seconds"
        )
        assert abs(one(found, "dpone_run_last_end_timestamp_seconds") - time.time()) < 60
        for name in ("dpone_stream_rows_in", "dpone_stream_rows_out"):
            by_stream = {labels["stream"]: value for labels, value in found[name]}
            assert by_stream == ROWS
            assert {s["stream"]: s["rows_in"] for s in report["streams"]} == ROWS
        assert all(
            {k: v for k, v in labels.items() if k != "stream"} == RUN_LABELS
            for labels, _ in found["dpone_stream_rows_in"]
        )
        codes = {labels["connector"]: (labels["role"], value) for labels, value in found["dpone_connector_exit_code"]}
        assert codes == {"tap-csv": ("tap", 0), "target-jsonl": ("target", 0)}
        # Written atomically: no temporary file is left beside it.
        assert [p.name for p in (project.root / "metrics").iterdir()] == [f"dpone_{PIPELINE}.prom"]

    def test_a_failed_first_run_gives_success_0_and_no_last_success(self, project: ObserveProject) -> None:
        project.settings({"env": "test", "metrics": {"prometheus_textfile_dir": "metrics"}})
        res = project.run("tap-csv", "target-broken")
        assert res.rc == 70, res.err
        found = textfile(project, "tap-csv-to-target-broken")
        assert one(found, "dpone_run_success") == 0
        assert "dpone_run_last_success_timestamp_seconds" not in found  # none is made up
        codes = {labels["connector"]: value for labels, value in found["dpone_connector_exit_code"]}
        assert codes["target-broken"] == 1

    def test_a_failed_run_keeps_the_last_success_of_its_series(self, project: ObserveProject) -> None:
        project.settings({"env": "test", "metrics": {"prometheus_textfile_dir": "metrics"}})
        assert project.run().rc == 0
        succeeded = one(textfile(project), "dpone_run_last_success_timestamp_seconds")
        project.replace_executable("target-jsonl", '#!/bin/sh\necho "disk full" >&2\nexit 1\n')
        failed = project.run()
        assert failed.rc == 70, failed.err
        found = textfile(project)
        assert one(found, "dpone_run_success") == 0
        assert one(found, "dpone_run_last_success_timestamp_seconds") == succeeded
        assert one(found, "dpone_run_last_end_timestamp_seconds") > succeeded
        assert {lb["stream"] for lb, _ in found.get("dpone_stream_rows_in", [])} <= set(ROWS)

    def test_a_textfile_that_cannot_be_written_fails_no_run(self, project: ObserveProject) -> None:
        (project.root / "taken").write_text("a file where the directory should be")
        project.settings({"metrics": {"prometheus_textfile_dir": "taken"}})
        res = project.run()
        assert res.rc == 0, res.err
        assert res.report()["status"] == "success"
        (warning,) = [line for line in res.err.splitlines() if "PrometheusObserver" in line]
        assert "WARNING" in warning and f"cannot write {project.root}/taken/dpone_{PIPELINE}.prom" in warning

    def test_several_targets_are_one_series_with_the_targets_joined(self, project: ObserveProject) -> None:
        project.settings({"metrics": {"prometheus_textfile_dir": "metrics"}})
        res = project.run("tap-csv", "target-jsonl", "target-jsonl-b")
        assert res.rc == 0, res.err
        found = textfile(project, "tap-csv-to-target-jsonl-target-jsonl-b")
        rows = found["dpone_stream_rows_out"]
        assert {labels["stream"]: value for labels, value in rows} == ROWS  # once per stream, not per target
        assert {labels["target"] for labels, _ in rows} == {"target-jsonl,target-jsonl-b"}
        assert {labels["env"] for labels, _ in rows} == {""}  # no env: an empty label, never a missing one

    def test_retries_report_every_attempt(self, project: ObserveProject) -> None:
        project.settings(
            {
                "env": "test",
                "metrics": {"prometheus_textfile_dir": "metrics"},
                "retries": {"attempts": 2, "backoff_seconds": 0},
            }
        )
        res = project.run("tap-flaky", "target-jsonl")
        assert res.rc == 75
        found = textfile(project, "tap-flaky-to-target-jsonl")
        assert one(found, "dpone_run_attempts") == 2
        assert one(found, "dpone_run_success") == 0


class TestPushgateway:
    def test_the_push_is_the_report_grouped_by_pipeline(self, project: ObserveProject) -> None:
        with Receiver() as gateway:
            project.settings({"env": "test", "metrics": {"pushgateway_url": gateway.url}})
            res = project.run()
            assert res.rc == 0, res.err
            (push,) = gateway.wait_for(1)
        # POST replaces the metrics it names and keeps the others (a failed run keeps the last success).
        assert push.method == "POST"
        assert push.path == f"/metrics/job/dpone/pipeline/{PIPELINE}"
        found = parse(push.body.decode())
        assert one(found, "dpone_run_success") == 1
        # The grouping key gives the pipeline label; the pushed series must not carry it.
        labels = {k: v for k, v in RUN_LABELS.items() if k != "pipeline"}
        assert found["dpone_run_success"][0][0] == labels
        assert {lb["stream"]: v for lb, v in found["dpone_stream_rows_in"]} == ROWS
        assert not (project.root / "metrics").exists()

    def test_a_failed_run_pushes_no_last_success(self, project: ObserveProject) -> None:
        with Receiver() as gateway:
            project.settings({"metrics": {"pushgateway_url": gateway.url}})
            assert project.run("tap-csv", "target-broken").rc != 0
            (push,) = gateway.wait_for(1)
        found = parse(push.body.decode())
        assert one(found, "dpone_run_success") == 0
        assert "dpone_run_last_success_timestamp_seconds" not in found

    def test_a_password_in_the_url_is_sent_as_basic_auth_and_shown_nowhere(self, project: ObserveProject) -> None:
        with Receiver() as gateway:
            url = gateway.url.replace("http://", f"http://pusher:{SECRET}@")
            project.settings({"metrics": {"pushgateway_url": url}})
            res = project.run()
            assert res.rc == 0, res.err
            (push,) = gateway.wait_for(1)
        assert push.headers["authorization"] == "Basic " + base64.b64encode(f"pusher:{SECRET}".encode()).decode()
        assert SECRET not in push.body.decode() + res.out + res.err

    def test_a_percent_encoded_password_is_sent_decoded(self, project: ObserveProject) -> None:
        # A password with @, # or / must be percent-encoded in a URL; basic auth carries it as it is.
        with Receiver() as gateway:
            url = gateway.url.replace("http://", "http://pusher:Zq9%40p%23w%2Fd@")
            project.settings({"metrics": {"pushgateway_url": url}})
            res = project.run()
            assert res.rc == 0, res.err
            (push,) = gateway.wait_for(1)
        assert push.headers["authorization"] == "Basic " + base64.b64encode(b"pusher:Zq9@p#w/d").decode()
        assert "Zq9" not in res.out + res.err

    def test_a_gateway_that_is_down_fails_no_run(self, project: ObserveProject) -> None:
        url = refused_url()
        project.settings({"metrics": {"pushgateway_url": url, "prometheus_textfile_dir": "metrics"}})
        started = time.monotonic()
        res = project.run()
        assert res.rc == 0, res.err
        assert time.monotonic() - started < BOUND_SECONDS
        warnings = [line for line in res.err.splitlines() if "WARNING" in line and "Pushgateway" in line]
        assert len(warnings) == 1, res.err
        assert url in warnings[0] and "refused" in warnings[0].lower()
        assert one(textfile(project), "dpone_run_success") == 1  # the other sink still got them

    def test_a_gateway_that_never_answers_holds_the_run_at_most_the_timeout(self, project: ObserveProject) -> None:
        # The installed `dpone`, as cron would run it.
        with Silent() as gateway:
            project.settings({"metrics": {"pushgateway_url": gateway.url, "timeout_seconds": 1}})
            started = time.monotonic()
            res = project.subprocess()
            took = time.monotonic() - started
        assert res.rc == 0, res.err
        assert res.report()["status"] == "success"
        assert took < BOUND_SECONDS
        assert "Pushgateway" in res.err and "timed out" in res.err, res.err
        assert "Traceback" not in res.err


def test_exporters_that_all_hang_delay_the_run_by_one_timeout_not_their_sum(project: ObserveProject) -> None:
    # Each exporter waits out its own timeout at the same time as the others.
    with Silent() as hung:
        project.settings(
            {
                "metrics": {"pushgateway_url": hung.url, "otlp_endpoint": hung.url, "timeout_seconds": 2},
                "lineage": {"url": hung.url, "timeout_seconds": 2},
            }
        )
        started = time.monotonic()
        res = project.run()
        took = time.monotonic() - started
    assert res.rc == 0, res.err
    # Lineage's START waits once at the start, everything else once at the end: 2 x 2 s, not 3 x 2 s more.
    assert took < 2 * 2 + 1.5, took
    assert all(name in res.err for name in ("Pushgateway", "OTLP collector", "OpenLineage")), res.err


def otlp_points(body: bytes) -> dict[str, list[tuple[dict[str, str], Any]]]:
    """Metric name -> [(attributes, data point)] of an OTLP/HTTP protobuf request."""
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    found: dict[str, list[tuple[dict[str, str], Any]]] = {}
    for resource in request.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                kind = metric.WhichOneof("data")
                for point in getattr(metric, kind).data_points:
                    attributes = {a.key: a.value.string_value for a in point.attributes}
                    found.setdefault(metric.name, []).append((attributes, point))
    return found


def temporality(body: bytes, name: str) -> int:
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    for metric in request.resource_metrics[0].scope_metrics[0].metrics:
        if metric.name == name:
            return int(getattr(metric, metric.WhichOneof("data")).aggregation_temporality)
    raise AssertionError(name)


def resource_of(body: bytes) -> dict[str, str]:
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    return {a.key: a.value.string_value for a in request.resource_metrics[0].resource.attributes}


class TestOtlp:
    def test_the_collector_gets_the_report_as_otlp_metrics(
        self, project: ObserveProject, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OTEL_TOKEN", SECRET)
        with Receiver() as collector:
            project.settings(
                {
                    "env": "test",
                    "metrics": {
                        "otlp_endpoint": collector.url,
                        "otlp_headers": {"Authorization": "Bearer ${OTEL_TOKEN}"},
                    },
                }
            )
            res = project.run()
            assert res.rc == 0, res.err
            (request,) = collector.wait_for(1)
        assert request.method == "POST" and request.path == "/v1/metrics"
        assert request.headers["content-type"] == "application/x-protobuf"
        assert request.headers["authorization"] == f"Bearer {SECRET}"
        assert SECRET not in res.err + res.out
        report = res.report()
        found = otlp_points(request.body)
        assert set(found) == OTLP_METRICS
        assert resource_of(request.body)["service.name"] == "dpone"
        assert resource_of(request.body)["deployment.environment.name"] == "test"
        (runs,) = found["dpone.runs"]
        assert runs[0] == {**RUN_LABELS, "status": "success"} and runs[1].as_int == 1
        # A run's own counts: DELTA (1), which a collector adds up across runs.
        assert temporality(request.body, "dpone.runs") == temporality(request.body, "dpone.run.duration") == 1
        (duration,) = found["dpone.run.duration"]
        assert duration[0] == {**RUN_LABELS, "status": "success"}
        assert duration[1].count == 1 and duration[1].sum == pytest.approx(report["duration_seconds"])
        (success,) = found["dpone.run.success"]
        assert success == (RUN_LABELS, success[1]) and success[1].as_double == 1
        (size,) = found["dpone.run.input_bytes"]
        assert size[1].as_double == report["bytes_in"]
        for name in ("dpone.stream.rows_in", "dpone.stream.rows_out"):
            by_stream = {attributes["stream"]: point.as_double for attributes, point in found[name]}
            assert by_stream == ROWS
            assert all({k: v for k, v in a.items() if k != "stream"} == RUN_LABELS for a, _ in found[name])

    def test_an_endpoint_with_the_signal_path_is_kept(self, project: ObserveProject) -> None:
        with Receiver() as collector:
            project.settings({"metrics": {"otlp_endpoint": collector.url + "/otel/v1/metrics"}})
            assert project.run().rc == 0
            (request,) = collector.wait_for(1)
        assert request.path == "/otel/v1/metrics"

    def test_each_attempt_of_a_retried_run_is_exported(self, project: ObserveProject) -> None:
        with Receiver() as collector:
            project.settings(
                {"metrics": {"otlp_endpoint": collector.url}, "retries": {"attempts": 2, "backoff_seconds": 0}}
            )
            assert project.run("tap-flaky", "target-jsonl").rc == 75
            requests = collector.wait_for(2)
        assert len(requests) == 2
        attempts = [otlp_points(r.body)["dpone.run.attempts"][0][1].as_double for r in requests]
        assert attempts == [1, 2]
        statuses = [otlp_points(r.body)["dpone.runs"][0][0]["status"] for r in requests]
        assert statuses == ["failed", "failed"]

    @pytest.mark.parametrize("down", ["refused", "error 503"])
    def test_a_collector_that_is_down_fails_no_run(self, project: ObserveProject, down: str) -> None:
        with Receiver(status=503) as failing:
            url = refused_url() if down == "refused" else failing.url
            project.settings({"metrics": {"otlp_endpoint": url, "timeout_seconds": 2}})
            started = time.monotonic()
            res = project.run()
        assert res.rc == 0, res.err
        assert time.monotonic() - started < BOUND_SECONDS
        warnings = [line for line in res.err.splitlines() if "OTLP collector" in line]
        assert len(warnings) == 1 and "WARNING" in warnings[0], res.err
        assert f"{url}/v1/metrics" in warnings[0]
        # The SDK's own messages are folded into that one warning, not logged as errors besides.
        assert "ERROR" not in res.err, res.err


class TestConfig:
    def test_an_unknown_key_stops_the_run_before_it_starts(self, project: ObserveProject) -> None:
        project.settings({"metrics": {"prometheus_textfile_dir": "metrics", "pushgateway": "http://gw:9091"}})
        res = project.subprocess()
        assert res.rc == 78
        assert res.err.strip().splitlines()[-1] == (
            "dpone: config error: dpone.yml: metrics has unknown key(s) pushgateway (known: prometheus_textfile_dir, "
            "pushgateway_url, otlp_endpoint, otlp_headers, timeout_seconds)"
        )
        assert res.out == ""  # nothing ran: no report
        assert not (project.root / "out").exists()


class TestNoSecrets:
    def test_passwords_of_the_connectors_reach_no_metric(self, project: ObserveProject) -> None:
        with Receiver() as gateway, Receiver() as collector:
            project.settings(
                {
                    "metrics": {
                        "prometheus_textfile_dir": "metrics",
                        "pushgateway_url": gateway.url,
                        "otlp_endpoint": collector.url,
                    }
                }
            )
            res = project.run("tap-pg", "target-pg")
            assert res.rc == 0, res.err
            sent = [r.body for r in gateway.wait_for(1) + collector.wait_for(1)]
        written = (project.root / "metrics" / "dpone_tap-pg-to-target-pg.prom").read_bytes()
        for body in [*sent, written, res.out.encode(), res.err.encode()]:
            assert SECRET.encode() not in body
