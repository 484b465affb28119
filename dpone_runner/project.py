"""The project: plugins from meltano.yml (shared with Meltano) and runner settings from dpone.yml.

meltano.yml keeps only what Meltano understands, so one file serves both tools; what is
ours alone (state backend, resource limits, in-stream filters, data contracts) lives in
dpone.yml beside it.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpone.state.store import DEFAULT_BACKEND
from dpone_protocol.config import ENV_VAR_RE, expand_env, load_config
from dpone_protocol.errors import ConfigError

EXTRACTORS = "extractors"
LOADERS = "loaders"
DEFAULT_PROGRESS_INTERVAL = 30.0
# What dpone.yml may hold at its top level.
DPONE_YML_KEYS = frozenset(
    {
        "state_backend",
        "limits",
        "filters",
        "contracts",
        "progress_interval_seconds",
        "retries",
        "pipelines",
        "env",
        "metrics",
        "lineage",
    }
)
DEFAULT_FILES = {"sqlite": ".dpone/state.db", "file": ".dpone/state.json"}  # what open_store uses for an empty path


@dataclass(slots=True)
class Plugin:
    name: str
    kind: str  # extractors | loaders
    executable: str
    config: dict[str, Any] = field(default_factory=dict)
    select: list[str] = field(default_factory=list)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    secret_keys: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)
    expanded: bool = False  # ${VAR}s in config replaced (when a command first uses the plugin)

    def command(self, project_root: Path) -> str:
        """Absolute path of the executable: PATH, our own venv, then Meltano's plugin venv.
        A relative path with a directory in it (`bin/tap-x`) is the project's own, as under Meltano."""
        if os.sep in self.executable and not os.path.isabs(self.executable):
            own = project_root / self.executable
            if os.access(own, os.X_OK) and own.is_file():
                return str(own)
            raise ConfigError(f"{self.name}: executable {self.executable!r} not found in {project_root}")
        candidates = [
            shutil.which(self.executable),
            str(Path(sys.executable).parent / self.executable),
            str(project_root / ".meltano" / self.kind / self.name / "venv" / "bin" / self.executable),
        ]
        for candidate in candidates:
            if candidate and os.access(candidate, os.X_OK) and Path(candidate).is_file():
                return candidate
        raise ConfigError(f"{self.name}: executable {self.executable!r} not found on PATH or in {sys.prefix}")


