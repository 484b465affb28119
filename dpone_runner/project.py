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

from dpone_protocol.config import expand_env, load_config
from dpone_protocol.errors import ConfigError

EXTRACTORS = "extractors"
LOADERS = "loaders"


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

    def command(self, project_root: Path) -> str:
        """Absolute path of the executable: PATH, our own venv, then Meltano's plugin venv."""
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

    def plugin(self, name: str, kind: str) -> Plugin:
        found = self.plugins.get(name)
        if found is None or found.kind != kind:
            known = sorted(p.name for p in self.plugins.values() if p.kind == kind)
            noun = "extractor (tap)" if kind == EXTRACTORS else "loader (target)"
            raise ConfigError(
                f"unknown {noun} {name!r}; {'known: ' + ', '.join(known) if known else 'none is declared'}"
                f" in {self.root / 'meltano.yml'}"
            )
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


def _plugin(entry: Mapping[str, Any], kind: str, env: Mapping[str, str]) -> Plugin:
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
        config=expand_env(dict(entry.get("config") or {}), env, where=f"{name}.config"),
        select=list(entry.get("select") or []),
        metadata=dict(entry.get("metadata") or {}),
        secret_keys=secrets,
        capabilities=list(entry.get("capabilities") or []),
    )


def load_project(root: str | Path = ".", env: Mapping[str, str] | None = None) -> Project:
    root = Path(root).resolve()
    environ = os.environ if env is None else env
    meltano = root / "meltano.yml"
    if not meltano.exists():
        raise ConfigError(f"no meltano.yml in {root}: run from a project directory or pass --project DIR")
    data = _read_yaml(meltano)
    project = Project(root)
    plugins = data.get("plugins") or {}
    for kind in (EXTRACTORS, LOADERS):
        for entry in plugins.get(kind) or []:
            plugin = _plugin(entry, kind, environ)
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
    return project


def override_config(plugin: Plugin, path: str | None) -> None:
    """--tap-config / --target-config: a JSON file whose keys override the project's."""
    if path:
        plugin.config.update(load_config([path]))
