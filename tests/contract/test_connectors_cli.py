"""`dpone connectors list` and `dpone connectors new`: what is installed, and a new connector that works at once.

The proof of `new` runs in a copy of the repository (its tracked and unignored files, the dpone/ links
included): a tap and a target are generated there, their tests run with pytest inside the copy, ruff
and mypy check them, and the tap is piped into the target from a shell.
"""

from __future__ import annotations

import difflib
import io
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from dpone_runner.cli import run as dpone
from tests.tools import ROOT
from tests.unit.test_lazy_imports import drivers_in

BIN = Path(sys.executable).parent
OURS = {"tap-csv", "tap-postgres", "target-jsonl", "target-duckdb", "target-postgres"}

FAKE_MODULE = """
import json, sys, time

def tap_ok():
    print(json.dumps({"name": "tap-fake-ok", "description": "a Singer SDK tap", "version": "1.2.3",
                      "capabilities": ["catalog", "discover", "state"], "settings": {}}))

def tap_hang():
    time.sleep(120)

def target_fail():
    sys.stderr.write("target-fake-fail: --about? never heard of it\\n")
    sys.exit(3)

def target_text():
    print("target-fake-text, version 0.1")
"""
FAKE_SCRIPTS = {
    "tap-fake-ok": "tap_ok",
    "tap-fake-hang": "tap_hang",
    "target-fake-fail": "target_fail",
    "target-fake-text": "target_text",
    "fake-tool": "tap_ok",  # not named tap-* or target-*: not a connector
}


def run_dpone(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "dpone"), *args], capture_output=True, text=True, cwd=cwd, env={**os.environ, **env}, check=False
    )


@pytest.fixture
def third_party(tmp_path: Path) -> str:
    """A distribution beside dpone with four connector scripts (one good, one hangs, two fail): its PYTHONPATH."""
    site = tmp_path / "site"
    info = site / "fake_connectors-0.9.1.dist-info"
    info.mkdir(parents=True)
    (site / "fake_connectors.py").write_text(FAKE_MODULE)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-connectors\nVersion: 0.9.1\n")
    scripts = "".join(f"{name} = fake_connectors:{func}\n" for name, func in FAKE_SCRIPTS.items())
    (info / "entry_points.txt").write_text(f"[console_scripts]\n{scripts}")
    return str(site)


# -- list -------------------------------------------------------------------------------------------------


def test_list_json_shows_ours_with_capabilities_without_loading_a_driver() -> None:
    proc = run_dpone("connectors", "list", "--format", "json", PYTHONPROFILEIMPORTTIME="1")
    assert proc.returncode == 0, proc.stderr
    modules = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert modules and drivers_in(modules) == set()
    listed = {c["name"]: c for c in orjson.loads(proc.stdout)}
    assert set(listed) >= OURS
    duckdb = listed["target-duckdb"]
    assert (duckdb["kind"], duckdb["distribution"], duckdb["source"], duckdb["unknown"]) == (
        "target",
        "dpone",
        "entry point",
        None,
    )
    assert duckdb["capabilities"] == ["about", "activate-version", "hard-delete", "batch"]
    assert duckdb["load_methods"] == ["append-only", "upsert", "overwrite"]
    assert listed["tap-csv"]["capabilities"] == ["catalog", "discover", "state", "about", "batch", "stream-maps"]
    assert listed["target-jsonl"]["load_methods"] == ["append-only", "overwrite"]
    assert {c["version"] for name, c in listed.items() if name in OURS} == {listed["tap-csv"]["version"]}


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "soon"])
def test_list_refuses_a_timeout_that_is_not_a_positive_number(timeout: str) -> None:
    proc = run_dpone("connectors", "list", "--timeout", timeout)
    assert proc.returncode == 2
    assert "--timeout: must be a number of seconds above 0" in proc.stderr


def test_list_table() -> None:
    out = io.StringIO()
    assert dpone(["connectors", "list"], stdout=out) == 0
    header, *rows = out.getvalue().splitlines()
    assert header.split() == ["NAME", "KIND", "DISTRIBUTION", "VERSION", "CAPABILITIES"]
    by_name = {row.split()[0]: row for row in rows}
    assert set(by_name) >= OURS
    assert by_name["tap-postgres"].split()[1:3] == ["tap", "dpone"]
    assert (
        "about, activate-version, hard-delete, batch; load methods: append-only, upsert, overwrite"
        in (by_name["target-postgres"])
    )


