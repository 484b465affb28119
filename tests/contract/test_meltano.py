"""Meltano runs this repo's meltano.yml: install, `meltano run tap-csv target-duckdb` twice, state between.

The project is copied to a temp dir (as a user's copy would be) and Meltano, from its own tool venv,
installs the two plugins it needs from that copy (pip_url uses ${MELTANO_PROJECT_ROOT}). No server:
the system database is Meltano's SQLite file in .meltano/. Plugin venvs are built once per session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import duckdb
import orjson
import pytest

from tests.tools import ROOT, tool_venv

pytestmark = pytest.mark.slow

PROJECT_FILES = ("pyproject.toml", "setup.py", "README.md", "meltano.yml", "examples")
# dpone/ holds links to taps/, targets/ and state/ (installed as dpone.taps, ...): copied as links.
PACKAGES = ("dpone_protocol", "dpone_drivers", "dpone", "taps", "targets", "state", "dpone_runner")
STATE_ID = "dev:tap-csv-to-target-duckdb"


class Meltano:
    def __init__(self, exe: Path, project: Path) -> None:
        self.exe = exe
        self.project = project
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TAP_", "TARGET_"))}
        self.env = {**env, "NO_COLOR": "1", "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false"}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.exe), *args],
            cwd=self.project,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, f"meltano {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc


def _copy_project(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "*.so")
    for name in (*PROJECT_FILES, *PACKAGES):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore, symlinks=True)
        else:
            shutil.copy2(src, dest / name)


@pytest.fixture(scope="session")
def meltano(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Meltano]:
    project = tmp_path_factory.mktemp("meltano-project")
    _copy_project(project)
    m = Meltano(tool_venv("meltano") / "bin" / "meltano", project)
    m("install", "tap-csv", "target-duckdb")
    yield m


def _counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}  # type: ignore[index]


def _bookmarks(state_json: str) -> dict[str, dict[str, object]]:
    # Our targets echo the bare state value, as Singer targets do; Meltano stores it as it came.
    state = orjson.loads(state_json)["singer_state"]
    assert "type" not in state, state
    return dict(state["bookmarks"])


def test_plugins_install_from_the_project_copy(meltano: Meltano) -> None:
    venv = meltano.project / ".meltano" / "extractors" / "tap-csv" / "venv"
    assert (venv / "bin" / "tap-csv").exists()
    finder = next((venv / "lib").glob("python3*/site-packages/__editable__*finder.py"))
    assert str(meltano.project / "taps") in finder.read_text()  # ${MELTANO_PROJECT_ROOT}, not this checkout


def test_meltano_run_twice_passes_the_committed_state_to_the_tap(meltano: Meltano) -> None:
    database = meltano.project / ".dpone" / "quickstart.duckdb"
    first = meltano("run", "tap-csv", "target-duckdb")
    assert "Incremental state has been updated" in first.stderr
    after_first = _counts(database)
    assert after_first == {"customers": 1000, "orders": 4000}

    bookmarks = _bookmarks(meltano("state", "get", STATE_ID).stdout)
    assert bookmarks["customers"]["replication_key"] == "updated_at"
    assert bookmarks["orders"]["replication_key"] == "ordered_at"

    second = meltano("run", "tap-csv", "target-duckdb")
    # The tap logs where it resumed: Meltano handed it the state with --state.
    start = bookmarks["customers"]["replication_key_value"]
    assert f"stream customers: INCREMENTAL from updated_at >= {start!r}" in second.stderr
    assert _counts(database) == after_first  # the bookmark rows are re-read and merged: +0 rows


def test_secrets_go_to_dotenv_not_meltano_yml(meltano: Meltano) -> None:
    meltano("config", "set", "target-postgres", "password", "s3cret-value")
    assert "s3cret-value" not in (meltano.project / "meltano.yml").read_text()
    assert "TARGET_POSTGRES_PASSWORD='s3cret-value'" in (meltano.project / ".env").read_text()
    listed = meltano("config", "list", "target-postgres").stdout
    assert "password [env: TARGET_POSTGRES_PASSWORD] current value: (redacted)" in listed
    assert "s3cret-value" not in listed
