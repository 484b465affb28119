"""`dpone certify`: every declared cell of every connector, judged by the evidence found for it.

The evidence here is written the way its producers write it: test records as tests/certify_evidence.py
writes them (and that plugin itself runs in a pytest subprocess on a generated test file), benchmark
figures through bench/evidence.py. A cell with no passing test is never shown as proven.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench import evidence as bench_evidence
from dpone.taps.csv.tap import CsvTap
from dpone.taps.postgres.tap import PostgresTap
from dpone.targets.jsonl.target import JsonlTarget
from dpone.targets.postgres.target import PostgresTarget
from dpone_runner.certify.declared import label, load_declared
from dpone_runner.cli import run as dpone
from tests.tools import ROOT

BIN = Path(sys.executable).parent
NODE = "tests/contract/test_x.py::TestX::test_y"
FORMATS = ("text", "json", "markdown")


def certify(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = dpone(["certify", *args], stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def evidence_record(
    connector: str, cell: str, outcome: str, nodeid: str = NODE, date: str = "2025-01-02T03:04:05Z", reason: str = ""
) -> dict[str, Any]:
    return {"connector": connector, "cell": cell, "outcome": outcome, "nodeid": nodeid, "date": date, "reason": reason}


def evidence_dir(tmp_path: Path, records: Iterable[dict[str, Any]], name: str = "session.jsonl") -> Path:
    directory = tmp_path / "evidence"
    directory.mkdir(exist_ok=True)
    with (directory / name).open("ab") as fh:
        fh.writelines(orjson.dumps(r) + b"\n" for r in records)
    return directory


def empty(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    return directory


def as_json(evidence: Path, *args: str) -> dict[str, dict[str, Any]]:
    """connector -> cell -> the cell's JSON document."""
    rc, out, err = certify("--format", "json", "--evidence", str(evidence), *args)
    assert rc == 0, err
    doc = orjson.loads(out)
    return {c["name"]: {cell["cell"]: cell for cell in c["cells"]} for c in doc["connectors"]}


@pytest.fixture
def no_bench(tmp_path: Path) -> str:
    return str(empty(tmp_path, "bench-results"))


