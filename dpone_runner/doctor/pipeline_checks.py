"""The checks of each pipeline, in groups: the project's own (clock, disk, state store), then per
pipeline its state and lock, its tap, and each of its targets.

A tap or target in several pipelines is asked once: its answer depends only on its config (and,
for a tap, on its selected catalog, which is the plugin's too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dpone.state.store import StateStore
from dpone_protocol.catalog import Catalog
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DponeError
from dpone_protocol.ops import FAIL, Check
from dpone_runner.doctor import connector_checks, runner_checks
from dpone_runner.doctor.groups import RUNNER, CheckGroup
from dpone_runner.project import EXTRACTORS, LOADERS, Pipeline, Plugin, Project

NO_PIPELINES = (
    "no pipeline is declared in {path}: declare one under `pipelines:` "
    "(e.g. pipelines: {{my-pipeline: {{tap: tap-csv, targets: [target-duckdb]}}}}), "
    "or name one as TAP-to-TARGET: dpone doctor tap-csv-to-target-duckdb"
)


def chosen_pipelines(project: Project, names: Sequence[str]) -> list[Pipeline]:
    """The pipelines named, or every declared one."""
    if names:
        return [project.pipeline(name) for name in names]
    if not project.pipelines:
        raise ConfigError(NO_PIPELINES.format(path=project.root / "dpone.yml"))
    return list(project.pipelines.values())


@dataclass(slots=True)
class TapFindings:
    checks: list[Check]
    catalog: Catalog | None = None


@dataclass(slots=True)
class Doctor:
    project: Project
    store_uri: str
    redactor: Redactor
    _taps: dict[str, TapFindings] = field(default_factory=dict, init=False)
    _targets: dict[str, list[Check]] = field(default_factory=dict, init=False)
    _methods: dict[str, tuple[str | None, bool]] = field(default_factory=dict, init=False)

    def run(self, pipelines: Sequence[Pipeline]) -> list[CheckGroup]:
        opened, store = runner_checks.open_state_store(self.store_uri, self.redactor)
        try:
            machine = [runner_checks.clock_check(), runner_checks.run_files_check(self.project.root), opened]
            groups = [CheckGroup(None, RUNNER, machine)]
            for pipeline in pipelines:
                groups += self.pipeline_groups(pipeline, store)
        finally:
            if store is not None:
                store.close()
        return groups

    def pipeline_groups(self, pipeline: Pipeline, store: StateStore | None) -> list[CheckGroup]:
        tap = self.tap(pipeline.tap)
        groups = [
            CheckGroup(pipeline.id, RUNNER, runner_checks.state_checks(store, pipeline.id, self.redactor)),
            CheckGroup(pipeline.id, pipeline.tap, [*tap.checks, *self.resume(pipeline, store)]),
        ]
        for target in pipeline.targets:
            groups.append(CheckGroup(pipeline.id, target, self.target(target, tap.catalog)))
        return groups

    def resume(self, pipeline: Pipeline, store: StateStore | None) -> list[Check]:
        """The pipeline's own check of its tap: is where its state resumes still there?"""
        plugin = self.plugin(pipeline.tap, EXTRACTORS)
        if store is None or isinstance(plugin, Check) or connector_checks.executable_check(self.project, plugin).failed:
            return []
        try:
            saved = store.get(pipeline.id)
        except DponeError:
            return []  # the state check above says why
        found = connector_checks.resume_check(
            self.project, plugin, pipeline.id, saved.value if saved else None, self.redactor
        )
        return [] if found is None else [found]

    def plugin(self, name: str, kind: str) -> Plugin | Check:
        try:
            plugin = self.project.plugin(name, kind)
        except ConfigError as exc:
            hint = "declare it under plugins: in meltano.yml, or fix its name in dpone.yml's pipelines"
            return Check("plugin", FAIL, self.redactor(str(exc)), hint)
        self.redactor.add_config(plugin.config, plugin.secret_keys)
        return plugin

    def tap(self, name: str) -> TapFindings:
        if name not in self._taps:
            self._taps[name] = self._tap(name)
        return self._taps[name]

    def _tap(self, name: str) -> TapFindings:
        plugin = self.plugin(name, EXTRACTORS)
        if isinstance(plugin, Check):
            return TapFindings([plugin])
        executable = connector_checks.executable_check(self.project, plugin)
        if executable.failed:
            return TapFindings([executable])
        discovered, catalog = connector_checks.discover(self.project, plugin, self.redactor)
        checks = [
            executable,
            discovered,
            *runner_checks.batch_checks(self.project.root, plugin.config),
            *connector_checks.connector_doctor(self.project, plugin, self.redactor, catalog),
        ]
        return TapFindings(checks, catalog)

    def target(self, name: str, catalog: Catalog | None) -> list[Check]:
        plugin = self.plugin(name, LOADERS)
        if isinstance(plugin, Check):
            return [plugin]
        if name not in self._targets:
            executable = connector_checks.executable_check(self.project, plugin)
            own = (
                []
                if executable.failed
                else connector_checks.connector_doctor(self.project, plugin, self.redactor, None)
            )
            self._targets[name] = [executable, *own]
            self._methods[name] = connector_checks.load_method(self.project, plugin)
        checks = list(self._targets[name])
        keys = runner_checks.upsert_keys_check(*self._methods[name], catalog)
        return checks if keys is None else [*checks, keys]
