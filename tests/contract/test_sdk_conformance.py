"""The singer-sdk target test streams through the installed console scripts.

Every stream file against every target is the shared suite's (tests/kit/target_suite.py,
`test_sdk_stream`); here the installed executables, as Meltano starts them, give the one-line error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest


@pytest.mark.parametrize("executable", ["target-jsonl", "target-duckdb"])
def test_installed_executables_reject_invalid_input(sdk_target_streams, tmp_path, executable):
    config = tmp_path / "config.json"
    config.write_text(
        orjson.dumps(
            {"destination_path": str(tmp_path)}
            if executable == "target-jsonl"
            else {"filepath": str(tmp_path / "x.db")}
        ).decode()
    )
    exe = Path(sys.executable).parent / executable
    proc = subprocess.run(
        [str(exe), "--config", str(config)],
        input=(sdk_target_streams / "record_before_schema.singer").read_bytes(),
        capture_output=True,
        check=False,
        env={**os.environ, "DPONE_LOG_LEVEL": "WARNING"},
    )
    assert proc.returncode == 65
    assert proc.stderr.decode().strip() == (
        f"{executable}: data error: line 1, stream 'test_record_before_schema': "
        "RECORD received before any SCHEMA for this stream"
    )
