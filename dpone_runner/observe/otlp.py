"""Each run's report as OpenTelemetry metrics, sent over OTLP/HTTP (protobuf) to a collector.

A fresh MeterProvider per run (each try of a retried run too): its instruments are recorded
once from the report, exported by one flush, and the provider is shut down, so nothing runs in
the background and nothing is sent at exit.

Counters and the duration histogram go out with DELTA temporality: each export holds exactly
one run's rows, bytes and runs, which is what a job that lives for one run can say (a cumulative
counter restarting at each run would read as flat in Prometheus). The collector's
`deltatocumulative` processor turns them into the cumulative counters Prometheus wants;
OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, when set, chooses instead.

The SDK logs its own export failures; their gist is told once, as the observer's warning (the
run goes on: a collector that is down costs at most `timeout_seconds`, retries included).
"""

from __future__ import annotations

import math
import os
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from dpone_protocol.about import dpone_version
from dpone_protocol.errors import TransientError
from dpone_runner.observe.background import IMPORTING, Background
from dpone_runner.observe.quiet import gist, held
from dpone_runner.observe.series import COUNTER, DURATION, HISTOGRAM, RUNS, Sample, run_labels, samples

if TYPE_CHECKING:
    from dpone_runner.observe import ObservedRun
    from dpone_runner.observe.config import MetricsSettings
    from dpone_runner.report import RunReport

TEMPORALITY_ENV = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
# Runs take seconds to hours: the SDK's default buckets (0 to 10,000, mostly under 1,000) fit that poorly.
DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)


def _load() -> SimpleNamespace:
    # Only when metrics are configured, off the main thread: the SDK and protobuf take ~0.1 s.
    import requests  # noqa: PLC0415
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter  # noqa: PLC0415
    from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.export import (  # noqa: PLC0415
        AggregationTemporality,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415

    class Exporter(OTLPMetricExporter):
        """The OTLP exporter, remembering whether its export went through (the SDK's reader drops that)."""

        result: Any = None

        def export(self, metrics_data: Any, timeout_millis: float | None = 10_000, **kwargs: Any) -> Any:
            self.result = super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            return self.result

    class Session(requests.Session):
        """The exporter's HTTP session, remembering what its last request met (the SDK logs only a summary)."""

        last = ""

        def request(self, *args: Any, **kwargs: Any) -> Any:
            try:
                response = super().request(*args, **kwargs)
            except Exception as exc:  # told as the failure's gist; the SDK handles the exception itself
                self.last = gist(str(exc)) or type(exc).__name__
                raise
            self.last = f"HTTP {response.status_code} {response.reason}"
            return response

    return SimpleNamespace(
        Exporter=Exporter,
        Session=Session,
        DELTA={Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA},
        MeterProvider=MeterProvider,
        Reader=PeriodicExportingMetricReader,
        Resource=Resource,
        SUCCESS=MetricExportResult.SUCCESS,
    )


def _imported() -> SimpleNamespace:
    with IMPORTING:
        return _load()


class OtlpObserver:
    def __init__(self, settings: MetricsSettings) -> None:
        self.settings = settings
        self._lib: Background[SimpleNamespace] = Background("opentelemetry", _imported)

    def started(self, run: ObservedRun) -> None:
        self._lib.start()

    def finished(self, run: ObservedRun, report: RunReport) -> None:
        lib = self._lib.result(self.settings.timeout_seconds + 30)
        millis = self.settings.timeout_seconds * 1000
        session = lib.Session()
        exporter = lib.Exporter(
            endpoint=self.settings.otlp_endpoint,
            headers=self.settings.otlp_headers,
            timeout=self.settings.timeout_seconds,
            session=session,
            # A run's counts are that run's (see above), unless the environment chooses.
            preferred_temporality=None if os.environ.get(TEMPORALITY_ENV) else lib.DELTA,
        )
        # No periodic thread (interval inf): the one export is the flush below.
        reader = lib.Reader(exporter, export_interval_millis=math.inf, export_timeout_millis=millis)
        resource = lib.Resource.create(
            {"service.name": "dpone", "service.version": dpone_version(), "deployment.environment.name": run.env}
        )
        provider = lib.MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
        _record(provider.get_meter("dpone", dpone_version()), run, report)
        with held():
            provider.force_flush(millis)
            provider.shutdown(millis)
        if exporter.result != lib.SUCCESS:
            why = session.last or "no answer"
            raise TransientError(f"OTLP collector {self.settings.otlp_endpoint} did not take the metrics: {why}")


def _record(meter: Any, run: ObservedRun, report: RunReport) -> None:
    instruments: dict[str, Any] = {}
    status = {"status": report.status}

    def instrument(sample: Sample) -> Any:
        metric = sample.metric
        assert metric.otel is not None
        if metric.otel not in instruments:
            if metric.kind == HISTOGRAM:
                instruments[metric.otel] = meter.create_histogram(
                    metric.otel, metric.unit, metric.help, explicit_bucket_boundaries_advisory=DURATION_BUCKETS
                )
            else:
                create = meter.create_counter if metric.kind == COUNTER else meter.create_gauge
                instruments[metric.otel] = create(metric.otel, unit=metric.unit, description=metric.help)
        return instruments[metric.otel]

    for sample in samples(run, report):
        if sample.metric.otel is None:
            continue
        attributes = {**sample.labels, **status} if sample.metric is DURATION else sample.labels
        record = {COUNTER: "add", HISTOGRAM: "record"}.get(sample.metric.kind, "set")
        getattr(instrument(sample), record)(sample.value, attributes)
    instrument(Sample(RUNS, {}, 0)).add(1, {**run_labels(run), **status})