def test_list_asks_third_party_connectors_and_bounds_each_answer(third_party: str) -> None:
    started = time.monotonic()
    proc = run_dpone("connectors", "list", "--format", "json", "--timeout", "1", PYTHONPATH=third_party)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 6, f"the hanging connector held the listing for {elapsed:.1f}s"
    listed = {c["name"]: c for c in orjson.loads(proc.stdout)}
    assert "fake-tool" not in listed
    ok = listed["tap-fake-ok"]
    assert (ok["kind"], ok["distribution"], ok["version"], ok["source"]) == (
        "tap",
        "fake-connectors",
        "0.9.1",
        "--about",
    )
    assert ok["capabilities"] == ["catalog", "discover", "state"]
    assert ok["unknown"] is None
    unknown = {name: listed[name]["unknown"] for name in ("tap-fake-hang", "target-fake-fail", "target-fake-text")}
    assert unknown == {
        "tap-fake-hang": "no answer to --about within 1s",
        "target-fake-fail": "--about exited 3: target-fake-fail: --about? never heard of it",
        "target-fake-text": "--about --format json printed no JSON",
    }
    assert all(listed[name]["capabilities"] is None for name in unknown)
    assert set(listed) >= OURS

    table = run_dpone("connectors", "list", "--timeout", "1", PYTHONPATH=third_party)
    rows = {line.split()[0]: line for line in table.stdout.splitlines()[1:]}
    assert rows["tap-fake-ok"].split()[1:5] == ["tap", "fake-connectors", "0.9.1", "catalog,"]
    assert rows["tap-fake-hang"].endswith("unknown (no answer to --about within 1s)")


# -- new: refusals ----------------------------------------------------------------------------------------


@pytest.fixture
def small_checkout(tmp_path: Path) -> Path:
    """Enough of a checkout for `new` to look for names in: pyproject.toml, meltano.yml, taps/, targets/."""
    root = tmp_path / "checkout"
    for part in ("taps/csv", "targets/jsonl", "tests/contract", "docs/connectors"):
        (root / part).mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", root)
    shutil.copy(ROOT / "meltano.yml", root)
    return root


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"" for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize(
    ("kind", "name", "says"),
    [
        ("tap", "Shop", "name 'Shop' is not valid"),
        ("tap", "9lives", "is not valid"),
        ("target", "a--b", "is not valid"),
        ("target", "with space", "is not valid"),
        ("tap", "x" * 33, "at most 32 characters"),
        ("tap", "tap-shop", "without the 'tap-' prefix: `dpone connectors new tap shop`"),
        ("tap", "target-shop", "without the 'target-' prefix: `dpone connectors new target shop`"),
        ("tap", "tap_shop", "without the 'tap_' prefix"),
        ("tap", "tap-", "without the 'tap-' prefix"),
        ("tap", "class", "name 'class' is reserved"),
        ("target", "framework", "is reserved (it would be the package targets/framework)"),
        ("tap", "csv", "tap-csv exists already in"),
        ("target", "jsonl", "target-jsonl exists already in"),
        ("target", "duckdb", "target-duckdb exists already: pyproject.toml [project.scripts] declares it"),
        ("tap", "postgres", "tap-postgres exists already"),
    ],
)
def test_new_refuses_a_bad_or_taken_name_and_writes_nothing(
    small_checkout: Path, kind: str, name: str, says: str
) -> None:
    before = snapshot(small_checkout)
    err = io.StringIO()
    rc = dpone(["connectors", "new", kind, name, "--root", str(small_checkout)], stdout=io.StringIO(), stderr=err)
    assert rc == 78, err.getvalue()
    assert err.getvalue().startswith("dpone: config error: "), err.getvalue()
    assert says in err.getvalue()
    assert snapshot(small_checkout) == before


def test_new_refuses_a_name_only_meltano_yml_has(small_checkout: Path) -> None:
    meltano = small_checkout / "meltano.yml"
    meltano.write_text(meltano.read_text().replace("name: tap-csv", "name: tap-sheets"))
    err = io.StringIO()
    rc = dpone(["connectors", "new", "tap", "sheets", "--root", str(small_checkout)], stderr=err)
    assert rc == 78
    assert "tap-sheets exists already: meltano.yml declares a plugin of that name" in err.getvalue()