@dataclass(slots=True)
class Limits:
    memory_mb: int = 0  # address-space cap per process; 0 = none
    cpu_seconds: int = 0
    wall_seconds: int = 0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a run that failed with a transient error (exit 75) is tried again, from the
    committed state, waiting `backoff_seconds` doubled each time up to `max_backoff_seconds`."""

    attempts: int = 1  # tries in all; 1: no retry
    backoff_seconds: float = 10.0
    max_backoff_seconds: float = 300.0


@dataclass(slots=True)
class Pipeline:
    """A tap into its targets under one id (the state key): declared in dpone.yml `pipelines:`,
    or implied by `dpone run TAP TARGET` as TAP-to-TARGET."""

    id: str
    tap: str
    targets: list[str]
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    declared: bool = False


@dataclass(slots=True)
class Project:
    root: Path
    plugins: dict[str, Plugin] = field(default_factory=dict)
    state_backend: str | None = None
    limits: Limits = field(default_factory=Limits)
    filters: list[dict[str, Any]] = field(default_factory=list)
    # As written in dpone.yml; checked by the commands that use it (dpone_runner.contracts.parse_contracts),
    # so a typo in a contract does not stop `dpone state` from finding the state store.
    contracts: Any = None
    # Off a terminal, a progress log line this often while a run goes; 0: none.
    progress_interval_seconds: float = DEFAULT_PROGRESS_INTERVAL
    env: Mapping[str, str] = field(default_factory=dict)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    retries: RetryPolicy = field(default_factory=RetryPolicy)  # for pipelines that set none
    # dpone.yml `env` (a label on metrics and lineage; DPONE_ENV otherwise), `metrics`, `lineage`.
    env_label: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)

    def plugin(self, name: str, kind: str) -> Plugin:
        found = self.plugins.get(name)
        if found is None or found.kind != kind:
            known = sorted(p.name for p in self.plugins.values() if p.kind == kind)
            noun = "extractor (tap)" if kind == EXTRACTORS else "loader (target)"
            raise ConfigError(
                f"unknown {noun} {name!r}; {'known: ' + ', '.join(known) if known else 'none is declared'}"
                f" in {self.root / 'meltano.yml'}"
            )
        if not found.expanded:
            # Only the plugins a command runs need their variables: another pipeline's secret may be unset.
            found.config = expand_env(found.config, self.env, where=f"{name}.config")
            found.expanded = True
        return found

    def pipeline(self, name: str) -> Pipeline:
        """A declared pipeline, or the TAP-to-TARGET[-TARGET...] id `dpone run` gives by default."""
        if name in self.pipelines:
            return self.pipelines[name]
        tap, sep, rest = name.partition("-to-")
        targets = _loader_names(rest, {p.name for p in self.plugins.values() if p.kind == LOADERS}) if sep else None
        if tap in self.plugins and self.plugins[tap].kind == EXTRACTORS and targets:
            return Pipeline(name, tap, targets, self.retries)
        declared = ", ".join(sorted(self.pipelines)) or "none"
        why = ""
        if sep:
            taps = sorted(p.name for p in self.plugins.values() if p.kind == EXTRACTORS)
            loaders = sorted(p.name for p in self.plugins.values() if p.kind == LOADERS)
            why = (
                f"; as TAP-to-TARGET, {tap!r} is no extractor of meltano.yml (extractors: {', '.join(taps) or 'none'})"
                if tap not in taps
                else f"; as TAP-to-TARGET, {rest!r} names no loaders of meltano.yml (loaders: {', '.join(loaders)})"
            )
        raise ConfigError(
            f"unknown pipeline {name!r}: declare it under `pipelines:` in {self.root / 'dpone.yml'} "
            f"(declared: {declared}) or name it TAP-to-TARGET{why}"
        )

    def implied(self, tap: str, targets: list[str], pipeline_id: str | None = None) -> Pipeline:
        """`dpone run TAP TARGET...`: the declared pipeline of that id (for its settings), else a new one."""
        pid = pipeline_id or f"{tap}-to-{'-'.join(targets)}"
        found = self.pipelines.get(pid)
        if found is None:
            return Pipeline(pid, tap, list(targets), self.retries)
        if found.tap != tap or found.targets != targets:
            # One state under one id for two different pipelines: each would resume from the other's bookmarks.
            raise ConfigError(
                f"pipeline {pid!r} is declared in dpone.yml as {found.tap} -> {', '.join(found.targets)}; "
                f"this run ({tap} -> {', '.join(targets)}) would share its state: run `dpone run {pid}`, "
                "or give this one another --pipeline-id"
            )
        return found

    def check_pipeline_names(self) -> None:
        """A declared pipeline named like another pipeline's TAP-to-TARGET id would share that one's state."""
        for pid, declared in self.pipelines.items():
            tap, sep, rest = pid.partition("-to-")
            if not sep or tap not in self.plugins or self.plugins[tap].kind != EXTRACTORS:
                continue
            targets = _loader_names(rest, {p.name for p in self.plugins.values() if p.kind == LOADERS})
            if targets and (tap, targets) != (declared.tap, declared.targets):
                raise ConfigError(
                    f"dpone.yml: pipeline {pid!r} runs {declared.tap} -> {', '.join(declared.targets)}, but its "
                    f"name is the id `dpone run {tap} {' '.join(targets)}` keeps its state under: the two would "
                    "share one state; give the pipeline another name"
                )


def _loader_names(text: str, loaders: set[str]) -> list[str] | None:
    """'target-a-target-b' split into known loader names, longest first; None when it does not split."""
    if text in loaders:
        return [text]
    for name in sorted(loaders, key=len, reverse=True):
        if text.startswith(name + "-"):
            rest = _loader_names(text[len(name) + 1 :], loaders)
            if rest:
                return [name, *rest]
    return None


def _retry_policy(value: Any, where: str, base: RetryPolicy) -> RetryPolicy:
    if value is None:
        return base
    if not isinstance(value, dict) or set(value) - {"attempts", "backoff_seconds", "max_backoff_seconds"}:
        raise ConfigError(f"dpone.yml: {where} takes attempts, backoff_seconds and max_backoff_seconds, not {value!r}")
    attempts = value.get("attempts", base.attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ConfigError(f"dpone.yml: {where}.attempts must be a whole number of tries, 1 or more, not {attempts!r}")
    return RetryPolicy(
        attempts,
        _seconds(value, "backoff_seconds", base.backoff_seconds, where),
        _seconds(value, "max_backoff_seconds", base.max_backoff_seconds, where),
    )


def _pipelines(value: Any, project: Project) -> dict[str, Pipeline]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError("dpone.yml: pipelines is a mapping of pipeline id to {tap, targets, retries}")
    found = {}
    for pid, entry in value.items():
        where = f"pipelines.{pid}"
        if not isinstance(entry, dict) or not isinstance(entry.get("tap"), str):
            raise ConfigError(f"dpone.yml: {where} needs a tap (and targets)")
        targets = entry.get("targets") or entry.get("target")
        targets = [targets] if isinstance(targets, str) else targets
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
            raise ConfigError(f"dpone.yml: {where}.targets must list one or more loaders")
        unknown = set(entry) - {"tap", "targets", "target", "retries"}
        if unknown:
            raise ConfigError(f"dpone.yml: {where} has unknown keys {', '.join(sorted(unknown))}")
        retries = _retry_policy(entry.get("retries"), f"{where}.retries", project.retries)
        found[str(pid)] = Pipeline(str(pid), entry["tap"], targets, retries, declared=True)
    return found


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml  # noqa: PLC0415 - only commands that read a project need it

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping")
    return data


def _plugin(entry: Mapping[str, Any], kind: str) -> Plugin:
    name = entry.get("name")
    if not isinstance(name, str):
        raise ConfigError(f"meltano.yml: every {kind} entry needs a name")
    settings = entry.get("settings") or []
    secrets = [
        s["name"]
        for s in settings
        if isinstance(s, dict) and (s.get("sensitive") or s.get("kind") in ("password", "oauth"))
    ]
    return Plugin(
        name=name,
        kind=kind,
        executable=str(entry.get("executable") or name),
        config=dict(entry.get("config") or {}),
        select=list(entry.get("select") or []),
        metadata=dict(entry.get("metadata") or {}),
        secret_keys=secrets,
        capabilities=list(entry.get("capabilities") or []),
    )


def _seconds(settings: Mapping[str, Any], key: str, default: float, where: str = "") -> float:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        name = f"{where}.{key}" if where else key
        raise ConfigError(f"dpone.yml: {name} must be a number of seconds, 0 or more (0 turns it off), not {value!r}")
    return float(value)


def load_project(root: str | Path = ".", env: Mapping[str, str] | None = None) -> Project:
    root = Path(root).resolve()
    environ = os.environ if env is None else env
    meltano = root / "meltano.yml"
    if not meltano.exists():
        raise ConfigError(f"no meltano.yml in {root}: run from a project directory or pass --project DIR")
    data = _read_yaml(meltano)
    project = Project(root, env=environ)
    plugins = data.get("plugins") or {}
    for kind in (EXTRACTORS, LOADERS):
        for entry in plugins.get(kind) or []:
            plugin = _plugin(entry, kind)
            project.plugins[plugin.name] = plugin
    extra = root / "dpone.yml"
    if extra.exists():
        settings = _read_yaml(extra)
        unknown = sorted(set(settings) - DPONE_YML_KEYS)
        if unknown:
            # A misspelt `retires:` would silently turn retries off.
            near = {k: difflib.get_close_matches(k, DPONE_YML_KEYS, 1) for k in unknown}
            named = ", ".join(f"{k} (did you mean {near[k][0]}?)" if near[k] else k for k in unknown)
            raise ConfigError(f"{extra}: unknown key(s) {named}; known: {', '.join(sorted(DPONE_YML_KEYS))}")
        backend = settings.get("state_backend")
        project.state_backend = _expand_url(str(backend), environ) if backend else None
        limits = settings.get("limits") or {}
        project.limits = Limits(
            int(limits.get("memory_mb", 0)), int(limits.get("cpu_seconds", 0)), int(limits.get("wall_seconds", 0))
        )
        project.filters = list(settings.get("filters") or [])
        project.contracts = settings.get("contracts")
        project.progress_interval_seconds = _seconds(settings, "progress_interval_seconds", DEFAULT_PROGRESS_INTERVAL)
        project.retries = _retry_policy(settings.get("retries"), "retries", RetryPolicy())
        project.pipelines = _pipelines(settings.get("pipelines"), project)
        project.check_pipeline_names()
        project.env_label = str(settings.get("env") or "")
        project.metrics = _section(settings, "metrics")
        project.lineage = _section(settings, "lineage")
    project.env_label = project.env_label or environ.get("DPONE_ENV", "")
    return project


def _expand_url(value: str, environ: Mapping[str, str]) -> str:
    """${VAR}s of a store URL replaced; a value going into its user:password is percent-encoded, so a
    password holding @, / or # cannot end the part early (the store decodes it)."""
    start = value.find("://")
    at = value.find("@", start + 3) if start >= 0 else -1

    def substitute(match: re.Match[str]) -> str:
        found = str(expand_env(match.group(0), environ, where="dpone.yml: state_backend"))
        return urllib.parse.quote(found, safe="") if start < match.start() < at else found

    return ENV_VAR_RE.sub(substitute, value)


