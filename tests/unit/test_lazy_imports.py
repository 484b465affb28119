"""Importing the protocol and asking a connector for --help load no database driver.

Every connector declared in pyproject.toml's `dpone.connectors` entry points is checked, so a new
one (`dpone connectors new` adds its entry) is covered without editing this file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONNECTORS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][
    "dpone.connectors"
]  # name -> "module:Class"
CLASS_MODULES = sorted(target.split(":")[0] for target in CONNECTORS.values())
CLI_MODULES = {name: target.split(":")[0].rsplit(".", 1)[0] + ".cli" for name, target in CONNECTORS.items()}

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
    "obstore",
    "google.auth",
    "mssql_python_odbc",
    "sqlglot",
    "prometheus_client",
    "opentelemetry",
    "openlineage",
    "dagster",
)
BIN = Path(sys.executable).parent


def imported_modules(code: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    return {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


def drivers_in(modules: set[str]) -> set[str]:
    return {m for m in modules if any(m == d or m.startswith(d + ".") for d in DRIVERS)}


def test_import_dpone_protocol_loads_no_driver():
    assert drivers_in(imported_modules("import dpone_protocol")) == set()


def test_batch_files_and_manifests_load_no_object_store_client():
    code = "import dpone_protocol.batch_files, dpone_protocol.batch_manifest, dpone_protocol.object_store"
    assert drivers_in(imported_modules(code)) == set()


@pytest.mark.parametrize(
    "module",
    [
        *CLASS_MODULES,
        *sorted(CLI_MODULES.values()),
        "dpone_runner.cli",
        "dpone_runner.pipeline",
        "dpone.state.postgres_store",
        "dpone.state.mssql_store",
        "dpone_runner.partitions_cli",
        "dpone_runner.partitions.api",
    ],
)
def test_cli_modules_load_no_driver(module):
    assert drivers_in(imported_modules(f"import {module}")) == set()


def test_every_connector_of_the_repository_is_checked():
    assert {"tap-csv", "tap-postgres", "target-duckdb", "target-postgres", "target-jsonl"} <= set(CONNECTORS)


@pytest.mark.parametrize("exe", [*sorted(CONNECTORS), "dpone"])
def test_help_runs_without_importing_drivers(exe):
    # PYTHONPROFILEIMPORTTIME makes the command report its own imports. The console script where it
    # is installed; a connector added since the last `pip install -e .` runs from its cli module.
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    command = [str(BIN / exe)]
    if not (BIN / exe).exists() and exe in CLI_MODULES:
        command = [sys.executable, "-c", f"from {CLI_MODULES[exe]} import main; main()"]
    proc = subprocess.run([*command, "--help"], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
    modules = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert modules, "import profiling did not run"
    assert drivers_in(modules) == set()