def test_new_needs_a_checkout(tmp_path: Path) -> None:
    err = io.StringIO()
    assert dpone(["connectors", "new", "tap", "shop", "--root", str(tmp_path)], stderr=err) == 78
    assert f"--root {tmp_path}: not a dpone checkout" in err.getvalue()
    proc = run_dpone("connectors", "new", "tap", "shop", cwd=tmp_path)
    assert proc.returncode == 78
    assert f"{tmp_path} is not inside a dpone checkout: run this there, or pass --root DIR" in proc.stderr
    assert list(tmp_path.iterdir()) == []


# -- new: the skeletons work ------------------------------------------------------------------------------


def copy_checkout(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        rel = raw.decode()
        source = ROOT / rel
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)  # dpone/taps -> ../taps stays a link, into the copy


def in_copy(root: Path, *command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS")}
    return subprocess.run(command, cwd=root, capture_output=True, text=True, env=env, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    untouched = {name: (ROOT / name).read_bytes() for name in ("pyproject.toml", "meltano.yml")}
    root = tmp_path_factory.mktemp("repo")
    copy_checkout(root)
    for name in ("pyproject.toml", "meltano.yml"):
        shutil.copy(root / name, root.parent / f"{name}.before")
    # Run from inside the copy with no --root: the checkout around the working directory is used.
    # `zeta` sorts after `framework` and `abc` before it, so both orders of cli.py's imports are made.
    for kind, name in (("tap", "zeta-api"), ("target", "abc")):
        proc = run_dpone("connectors", "new", kind, name, cwd=root / "docs")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"wrote {kind}-{name}:\n")
    yield root
    assert {name: (ROOT / name).read_bytes() for name in untouched} == untouched, "the repository itself changed"


TAP_FILES = ["taps/zeta_api/__init__.py", "taps/zeta_api/cli.py", "taps/zeta_api/tap.py"]
TARGET_FILES = ["targets/abc/__init__.py", "targets/abc/cli.py", "targets/abc/target.py"]
TESTS = ["tests/contract/test_tap_zeta_api.py", "tests/contract/test_target_abc.py"]


@pytest.mark.slow
def test_the_copy_imports_its_own_generated_packages(generated: Path) -> None:
    code = "import dpone.taps.zeta_api.tap as t, dpone.targets.abc.target as g; print(t.__file__); print(g.__file__)"
    proc = in_copy(generated, sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        str(generated / "dpone/taps/zeta_api/tap.py"),
        str(generated / "dpone/targets/abc/target.py"),
    ]
    for rel in [*TAP_FILES, *TARGET_FILES, *TESTS, "docs/connectors/tap-zeta-api.md", "docs/connectors/target-abc.md"]:
        assert (generated / rel).is_file(), rel


@pytest.mark.slow
def test_the_generated_tests_and_the_meltano_checks_pass_in_the_copy(generated: Path) -> None:
    # -v (addopts off) names every test with its outcome: the copy's own modules and plugins are seen to run.
    argv = ["-m", "pytest", "-o", "addopts=", "-v", "-p", "no:cacheprovider", "-p", "no:bqemulator", "--strict-markers"]
    proc = in_copy(generated, sys.executable, *argv, *TESTS, "tests/unit/test_meltano_yml.py")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    outcome = proc.stdout.splitlines()[-1]
    assert " passed" in outcome and "failed" not in outcome and "error" not in outcome, outcome
    for test in (
        "test_tap_zeta_api.py::TestZetaApiTap::test_incremental_resumes_at_the_bookmark_and_resends_ties PASSED",
        "test_tap_zeta_api.py::TestZetaApiTap::test_the_generated_example_resumes_at_its_bookmark PASSED",
        "test_target_abc.py::TestAbcTarget::test_state_is_echoed_only_after_the_records_before_it_commit PASSED",
        "test_target_abc.py::TestAbcTarget::test_writes_one_file_per_batch_and_drops_a_torn_one PASSED",
        "test_meltano_yml.py::test_settings_match_the_connector[tap-zeta-api] PASSED",
        "test_meltano_yml.py::test_plugin_identity_capabilities_and_pip_url[target-abc] PASSED",
        "test_meltano_yml.py::test_every_console_script_is_a_meltano_plugin PASSED",
    ):
        assert test in proc.stdout, test


@pytest.mark.slow
def test_the_generated_code_is_ruff_and_mypy_clean(generated: Path) -> None:
    files = [*TAP_FILES, *TARGET_FILES, *TESTS]
    for command in (["ruff", "check", *files], ["ruff", "format", "--check", *files]):
        proc = in_copy(generated, str(BIN / command[0]), *command[1:])
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = in_copy(generated, str(BIN / "mypy"), "dpone/taps/zeta_api", "dpone/targets/abc")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_the_generated_tap_pipes_into_the_generated_target(generated: Path, tmp_path: Path) -> None:
    (tmp_path / "tap.json").write_text('{"rows": 4}')
    (tmp_path / "target.json").write_text(orjson.dumps({"destination_path": str(tmp_path / "out")}).decode())
    pipeline = (
        f"{sys.executable} -m dpone.taps.zeta_api.cli --config {tmp_path}/tap.json"
        f" | {sys.executable} -m dpone.targets.abc.cli --config {tmp_path}/target.json"
    )
    proc = in_copy(generated, "bash", "-o", "pipefail", "-c", pipeline)
    assert proc.returncode == 0, proc.stderr
    states = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert states[-1]["bookmarks"]["example"]["replication_key_value"] == "2024-01-01T00:04:00+00:00"
    files = sorted((tmp_path / "out" / "example").glob("*.jsonl"))
    rows = [orjson.loads(line) for path in files for line in path.read_bytes().splitlines()]
    assert [(r["id"], r["name"]) for r in rows] == [(1, "row 1"), (2, "row 2"), (3, "row 3"), (4, "row 4")]


@pytest.mark.slow
def test_the_project_files_are_edited_in_place(generated: Path) -> None:
    added = {
        'tap-zeta-api = "dpone.taps.zeta_api.cli:main"',
        'target-abc = "dpone.targets.abc.cli:main"',
        'tap-zeta-api = "dpone.taps.zeta_api.tap:ZetaApiTap"',
        'target-abc = "dpone.targets.abc.target:AbcTarget"',
    }
    before = (generated.parent / "pyproject.toml.before").read_text().splitlines()
    edited = (generated / "pyproject.toml").read_text().splitlines()
    assert set(edited) - set(before) == added
    assert [line for line in edited if line not in added] == before  # every other line kept, in its order
    project = tomllib.loads("\n".join(edited))["project"]
    assert project["scripts"]["target-abc"] == "dpone.targets.abc.cli:main"
    assert project["entry-points"]["dpone.connectors"]["tap-zeta-api"] == "dpone.taps.zeta_api.tap:ZetaApiTap"

    before = (generated.parent / "meltano.yml.before").read_text().splitlines()
    edited = (generated / "meltano.yml").read_text().splitlines()
    changes = difflib.SequenceMatcher(None, before, edited, autojunk=False).get_opcodes()
    assert {op for op, *_ in changes} == {"equal", "insert"}  # lines added, none changed or lost
    plugins: dict[str, Any] = yaml.safe_load("\n".join(edited))["plugins"]
    assert plugins["extractors"][-1]["name"] == "tap-zeta-api"
    assert plugins["loaders"][-1] == {
        "name": "target-abc",
        "namespace": "target_abc",
        "executable": "target-abc",
        "pip_url": "-e ${MELTANO_PROJECT_ROOT}",
        "capabilities": ["about", "batch"],
        "settings": [
            {"name": "destination_path", "kind": "string"},
            {"name": "batch_size_rows", "kind": "integer"},
            {"name": "batch_size_bytes", "kind": "integer"},
            {"name": "batch_max_age_seconds", "kind": "decimal"},
            {"name": "add_record_metadata", "kind": "boolean"},
            {"name": "batch_storage_options", "kind": "object"},
            {"name": "batch_spool_dir", "kind": "string"},
            {"name": "exact_json_numbers", "kind": "boolean"},
        ],
    }
    assert "    pip_url: -e ${MELTANO_PROJECT_ROOT}\n    capabilities: [about, batch]\n" in "\n".join(edited) + "\n"
    doc = (generated / "docs/connectors/target-abc.md").read_text()
    assert "| `destination_path` | string | `output` | Directory with a folder of batch files per stream. |" in doc


def test_the_templates_are_package_data() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    folder = ROOT / "dpone_runner" / "scaffold" / "templates"
    assert (folder / "__init__.py").is_file()  # a package of its own: found with the others, not warned about
    templates = {p.name for p in folder.iterdir() if p.name != "__init__.py" and p.suffix != ".pyc" and p.is_file()}
    matched = {p.name for pattern in declared["dpone_runner.scaffold.templates"] for p in folder.glob(pattern)}
    assert templates and templates == matched
