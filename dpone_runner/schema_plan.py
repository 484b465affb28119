"""`dpone schema-plan`: what a run would change in each target's tables, changing nothing.

The tap's discovered (and selected) streams become SCHEMA messages, pass the project's
filters as they would in a run, and go to each target's `--schema-plan` mode: the target
owns its dialect and reads its tables; the runner only collects and renders the plans.
"""

from __future__ import annotations

import fnmatch
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from dpone.targets.framework.schema_evolution import render_plan
from dpone_protocol.catalog import Catalog
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError
from dpone_protocol.messages import SchemaMessage
from dpone_runner.catalog_prep import prepare_catalog
from dpone_runner.filters import apply_chain, build_filters
from dpone_runner.processes import run_to_end
from dpone_runner.project import EXTRACTORS, LOADERS, Plugin, Project

PLAN_TIMEOUT_SECONDS = 600


def _private_json(path: Path, data: Any) -> Path:
    path.write_bytes(orjson.dumps(data))
    path.chmod(0o600)
    return path


def _schemas(project: Project, tap: Plugin, workdir: Path, streams: Sequence[str], redactor: Redactor) -> bytes:
    command = tap.command(project.root)
    config = _private_json(workdir / "tap-config.json", tap.config)
    argv = prepare_catalog(tap, command, config, workdir, redactor, cwd=project.root)
    if not argv:
        raise ConfigError(f"{tap.name} cannot discover its streams, so there is no schema to plan")
    return schema_messages(project, tap.name, Catalog.from_dict(orjson.loads(Path(argv[1]).read_bytes())), streams)


def schema_messages(project: Project, tap_name: str, catalog: Catalog, streams: Sequence[str]) -> bytes:
    """The SCHEMA messages a run would send for the selected streams (matching `streams`), filtered."""
    chain = build_filters(project.filters)
    out = []
    for entry in catalog.selected():
        if streams and not any(fnmatch.fnmatchcase(entry.tap_stream_id, p) for p in streams):
            continue
        message = SchemaMessage(entry.tap_stream_id, entry.selected_schema(), entry.effective_key_properties())
        out += [DEFAULT_CODEC.dumps(m.to_dict()) + b"\n" for m in apply_chain(chain, message)]
    if not out:
        which = f"matching {', '.join(streams)} " if streams else ""
        raise ConfigError(f"{tap_name} has no selected stream {which}to plan")
    return b"".join(out)


def _target_plans(project: Project, target: Plugin, schemas: bytes, workdir: Path, redactor: Redactor) -> Any:
    config = _private_json(workdir / f"{target.name}-config.json", target.config)
    argv = [target.command(project.root), "--config", str(config), "--schema-plan", "--format", "json"]
    what = f"{target.name} --schema-plan"
    plans = run_to_end(argv, what, PLAN_TIMEOUT_SECONDS, redactor, stdin=schemas, cwd=project.root)
    try:
        return orjson.loads(plans)
    except orjson.JSONDecodeError:
        raise ConfigError(f"{target.name} --schema-plan did not print a JSON plan") from None


def target_plan(project: Project, target: Plugin, schemas: bytes, redactor: Redactor) -> dict[str, Any]:
    """One target's document for `schemas` (from schema_messages): {"target": name, "plans": [...]}."""
    redactor.add_config(target.config, target.secret_keys)
    with tempfile.TemporaryDirectory(prefix="dpone-schema-plan-") as tmp:
        return {**_target_plans(project, target, schemas, Path(tmp), redactor), "target": target.name}


def schema_plan(
    project: Project,
    tap_name: str,
    target_names: Sequence[str],
    streams: Sequence[str],
    redactor: Redactor,
) -> list[dict[str, Any]]:
    """One document per target: {"target": name, "plans": [...]}."""
    tap = project.plugin(tap_name, EXTRACTORS)
    targets = [project.plugin(name, LOADERS) for name in target_names]
    for plugin in (tap, *targets):
        redactor.add_config(plugin.config, plugin.secret_keys)
    with tempfile.TemporaryDirectory(prefix="dpone-schema-plan-") as tmp:
        workdir = Path(tmp)
        schemas = _schemas(project, tap, workdir, streams, redactor)
        return [{**_target_plans(project, t, schemas, workdir, redactor), "target": t.name} for t in targets]


def render(documents: list[dict[str, Any]]) -> str:
    parts = []
    for doc in documents:
        parts.append(f"{doc['target']}:\n")
        parts += ["".join("  " + line for line in render_plan(p).splitlines(True)) for p in doc["plans"]]
    return "".join(parts)


def check(documents: list[dict[str, Any]]) -> None:
    """--check: a plan that would stop is an error (exit 65), for CI gates before a deploy."""
    stops = [f"{d['target']}/{p['stream']}" for d in documents for p in d["plans"] if p["status"] == "stop"]
    if stops:
        raise DataError(f"schema drift would stop the load of {', '.join(stops)}")
