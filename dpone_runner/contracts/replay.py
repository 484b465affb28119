"""Replaying a (fixed) quarantine file into a target, through the same contracts.

The file is a Singer stream already: SCHEMA lines and RECORD lines carrying a
`_dpone_quarantine` key, which is taken off before the record goes on. Rows that still break
the contract go to a new quarantine file; the pipeline's saved state is not read or written.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from dpone_protocol.config import Redactor
from dpone_protocol.errors import (
    ERROR_CLASSES,
    ConfigError,
    DataError,
    DponeError,
    ErrorKind,
    FatalError,
    ProtocolError,
    TransientError,
    kind_for_exit,
)
from dpone_runner.contracts.quarantine import MARKER, REPLAYED_SUFFIX, RunContext, safe_name, summarize
from dpone_runner.contracts.spec import ContractSet
from dpone_runner.contracts.stage import ContractReport, ContractStage
from dpone_runner.processes import start
from dpone_runner.project import Plugin, Project
from dpone_runner.pump import Pump, TargetChannel
from dpone_runner.state_commit import StateLedger

log = logging.getLogger("dpone.replay")
_ERROR_CLASS: dict[ErrorKind, type[DponeError]] = {
    ErrorKind.CONFIG: ConfigError,
    ErrorKind.DATA: DataError,
    ErrorKind.TRANSIENT: TransientError,
    ErrorKind.FATAL: FatalError,
}


@dataclass(slots=True)
class ReplayResult:
    path: Path
    stream: str
    rows: int = 0
    loaded: int = 0
    still_bad: int = 0
    reports: dict[str, ContractReport] = field(default_factory=dict)
    renamed_to: Path | None = None


def _lines(path: Path) -> Iterator[bytes]:
    """The file as the tap-side input of a run: the quarantine key removed from each RECORD."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                message = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise ProtocolError(f"{path} is not valid JSON here (fix or remove the line)", line=number) from None
            if isinstance(message, dict) and MARKER in message:
                del message[MARKER]
                yield orjson.dumps(message) + b"\n"
            else:
                yield raw


def replay(project: Project, contracts: ContractSet, path: Path, target: Plugin, redactor: Redactor) -> ReplayResult:
    if not path.is_file():
        raise ConfigError(f"no quarantine file {path}")
    if target.config.get("load_method") == "overwrite":
        raise ConfigError(
            f"{target.name} is configured with load_method: overwrite, which would replace the table with the "
            "replayed rows alone; replay into an append or upsert configuration (--target-config)"
        )
    summary = summarize(path)
    result = ReplayResult(path, summary.stream, summary.rows)
    run_id = uuid.uuid4().hex[:12]
    forced = ContractSet(tuple(c.forced_to_file_quarantine() for c in contracts.contracts))
    if forced.for_stream(summary.stream) is None:
        log.warning("no contract in dpone.yml matches stream %r: the rows are loaded unchecked", summary.stream)
    stage = ContractStage(forced, RunContext(summary.pipeline, run_id))
    redactor.add_config(target.config, target.secret_keys)
    workdir = project.root / ".dpone" / "run" / f"replay-{safe_name(run_id)}"
    workdir.mkdir(parents=True, mode=0o700)
    try:
        config = workdir / "target-config.json"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(orjson.dumps(target.config))
        argv = [target.command(project.root), "--config", str(config)]
        connector = start(
            target.name,
            argv,
            project.limits,
            redactor,
            stdin=True,
            env={**os.environ, "DPONE_RUN_ID": run_id},
            cwd=project.root,
        )
        ledger = StateLedger(1, lambda value: None)  # a replay never touches saved state
        channel = TargetChannel(connector, 0, ledger)
        pump = Pump(_lines(path), [channel], ledger, contracts=stage)
        failure: DataError | None = None
        try:
            pump.run()
            pump.take_tail()  # a file edited by hand may lack its last newline
        except DataError as exc:
            failure = exc
        finally:
            pump.finish()
            channel.close()
            connector.proc.wait()
            channel.join()
            connector.join_output()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result.reports = stage.reports()
    result.still_bad = sum(r.quarantined for r in result.reports.values())
    result.loaded = sum(pump.counts.rows_out.values())
    if failure is not None:
        raise failure
    rc = connector.proc.returncode
    if rc != 0:
        error = ERROR_CLASSES[kind_for_exit(rc) or ErrorKind.FATAL]
        raise error(f"{target.name} failed (exit {rc}): {connector.last_error() or 'no error message'}")
    # Done with: a second replay of the same rows would load them twice into an append target.
    result.renamed_to = path.with_name(path.name + REPLAYED_SUFFIX)
    path.replace(result.renamed_to)
    return result
