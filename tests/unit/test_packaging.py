"""The installed names: connectors live under `dpone.`, so common names never collide in site-packages."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("name", ["taps", "targets", "state"])
def test_no_top_level_package_named(name, tmp_path):
    # Run outside the repository, where only what pip installed is importable.
    probe = f"import importlib.util; print(importlib.util.find_spec({name!r}) is None)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_connectors_import_under_dpone(tmp_path):
    probe = "import dpone.taps.postgres.cli, dpone.targets.duckdb.cli, dpone.state.store; print('ok')"
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