class TestWithoutEvidence:
    def test_every_declared_cell_is_unproven_in_json(self, tmp_path: Path, no_bench: str) -> None:
        cells = as_json(empty(tmp_path, "evidence"), "--bench-results", no_bench)
        declared = {d.name: d for d in load_declared()}
        assert set(cells) == set(declared) >= {"tap-postgres", "target-postgres", "target-jsonl", "tap-kafka"}
        for name, by_cell in cells.items():
            assert {c for c, doc in by_cell.items() if doc["status"] != "n/a"} == set(declared[name].cells), name
            for doc in by_cell.values():
                assert doc["status"] in ("unproven", "n/a"), (name, doc)
                assert doc["tests"] == {"passed": 0, "failed": 0, "skipped": 0}
                if doc["status"] == "unproven":
                    assert doc["reasons"] in (["no test result"], ["no benchmark figures recorded"])

    def test_the_declared_cells_are_the_classes_own_capabilities(self, tmp_path: Path, no_bench: str) -> None:
        cells = as_json(empty(tmp_path, "evidence"), "--bench-results", no_bench)

        def declared(name: str) -> set[str]:
            return {c for c, doc in cells[name].items() if doc["status"] != "n/a"}

        pg = PostgresTarget.capabilities
        assert {c.split(":")[1] for c in declared("target-postgres") if c.startswith("load_method:")} == set(
            pg.load_methods
        )
        assert {"delete:hard", "delete:soft", "activate_version", "schema_evolution:widening"} <= declared(
            "target-postgres"
        )
        assert JsonlTarget.capabilities.load_methods == ("append-only", "overwrite")
        assert declared("target-jsonl") == {
            "load_method:append-only",
            "load_method:overwrite",
            "batch",
            "airbyte",
            "types",
            "benchmark",
        }
        methods = {c.split(":")[1] for c in declared("tap-postgres") if c.startswith("replication_method:")}
        assert methods == set(PostgresTap.replication_methods) == {"FULL_TABLE", "INCREMENTAL", "XMIN", "LOG_BASED"}
        assert {c for c in declared("tap-kafka") if c.startswith("replication_method:")} == {
            "replication_method:LOG_BASED"
        }
        assert "activate_version" not in declared("tap-csv") and "activate-version" not in CsvTap.capabilities

    def test_the_text_matrix_shows_nothing_proven(self, tmp_path: Path, no_bench: str) -> None:
        rc, out, err = certify("--evidence", str(empty(tmp_path, "evidence")), "--bench-results", no_bench)
        assert rc == 0, err
        lines = out.splitlines()
        assert lines[0].startswith("evidence: 0 test records in ")
        targets = [d for d in load_declared() if d.kind == "target"]
        header = lines.index(next(line for line in lines if line.startswith("TARGETS")))
        assert lines[header].split() == ["TARGETS", *(d.name.removeprefix("target-") for d in targets)]
        upsert = next(line for line in lines[header:] if line.startswith("upsert "))
        expected = ["unproven" if "load_method:upsert" in d.cells else "-" for d in targets]
        assert upsert.split() == ["upsert", *expected]
        assert "-" in expected and "unproven" in expected  # target-jsonl does not merge; target-postgres does
        assert "proven (" not in out and "FAILED" not in out
        total = sum(len(d.cells) for d in load_declared())
        assert f"{total} declared cells: 0 proven, 0 failed, {total} unproven" in out

    def test_a_missing_default_directory_is_no_evidence_not_an_error(self, tmp_path: Path, no_bench: str) -> None:
        env = {**os.environ, "DPONE_EVIDENCE_DIR": str(tmp_path / "never-made")}
        done = subprocess.run(
            [str(BIN / "dpone"), "certify", "target-jsonl", "--bench-results", no_bench],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert f"evidence: 0 test records in {tmp_path / 'never-made'}" in done.stdout
        assert "target-jsonl (target): 0 of 6 declared cells proven, 0 failed, 6 unproven" in done.stdout


class TestVerdicts:
    """Each outcome of a test, in each format."""

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_a_passing_test_proves_its_cell(self, tmp_path: Path, no_bench: str, fmt: str) -> None:
        records = [
            evidence_record(
                "target-postgres", "load_method:upsert", "passed", f"{NODE}[{i}]", f"2025-01-0{i}T00:00:00Z"
            )
            for i in (1, 2)
        ]
        evidence = evidence_dir(tmp_path, records)
        rc, out, err = certify(
            "target-postgres", "--format", fmt, "--evidence", str(evidence), "--bench-results", no_bench
        )
        assert rc == 0, err
        if fmt == "json":
            (row,) = orjson.loads(out)["connectors"]
            cell = next(c for c in row["cells"] if c["cell"] == "load_method:upsert")
            assert cell["status"] == "proven" and cell["tests"]["passed"] == 2
            assert cell["last"] == "2025-01-02T00:00:00Z"
            assert [e["nodeid"] for e in cell["evidence"]] == [f"{NODE}[1]", f"{NODE}[2]"]
        elif fmt == "text":
            line = next(line for line in out.splitlines() if line.strip().startswith("upsert "))
            assert line.split(None, 2)[1:] == ["proven", "2 tests passed, last run 2025-01-02T00:00:00Z"]
        else:
            assert "| upsert | **proven** (2) |" in out
            assert "- upsert: **proven**: 2 tests passed, last run 2025-01-02T00:00:00Z" in out

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_a_failed_test_fails_its_cell_whatever_passed(self, tmp_path: Path, no_bench: str, fmt: str) -> None:
        records = [
            evidence_record("target-postgres", "delete:hard", "passed", f"{NODE}[a]"),
            evidence_record("target-postgres", "delete:hard", "failed", f"{NODE}[b]", reason="AssertionError: 2 rows"),
        ]
        evidence = evidence_dir(tmp_path, records)
        rc, out, err = certify(
            "target-postgres", "--format", fmt, "--evidence", str(evidence), "--bench-results", no_bench
        )
        assert rc == 0, err
        why = f"{NODE}[b]: AssertionError: 2 rows"
        if fmt == "json":
            cell = next(c for c in orjson.loads(out)["connectors"][0]["cells"] if c["cell"] == "delete:hard")
            assert (cell["status"], cell["tests"], cell["reasons"]) == (
                "failed",
                {"passed": 1, "failed": 1, "skipped": 0},
                [why],
            )
        elif fmt == "text":
            line = next(line for line in out.splitlines() if line.strip().startswith("hard delete"))
            assert line.split(None, 3)[2:] == ["failed", why]
            assert "1 failed" in out.splitlines()[2]
        else:
            assert "| hard delete | **FAILED** |" in out and f"- hard delete: **failed**: {why}" in out

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_a_skipped_test_leaves_its_cell_unproven_saying_why(self, tmp_path: Path, no_bench: str, fmt: str) -> None:
        reason = "DPONE_TEST_MSSQL_DSN is not set: no live SQL Server to read"
        records = [evidence_record("tap-mssql", "replication_method:ROWVERSION", "skipped", reason=reason)]
        evidence = evidence_dir(tmp_path, records)
        rc, out, err = certify("tap-mssql", "--format", fmt, "--evidence", str(evidence), "--bench-results", no_bench)
        assert rc == 0, err
        if fmt == "json":
            cell = next(c for c in orjson.loads(out)["connectors"][0]["cells"] if c["cell"].endswith("ROWVERSION"))
            assert (cell["status"], cell["reasons"]) == ("unproven", [f"skipped: {reason}"])
            assert cell["tests"] == {"passed": 0, "failed": 0, "skipped": 1}
        elif fmt == "text":
            line = next(line for line in out.splitlines() if line.strip().startswith("ROWVERSION"))
            assert line.split(None, 2)[1:] == ["unproven", f"skipped: {reason}"]
        else:
            assert "| ROWVERSION | unproven |" in out and f"- ROWVERSION: **unproven**: skipped: {reason}" in out

    def test_a_skip_beside_a_pass_is_still_proven(self, tmp_path: Path, no_bench: str) -> None:
        records = [
            evidence_record("target-duckdb", "batch", "passed", f"{NODE}[a]"),
            evidence_record("target-duckdb", "batch", "skipped", f"{NODE}[b]", reason="no parquet"),
        ]
        cells = as_json(evidence_dir(tmp_path, records), "--bench-results", no_bench)
        assert cells["target-duckdb"]["batch"]["status"] == "proven"
        _, out, _ = certify("target-duckdb", "--evidence", str(tmp_path / "evidence"), "--bench-results", no_bench)
        assert "1 test passed, 1 skipped, last run" in out

    @pytest.mark.parametrize(
        ("runs", "status"),
        [(["failed", "passed"], "proven"), (["passed", "failed"], "failed"), (["passed", "skipped"], "unproven")],
        ids=["fixed", "broken", "skipped_since"],
    )
    def test_the_newest_run_of_a_test_counts(self, tmp_path: Path, no_bench: str, runs: list[str], status: str) -> None:
        # Two sessions, as two `make test` runs leave them: the later file's record wins.
        for day, outcome in enumerate(runs, 1):
            record = evidence_record(
                "target-duckdb", "load_method:overwrite", outcome, date=f"2025-01-0{day}T00:00:00Z"
            )
            evidence_dir(tmp_path, [record], name=f"session-{day}.jsonl")
        cell = as_json(tmp_path / "evidence", "--bench-results", no_bench)["target-duckdb"]
        assert cell["load_method:overwrite"]["status"] == status
        assert len(cell["load_method:overwrite"]["evidence"]) == 1

    def test_evidence_for_a_cell_the_connector_does_not_declare_is_not_applicable(
        self, tmp_path: Path, no_bench: str
    ) -> None:
        records = [
            evidence_record("target-jsonl", "load_method:upsert", "passed"),
            evidence_record("tap-nobody", "catalog", "passed"),  # an example connector outside the entry points
        ]
        cells = as_json(evidence_dir(tmp_path, records), "--bench-results", no_bench)
        assert cells["target-jsonl"]["load_method:upsert"]["status"] == "n/a"
        assert "tap-nobody" not in cells


class TestBenchmarks:
    def test_recorded_figures_prove_the_benchmark_cell(self, tmp_path: Path) -> None:
        results = empty(tmp_path, "bench-results")
        path = bench_evidence.record("tap-rest", "pages", {"records": 1000, "seconds": 0.27812}, results)
        assert path == results / "tap-rest.json"
        evidence = str(empty(tmp_path, "evidence"))
        rc, out, err = certify("tap-rest", "--evidence", evidence, "--bench-results", str(results))
        assert rc == 0, err
        line = next(line for line in out.splitlines() if line.strip().startswith("benchmark figures"))
        assert line.split(None, 3)[2] == "proven"
        assert "pages (20" in line and "CPUs" in line and "records: 1,000; seconds: 0.28" in line

        doc = orjson.loads(
            certify("tap-rest", "--format", "json", "--evidence", evidence, "--bench-results", str(results))[1]
        )
        (bench,) = [c for c in doc["connectors"][0]["cells"] if c["cell"] == "benchmark"]
        (figures,) = bench["figures"]
        assert figures["figures"] == {"records": 1000, "seconds": 0.278}  # timings rounded to three decimals
        assert figures["machine"]["cpus"] == os.cpu_count() and figures["machine"]["commit"]
        markdown = certify("tap-rest", "--format", "markdown", "--evidence", evidence, "--bench-results", str(results))[
            1
        ]
        assert "| benchmark figures | **proven** |" in markdown

    def test_the_newest_runs_of_a_benchmark_are_kept_and_the_newest_is_shown(self, tmp_path: Path) -> None:
        results = empty(tmp_path, "bench-results")
        for n in range(bench_evidence.KEEP + 2):
            bench_evidence.record("target-kafka", "produce", {"run": n}, results)
        bench_evidence.record("target-kafka", "another", {"run": 0}, results)
        doc = orjson.loads((results / "target-kafka.json").read_text())
        assert [r["figures"]["run"] for r in doc["runs"] if r["name"] == "produce"] == list(
            range(2, 2 + bench_evidence.KEEP)
        )
        cells = as_json(empty(tmp_path, "evidence"), "--bench-results", str(results))
        shown = cells["target-kafka"]["benchmark"]["figures"]
        assert [(f["name"], f["figures"]) for f in shown] == [("another", {"run": 0}), ("produce", {"run": 6})]

    def test_the_committed_results_name_a_connector_and_a_machine(self) -> None:
        # bench/results/ is committed: a fresh clone shows the last figures measured.
        files = sorted((ROOT / "bench" / "results").glob("*.json"))
        assert files
        names = {d.name for d in load_declared()}
        for path in files:
            doc = orjson.loads(path.read_bytes())
            assert doc["connector"] == path.stem and doc["connector"] in names
            assert all(run["machine"]["cpus"] and run["date"] and run["figures"] for run in doc["runs"])


class TestStrictAndErrors:
    def test_strict_exits_65_while_a_declared_cell_is_unproven(self, tmp_path: Path, no_bench: str) -> None:
        evidence = str(empty(tmp_path, "evidence"))
        rc, out, err = certify("target-jsonl", "--strict", "--evidence", evidence, "--bench-results", no_bench)
        assert rc == 65
        assert "target-jsonl (target): 0 of 6" in out  # the matrix is printed all the same
        assert err.strip().splitlines()[-1].startswith("dpone: data error: 6 declared cells are not proven: ")
        assert "target-jsonl load_method:append-only (unproven)" in err and "and 1 more" in err

    def test_strict_exits_0_once_every_declared_cell_is_proven(self, tmp_path: Path) -> None:
        (jsonl,) = [d for d in load_declared() if d.name == "target-jsonl"]
        records = [evidence_record("target-jsonl", cell, "passed") for cell in jsonl.cells if cell != "benchmark"]
        results = empty(tmp_path, "bench-results")
        bench_evidence.record("target-jsonl", "write", {"rows": 10}, results)
        evidence = evidence_dir(tmp_path, records)
        rc, out, err = certify("target-jsonl", "--strict", "--evidence", str(evidence), "--bench-results", str(results))
        assert (rc, err) == (0, "")
        assert "target-jsonl (target): 6 of 6 declared cells proven, 0 failed, 0 unproven" in out

    def test_an_unknown_connector_is_a_config_error_naming_the_known_ones(self, tmp_path: Path) -> None:
        done = subprocess.run(
            [str(BIN / "dpone"), "certify", "target-nosuch"], capture_output=True, text=True, check=False
        )
        assert done.returncode == 78
        assert done.stdout == ""
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("dpone: config error: no connector 'target-nosuch'; known: ")
        assert "tap-csv" in line and "target-postgres" in line and "Traceback" not in done.stderr

    @pytest.mark.parametrize("option", ["--evidence", "--bench-results"])
    def test_a_named_directory_that_does_not_exist_is_a_config_error(self, tmp_path: Path, option: str) -> None:
        rc, out, err = certify(option, str(tmp_path / "typo"))
        assert rc == 78 and out == ""
        assert f"dpone: config error: {option} {tmp_path / 'typo'}: no such directory" in err

    @pytest.mark.parametrize(
        ("line", "says"),
        [
            (b"{not json", "not an evidence record, skipped (JSONDecodeError"),
            (b'{"connector": "tap-csv"}', "not an evidence record, skipped (KeyError: 'cell')"),
        ],
        ids=["not_json", "missing_field"],
    )
    def test_a_torn_evidence_line_is_skipped_with_a_warning(
        self, tmp_path: Path, line: bytes, says: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        # A test session killed mid-write leaves half a line: the rest of the evidence still counts.
        directory = evidence_dir(tmp_path, [evidence_record("tap-csv", "catalog", "passed")])
        with (directory / "session.jsonl").open("ab") as fh:
            fh.write(line + b"\n")
        rc, out, _ = certify("--evidence", str(directory), "tap-csv")
        assert rc == 0
        assert "proven" in out
        assert f"{directory / 'session.jsonl'}, line 2: {says}" in caplog.text

    def test_a_record_with_an_unknown_outcome_is_a_config_error_naming_file_and_line(self, tmp_path: Path) -> None:
        directory = evidence_dir(tmp_path, [evidence_record("tap-csv", "catalog", "passed")])
        with (directory / "session.jsonl").open("ab") as fh:
            fh.write(orjson.dumps(evidence_record("tap-csv", "catalog", "maybe")) + b"\n")
        rc, out, err = certify("--evidence", str(directory))
        assert rc == 78 and out == ""
        assert f"{directory / 'session.jsonl'}, line 2: outcome 'maybe' is not one of" in err

    def test_a_broken_results_file_is_a_config_error(self, tmp_path: Path) -> None:
        results = empty(tmp_path, "bench-results")
        (results / "tap-csv.json").write_text('{"connector": "tap-csv"}')
        rc, _, err = certify("--evidence", str(empty(tmp_path, "evidence")), "--bench-results", str(results))
        assert rc == 78 and "tap-csv.json: not a benchmark results file (KeyError: 'runs')" in err


# -- the pytest plugin ---------------------------------------------------------------------------------

PLUGGED_TESTS = """
import pytest

from dpone.targets.jsonl.target import JsonlTarget  # the module's one connector: the marks' default


@pytest.mark.certifies("load_method:append-only")
def test_passes():
    pass


@pytest.mark.certifies("delete:hard", connector="target-postgres")
def test_fails():
    assert 1 == 2, "two rows left"


@pytest.mark.certifies("types", connector=("tap-postgres", "target-duckdb"))
def test_skips_inside():
    pytest.skip("no server here")


@pytest.mark.skipif(True, reason="needs DPONE_TEST_X")
@pytest.mark.certifies("batch")
def test_skipped_before_setup():
    pass


@pytest.mark.parametrize("method", ["upsert", "overwrite"])
@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.certifies("load_method:{method}")
@pytest.mark.certifies("delete:hard", connector="target-duckdb", hard=True)
def test_parametrized(method, hard):
    pass


class Kit:
    name = "tap-csv"
    read_method = "FULL_TABLE"


@pytest.fixture(params=["cursor", "pages"])
def tap_kit(request):
    return Kit()


@pytest.mark.certifies("replication_method:{tap_kit.read_method}")
def test_from_the_kit(tap_kit):
    pass


def test_unmarked():
    pass
"""


def run_plugged(tmp_path: Path, source: str, env_dir: Path | None) -> subprocess.CompletedProcess[str]:
    tests = tmp_path / "plugged"
    tests.mkdir(exist_ok=True)
    (tests / "test_plugged.py").write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if k != "DPONE_EVIDENCE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    if env_dir is not None:
        env["DPONE_EVIDENCE_DIR"] = str(env_dir)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:bqemulator",
            "-p",
            "tests.certify_evidence",
        ]
        + ["-q", "--rootdir", str(tests), str(tests / "test_plugged.py")],
        capture_output=True,
        text=True,
        cwd=tests,
        env=env,
        check=False,
    )


