"""One run: lock, start the target(s) and the tap, pump, shut down in order, save committed state.

Shutdown order is what keeps the promise: whatever stops the tap (its own failure, Ctrl-C,
a dead target, a broken contract), each target's input ends with a cut (CUT_MARK, no final
newline) instead of a clean end, so it commits what the last state covers, echoes that state
and exits 74 (never swapping a partial full refresh in); only echoed states are saved, and only
up to what every target echoed. A clean tap exit closes the inputs cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from dpone.state.merge import merge_state
from dpone.state.records import describe_state
from dpone.state.store import LockedError, RunRecord, StateStore, new_lock, utc_now
from dpone_protocol.batch_manifest import BATCH_CLEANUP_ENV, delete_files
from dpone_protocol.catalog import Catalog
from dpone_protocol.config import Redactor
from dpone_protocol.errors import (
    EXIT_CODES,
    ConfigError,
    DponeError,
    ErrorKind,
    ProtocolError,
    kind_for_exit,
)
from dpone_protocol.key_ranges import RANGE_TOKEN_ENV, range_end_line
from dpone_protocol.object_store import ObjectStores
from dpone_runner.catalog_prep import prepare_catalog
from dpone_runner.contracts import ContractStage, RunContext, parse_contracts
from dpone_runner.filters import build_filters
from dpone_runner.observe import ObservedRun, Observer
from dpone_runner.partitions.task import RangeTask, leave_out, streams_to_leave_out, sweep_dead_range_dirs
from dpone_runner.processes import Connector, start
from dpone_runner.project import EXTRACTORS, LOADERS, Plugin, Project
from dpone_runner.pump import Pump, TargetChannel
from dpone_runner.report import Progress, RunReport, StreamReport
from dpone_runner.state_commit import StateLedger

log = logging.getLogger("dpone.run")


STOPPING = "stopped by the runner"
WATCH_SECONDS = 0.2


@dataclass(slots=True)
class RunOptions:
    pipeline_id: str | None = None
    full_refresh: bool = False
    progress: bool = True
    attempt: int = 1  # runner retries: this attempt's number,
    earlier_attempts: list[dict[str, Any]] = field(default_factory=list)  # and the summaries before it
    observers: Sequence[Observer] = ()  # metrics and lineage (dpone_runner/observe)
    # One key range of a partitioned load: no pipeline lock (the manifest's claim is the lock), no
    # state read or saved (the range is whole or absent; the bookmark moves once all ranges are in).
    key_range: RangeTask | None = None
    # The tap's catalog, discovered and selected already (a partitioned load's worker discovers once,
    # not once per range): used instead of running discovery.
    catalog: Catalog | None = None


class PipelineFailed(DponeError):
    """The run ended with a failure; the report says which process and why."""

    def __init__(self, kind: ErrorKind, message: str, exit_code: int | None = None) -> None:
        self.kind = kind
        self._code = exit_code
        super().__init__(message)

    @property
    def exit_code(self) -> int:
        return self._code if self._code is not None else EXIT_CODES[self.kind]


def pipeline_id(tap: str, targets: Sequence[str]) -> str:
    return f"{tap}-to-{'-'.join(targets)}"


def _write_private(path: Path, data: Any) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(orjson.dumps(data))
    return path


@contextlib.contextmanager
def _signals_stop(on_signal: Any) -> Iterator[None]:
    """SIGINT and SIGTERM stop the tap; the rest of the shutdown runs as for a tap failure."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: FrameType | None) -> None:
        on_signal(signum)

    for s in previous:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class Run:
    def __init__(
        self,
        project: Project,
        store: StateStore,
        tap: Plugin,
        targets: list[Plugin],
        options: RunOptions,
        redactor: Redactor,
    ) -> None:
        self.project = project
        self.store = store
        self.tap = tap
        self.targets = targets
        self.options = options
        self.redactor = redactor
        self.id = options.pipeline_id or pipeline_id(tap.name, [t.name for t in targets])
        self.report = RunReport(self.id, uuid.uuid4().hex[:12], attempt=options.attempt)
        self.context = ObservedRun(
            self.id,
            self.report.run_id,
            tap.name,
            [t.name for t in targets],
            project.env_label,
            tap.config,
            [t.config for t in targets],
            options.attempt,
        )
        # Read before anything starts, so a bad contract is a config error with nothing to undo.
        self.contracts = parse_contracts(project.contracts, project.root)
        self.filters = build_filters(project.filters, redactor)
        self.interrupted: int | None = None
        self._state: dict[str, Any] | None = None
        self._pump: Pump | None = None
        self._tap_proc: Connector | None = None
        self._left_out: list[str] = []

    # -- state -----------------------------------------------------------------
    def _batch_deleter(self) -> Callable[[list[str]], None]:
        """Deletes BATCH files with the tap's object store settings; a failure is only logged."""
        batch_config = self.tap.config.get("batch_config") or {}
        storage = batch_config.get("storage") or {} if isinstance(batch_config, dict) else {}
        stores = ObjectStores(storage.get("options") or {} if isinstance(storage, dict) else {})
        return lambda uris: delete_files(stores, uris)

    def _commit(self, value: dict[str, Any]) -> None:
        merged = merge_state(self._state, value)
        if self.options.key_range is None:
            self.store.put(self.id, merged)
        self._state = merged
        if log.isEnabledFor(logging.DEBUG):
            log.debug("state saved for %s: %s", self.id, "; ".join(describe_state(value)) or "no bookmarks")

    def _on_signal(self, signum: int) -> None:
        self.interrupted = signum
        log.warning("%s received: stopping the tap; targets will commit what they have", signal.Signals(signum).name)
        if self._pump is not None:
            self._pump.stopped.set()
        if self._tap_proc is not None:
            threading.Thread(target=self._tap_proc.stop, args=("interrupted",), daemon=True).start()

    @contextlib.contextmanager
    def _workdir(self) -> Iterator[Path]:
        """Private files of a run (configs with secrets, catalog, state), under the pipeline's lock.

        One fixed place per pipeline, so what a killed run left behind is removed by the next run.
        """
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.id)
        runs = self.project.root / ".dpone" / "run"
        sweep_dead_range_dirs(runs, safe)
        if self.options.key_range is not None:
            # Workers of one pipeline run at once: each range run has its own place, named with its
            # process so that what a killed worker left is found and removed (sweep_dead_range_dirs).
            safe = f"{safe}.{self.options.key_range.label}.{os.getpid()}.{self.report.run_id}"
        path = runs / safe
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, mode=0o700)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    # -- the run -----------------------------------------------------------------
    def execute(self) -> RunReport:
        for plugin in (self.tap, *self.targets):
            self.redactor.add_config(plugin.config, plugin.secret_keys)
        task = self.options.key_range
        self.report.key_range = None if task is None else {"stream": task.stream, "range": task.label}
        lock = new_lock(self.id, self.report.run_id)
        try:
            if task is None:
                self.store.acquire_lock(lock)
        except LockedError as exc:
            self._refused(exc)
            raise
        started = time.monotonic()
        self.report.started_at = utc_now()
        self._tell_observers("started")
        try:
            stored = self.store.get(self.id) if task is None else None
            self._state = stored.value if stored else None
            self.report.state_before = self._state
            if task is None:
                self._left_out = streams_to_leave_out(self.store, self.id)
            if not self.options.full_refresh:
                # Where each stream resumes, read through the typed records (LSN, xmin, key, offsets).
                for line in describe_state(self._state):
                    log.info("resuming %s", line)
            with self._workdir() as tmp, _signals_stop(self._on_signal):
                self._run_in(tmp)
        except Exception as exc:
            # Whatever stopped it (a failed discovery, a target that would not start), the report
            # of a failed run says why, as the run's one error line does.
            if self.report.error is None:
                self.report.error = self.redactor(" ".join(str(exc).split()) or type(exc).__name__)
            self.report.exit_code = exc.exit_code if isinstance(exc, DponeError) else EXIT_CODES[ErrorKind.FATAL]
            raise
        finally:
            self.report.duration_seconds = round(time.monotonic() - started, 3)
            self.report.ended_at = utc_now()
            total = sum(s.rows_in for s in self.report.streams)
            self.report.rows_per_second = round(total / max(self.report.duration_seconds, 1e-9), 1)
            # A key range's states are not saved: the report says so rather than show the echo.
            self.report.state_after = self._state if task is None else None
            if self.report.status == "running":
                self.report.status = "failed"
            self.report.attempts = [*self.options.earlier_attempts, self.report.attempt_summary()]
            try:
                self.store.save_run(RunRecord(self.id, self.report.run_id, self.report.ended_at, self.report.to_dict()))
            finally:
                if task is None:
                    self.store.release_lock(self.id, self.report.run_id)
                self._tell_observers("finished")
        return self.report

    def _adjust_catalog(self, catalog: Catalog) -> None:
        if self.options.key_range is not None:
            self.options.key_range.adjust(catalog)
        elif self._left_out:
            leave_out(catalog, self._left_out)

    def _refused(self, exc: LockedError) -> None:
        """Another run holds the lock: this run never started, but the history says it was refused."""
        self.report.started_at = self.report.ended_at = utc_now()
        self.report.status = "failed"
        self.report.error = self.redactor(str(exc))
        self.report.exit_code = exc.exit_code
        self.report.attempts = [*self.options.earlier_attempts, self.report.attempt_summary()]
        try:
            self.store.save_run(RunRecord(self.id, self.report.run_id, self.report.ended_at, self.report.to_dict()))
        except DponeError as failed:
            log.warning("the refused run's report was not saved: %s", self.redactor(str(failed)))

    def _tell_observers(self, event: str) -> None:
        """Metrics and lineage are told what happened, all at once: a collector that hangs delays the
        run's end by its own timeout, not by the sum of every exporter's. Their failure never fails it."""

        def tell(observer: Observer) -> None:
            try:
                if event == "started":
                    observer.started(self.context)
                else:
                    observer.finished(self.context, self.report)
            except Exception as exc:  # an exporter's bug or outage must not fail the load
                name = type(observer).__name__
                log.warning("%s could not report the run %s: %s", name, event, self.redactor(str(exc)))

        threads = [threading.Thread(target=tell, args=(o,), name=f"observe-{event}") for o in self.options.observers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _run_in(self, tmp: Path) -> None:
        root = self.project.root
        tap_cmd = self.tap.command(root)
        target_cmds = [t.command(root) for t in self.targets]
        tap_config = _write_private(tmp / "tap-config.json", self.tap.config)
        tap_argv = [tap_cmd, "--config", str(tap_config)]
        tap_argv += prepare_catalog(
            self.tap,
            tap_cmd,
            tap_config,
            tmp,
            self.redactor,
            cwd=root,
            adjust=self._adjust_catalog,
            catalog=self.options.catalog,
        )
        if self._state and not self.options.full_refresh:
            tap_argv += ["--state", str(_write_private(tmp / "state.json", self._state))]
        # Connectors that write files (BATCH) put them under <pipeline>/<run id>/.
        env = {**os.environ, "DPONE_RUN_ID": self.report.run_id, "DPONE_PIPELINE": self.id}
        env.pop(RANGE_TOKEN_ENV, None)
        limits = self.project.limits
        targets = []
        # With several targets, BATCH files (cleanup: delete_on_success) are deleted by the runner once
        # every target committed them: a target that deleted them itself would take them from the others.
        shared = len(self.targets) > 1
        target_env = {**env, BATCH_CLEANUP_ENV: "runner"} if shared else env
        task = self.options.key_range
        if task is not None and task.token is not None:
            target_env = {**target_env, RANGE_TOKEN_ENV: task.token}
        for n, (plugin, cmd) in enumerate(zip(self.targets, target_cmds, strict=True)):
            config = _write_private(tmp / f"target-{n}-config.json", plugin.config)
            argv = [cmd, "--config", str(config)]
            targets.append(start(plugin.name, argv, limits, self.redactor, stdin=True, env=target_env, cwd=root))
        ledger = StateLedger(len(targets), self._commit, self._batch_deleter() if shared else None)
        channels = [TargetChannel(c, n, ledger) for n, c in enumerate(targets)]
        tap = start(self.tap.name, tap_argv, limits, self.redactor, stdin=False, env=env, cwd=root)
        self._tap_proc = tap
        assert tap.proc.stdout is not None
        stage = ContractStage(self.contracts, RunContext(self.id, self.report.run_id)) if self.contracts else None
        pump = Pump(tap.proc.stdout, channels, ledger, self.filters, stage)
        self._pump = pump
        # The observers read the streams' schemas (lineage's schema facets) as the pump keeps them.
        self.context.schemas_in = pump.schemas_in
        self.context.schemas_out = pump.schemas_out
        progress = Progress(
            pump.live_counts, saved=lambda: ledger.saved_count, log_every=self.project.progress_interval_seconds
        )
        if self.options.progress:
            progress.start()
        pump_error: DponeError | None = None
        watch = threading.Thread(target=self._watch_targets, args=(pump, tap), name="target-watch", daemon=True)
        watch.start()
        try:
            pump.run()
        except DponeError as exc:
            pump_error = self._pump_failure(exc)
        if pump_error is not None or pump.any_target_failed() or pump.stopped.is_set():
            tap.stop(STOPPING)
        tap_rc = tap.proc.wait()
        cut = pump_error is not None or pump.stopped.is_set() or tap_rc != 0 or self.interrupted is not None
        if not cut:
            try:
                pump.take_tail()
            except DponeError as exc:
                pump_error = self._pump_failure(exc)
                cut = True
        elif pump.tail:
            log.warning(
                "%s's output ended inside a line (%d bytes): dropped; the targets are told their input was cut",
                self.tap.name,
                len(pump.tail),
            )
        try:
            pump.finish()
        finally:
            progress.stop()
        if not cut and task is not None and task.token is not None:
            for channel in channels:
                channel.send(range_end_line(task.token))  # the range is whole: the target may commit it
        # Every target's input ends: cleanly after a clean tap exit, else cut, so each commits
        # what its last state covers and echoes it, and none takes a partial input for a whole one.
        for channel in channels:
            channel.close(cut)
        for channel in channels:
            channel.connector.proc.wait()
            channel.join()
            channel.connector.join_output()
        tap.join_output()
        if tap.proc.stdout is not None:
            tap.proc.stdout.close()
        self._finish_report(pump, tap, [c.connector for c in channels], ledger)
        self._raise_for_failure(pump_error, tap, tap_rc, [c.connector for c in channels], cut)

    def _pump_failure(self, exc: DponeError) -> DponeError:
        if isinstance(exc, ProtocolError):
            return ProtocolError(
                f"{self.tap.name} wrote invalid output: {exc.reason}", line=exc.line, stream=exc.stream
            )
        # A contract stopped the run (enforce mode, or a contract that cannot apply to the stream):
        # shut down as for invalid tap output, so what the last state covers is committed.
        return exc

    def _watch_targets(self, pump: Pump, tap: Connector) -> None:
        """A dead target stops the tap at once, even while the pump waits on a slow tap's next line."""
        while tap.proc.poll() is None:
            if pump.any_target_failed():
                pump.stopped.set()
                tap.stop(STOPPING)
                return
            time.sleep(WATCH_SECONDS)

    def _finish_report(self, pump: Pump, tap: Connector, targets: list[Connector], ledger: StateLedger) -> None:
        counts = pump.counts
        streams = sorted(set(counts.rows_in) | set(counts.rows_out))
        contracts = pump.contracts.reports() if pump.contracts is not None else {}
        self.report.streams = [
            StreamReport(
                s,
                counts.rows_in.get(s, 0),
                counts.rows_out.get(s, 0),
                contracts[s].quarantined if s in contracts else 0,
            )
            for s in streams
        ]
        self.report.contracts = {name: asdict(found) for name, found in contracts.items()}
        self.report.bytes_in = counts.bytes_in
        if self.options.key_range is not None:
            self.report.batch_files = pump.batch_files
        self.report.states_received = counts.states
        self.report.exit_codes = {tap.name: tap.proc.returncode, **{t.name: t.proc.returncode for t in targets}}

    def _raise_for_failure(
        self, pump_error: DponeError | None, tap: Connector, tap_rc: int, targets: list[Connector], cut: bool
    ) -> None:
        if self.interrupted is not None:
            self.report.status = "interrupted"
            name = signal.Signals(self.interrupted).name
            self.report.error = f"interrupted by {name}; committed state saved"
            raise PipelineFailed(ErrorKind.FATAL, self.report.error, 128 + self.interrupted)
        if pump_error is not None:
            self.report.error = self.redactor(str(pump_error))
            raise pump_error
        # The tap is the cause unless we stopped it because a target had failed.
        if tap_rc != 0 and tap.killed_for != STOPPING:
            raise self._failure(tap, tap_rc)
        # A target told its input was cut answers 74 by design: that is the tap's failure, not its own.
        expected = {0, EXIT_CODES[ErrorKind.INPUT_CUT]} if cut else {0}
        for target in targets:
            rc = target.proc.returncode
            if rc not in expected:
                raise self._failure(target, rc)
        if tap_rc != 0:
            raise self._failure(tap, tap_rc)
        self.report.status = "success"

    def _failure(self, connector: Connector, rc: int) -> PipelineFailed:
        known = kind_for_exit(rc)
        kind = known or ErrorKind.FATAL
        if rc < 0 and self.options.key_range is not None:
            # Killed by a signal (the OOM killer picks the biggest process): a key range commits whole
            # or not at all, so loading it again is safe and may well succeed.
            kind = ErrorKind.TRANSIENT
        message = connector.describe_exit(rc)
        self.report.error = self.redactor(message)
        return PipelineFailed(kind, message, EXIT_CODES[kind] if rc < 0 else (rc if known else None))


def prepare(
    project: Project,
    store: StateStore,
    tap_name: str,
    target_names: Sequence[str],
    options: RunOptions,
    redactor: Redactor,
) -> Run:
    if not target_names:
        raise ConfigError("dpone run needs a tap and at least one target: dpone run TAP TARGET [TARGET ...]")
    tap = project.plugin(tap_name, EXTRACTORS)
    targets = [project.plugin(name, LOADERS) for name in target_names]
    return Run(project, store, tap, targets, options, redactor)
