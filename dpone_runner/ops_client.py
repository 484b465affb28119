"""Asking a connector an `--ops` question (dpone_protocol/ops.py) from the runner.

The connector runs as in a pipeline (its own executable, its config in a private file, in the
project directory) and answers with one JSON object. A connector that is not dpone's has no
`--ops`: that is an answer too (`supported: false`), not a failure.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from dpone_protocol.catalog import Catalog
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ERROR_CLASSES, ConfigError, DponeError, ErrorKind, kind_for_exit
from dpone_protocol.ops import OPS_FLAG, answer
from dpone_runner.catalog_prep import discover_catalog, takes_catalog
from dpone_runner.project import Plugin, Project

OPS_TIMEOUT_SECONDS = 600.0
_KIND_PREFIX = re.compile(r"^(\S+): (?:config|transient|data|fatal|input cut) error: ")


class OpsFailed(DponeError):
    """The connector could not answer (a refused login, an unreachable host): its error, redacted."""

    def __init__(self, kind: ErrorKind, message: str, exit_code: int) -> None:
        self.kind = kind
        self.code = exit_code
        super().__init__(message)


def _private(path: Path, data: Any) -> str:
    path.write_bytes(orjson.dumps(data))
    path.chmod(0o600)
    return str(path)


def ask(
    project: Project,
    plugin: Plugin,
    request: Mapping[str, Any],
    redactor: Redactor,
    *,
    catalog: Catalog | None = None,
    state: Mapping[str, Any] | None = None,
    timeout: float = OPS_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """The connector's answer to `request`; raises OpsFailed when it fails, ConfigError when it
    cannot be started. Pass `catalog` for operations on streams (estimate, reconcile)."""
    redactor.add_config(plugin.config, plugin.secret_keys)
    command = plugin.command(project.root)
    with tempfile.TemporaryDirectory(prefix="dpone-ops-") as tmp:
        work = Path(tmp)
        argv = [command, "--config", _private(work / "config.json", plugin.config)]
        argv += [OPS_FLAG, _private(work / "request.json", dict(request))]
        if catalog is not None:
            argv += ["--catalog", _private(work / "catalog.json", catalog.to_dict())]
        if state:
            argv += ["--state", _private(work / "state.json", dict(state))]
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False, cwd=project.root)
        except subprocess.TimeoutExpired:
            raise OpsFailed(ErrorKind.TRANSIENT, f"{plugin.name} did not answer in {timeout:g}s", 75) from None
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode == 2 and OPS_FLAG in stderr:  # argparse: "unrecognized arguments: --ops"
        return answer(str(request["op"]), None, f"{plugin.name} is not a dpone connector (it has no {OPS_FLAG})")
    if proc.returncode != 0:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        last = redactor(lines[-1]) if lines else f"exit {proc.returncode}, no error message"
        # "tap-x: config error: why" -> "tap-x: why": the kind is said once, by whoever prints it.
        last = _KIND_PREFIX.sub(r"\1: ", last, count=1)
        kind = kind_for_exit(proc.returncode) or ErrorKind.FATAL
        raise OpsFailed(kind, last, proc.returncode)
    printed = proc.stdout.strip().splitlines()
    try:
        found = orjson.loads(printed[-1]) if printed else None
    except orjson.JSONDecodeError:
        found = None
    if not isinstance(found, dict):
        raise ERROR_CLASSES[ErrorKind.FATAL](f"{plugin.name} {OPS_FLAG} did not print a JSON object")
    return found


def selected_catalog(project: Project, plugin: Plugin, redactor: Redactor) -> Catalog:
    """The catalog a run of `plugin` would use: discovered, with the project's select and metadata."""
    redactor.add_config(plugin.config, plugin.secret_keys)
    with tempfile.TemporaryDirectory(prefix="dpone-catalog-") as tmp:
        work = Path(tmp)
        config = Path(_private(work / "config.json", plugin.config))
        if not takes_catalog(plugin):
            raise ConfigError(f"{plugin.name} cannot discover its streams")
        return discover_catalog(plugin, plugin.command(project.root), config, redactor, cwd=project.root)
