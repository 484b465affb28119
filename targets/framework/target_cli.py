"""The Singer target command line: option table, parsing, and a program returning an exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import IO, Any

import orjson

from dpone.targets.framework.target import Target
from dpone_protocol.about import about_document, dpone_version, render_about
from dpone_protocol.config import Redactor, load_json_file
from dpone_protocol.entrypoint import guarded
from dpone_protocol.errors import ConfigError
from dpone_protocol.ops import OPS_FLAG, parse_request
from dpone_protocol.settings import load_settings

OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--config",), {"action": "append", "metavar": "FILE", "help": "JSON config file (repeatable)"}),
    (("--input",), {"metavar": "FILE", "help": "read messages from FILE instead of stdin"}),
    (("--about",), {"action": "store_true", "help": "describe settings and capabilities"}),
    (
        ("--schema-plan",),
        {"action": "store_true", "help": "print the schema-evolution plan of each SCHEMA read; change nothing"},
    ),
    (
        ("--format",),
        {"choices": ("json", "markdown", "text"), "default": None, "help": "--about / --schema-plan output format"},
    ),
    (("--version",), {"action": "store_true", "help": "print the version"}),
    ((OPS_FLAG,), {"metavar": "REQUEST", "help": "answer a dpone runner operation (doctor, reconcile) as JSON"}),
)


def about(cls: type[Target], fmt: str | None) -> str:
    caps = cls.capabilities
    doc = about_document(
        cls.name,
        cls.description,
        dpone_version(),
        caps.singer_capabilities(),
        cls.all_settings(),
        extra={"load_methods": list(caps.load_methods), "schema_evolution": list(caps.schema_evolution)},
    )
    return render_about(doc, fmt)


def run(
    target_cls: type[Target],
    argv: Sequence[str] | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("spec", "check", "write"):
        from dpone.targets.framework import airbyte_cli  # noqa: PLC0415 - only Airbyte runs need it

        return airbyte_cli.run(target_cls, argv, stdin, stdout, stderr)
    parser = argparse.ArgumentParser(prog=target_cls.name, description=target_cls.description)
    for flags, kwargs in OPTIONS:
        parser.add_argument(*flags, **kwargs)
    args = parser.parse_args(argv)
    out = stdout or sys.stdout.buffer

    def program(redactor: Redactor) -> int:
        if args.version:
            out.write(f"{target_cls.name} {dpone_version()}\n".encode())
            return 0
        if args.about:
            out.write(about(target_cls, args.format).encode())
            return 0
        config = load_settings(target_cls.all_settings(), target_cls.name, args.config, redactor)
        target = target_cls(config)
        if args.ops:
            request = parse_request(load_json_file(args.ops, "--ops request"), args.ops)
            try:
                out.write(orjson.dumps(target.operate(request, None, {})) + b"\n")
            finally:
                target.close()
            return 0
        if args.input:
            try:
                source: IO[bytes] = open(args.input, "rb")  # noqa: SIM115 - closed below
            except OSError as exc:
                raise ConfigError(f"cannot read --input {args.input}: {exc.strerror}") from None
        else:
            source = stdin or sys.stdin.buffer
        try:
            if args.schema_plan:
                target.plan_schemas(source, out, args.format or "text")
            else:
                target.run(source, out)
        finally:
            if args.input:
                source.close()
        return 0

    return guarded(program, target_cls.name, stderr)
