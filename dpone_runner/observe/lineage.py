"""OpenLineage run events of every run, through the official client, to a file and/or an HTTP endpoint.

START is sent from a background thread when the run starts (importing the client takes ~0.3 s,
which the run does not wait for); COMPLETE, FAIL or ABORT when it ends, after START went out.
The file gets one JSON event a line (the client's FileTransport, appending); the HTTP endpoint
(Marquez or any OpenLineage consumer) gets a POST per event, with `Authorization: Bearer
<api_key>` when one is set, each request bounded by `timeout_seconds`.
What events hold: dpone_runner/observe/lineage_events.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

from dpone_protocol.errors import TransientError
from dpone_runner.observe.background import IMPORTING, Background
from dpone_runner.observe.datasets import Addressing
from dpone_runner.observe.quiet import gist, held, shown_url

if TYPE_CHECKING:
    from dpone_runner.observe import ObservedRun
    from dpone_runner.observe.config import LineageSettings
    from dpone_runner.project import Project
    from dpone_runner.report import RunReport

# One more try of a refused connection or a 5xx answer, soon; none after a read timeout (a consumer
# that hangs costs `timeout_seconds` an event, not twice that): a consumer must not hold the run.
RETRY = {"total": 1, "connect": 1, "read": 0, "backoff_factor": 0.2, "status_forcelist": [500, 502, 503, 504],
         "allowed_methods": ["POST"]}  # fmt: skip


class _Sinks:
    """The clients (one per transport) and the event builders, once the libraries are loaded."""

    def __init__(self, settings: LineageSettings) -> None:
        # Only when lineage is configured, off the main thread.
        from openlineage.client import OpenLineageClient  # noqa: PLC0415
        from openlineage.client.transport.file import FileConfig, FileTransport  # noqa: PLC0415
        from openlineage.client.transport.http import (  # noqa: PLC0415
            ApiKeyTokenProvider,
            HttpConfig,
            HttpTransport,
            TokenProvider,
        )

        from dpone_runner.observe import lineage_events  # noqa: PLC0415

        self.events: ModuleType = lineage_events
        self.clients: list[tuple[str, Any]] = []
        self.file = settings.file
        if settings.file is not None:
            transport = FileTransport(FileConfig(log_file_path=str(settings.file), append=True))
            self.clients.append((str(settings.file), OpenLineageClient(transport=transport)))
        if settings.url:
            auth = ApiKeyTokenProvider({"apiKey": settings.api_key}) if settings.api_key else TokenProvider({})
            config = HttpConfig(
                url=settings.url,
                endpoint=settings.endpoint,
                timeout=settings.timeout_seconds,
                auth=auth,
                retry=dict(RETRY),
            )
            self.clients.append((shown_url(settings.url), OpenLineageClient(transport=HttpTransport(config))))

    def emit(self, event: Any) -> None:
        """To every sink; one that fails does not keep the event from the others."""
        failures = []
        for where, client in self.clients:
            try:
                if self.file is not None and where == str(self.file):
                    self.file.parent.mkdir(parents=True, exist_ok=True)
                with held():  # urllib3's "Retrying ..." warning: the failure below says it
                    client.emit(event)
            except Exception as exc:  # the client raises what its transport met: requests', OS errors, ...
                failures.append(f"{where}: {gist(str(exc)) or type(exc).__name__}")
        if failures:
            raise TransientError(f"OpenLineage {event.eventType.value} event not sent to {'; '.join(failures)}")


class LineageObserver:
    def __init__(self, settings: LineageSettings, project: Project) -> None:
        self.settings = settings
        self.project = project
        self._sinks: Background[_Sinks] = Background("openlineage", lambda: _quietly(_Sinks, settings))
        self._starts: dict[str, tuple[datetime, Background[None]]] = {}

    @property
    def _bound(self) -> float:
        # Loading the client, then a POST and its retry.
        return 2 * self.settings.timeout_seconds + 30

    def started(self, run: ObservedRun) -> None:
        at = datetime.now(UTC)

        def send() -> None:
            sinks = self._sinks.result(self._bound)
            sinks.emit(sinks.events.start_event(run, at, self.settings.namespace))

        job: Background[None] = Background("openlineage START", send)
        self._starts[run.run_id] = (at, job)
        job.start()

    def finished(self, run: ObservedRun, report: RunReport) -> None:
        at, start = self._starts.pop(run.run_id, (None, None))
        problems = []
        if start is not None:
            try:
                start.result(self._bound)
            except Exception as exc:  # told below with the end event's fate
                problems.append(str(exc))
        if at is None:
            at = _parse(report.started_at)
        sinks = self._sinks.result(self._bound)
        tap = self._addressing(run.tap, run.tap_config)
        targets = [self._addressing(name, config) for name, config in zip(run.targets, run.target_configs, strict=True)]
        event = sinks.events.end_event(
            run, report, at, self.settings.namespace, tap.source, [t.destination for t in targets]
        )
        try:
            sinks.emit(event)
        except TransientError as exc:
            problems.append(str(exc))
        if problems:
            raise TransientError("; ".join(problems))

    def _addressing(self, name: str, config: Any) -> Addressing:
        plugin = self.project.plugins.get(name)
        executable = plugin.executable if plugin is not None else name
        return Addressing(name, executable, config, self.project.root)


def _parse(stamp: str) -> datetime:
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:
        return datetime.now(UTC)


def _quietly(build: type[_Sinks], settings: LineageSettings) -> _Sinks:
    with IMPORTING, held():  # held: the client's "OpenLineageClient will use `file` transport"
        return build(settings)
