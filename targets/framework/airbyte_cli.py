"""The Airbyte destination commands of every target: spec, check, write.

`target-x write` declares each configured stream to the ordinary target loop (its
destination_sync_mode as the stream's load method), then feeds it the Airbyte input as
Singer lines; the loop's commit-then-echo logic decides when a STATE goes out.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from typing import IO, Any, cast

from dpone.targets.framework.airbyte_input import (
    SYNC_MODES,
    AirbyteInput,
    ConfiguredStream,
    StateEcho,
    configured_streams,
)
from dpone.targets.framework.target import Target
from dpone_protocol.airbyte import (
    AirbyteLogHandler,
    connection_status_message,
    error_trace_message,
    failure_type,
    spec_message,
)
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.config import Redactor, install_redaction, load_json_file
from dpone_protocol.entrypoint import guarded
from dpone_protocol.errors import ConfigError, DponeError, ProtocolError, describe
from dpone_protocol.settings import load_settings

COMMANDS = ("spec", "check", "write")
log = logging.getLogger(__name__)


def build_parser(target_cls: type[Target]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=target_cls.name, description=f"{target_cls.description} (Airbyte protocol)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("spec", help="print the connector specification")
    commands.add_parser("check", help="connect and write-probe the destination").add_argument(
        "--config", required=True, metavar="FILE"
    )
    write = commands.add_parser("write", help="load Airbyte messages from stdin")
    write.add_argument("--config", required=True, metavar="FILE")
    write.add_argument("--catalog", required=True, metavar="FILE", help="ConfiguredAirbyteCatalog")
    return parser


def emit(out: IO[bytes], message: dict[str, Any]) -> None:
    out.write(DEFAULT_CODEC.dumps(message) + b"\n")


def run(
    target_cls: type[Target],
    argv: Sequence[str],
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    args = build_parser(target_cls).parse_args(argv)
    out = stdout or sys.stdout.buffer

    def program(redactor: Redactor) -> int:
        try:
            return _command(target_cls, args, stdin or sys.stdin.buffer, out, redactor)
        except BrokenPipeError:
            raise
        except Exception as exc:
            message = redactor(describe(exc))
            emit(out, error_trace_message(message, failure_type(exc), time.time() * 1000))
            raise
        finally:
            out.flush()

    return guarded(program, target_cls.name, stderr)


def _command(
    target_cls: type[Target], args: argparse.Namespace, stdin: IO[bytes], out: IO[bytes], redactor: Redactor
) -> int:
    if args.command == "spec":
        modes = [mode for mode, method in SYNC_MODES.items() if method in target_cls.capabilities.load_methods]
        emit(out, spec_message(target_cls.all_settings(), target_cls.name, modes))
        return 0
    if args.command == "check":
        try:
            _target(target_cls, args, redactor).check()
        except (DponeError, OSError) as exc:
            emit(out, connection_status_message(redactor(describe(exc))))
            return 0
        emit(out, connection_status_message(None))
        return 0
    streams = configured_streams(load_json_file(args.catalog, "catalog"), target_cls.capabilities.load_methods)
    target = _target(target_cls, args, redactor)
    echo = StateEcho(out)
    _declare(target, streams)
    # Logs go to stdout as LOG messages too (Airbyte reads them there), and stay on stderr.
    handler = AirbyteLogHandler(echo.emit)
    root = logging.getLogger()
    root.addHandler(handler)
    install_redaction(redactor)
    try:
        target.run(AirbyteInput(stdin, streams).lines(), cast(IO[bytes], echo))
        log.info("echoed %d Airbyte states", echo.echoed)
    finally:
        root.removeHandler(handler)
    return 0


def _target(target_cls: type[Target], args: argparse.Namespace, redactor: Redactor) -> Target:
    return target_cls(load_settings(target_cls.all_settings(), target_cls.name, [args.config], redactor))


def _declare(target: Target, streams: list[ConfiguredStream]) -> None:
    """Give the loop every configured stream before any input, each with its own load method.

    Tables exist (and an overwrite with no records empties its table) even for streams that send
    nothing, as Airbyte expects.
    """
    base = target.config
    try:
        for stream in streams:
            target.config = {**base, "load_method": stream.load_method}
            try:
                # The loop's own SCHEMA handling, so exact-number streams are routed as for Singer input.
                target.declare_stream(stream.schema_message())
            except ProtocolError as exc:
                raise ConfigError(f"configured catalog, stream {stream.singer_stream!r}: {exc.reason}") from None
    except BaseException:
        target.config = base
        for sink in target.sinks.values():
            sink.close()
        target.close()
        raise
    target.config = base
