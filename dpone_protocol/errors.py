"""Errors grouped by what the caller should do about them, and the exit codes they map to.

This is the one place where an exception becomes an exit code; every CLI goes through
:func:`exit_code_for` and :func:`describe`.
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """What the operator (or an orchestrator) should do next."""

    CONFIG = "config"  # fix the settings or the catalog, then re-run
    TRANSIENT = "transient"  # retry later; nothing was lost
    DATA = "data"  # fix or quarantine the input; the destination is unchanged
    FATAL = "fatal"  # a bug or an unrecoverable condition; report it
    INPUT_CUT = "input cut"  # the sender died mid-stream: what its last state covers is committed; re-run


# sysexits.h values, so shell scripts and orchestrators can branch on them.
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CODES: dict[ErrorKind, int] = {
    ErrorKind.DATA: 65,  # EX_DATAERR
    ErrorKind.FATAL: 70,  # EX_SOFTWARE
    ErrorKind.INPUT_CUT: 74,  # EX_IOERR
    ErrorKind.TRANSIENT: 75,  # EX_TEMPFAIL
    ErrorKind.CONFIG: 78,  # EX_CONFIG
}
EXIT_INTERRUPTED = 130


class DponeError(Exception):
    """Base of every error dpone raises on purpose."""

    kind: ErrorKind = ErrorKind.FATAL

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.kind]


class ConfigError(DponeError):
    """Settings, catalog or state are missing or invalid."""

    kind = ErrorKind.CONFIG


class TransientError(DponeError):
    """A connection dropped, a lock timed out: retrying may succeed."""

    kind = ErrorKind.TRANSIENT


class DataError(DponeError):
    """The input violates the protocol, the schema or a data contract."""

    kind = ErrorKind.DATA


class InputCutError(DponeError):
    """The input ended inside a line: the process writing it died or was stopped. Not bad data:
    what the last complete STATE covers is committed and echoed, the rest is left for the next run."""

    kind = ErrorKind.INPUT_CUT


class FatalError(DponeError):
    """Unrecoverable: stop and report."""

    kind = ErrorKind.FATAL


class ProtocolError(DataError):
    """A malformed message stream: names the line, the stream and what was wrong."""

    def __init__(self, reason: str, *, line: int | None = None, stream: str | None = None) -> None:
        self.reason = reason
        self.line = line
        self.stream = stream
        where = []
        if line is not None:
            where.append(f"line {line}")
        if stream is not None:
            where.append(f"stream {stream!r}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(f"{prefix}{reason}")


ERROR_CLASSES: dict[ErrorKind, type[DponeError]] = {
    ErrorKind.CONFIG: ConfigError,
    ErrorKind.DATA: DataError,
    ErrorKind.TRANSIENT: TransientError,
    ErrorKind.FATAL: FatalError,
    ErrorKind.INPUT_CUT: InputCutError,
}
_KIND_BY_EXIT = {code: kind for kind, code in EXIT_CODES.items()}


def kind_for_exit(code: int) -> ErrorKind | None:
    """What a connector's exit code says about its failure; None for a code of no kind of ours."""
    return _KIND_BY_EXIT.get(code)


def exit_code_for(exc: BaseException) -> int:
    """Map any exception to the process exit code."""
    if isinstance(exc, DponeError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, BrokenPipeError):
        # The reader went away (e.g. `| head`); treat like an interrupted run.
        return EXIT_INTERRUPTED
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return EXIT_CODES[ErrorKind.TRANSIENT]
    return EXIT_CODES[ErrorKind.FATAL]


def describe(exc: BaseException) -> str:
    """A one-line message for stderr: the kind, then what happened."""
    if isinstance(exc, DponeError):
        kind = exc.kind.value
    elif isinstance(exc, (ConnectionError, TimeoutError)):
        kind = ErrorKind.TRANSIENT.value
    else:
        kind = "internal"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{kind} error: {text}"
