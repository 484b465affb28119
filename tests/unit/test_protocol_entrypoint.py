"""entrypoint.guarded: every exception becomes one redacted stderr line and an exit code."""

from __future__ import annotations

import errno
import io
import logging
from collections.abc import Iterator

import pytest

from dpone_protocol.config import RedactingFilter, Redactor
from dpone_protocol.entrypoint import guarded
from dpone_protocol.errors import ConfigError, DataError, DponeError, TransientError


@pytest.fixture(autouse=True)
def restore_root_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """guarded() adds a stderr handler and redaction filters to the root logger; undo both afterwards."""
    monkeypatch.delenv("DPONE_DEBUG", raising=False)
    monkeypatch.delenv("DPONE_LOG_LEVEL", raising=False)
    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(root.handlers):
        if getattr(handler, "_dpone", False):
            root.removeHandler(handler)
        for flt in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(flt)
    root.setLevel(level)


def test_config_error_with_a_secret_is_one_redacted_line() -> None:
    err = io.StringIO()

    def program(redactor: Redactor) -> int:
        redactor.add_config({"host": "db", "password": "hunter2-secret"})
        raise ConfigError("login failed with hunter2-secret\nfor postgresql://etl:dsn-pw@db/x")

    assert guarded(program, "tap-x", stderr=err) == 78
    assert err.getvalue() == "tap-x: config error: login failed with *** for postgresql://etl:***@db/x\n"


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (DataError("bad row"), 65, "target-y: data error: bad row\n"),
        (TransientError("lock timeout"), 75, "target-y: transient error: lock timeout\n"),
        (ConnectionResetError("peer reset"), 75, "target-y: transient error: peer reset\n"),
        (ValueError("oops"), 70, "target-y: internal error: oops\n"),
    ],
)
def test_exit_codes_and_messages(exc: Exception, code: int, line: str) -> None:
    err = io.StringIO()

    def program(redactor: Redactor) -> int:
        raise exc

    assert guarded(program, "target-y", stderr=err) == code
    assert err.getvalue() == line


def test_success_returns_the_program_code_and_writes_nothing() -> None:
    err = io.StringIO()
    assert guarded(lambda redactor: 0, "tap-x", stderr=err) == 0
    assert guarded(lambda redactor: 3, "tap-x", stderr=err) == 3
    assert err.getvalue() == ""


def test_keyboard_interrupt_is_130() -> None:
    err = io.StringIO()

    def program(redactor: Redactor) -> int:
        raise KeyboardInterrupt

    assert guarded(program, "tap-x", stderr=err) == 130
    assert err.getvalue() == "tap-x: interrupted\n"


def test_logging_goes_to_the_injected_stderr_redacted() -> None:
    err = io.StringIO()

    def program(redactor: Redactor) -> int:
        redactor.add(["api-key-98765"])
        logging.getLogger("tap_x").info("calling with api-key-98765")
        return 0

    assert guarded(program, "tap-x", stderr=err) == 0
    (line,) = err.getvalue().splitlines()
    assert line.endswith(" INFO tap_x: calling with ***")


def test_debug_traceback_is_redacted_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DPONE_DEBUG", "1")
    err = io.StringIO()

    def program(redactor: Redactor) -> int:
        redactor.add(["tok-5555-aaaa"])
        raise ConfigError("bad token tok-5555-aaaa")

    assert guarded(program, "tap-x", stderr=err) == 78
    output = err.getvalue()
    assert "Traceback (most recent call last):" in output
    assert "tok-5555-aaaa" not in output
    assert output.endswith("tap-x: config error: bad token ***\n")


def _guard(exc: BaseException) -> tuple[int, str]:
    err = io.StringIO()

    def program(redactor: Redactor) -> int:
        raise exc

    return guarded(program, "target-x", stderr=err), err.getvalue()


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (
            PermissionError(errno.EACCES, "Permission denied", "out/a.jsonl"),
            78,
            "target-x: config error: out/a.jsonl: permission denied: give the user running this access, "
            "or choose another path\n",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device"),
            75,
            "target-x: transient error: disk full (No space left on device): free some space and re-run; "
            "what the last echoed state covers is committed\n",
        ),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "x"), 70, "target-x: internal error: [Errno 21] "),
    ],
)
def test_guarded_gives_file_errors_their_kind(exc: OSError, code: int, line: str) -> None:
    rc, err = _guard(exc)
    assert rc == code
    assert err.startswith(line), err


class _Stopped(DponeError):
    """What the runner raises when a signal stopped the run: exit 128 + the signal."""

    @property
    def exit_code(self) -> int:
        return 143


def test_guarded_says_interrupted_without_fatal_error_for_a_signal_exit() -> None:
    rc, err = _guard(_Stopped("interrupted by SIGTERM; committed state saved"))
    assert rc == 143
    assert err == "target-x: interrupted by SIGTERM; committed state saved\n"
    rc, err = _guard(KeyboardInterrupt())
    assert (rc, err) == (130, "target-x: interrupted\n")


def test_a_message_that_names_the_connector_says_it_once() -> None:
    def program(redactor: object) -> int:
        raise ConfigError("target-x: setting 'port' must be integer, got str")

    err = io.StringIO()
    assert guarded(program, "target-x", err) == 78
    assert err.getvalue() == "target-x: config error: setting 'port' must be integer, got str\n"
