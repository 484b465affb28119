"""Resource limits from dpone.yml stop a misbehaving connector; the run fails clearly."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

from dpone_runner.cli import run as dpone

SCHEMA = (
    '{"type":"SCHEMA","stream":"s","schema":{"type":"object","properties":{"id":{"type":"integer"}}},'
    '"key_properties":["id"]}'
)


def project(tmp_path: Path, tap_body: str, limits: str) -> Path:
    tap = tmp_path / "tap-fake"
    tap.write_text(f"#!{sys.executable}\n" + textwrap.dedent(tap_body))
    tap.chmod(0o755)
    (tmp_path / "meltano.yml").write_text(
        textwrap.dedent(f"""
        plugins:
          extractors:
          - name: tap-fake
            executable: {tap}
            capabilities: [state]
          loaders:
          - name: target-jsonl
            config: {{destination_path: {tmp_path / "out"}}}
        """)
    )
    (tmp_path / "dpone.yml").write_text(f"limits: {limits}\n")
    return tmp_path


def run(tmp_path: Path, capsys) -> tuple[int, str]:
    rc = dpone(
        [
            "run",
            "tap-fake",
            "target-jsonl",
            "--project",
            str(tmp_path),
            "--no-progress",
            "--state-backend",
            f"sqlite:///{tmp_path / 'state.db'}",
        ]
    )
    return rc, capsys.readouterr().err


def test_memory_limit_stops_a_tap_that_allocates_too_much(tmp_path, capsys):
    body = f"""
        import sys
        print({SCHEMA!r}, flush=True)
        hog = bytearray(1024 * 1024 * 1024)
        print("unreachable", flush=True)
    """
    rc, err = run(project(tmp_path, body, "{memory_mb: 300}"), capsys)
    assert rc != 0
    assert "tap-fake failed" in err and "MemoryError" in err


def test_wall_time_limit_stops_a_hanging_tap(tmp_path, capsys):
    body = f"""
        import time
        print({SCHEMA!r}, flush=True)
        time.sleep(60)
    """
    started = time.monotonic()
    rc, err = run(project(tmp_path, body, "{wall_seconds: 1}"), capsys)
    assert time.monotonic() - started < 15
    assert rc != 0
    assert "tap-fake was stopped (wall time limit 1s): killed by signal 15 (SIGTERM)" in err
