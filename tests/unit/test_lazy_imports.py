"""Importing the protocol and asking a connector for --help load no database driver."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DRIVERS = (
    "psycopg",
    "psycopg2",
    "pyodbc",
    "confluent_kafka",
    "clickhouse_connect",
    "google.cloud",
    "duckdb",
    "pyarrow",
    "requests",
)
BIN = Path(sys.executable).parent


def imported_modules(code: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    return {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


def drivers_in(modules: set[str]) -> set[str]:
    return {m for m in modules if any(m == d or m.startswith(d + ".") for d in DRIVERS)}


def test_import_dpone_protocol_loads_no_driver():
    assert drivers_in(imported_modules("import dpone_protocol")) == set()


@pytest.mark.parametrize(
    "module",
    [
        "dpone.taps.csv.cli",
        "dpone.taps.postgres.tap",
        "dpone.targets.duckdb.target",
        "dpone.targets.postgres.target",
        "dpone.targets.jsonl.cli",
        "dpone_runner.cli",
        "dpone_runner.pipeline",
        "dpone.state.postgres_store",
    ],
)
def test_cli_modules_load_no_driver(module):
    assert drivers_in(imported_modules(f"import {module}")) == set()


@pytest.mark.parametrize(
    "exe", ["tap-csv", "tap-postgres", "target-duckdb", "target-postgres", "target-jsonl", "dpone"]
)
def test_help_runs_without_importing_drivers(exe):
    # PYTHONPROFILEIMPORTTIME makes the console script report its own imports.
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    proc = subprocess.run([str(BIN / exe), "--help"], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
    modules = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert modules, "import profiling did not run"
    assert drivers_in(modules) == set()
