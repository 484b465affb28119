"""Shared fixtures: run connectors in-process with injected stdio, and message builders."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.taps.framework.tap import Tap
from dpone.taps.framework.tap_cli import run as run_tap_cli
from dpone.targets.framework.target import Target
from dpone.targets.framework.target_cli import run as run_target_cli

pytest_plugins = ["tests.certify_evidence"]  # evidence for `dpone certify` when DPONE_EVIDENCE_DIR is set


@dataclass
class Run:
    rc: int
    stdout: bytes
    stderr: str
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def states(self) -> list[dict[str, Any]]:
        # Targets print bare state values; taps print STATE messages.
        return [
            m["value"] if m.get("type") == "STATE" else m for m in self.messages if m.get("type", "STATE") == "STATE"
        ]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]


def _parse(stdout: bytes) -> list[dict[str, Any]]:
    if stdout.startswith(b"{\n"):
        return []  # an indented document (--discover, --about), not a message stream
    return [orjson.loads(line) for line in stdout.splitlines() if line.strip().startswith(b"{")]


def write_config(tmp_path: Path, config: dict[str, Any], name: str = "config.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return str(path)


def lines(*messages: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(m) + b"\n" for m in messages)


def schema(stream: str, properties: dict[str, Any], keys: Iterable[str] = ("id",)) -> dict[str, Any]:
    return {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"type": "object", "properties": properties},
        "key_properties": list(keys),
    }


def record(stream: str, rec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "RECORD", "stream": stream, "record": rec, **extra}


def state(value: Any) -> dict[str, Any]:
    return {"type": "STATE", "value": value}


@pytest.fixture
def run_target(tmp_path: Path) -> Callable[..., Run]:
    def go(cls: type[Target], config: dict[str, Any], data: bytes, *args: str) -> Run:
        out, err = io.BytesIO(), io.StringIO()
        argv = ["--config", write_config(tmp_path, config, "target-config.json"), *args]
        rc = run_target_cli(cls, argv, stdin=io.BytesIO(data), stdout=out, stderr=err)
        return Run(rc, out.getvalue(), err.getvalue(), _parse(out.getvalue()))

    return go


@pytest.fixture
def run_tap(tmp_path: Path) -> Callable[..., Run]:
    def go(cls: type[Tap], config: dict[str, Any] | None, *args: str) -> Run:
        out, err = io.BytesIO(), io.StringIO()
        argv = list(args)
        if config is not None:
            argv = ["--config", write_config(tmp_path, config, "tap-config.json"), *argv]
        rc = run_tap_cli(cls, argv, stdout=out, stderr=err)
        return Run(rc, out.getvalue(), err.getvalue(), _parse(out.getvalue()))

    return go


@pytest.fixture(scope="session")
def sdk_target_streams() -> Path:
    """singer-sdk's conformance inputs (a dev dependency)."""
    import singer_sdk

    path = Path(singer_sdk.__file__).parent / "testing" / "target_test_streams"
    assert path.is_dir(), f"singer-sdk test streams not found at {path}"
    return path


@pytest.fixture(scope="session")
def bigquery_emulator() -> Iterator[Any]:
    """A bqemulator server for the session (tests/tools/bigquery_emulator.py): its `Emulator` handle."""
    from tests.tools.bigquery_emulator import running

    with running() as emulator:
        yield emulator
