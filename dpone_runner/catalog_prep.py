"""The catalog a run hands the tap: discovered, then the project's select and metadata applied."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from pathlib import Path

import orjson

from dpone_protocol.catalog import Catalog, apply_selection
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError
from dpone_runner.processes import run_to_end
from dpone_runner.project import Plugin

DISCOVER_TIMEOUT_SECONDS = 600


def prepare_catalog(
    plugin: Plugin,
    command: str,
    config_path: Path,
    workdir: Path,
    redactor: Redactor,
    *,
    cwd: Path | None = None,
    adjust: Callable[[Catalog], None] | None = None,
    catalog: Catalog | None = None,
) -> list[str]:
    """Discover, select, override metadata; returns the tap arguments that pass the catalog.
    cwd: the project directory, where the tap runs (relative paths in its config resolve there);
    adjust: a last change by the run (one key range of a partitioned load, streams left out);
    catalog: one discovered and selected already (by discover_catalog), used instead: a copy is adjusted."""
    if not takes_catalog(plugin):
        return []
    if catalog is None:
        catalog = discover_catalog(plugin, command, config_path, redactor, cwd=cwd)
    else:
        catalog = Catalog.from_dict(catalog.to_dict())
    if adjust is not None:
        adjust(catalog)
    path = workdir / "catalog.json"
    path.write_bytes(orjson.dumps(catalog.to_dict()))
    caps = set(plugin.capabilities)
    flag = "--properties" if "properties" in caps and "catalog" not in caps else "--catalog"
    return [flag, str(path)]


def takes_catalog(plugin: Plugin) -> bool:
    caps = set(plugin.capabilities)
    return not caps or bool(caps & {"catalog", "properties", "discover"})


def discover_catalog(
    plugin: Plugin, command: str, config_path: Path, redactor: Redactor, *, cwd: Path | None = None
) -> Catalog:
    """The tap's discovered catalog with the project's select and metadata applied."""
    discovered = run_to_end(
        [command, "--config", str(config_path), "--discover"],
        f"{plugin.name} --discover",
        DISCOVER_TIMEOUT_SECONDS,
        redactor,
        cwd=cwd,
    )
    try:
        catalog = Catalog.from_dict(orjson.loads(discovered))
    except orjson.JSONDecodeError:
        raise ConfigError(f"{plugin.name} --discover did not print a JSON catalog") from None
    if plugin.select:
        catalog = apply_selection(catalog, plugin.select)
    for pattern, overrides in plugin.metadata.items():
        for entry in catalog:
            if fnmatch.fnmatchcase(entry.tap_stream_id, pattern):
                entry.stream_metadata().update(overrides)
    return catalog
