"""Errors: one kind per thing to do about it, one exit code per kind, one line per message."""

from __future__ import annotations

import errno
import os

import pytest

from dpone_protocol.errors import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    ConfigError,
    DataError,
    DponeError,
    ErrorKind,
    FatalError,
    InputCutError,
    ProtocolError,
    TransientError,
    describe,
    exit_code_for,
)
from dpone_protocol.os_errors import classify_os_error, errno_in_text


@pytest.mark.parametrize(
    ("exc", "code", "kind"),
    [
        (ConfigError("bad setting"), 78, "config"),
        (TransientError("lock timeout"), 75, "transient"),
        (DataError("bad row"), 65, "data"),
        (ProtocolError("bad line", line=3), 65, "data"),
        (FatalError("boom"), 70, "fatal"),
        (DponeError("base"), 70, "fatal"),
        (InputCutError("line 4: the input ended inside a line"), 74, "input cut"),
    ],
)
def test_exit_code_and_kind_per_error_class(exc: DponeError, code: int, kind: str) -> None:
    assert exc.exit_code == code
    assert exit_code_for(exc) == code
    assert exc.kind.value == kind
    assert describe(exc).startswith(f"{kind} error: ")


def test_exit_codes_follow_sysexits() -> None:
    assert EXIT_CODES == {
        ErrorKind.DATA: 65,
        ErrorKind.FATAL: 70,
        ErrorKind.INPUT_CUT: 74,
        ErrorKind.TRANSIENT: 75,
        ErrorKind.CONFIG: 78,
    }
    assert EXIT_INTERRUPTED == 130


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (KeyboardInterrupt(), 130),
        (BrokenPipeError(), 130),
        (ConnectionError("reset"), 75),
        (ConnectionRefusedError("refused"), 75),
        (TimeoutError("slow"), 75),
        (ValueError("oops"), 70),
        (RuntimeError(), 70),
    ],
)
def test_exit_code_for_builtin_exceptions(exc: BaseException, code: int) -> None:
    assert exit_code_for(exc) == code


def test_describe_is_one_line() -> None:
    text = describe(ConfigError("first line\n  second\tline  \n"))
    assert text == "config error: first line second line"
    assert "\n" not in text


def test_describe_names_kind_for_non_dpone_errors() -> None:
    assert describe(ConnectionResetError("peer gone")) == "transient error: peer gone"
    assert describe(TimeoutError("read timed out")) == "transient error: read timed out"
    assert describe(KeyError("x")) == "internal error: 'x'"


def test_describe_uses_class_name_when_message_is_empty() -> None:
    assert describe(ValueError()) == "internal error: ValueError"
    assert describe(DataError("   ")) == "data error: DataError"


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({}, "what went wrong"),
        ({"line": 7}, "line 7: what went wrong"),
        ({"stream": "orders"}, "stream 'orders': what went wrong"),
        ({"line": 7, "stream": "orders"}, "line 7, stream 'orders': what went wrong"),
    ],
)
def test_protocol_error_names_line_and_stream(kwargs: dict[str, object], text: str) -> None:
    exc = ProtocolError("what went wrong", **kwargs)  # type: ignore[arg-type]
    assert str(exc) == text
    assert exc.reason == "what went wrong"
    assert exc.line == kwargs.get("line")
    assert exc.stream == kwargs.get("stream")
    assert isinstance(exc, DataError)


# -- file errors: a destination that cannot be written, or a full disk, is no bug ----------------------


@pytest.mark.parametrize(
    ("code", "kind", "says"),
    [
        (errno.EACCES, ConfigError, "out/a.jsonl: permission denied"),
        (errno.EPERM, ConfigError, "out/a.jsonl: permission denied"),
        (errno.EROFS, ConfigError, "out/a.jsonl: read-only file system"),
        (errno.ENOSPC, TransientError, "out/a.jsonl: disk full (No space left on device)"),
        (errno.EDQUOT, TransientError, "out/a.jsonl: disk full (Disk quota exceeded)"),
    ],
)
def test_file_errors_have_a_kind_and_name_the_path(code: int, kind: type[DponeError], says: str) -> None:
    found = classify_os_error(OSError(code, os.strerror(code), "out/a.jsonl"))
    assert isinstance(found, kind)
    assert str(found).startswith(says)


def test_other_file_errors_keep_no_kind() -> None:
    assert classify_os_error(OSError(errno.EISDIR, "Is a directory", "x")) is None
    assert classify_os_error(ConnectionResetError(errno.ECONNRESET, "reset")) is None


def test_driver_text_names_the_errno() -> None:
    assert errno_in_text('IO Error: Cannot open file "/x/w.duckdb.wal": Permission denied') == errno.EACCES
    assert errno_in_text("Could not write file: No space left on device") == errno.ENOSPC
    assert errno_in_text("Read-only file system") == errno.EROFS
    assert errno_in_text("Conversion Error: could not convert") is None