def _section(settings: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = settings.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"dpone.yml: {key} must be a mapping, not {value!r}")
    return value


def state_backend_uri(
    root: Path, given: str | None, configured: str | None, env: Mapping[str, str] | None = None
) -> str:
    """The state store of a command run with `--project DIR`: `--state-backend`, else dpone.yml's
    `state_backend`, else DPONE_STATE_BACKEND, else `.dpone/state.db`.

    A relative path is the project's (DIR's) in dpone.yml and the default; in `--state-backend`
    and DPONE_STATE_BACKEND, typed where the command runs, it is the current directory's.
    """
    environ = os.environ if env is None else env
    if given:
        return _absolute(given, Path.cwd())
    if configured:
        return _absolute(configured, root)
    if environ.get("DPONE_STATE_BACKEND"):
        return _absolute(environ["DPONE_STATE_BACKEND"], Path.cwd())
    return _absolute(DEFAULT_BACKEND, root)


def _absolute(uri: str, base: Path) -> str:
    """sqlite:///rel, file:///rel (SQLAlchemy style: three slashes, then the path) made absolute."""
    scheme, sep, rest = uri.partition("://")
    if scheme not in ("sqlite", "file") or not sep:
        return uri
    path = rest[1:] if rest.startswith("/") else rest
    path = path or DEFAULT_FILES[scheme]
    return f"{scheme}:///{base / path}" if not os.path.isabs(path) else f"{scheme}:///{path}"


def override_config(plugin: Plugin, path: str | None) -> None:
    """--tap-config / --target-config: a JSON file whose keys override the project's."""
    if path:
        plugin.config.update(load_config([path]))
