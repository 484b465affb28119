"""Each run's report as Prometheus gauges: a file for node_exporter's textfile collector, a Pushgateway push.

The file is `<prometheus_textfile_dir>/dpone_<pipeline>.prom`, replaced atomically (written
beside it, then renamed) so the collector never reads half of it. The push goes to
`<pushgateway_url>/metrics/job/dpone/pipeline/<pipeline>` with POST, which replaces the metrics
it names and keeps the others: a failed run sends no `dpone_run_last_success_timestamp_seconds`,
so the Pushgateway keeps the last success's. The file does the same by reading it back from the
file it replaces. The grouping key carries the pipeline, so pushed series have no `pipeline`
label of their own (the Pushgateway adds it).
"""

from __future__ import annotations

import functools
import logging
import re
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, unquote, urlsplit

from dpone_protocol.errors import TransientError
from dpone_runner.observe.background import IMPORTING, Background
from dpone_runner.observe.quiet import shown_url
from dpone_runner.observe.series import LAST_SUCCESS, Sample, run_labels, samples

if TYPE_CHECKING:
    from dpone_runner.observe import ObservedRun
    from dpone_runner.observe.config import MetricsSettings
    from dpone_runner.report import RunReport

log = logging.getLogger("dpone.observe")
JOB = "dpone"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _load() -> ModuleType:
    with IMPORTING:
        return _import()


def _import() -> ModuleType:
    import prometheus_client  # noqa: PLC0415 - only when metrics are configured, off the main thread
    import prometheus_client.exposition  # noqa: PLC0415
    import prometheus_client.parser  # noqa: PLC0415

    return prometheus_client


def textfile_name(pipeline_id: str) -> str:
    return f"dpone_{_UNSAFE.sub('_', pipeline_id)}.prom"


class PrometheusObserver:
    def __init__(self, settings: MetricsSettings) -> None:
        self.settings = settings
        self._lib: Background[ModuleType] = Background("prometheus_client", _load)

    def started(self, run: ObservedRun) -> None:
        self._lib.start()

    def finished(self, run: ObservedRun, report: RunReport) -> None:
        lib = self._lib.result(self.settings.timeout_seconds + 30)
        found = samples(run, report)
        failures = []
        if self.settings.textfile_dir is not None:
            path = self.settings.textfile_dir / textfile_name(run.pipeline_id)
            try:
                self._write_textfile(lib, path, found, run)
            except OSError as exc:
                failures.append(f"cannot write {path}: {exc.strerror or exc}")
        if self.settings.pushgateway_url:
            try:
                self._push(lib, found, run)
            except OSError as exc:  # URLError, timeouts, refused connections are all OSErrors
                where = shown_url(self.settings.pushgateway_url)
                failures.append(f"Pushgateway {where} did not take the metrics: {getattr(exc, 'reason', None) or exc}")
        if failures:
            raise TransientError("; ".join(failures))

    def _write_textfile(self, lib: ModuleType, path: Path, found: list[Sample], run: ObservedRun) -> None:
        if not any(s.metric is LAST_SUCCESS for s in found):
            kept = _last_success(lib, path, run_labels(run))
            if kept is not None:
                found = [*found, Sample(LAST_SUCCESS, run_labels(run), kept)]
        path.parent.mkdir(parents=True, exist_ok=True)
        lib.write_to_textfile(str(path), _registry(lib, found, omit=()))
        log.debug("metrics written to %s", path)

    def _push(self, lib: ModuleType, found: list[Sample], run: ObservedRun) -> None:
        assert self.settings.pushgateway_url is not None
        url, user, password = _credentials(self.settings.pushgateway_url)
        handler: Any = lib.exposition.default_handler
        if user or password:
            handler = functools.partial(lib.exposition.basic_auth_handler, username=user, password=password)
        lib.pushadd_to_gateway(
            url,
            job=JOB,
            registry=_registry(lib, found, omit=("pipeline",)),
            grouping_key={"pipeline": run.pipeline_id},
            timeout=self.settings.timeout_seconds,
            handler=handler,
        )


def _registry(lib: ModuleType, found: list[Sample], omit: tuple[str, ...]) -> Any:
    """A registry holding one gauge per metric that has samples, without the `omit` labels."""
    registry = lib.CollectorRegistry()
    by_metric: dict[str, list[Sample]] = defaultdict(list)
    for sample in found:
        if sample.metric.name:
            by_metric[sample.metric.name].append(sample)
    for group in by_metric.values():
        metric = group[0].metric
        names = [label for label in metric.labels if label not in omit]
        gauge = lib.Gauge(metric.name, metric.help, names, registry=registry)
        for sample in group:
            gauge.labels(*[sample.labels[n] for n in names]).set(sample.value)
    return registry


def _last_success(lib: ModuleType, path: Path, labels: dict[str, str]) -> float | None:
    """The last success's time, from the file this run replaces (a failed run keeps it)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        for family in lib.parser.text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS.name and sample.labels == labels:
                    return float(sample.value)
    except ValueError:  # a damaged file: start over
        return None
    return None


def _credentials(url: str) -> tuple[str, str, str]:
    """The URL without its user and password (sent as basic auth instead), the user, the password."""
    parts = urlsplit(url)
    if not parts.username and not parts.password:
        return url, "", ""
    # In a URL they are percent-encoded (a password with @, # or / must be): basic auth takes them decoded.
    return parts._replace(netloc=_host(parts)).geturl(), unquote(parts.username or ""), unquote(parts.password or "")


def _host(parts: SplitResult) -> str:
    return (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
