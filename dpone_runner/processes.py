"""Starting connector processes: own process group, resource limits, prefixed redacted stderr."""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import os
import re
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpone_protocol.config import Redactor
from dpone_protocol.errors import ERROR_CLASSES, ConfigError, ErrorKind, kind_for_exit
from dpone_runner.project import Limits

STOP_GRACE_SECONDS = 5.0
PIPE_BYTES = 1 << 20


def run_to_end(
    argv: Sequence[str],
    what: str,
    timeout: float,
    redactor: Redactor,
    stdin: bytes | None = None,
    *,
    cwd: Path | None = None,
) -> bytes:
    """A connector command that answers and exits (`--discover`, `--schema-plan`): its stdout.

    cwd: the project directory, where relative paths in the connector's config resolve.
    A failure is an error of the connector's kind naming `what` and the last line it printed, redacted.
    """
    try:
        proc = subprocess.run(list(argv), input=stdin, capture_output=True, timeout=timeout, check=False, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{what} did not finish in {timeout:g}s") from None
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        last = redactor(lines[-1]) if lines else "no error message"
        # The connector's own kind carries over (a server that is down during discovery is
        # transient, not a setting); a code of no kind of ours, or a signal, is fatal.
        kind = kind_for_exit(proc.returncode) or ErrorKind.FATAL
        raise ERROR_CLASSES[kind](f"{what} failed (exit {proc.returncode}): {last}")
    return proc.stdout


_LEVEL_WORDS = (
    ("CRITICAL", logging.CRITICAL),
    ("ERROR", logging.ERROR),
    ("WARNING", logging.WARNING),
    ("WARN", logging.WARNING),
    ("INFO", logging.INFO),
    ("DEBUG", logging.DEBUG),
)
# The one line every dpone connector ends a failure with (dpone_protocol.errors.describe):
# "tap-postgres: data error: ...". Other Singer connectors have their own; this one is sure.
_OWN_ERROR = re.compile(r"^[\w.\-/]+: (?:[a-z]+ )*error: ")


def _word_at(head: str, word: str) -> int:
    if head.startswith(word):
        return 0
    return min((i for i in (head.find(f" {word} "), head.find(f"{word}:")) if i >= 0), default=-1)


def _declared_level(line: str) -> int | None:
    """The level a connector's log format wrote near the start of the line (the first level word), if any."""
    head = line[:80].upper()
    found: tuple[int, int] | None = None
    for word, level in _LEVEL_WORDS:
        at = _word_at(head, word)
        if at >= 0 and (found is None or at < found[0]):
            found = (at, level)
    return found[1] if found else None


def _level_of(line: str) -> int:
    """A connector line's own level (its log format names it), so filtering by level keeps errors."""
    declared = _declared_level(line)
    if declared is not None:
        return declared
    if " error: " in f" {line.lower()}":  # our one-line fatal messages: "tap-x: data error: ..."
        return logging.ERROR
    return logging.INFO


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes where the runner's own log goes now (the stderr given to the CLI), else sys.stderr."""

    @property
    def stream(self) -> Any:
        for handler in logging.getLogger().handlers:
            if getattr(handler, "_dpone", False) and isinstance(handler, logging.StreamHandler):
                return handler.stream
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _child_logger() -> logging.Logger:
    """Connector stderr lines as they are (they carry their own timestamps), with a name prefix."""
    logger = logging.getLogger("dpone.connector")
    if not logger.handlers:
        handler = _CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    return logger


def _widen(fd: int) -> None:
    """A megabyte of pipe between a connector and the runner, where Linux allows it (64 KB by default):
    a tap writing a megabyte of lines, or the runner a block of them, wakes its reader once instead of
    sixteen times (the runner's CPU in a 1M-row run: 0.7 -> 0.57 s)."""
    # Not Linux, or over /proc/sys/fs/pipe-max-size: the default size works, a little slower.
    with contextlib.suppress(AttributeError, OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _limiter(limits: Limits) -> Callable[[], None]:
    def apply() -> None:
        if limits.memory_mb:
            cap = limits.memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        if limits.cpu_seconds:
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))

    return apply


@dataclass
class Connector:
    """A running tap or target."""

    name: str
    proc: subprocess.Popen[bytes]
    stderr_tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))
    _threads: list[threading.Thread] = field(default_factory=list)
    killed_for: str | None = None

    def last_error(self) -> str:
        """The line that says why the connector failed: its own error line if it printed one, else
        the last line naming an error (a traceback's last line), else its last line; never a line
        its log format marks INFO or DEBUG, which says what went well, not what went wrong."""
        lines = list(self.stderr_tail)
        for line in reversed(lines):
            if _OWN_ERROR.match(line):
                return line
        telling = [line for line in lines if (_declared_level(line) or logging.ERROR) > logging.INFO]
        for line in reversed(telling):
            if "error" in line.lower():
                return line
        return telling[-1] if telling else ""

    def describe_exit(self, rc: int) -> str:
        """Why it stopped, for the run's error: a signal is named as such (a log line is no reason)."""
        if rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = "an unknown signal"
            if self.killed_for:
                return f"{self.name} was stopped ({self.killed_for}): killed by signal {-rc} ({name})"
            return f"{self.name} was killed by signal {-rc} ({name})"
        why = self.killed_for or self.last_error() or "no error message"
        return f"{self.name} failed (exit {rc}): {why}"

    def stop(self, reason: str) -> None:
        """SIGTERM, then SIGKILL after a grace period."""
        if self.proc.poll() is not None:
            return
        self.killed_for = self.killed_for or reason
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def join_output(self) -> None:
        for thread in self._threads:
            thread.join(timeout=10)


def start(
    name: str,
    argv: Sequence[str],
    limits: Limits,
    redactor: Redactor,
    *,
    stdin: bool,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Connector:
    """Start a connector in its own process group, so a terminal's Ctrl-C reaches only the runner,
    which then shuts the pipeline down in order. cwd: the project directory (as under Meltano),
    where relative paths in the connector's config resolve."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_limiter(limits) if (limits.memory_mb or limits.cpu_seconds) else None,  # noqa: PLW1509
        env=env,
        cwd=cwd,
    )
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            _widen(pipe.fileno())
    connector = Connector(name, proc)
    logger = _child_logger()
    prefix = f"{name} | "

    def forward() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = redactor(raw.decode("utf-8", "replace").rstrip())
            if line:
                connector.stderr_tail.append(line)
                logger.log(_level_of(line), "%s%s", prefix, line)

    thread = threading.Thread(target=forward, name=f"{name}-stderr", daemon=True)
    thread.start()
    connector._threads.append(thread)
    if limits.wall_seconds:
        timer = threading.Timer(limits.wall_seconds, connector.stop, (f"wall time limit {limits.wall_seconds}s",))
        timer.daemon = True
        timer.start()
    return connector
