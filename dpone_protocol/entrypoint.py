"""What every connector's `main` shares: logging to stderr, redaction, and exit codes.

Exceptions become a one-line, redacted message and an exit code here and nowhere else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import IO

from dpone_protocol.config import Redactor, install_redaction
from dpone_protocol.errors import EXIT_INTERRUPTED, describe, exit_code_for
from dpone_protocol.os_errors import classify_os_error

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(stream: IO[str] | None = None) -> None:
    level = os.environ.get("DPONE_LOG_LEVEL", "INFO").upper()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_dpone", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler._dpone = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(getattr(logging, level, logging.INFO))


def guarded(program: Callable[[Redactor], int], who: str, stderr: IO[str] | None = None) -> int:
    """Run `program`, turning any exception into a redacted one-line error and an exit code."""
    err = stderr or sys.stderr
    redactor = Redactor()
    setup_logging(err)
    install_redaction(redactor)
    try:
        return program(redactor)
    except KeyboardInterrupt:
        err.write(f"{who}: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Our reader is gone; stdout can't take the message, and it is not ours to report.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's flush at exit
        return EXIT_INTERRUPTED
    except Exception as exc:
        # A file that cannot be written, or a full disk, is no bug: name the path and the kind.
        known = classify_os_error(exc) if isinstance(exc, OSError) else None
        code = exit_code_for(known or exc)
        # An exit above 128 is a signal that stopped the run (130 Ctrl-C, 143 SIGTERM): not an
        # error of any kind, so no "fatal error" wording, which is kept for bugs.
        line = f"{who}: {exc}" if code > 128 else f"{who}: {describe(known or exc)}"
        # A message that names the connector already (settings problems do) says it once.
        line = line.replace(f" error: {who}: ", " error: ", 1)
        # stderr may be gone too (the runner that read it was killed): the exit code still tells.
        with contextlib.suppress(OSError, ValueError):
            if os.environ.get("DPONE_DEBUG"):
                err.write(redactor("".join(traceback.format_exception(exc))))
            err.write(redactor(" ".join(line.split())) + "\n")
            err.flush()
        return code
