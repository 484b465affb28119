"""The project: plugins from meltano.yml (shared with Meltano) and runner settings from dpone.yml.

meltano.yml keeps only what Meltano understands, so one file serves both tools; what is
ours alone (state backend, resource limits, in-stream filters, data contracts) lives in
dpone.yml beside it.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpone.state.store import DEFAULT_BACKEND
from dpone_protocol.config import expand_env, load_config
from dpone_protocol.errors import ConfigError

EXTRACTORS = "extractors"
LOADERS = "loaders"
DEFAULT_PROGRESS_INTERVAL = 30.0
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


def _seconds(settings: Mapping[str, Any], key: str, default: float) -> float:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"dpone.yml: {key} must be a number of seconds, 0 or more (0 turns it off), not {value!r}")
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
        project.state_backend = settings.get("state_backend")
        limits = settings.get("limits") or {}
        project.limits = Limits(
            int(limits.get("memory_mb", 0)), int(limits.get("cpu_seconds", 0)), int(limits.get("wall_seconds", 0))
        )
        project.filters = list(settings.get("filters") or [])
        project.contracts = settings.get("contracts")
        project.progress_interval_seconds = _seconds(settings, "progress_interval_seconds", DEFAULT_PROGRESS_INTERVAL)
    return project


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
