"""The Singer tap command line: option table, parsing, and a program returning an exit code.

stdout and stderr are injected so tests run a tap in-process.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import IO, Any

import orjson

from dpone.taps.framework.tap import Tap
from dpone_protocol.about import about_document, dpone_version, render_about
from dpone_protocol.catalog import Catalog
from dpone_protocol.codec import MessageWriter
from dpone_protocol.config import Redactor, load_json_file
from dpone_protocol.entrypoint import guarded
from dpone_protocol.errors import ConfigError
from dpone_protocol.ops import OPS_FLAG, parse_request
from dpone_protocol.settings import load_settings

OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--config",), {"action": "append", "metavar": "FILE", "help": "JSON config file (repeatable)"}),
    (("--state",), {"metavar": "FILE", "help": "last committed state"}),
    (("--catalog",), {"metavar": "FILE", "help": "Singer catalog with the selected streams"}),
    (("--properties",), {"metavar": "FILE", "help": "legacy name for --catalog"}),
    (("--discover",), {"action": "store_true", "help": "print the catalog and exit"}),
    (("--about",), {"action": "store_true", "help": "describe settings and capabilities"}),
    (("--format",), {"choices": ("json", "markdown"), "default": None, "help": "--about output format"}),
    (("--version",), {"action": "store_true", "help": "print the version"}),
    ((OPS_FLAG,), {"metavar": "REQUEST", "help": "answer a dpone runner operation (doctor, estimate, ...) as JSON"}),
)


def build_parser(tap_cls: type[Tap]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=tap_cls.name, description=tap_cls.description)
    for flags, kwargs in OPTIONS:
        parser.add_argument(*flags, **kwargs)
    return parser


def about(cls: type[Tap] | Any, fmt: str | None) -> str:
    doc = about_document(cls.name, cls.description, dpone_version(), cls.capabilities, cls.all_settings())
    return render_about(doc, fmt)


def run(
    tap_cls: type[Tap],
    argv: Sequence[str] | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("spec", "check", "discover", "read"):
        from dpone.taps.framework import airbyte_cli  # noqa: PLC0415 - only Airbyte runs need it

        return airbyte_cli.run(tap_cls, argv, stdout, stderr)
    parser = build_parser(tap_cls)
    args = parser.parse_args(argv)
    # A large buffer: one write syscall per ~1 MB instead of per 8 KB of records.
    out = stdout or open(sys.stdout.fileno(), "wb", buffering=1 << 20, closefd=False)  # noqa: SIM115

    def program(redactor: Redactor) -> int:
        if args.version:
            out.write(f"{tap_cls.name} {dpone_version()}\n".encode())
            return 0
        if args.about:
            out.write(about(tap_cls, args.format).encode())
            return 0
        config = load_settings(tap_cls.all_settings(), tap_cls.name, args.config, redactor)
        tap = tap_cls(config)
        if args.discover:
            out.write(orjson.dumps(tap.discover().to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
            return 0
        catalog_path = args.catalog or args.properties
        catalog = Catalog.from_dict(load_json_file(catalog_path, "catalog")) if catalog_path else None
        state = load_json_file(args.state, "state") if args.state else {}
        if not isinstance(state, dict):
            raise ConfigError(f"state file {args.state} must hold a JSON object")
        # A saved STATE message ({"type": "STATE", "value": ...}) or a {"value": ...} wrapper
        # both mean the value inside.
        if set(state) - {"type"} == {"value"} and isinstance(state["value"], dict):
            state = state["value"]
        if args.ops:
            request = parse_request(load_json_file(args.ops, "--ops request"), args.ops)
            out.write(orjson.dumps(tap.operate(request, catalog, state)) + b"\n")
            out.flush()
            return 0
        tap.sync(MessageWriter(out), catalog, state)
        out.flush()
        return 0

    return guarded(program, tap_cls.name, stderr)


def main_for(tap_cls: type[Tap]) -> int:
    return run(tap_cls)
