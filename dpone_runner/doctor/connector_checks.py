"""Asking a tap or a target for its own doctor checks (`--ops` doctor), and what the runner must
know about it first: its executable, a tap's selected catalog, a target's load method."""

from __future__ import annotations

import subprocess
from typing import Any

import orjson

from dpone_protocol.catalog import Catalog
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DponeError
from dpone_protocol.ops import DOCTOR, FAIL, HINTS, OK, REPLAY_PLAN, SKIP, WARN, Check
from dpone_protocol.replay import COMMITTED, PIPELINE
from dpone_runner import ops_client
from dpone_runner.doctor.groups import check_from
from dpone_runner.project import Plugin, Project

ABOUT_TIMEOUT_SECONDS = 60.0
_DISCOVERS = {"catalog", "properties", "discover"}
_NOTHING_SELECTED = "select streams under the tap's `select:` in meltano.yml (patterns like schema-table.*)"


def executable_check(project: Project, plugin: Plugin) -> Check:
    try:
        return Check("executable", OK, plugin.command(project.root))
    except ConfigError as exc:
        return Check(
            "executable",
            FAIL,
            str(exc),
            "install it (pip install 'dpone[...]' for dpone's connectors, or meltano install), "
            "or set its `executable:` in meltano.yml",
        )


def discover(project: Project, plugin: Plugin, redactor: Redactor) -> tuple[Check, Catalog | None]:
    """The catalog a run would hand the tap (discovered, with the project's select and metadata)."""
    caps = set(plugin.capabilities)
    if caps and not caps & _DISCOVERS:
        return Check("discover", SKIP, f"{plugin.name} declares no discover capability"), None
    try:
        catalog = ops_client.selected_catalog(project, plugin, redactor)
    except DponeError as exc:
        return Check("discover", FAIL, redactor(str(exc)), HINTS[exc.kind]), None
    selected = catalog.selected()
    names = ", ".join(entry.name for entry in selected[:5]) + (", ..." if len(selected) > 5 else "")
    detail = f"{len(selected)} of {len(list(catalog))} stream(s) selected" + (f": {names}" if names else "")
    return Check("discover", OK if selected else WARN, detail, "" if selected else _NOTHING_SELECTED), catalog


def connector_doctor(project: Project, plugin: Plugin, redactor: Redactor, catalog: Catalog | None) -> list[Check]:
    """The connector's own checks; a connector that is not dpone's answers as a skip, not a failure."""
    try:
        answer = ops_client.ask(project, plugin, {"op": DOCTOR}, redactor, catalog=catalog)
    except DponeError as exc:
        return [Check("doctor", FAIL, redactor(str(exc)), HINTS[exc.kind])]
    if not answer.get("supported"):
        return [Check("doctor", SKIP, redactor(str(answer.get("reason") or "no doctor checks")))]
    checks = answer.get("checks")
    if not isinstance(checks, list):
        return [Check("doctor", FAIL, f"{plugin.name} answered without checks", "report it to its authors")]
    return [_redacted(check_from(c), redactor) for c in checks]


def resume_check(
    project: Project, plugin: Plugin, pipeline_id: str, state: dict[str, Any] | None, redactor: Redactor
) -> Check | None:
    """Can the source still serve where the committed state resumes (a replication slot at or before
    it, Kafka offsets not yet expired)? The tap's replay plan `--to committed` says, changing nothing.
    None for a first run, or a tap without positions to check."""
    if not state or not state.get("bookmarks"):
        return None
    request = {"op": REPLAY_PLAN, "to": COMMITTED, "count_changes": False}
    try:
        answer = ops_client.ask(project, plugin, request, redactor, state=state)
    except DponeError as exc:
        return Check("resume position", SKIP, f"not checked: {redactor(str(exc))}")
    if not answer.get("supported"):
        return None
    refused = [s for s in answer.get("streams") or [] if isinstance(s, dict) and s.get("refused")]
    if not refused:
        return Check("resume position", OK, "the source still holds every stream's committed position")
    detail = "; ".join(f"{s.get('stream')}: {s.get('refusal')}" for s in refused)
    hints = dict.fromkeys(str(s.get("hint") or "").replace(PIPELINE, pipeline_id) for s in refused)
    return Check("resume position", FAIL, redactor(detail), redactor(" ".join(h for h in hints if h)))


def _redacted(check: Check, redactor: Redactor) -> Check:
    return Check(check.name, check.status, redactor(check.detail), redactor(check.hint))


def load_method(project: Project, plugin: Plugin) -> tuple[str | None, bool]:
    """The target's load method and whether the config names it; else the default its `--about`
    declares (None when it has no such setting, or no `--about`)."""
    configured = plugin.config.get("load_method")
    if configured:
        return str(configured), True
    try:
        command = plugin.command(project.root)
        proc = subprocess.run(
            [command, "--about", "--format", "json"],
            capture_output=True,
            timeout=ABOUT_TIMEOUT_SECONDS,
            check=False,
            cwd=project.root,
        )
    except (ConfigError, OSError, subprocess.TimeoutExpired):
        return None, False
    try:
        about: Any = orjson.loads(proc.stdout) if proc.returncode == 0 else None
    except orjson.JSONDecodeError:
        return None, False
    setting = about.get("settings", {}).get("properties", {}).get("load_method") if isinstance(about, dict) else None
    default = setting.get("default") if isinstance(setting, dict) else None
    return (str(default) if default else None), False
