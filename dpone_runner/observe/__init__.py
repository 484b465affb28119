"""What a run tells the tools people already watch: Prometheus, OpenTelemetry, OpenLineage.

The runner calls each observer when a run (each attempt of it) starts and when it ends. An
observer never fails a run: its errors are logged as warnings. With no `metrics:` or `lineage:`
in dpone.yml there is no observer, and none of their libraries is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dpone_runner.project import Project
    from dpone_runner.report import RunReport


@dataclass(slots=True)
class ObservedRun:
    """A run as its observers see it. Configs are the connectors' own (with secrets: use only
    addressing settings such as host, port, database, project, topic; never print them whole)."""

    pipeline_id: str
    run_id: str
    tap: str
    targets: list[str]
    env: str
    tap_config: Mapping[str, Any]
    target_configs: list[Mapping[str, Any]]
    attempt: int = 1
    # Filled as the run goes: the newest SCHEMA of each stream, as the tap sent it and as the
    # targets got it (after filters): {"schema": {...}, "key_properties": [...]}.
    schemas_in: dict[str, dict[str, Any]] = field(default_factory=dict)
    schemas_out: dict[str, dict[str, Any]] = field(default_factory=dict)


class Observer(Protocol):
    def started(self, run: ObservedRun) -> None: ...

    def finished(self, run: ObservedRun, report: RunReport) -> None: ...


def observers_for(project: Project) -> list[Observer]:
    """The observers dpone.yml asks for (`metrics:`, `lineage:`); none when it asks for none."""
    if not project.metrics and not project.lineage:
        return []
    from dpone_runner.observe.config import build_observers  # noqa: PLC0415 - their libraries load only when asked

    return build_observers(project)
