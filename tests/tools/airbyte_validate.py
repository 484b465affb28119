"""Validate Airbyte messages (JSON lines) against the official protocol models.

Run with the Python of the `airbyte` tool venv (airbyte-protocol-models, pydantic v1):

    .venv-tools/airbyte/bin/python tests/tools/airbyte_validate.py [--configured-catalog] [FILE ...]

Reads stdin when no FILE is given. Exits 0 after printing `ok: N messages`, or 1 after printing
the first invalid message, its line and why. The models allow extra fields and coerce types, so
on top of them this checks that each message carries the payload its type names, with no field
of another type, and that numbers the protocol declares as integers are integers on the wire.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

PAYLOAD = {
    "RECORD": "record",
    "STATE": "state",
    "LOG": "log",
    "SPEC": "spec",
    "CONNECTION_STATUS": "connectionStatus",
    "CATALOG": "catalog",
    "TRACE": "trace",
    "CONTROL": "control",
}
TRACE_PAYLOAD = {"ERROR": "error", "ESTIMATE": "estimate", "STREAM_STATUS": "stream_status", "ANALYTICS": "analytics"}
STATE_PAYLOAD = {"STREAM": "stream", "GLOBAL": "global", "LEGACY": "data"}


def strict_problems(obj: dict[str, Any]) -> list[str]:
    kind = obj.get("type")
    payload = PAYLOAD.get(str(kind))
    if payload is None:
        return [f"unknown type {kind!r}"]
    problems = [f"{kind} message has no {payload!r}"] if not isinstance(obj.get(payload), dict) else []
    problems += [f"{kind} message carries {key!r}" for key in obj if key not in ("type", payload)]
    body = obj.get(payload) or {}
    if kind == "RECORD" and not isinstance(body.get("emitted_at"), int):
        problems.append("record.emitted_at must be an integer (ms)")
    if kind == "TRACE":
        inner = TRACE_PAYLOAD.get(str(body.get("type")))
        if inner is None or not isinstance(body.get(inner), dict):
            problems.append(f"TRACE {body.get('type')!r} has no {inner!r}")
    if kind == "STATE":
        inner = STATE_PAYLOAD.get(str(body.get("type", "LEGACY")))
        if inner is None or not isinstance(body.get(inner), dict):
            problems.append(f"STATE {body.get('type')!r} has no {inner!r}")
    return problems


def validate_line(text: str, configured_catalog: bool) -> str | None:
    """The reason `text` is not a valid message (or configured catalog), or None."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        return f"not JSON: {exc}"
    if not isinstance(obj, dict):
        return "not a JSON object"
    # Imported here: the test suite imports this module (for assert_valid) without the models.
    from airbyte_protocol.models import AirbyteMessage, ConfiguredAirbyteCatalog
    from pydantic import ValidationError

    model = ConfiguredAirbyteCatalog if configured_catalog else AirbyteMessage
    try:
        model.parse_obj(obj)
    except ValidationError as exc:
        return " ".join(str(exc).split())
    if configured_catalog:
        return None
    problems = strict_problems(obj)
    return "; ".join(problems) if problems else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--configured-catalog", action="store_true", help="each input is a ConfiguredAirbyteCatalog")
    parser.add_argument("files", nargs="*")
    args = parser.parse_args(argv)
    sources = [open(f, encoding="utf-8") for f in args.files] if args.files else [sys.stdin]  # noqa: SIM115
    count = 0
    for source in sources:
        texts = [source.read()] if args.configured_catalog else source
        for number, text in enumerate(texts, 1):
            if not text.strip():
                continue
            reason = validate_line(text, args.configured_catalog)
            if reason is not None:
                print(f"invalid at {getattr(source, 'name', 'stdin')}:{number}: {reason}\n{text.strip()[:2000]}")
                return 1
            count += 1
    print(f"ok: {count} messages")
    return 0


@functools.cache
def _tool_python() -> str:
    from tests.tools import tool_venv

    return str(tool_venv("airbyte") / "bin" / "python")


def assert_valid(data: bytes, *, configured_catalog: bool = False) -> None:
    """For tests: every message in `data` (JSON lines) is valid, checked in the tool venv."""
    argv = [_tool_python(), __file__, *(["--configured-catalog"] if configured_catalog else [])]
    proc = subprocess.run(argv, input=data, capture_output=True, check=False, cwd=Path(__file__).parent)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


if __name__ == "__main__":
    sys.exit(main())