class TestThePlugin:
    def test_it_records_each_marked_test_per_connector_and_cell(self, tmp_path: Path, no_bench: str) -> None:
        directory = tmp_path / "evidence"
        done = run_plugged(tmp_path, PLUGGED_TESTS, directory)
        assert done.returncode == 1, done.stdout  # test_fails fails
        assert "1 failed, 8 passed, 2 skipped" in done.stdout, done.stdout
        (session,) = directory.glob("*.jsonl")
        records = [orjson.loads(line) for line in session.read_bytes().splitlines()]
        assert all(r["date"].endswith("Z") for r in records)
        got = sorted(
            (r["connector"], r["cell"], r["outcome"], r["nodeid"].split("::")[1], r.get("reason", "")) for r in records
        )
        assert got == sorted(
            [
                ("target-jsonl", "load_method:append-only", "passed", "test_passes", ""),
                ("target-postgres", "delete:hard", "failed", "test_fails", "AssertionError: two rows left"),
                ("tap-postgres", "types", "skipped", "test_skips_inside", "no server here"),
                ("target-duckdb", "types", "skipped", "test_skips_inside", "no server here"),
                ("target-jsonl", "batch", "skipped", "test_skipped_before_setup", "needs DPONE_TEST_X"),
                *(
                    ("target-jsonl", f"load_method:{m}", "passed", f"test_parametrized[{h}-{m}]", "")
                    for m in ("upsert", "overwrite")
                    for h in ("False", "True")
                ),
                *(
                    ("target-duckdb", "delete:hard", "passed", f"test_parametrized[True-{m}]", "")
                    for m in ("upsert", "overwrite")
                ),
                *(
                    ("tap-csv", "replication_method:FULL_TABLE", "passed", f"test_from_the_kit[{kit}]", "")
                    for kit in ("cursor", "pages")
                ),
            ]
        )
        # What certify makes of it.
        cells = as_json(directory, "--bench-results", no_bench)
        assert cells["target-jsonl"]["load_method:append-only"]["status"] == "proven"
        assert cells["target-postgres"]["delete:hard"]["status"] == "failed"
        assert cells["tap-postgres"]["types"]["reasons"] == ["skipped: no server here"]
        assert cells["target-jsonl"]["batch"]["reasons"] == ["skipped: needs DPONE_TEST_X"]
        assert cells["target-duckdb"]["delete:hard"]["tests"]["passed"] == 2
        assert cells["tap-csv"]["replication_method:FULL_TABLE"]["status"] == "proven"

    def test_without_the_variable_it_writes_nothing(self, tmp_path: Path) -> None:
        done = run_plugged(tmp_path, PLUGGED_TESTS, None)
        assert "1 failed, 8 passed, 2 skipped" in done.stdout, done.stdout
        assert not list(tmp_path.rglob("*.jsonl"))

    def test_a_mark_that_cannot_name_its_connector_stops_the_collection(self, tmp_path: Path) -> None:
        source = """
        import pytest

        @pytest.mark.certifies("types")
        def test_whose():
            pass
        """
        done = run_plugged(tmp_path, source, tmp_path / "evidence")
        assert done.returncode == 4, done.stdout + done.stderr
        assert "cannot tell which connector it proves: pass connector=" in done.stdout + done.stderr
        assert not (tmp_path / "evidence").exists()


# -- the generated page --------------------------------------------------------------------------------


def test_the_committed_page_names_every_connector_and_declared_capability() -> None:
    """docs/certification.md is generated (its evidence is whatever `make test` last left); every
    connector and every cell it declares must be on it, each with a status."""
    page = (ROOT / "docs" / "certification.md").read_text()
    assert "dpone certify --format markdown > docs/certification.md" in page
    sections = page.split("\n### ")[1:]
    by_name = {section.split("\n", 1)[0]: section for section in sections}
    declared = load_declared()
    assert set(by_name) == {d.name for d in declared}
    for connector in declared:
        bullets = [line for line in by_name[connector.name].splitlines() if line.startswith("- ")]
        for cell in connector.cells:
            assert any(line.startswith(f"- {label(connector.kind, cell)}: **") for line in bullets), (
                connector.name,
                cell,
            )
        assert f"| {connector.name} |" in page or f" {connector.name} |" in page  # a column of its matrix
