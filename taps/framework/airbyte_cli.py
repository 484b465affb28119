"""The Airbyte source commands of every tap: spec, check, discover, read.

`tap-x read` runs the ordinary Singer sync into an :class:`AirbyteOutput`, which translates
each message; the sync logic is not duplicated here. Errors still become exit codes in
`entrypoint.guarded`; before that, Airbyte gets a TRACE ERROR (or, for `check`, a FAILED
CONNECTION_STATUS) with the same redacted text.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any, cast

from dpone.taps.framework.airbyte_writer import AirbyteOutput, now_ms
from dpone.taps.framework.tap import Tap
from dpone_protocol.airbyte import (
    AirbyteLogHandler,
    StreamNames,
    airbyte_state_input,
    airbyte_states_to_singer,
    catalog_message,
    configure_catalog,
    connection_status_message,
    error_trace_message,
    estimate_trace_message,
    failure_type,
    spec_message,
)
from dpone_protocol.catalog import Catalog
from dpone_protocol.codec import DEFAULT_CODEC, MessageWriter
from dpone_protocol.config import Redactor, install_redaction, load_json_file
from dpone_protocol.entrypoint import guarded
from dpone_protocol.errors import DponeError, describe
from dpone_protocol.settings import load_settings

COMMANDS = ("spec", "check", "discover", "read")


def build_parser(tap_cls: type[Tap]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=tap_cls.name, description=f"{tap_cls.description} (Airbyte protocol)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("spec", help="print the connector specification")
    for name, text in (("check", "test the connection"), ("discover", "print the catalog")):
        commands.add_parser(name, help=text).add_argument("--config", required=True, metavar="FILE")
    read = commands.add_parser("read", help="emit records and state")
    read.add_argument("--config", required=True, metavar="FILE")
    read.add_argument("--catalog", required=True, metavar="FILE", help="ConfiguredAirbyteCatalog")
    read.add_argument("--state", metavar="FILE", help="Airbyte state: a list of states, a GLOBAL state or legacy")
    return parser


def emit(out: IO[bytes], message: dict[str, Any]) -> None:
    out.write(DEFAULT_CODEC.dumps(message) + b"\n")


def error_text(exc: BaseException, redactor: Redactor) -> str:
    return redactor(describe(exc))


def run(
    tap_cls: type[Tap],
    argv: Sequence[str],
    stdout: IO[bytes] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    args = build_parser(tap_cls).parse_args(argv)
    out = stdout or open(sys.stdout.fileno(), "wb", buffering=1 << 20, closefd=False)  # noqa: SIM115

    def program(redactor: Redactor) -> int:
        try:
            return _command(tap_cls, args, out, redactor)
        except BrokenPipeError:
            raise
        except Exception as exc:
            emit(out, error_trace_message(error_text(exc, redactor), failure_type(exc), now_ms()))
            out.flush()
            raise
        finally:
            out.flush()

    return guarded(program, tap_cls.name, stderr)


def _command(tap_cls: type[Tap], args: argparse.Namespace, out: IO[bytes], redactor: Redactor) -> int:
    if args.command == "spec":
        emit(out, spec_message(tap_cls.all_settings(), tap_cls.name))
        return 0
    if args.command == "check":
        return _check(lambda: _tap(tap_cls, args, redactor).check(), out, redactor)
    tap = _tap(tap_cls, args, redactor)
    if args.command == "discover":
        emit(out, catalog_message(tap.discover()))
        return 0
    return _read(tap, args, out, redactor)


def _tap(tap_cls: type[Tap], args: argparse.Namespace, redactor: Redactor) -> Tap:
    return tap_cls(load_settings(tap_cls.all_settings(), tap_cls.name, [args.config], redactor))


def _check(probe: Callable[[], None], out: IO[bytes], redactor: Redactor) -> int:
    """SUCCEEDED, or FAILED with the reason; only a bug (not a DponeError) fails the command itself."""
    try:
        probe()
    except (DponeError, OSError) as exc:
        emit(out, connection_status_message(error_text(exc, redactor)))
        return 0
    emit(out, connection_status_message(None))
    return 0


def _read(tap: Tap, args: argparse.Namespace, out: IO[bytes], redactor: Redactor) -> int:
    discovered = tap.discover()
    names = StreamNames(discovered)
    catalog = configure_catalog(discovered, load_json_file(args.catalog, "catalog"))
    states = airbyte_state_input(load_json_file(args.state, "state")) if args.state else []
    state = airbyte_states_to_singer(states, names) if states else {}
    output = AirbyteOutput(out, names, state.get("bookmarks"))
    _estimates(catalog, names, output)
    handler = AirbyteLogHandler(output.emit)
    root = logging.getLogger()
    root.addHandler(handler)
    install_redaction(redactor)
    try:
        tap.sync(MessageWriter(cast(IO[bytes], output)), catalog, state)
        output.finish("COMPLETE")
    except BaseException:
        with contextlib.suppress(Exception):  # the error that got us here is the one to report
            output.finish("INCOMPLETE")
        raise
    finally:
        root.removeHandler(handler)
    return 0


def _estimates(catalog: Catalog, names: StreamNames, output: AirbyteOutput) -> None:
    """ESTIMATE traces for the selected streams whose discovery knows a row count."""
    for entry in catalog.selected():
        rows = entry.stream_metadata().get("row-count")
        if isinstance(rows, int) and not isinstance(rows, bool) and rows >= 0:
            output.emit(estimate_trace_message(names.descriptor(entry.tap_stream_id), rows, now_ms()))
