"""`dpone runs` and `dpone report --html`: the run history, read back from runs that really happened.

One project (module-scoped) runs the embedded pipeline for real: tap-csv into target-jsonl (three
runs, the state moving in two), into target-duckdb, into a target that fails with an error full of
HTML, and into a target that fails once with a transient error and loads on the runner's retry.
One record written by an older dpone (no attempts, an unredacted secret, a terminal escape) sits
beside them. The tests read what those runs left in the state store: the table, the JSON, and the
HTML page, parsed back here and, as a user would see it, rendered by headless Chromium.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.state.sqlite_store import SqliteStore
from dpone.state.store import RunRecord
from dpone_runner import cli

BIN = Path(sys.executable).parent
DPONE = str(BIN / "dpone")
ENV = {**os.environ, "DPONE_LOG_LEVEL": "WARNING"}
CHROMIUM = shutil.which("chromium")
SCREEN = (1280, 1600)
SECRET = "hunter2-xyzzy-7781"
HOSTILE = 'cannot reach <warehouse> & "friends" </script><script>alert(1)</script>'
LEGACY_ERROR = f"connect postgresql://loader:Sup3rSecret@db.internal:5432/dw failed; token {SECRET}\x1b[2J done"
OK, FAILED = (46, 125, 50), (198, 40, 40)  # the page's --ok and --bad colours

JSONL, DUCKDB, BROKEN, FLAKY = (
    "tap-csv-to-target-jsonl",
    "tap-csv-to-target-duckdb",
    "tap-csv-to-target-broken",
    "tap-csv-to-target-flaky",
)
LEGACY = "legacy-pipeline"


@dataclass
class Result:
    rc: int
    out: str
    err: str


@dataclass
class History:
    root: Path
    backend: str
    state_db: Path
    order: list[tuple[str, str]] = field(default_factory=list)  # (pipeline, status), oldest first

    def common(self) -> list[str]:
        return ["--project", str(self.root), "--state-backend", self.backend]

    def dpone(self, *argv: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        rc = cli.run([*argv, *self.common()], stdout=out, stderr=err)
        return Result(rc, out.getvalue(), err.getvalue())

    def records(self, limit: int = 100, pipeline: str | None = None) -> list[RunRecord]:
        store = SqliteStore(self.state_db)
        try:
            return store.recent_runs(limit, pipeline)
        finally:
            store.close()

    def page(self, name: str, *argv: str) -> Page:
        path = self.root / name
        res = self.dpone("report", "--html", str(path), *argv)
        assert res.rc == 0, res.err
        return Page.parse(path.read_text(encoding="utf-8"))


def _write_project(root: Path) -> None:
    with (root / "rows.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "updated_at", "name"])
        writer.writerows([i, f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}", f"row {i}"] for i in range(1, 151))
    with (root / "other.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows([["code", "label"], ["a", "A"], ["b", "B"]])
    scripts = {
        "target-broken": f"#!/bin/sh\ncat >/dev/null\necho '{HOSTILE}' >&2\nexit 1\n",
        # Fails once as a dropped connection would (exit 75, transient), then loads.
        "target-flaky": (
            f'#!/bin/sh\nif [ ! -e "{root}/flaky.once" ]; then\n  touch "{root}/flaky.once"\n  cat >/dev/null\n'
            '  echo "the warehouse dropped the connection" >&2\n  exit 75\nfi\n'
            f'exec "{BIN / "target-jsonl"}" "$@"\n'
        ),
    }
    for name, text in scripts.items():
        (root / name).write_text(text)
        (root / name).chmod(0o755)
    rows = {"entity": "rows", "path": "rows.csv", "keys": ["id"], "replication_key": "updated_at"}
    other = {"entity": "other", "path": "other.csv", "keys": ["code"]}
    jsonl = {"destination_path": str(root / "jsonl"), "add_record_metadata": False}
    project = {
        "plugins": {
            "extractors": [
                {"name": "tap-csv", "executable": "tap-csv", "config": {"base_path": str(root), "files": [rows, other]}}
            ],
            "loaders": [
                {"name": "target-jsonl", "executable": "target-jsonl", "config": jsonl},
                {"name": "target-duckdb", "executable": "target-duckdb", "config": {"filepath": str(root / "out.db")}},
                {
                    "name": "target-broken",
                    "executable": str(root / "target-broken"),
                    "config": {"password": SECRET},
                },
                {"name": "target-flaky", "executable": str(root / "target-flaky"), "config": jsonl},
            ],
        }
    }
    (root / "meltano.yml").write_bytes(orjson.dumps(project))
    (root / "dpone.yml").write_text("retries:\n  attempts: 1\n  backoff_seconds: 0\n")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    root = tmp_path_factory.mktemp("history")
    _write_project(root)
    state_db = root / "state.db"
    found = History(root, f"sqlite:///{state_db}", state_db)

    def run(target: str, expect: int, *extra: str) -> None:
        res = found.dpone("run", "tap-csv", target, "--no-progress", *extra)
        assert res.rc == expect, res.err

    run("target-jsonl", 0)  # first load: both streams' bookmarks appear
    run("target-jsonl", 0)  # nothing new: the state stays
    with (root / "rows.csv").open("a", newline="") as fh:
        csv.writer(fh).writerows([i, f"2024-01-02T00:00:{i - 150:02d}", f"row {i}"] for i in range(151, 161))
    run("target-jsonl", 0)  # ten new rows: the rows bookmark moves
    run("target-duckdb", 0)
    run("target-broken", 70)
    run("target-flaky", 0, "--retries", "2")
    found.order = [(JSONL, "success")] * 3 + [(DUCKDB, "success"), (BROKEN, "failed")]
    found.order += [(FLAKY, "failed"), (FLAKY, "success")]
    # As an older dpone saved it: no attempt fields, nothing redacted, a terminal escape in the error.
    legacy = {
        "pipeline_id": LEGACY,
        "run_id": "0ld0ld0ld0ld",
        "status": "interrupted",
        "started_at": "2000-01-01T00:00:00.000+00:00",
        "ended_at": "2000-01-01T00:01:05.000+00:00",
        "duration_seconds": 65.0,
        "streams": [{"stream": "events", "rows_in": 7, "rows_out": 7}],
        "state_before": {"upto": 1},
        "state_after": {"upto": 7},
        "error": LEGACY_ERROR,
    }
    store = SqliteStore(state_db)
    try:
        store.save_run(RunRecord(LEGACY, "0ld0ld0ld0ld", legacy["ended_at"], legacy))
    finally:
        store.close()
    found.order.insert(0, (LEGACY, "interrupted"))
    return found


# -- reading the page back ---------------------------------------------------------------------

VOID = {"meta", "link", "br", "img", "input", "hr", "col", "area", "base", "wbr", "source"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    ancestors: list[Element]
    text: str = ""

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def inside(self, tag: str, **attrs: str) -> bool:
        """Has an ancestor `tag` with these attributes (data_chart: data-chart)."""
        wanted = {k.replace("_", "-"): v for k, v in attrs.items()}
        return any(a.tag == tag and all(a.attrs.get(k) == v for k, v in wanted.items()) for a in self.ancestors)

    def within(self, parent: Element) -> bool:
        return any(a is parent for a in self.ancestors)


class Page(HTMLParser):
    """Every element with its attributes, its ancestors and its text: enough to find a chart's marks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.html = ""

    @classmethod
    def parse(cls, html: str) -> Page:
        page = cls()
        page.html = html
        page.feed(html)
        page.close()
        return page

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, list(self._open))
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {k: v or "" for k, v in attrs}, list(self._open)))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def find(self, tag: str, cls: str | None = None, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag
            and (cls is None or cls in e.classes)
            and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def data(self) -> dict[str, Any]:
        (script,) = self.find("script", id="dpone-runs")
        assert script.attrs["type"] == "application/json"
        return json.loads(script.text)

    def marks(self, chart: str, pipeline: str | None = None, shape: str = "rect") -> list[Element]:
        """The marks (bars, points, dots) of one chart, of one pipeline's section."""
        return [
            e
            for e in self.find(shape)
            if e.inside("svg", data_chart=chart) and (pipeline is None or e.inside("section", data_pipeline=pipeline))
        ]


def table_rows(out: str) -> list[list[str]]:
    """`dpone runs`: the header, then a line a run, cells apart by two spaces or more; not the footer."""
    lines = out.rstrip("\n").splitlines()
    return [re.split(r"\s{2,}", line, maxsplit=6) for line in lines[:-1]]


# -- dpone runs ---------------------------------------------------------------------------------


class TestRunsTable:
    def test_every_run_newest_first_with_when_duration_rows_state_and_outcome(self, history: History):
        res = history.dpone("runs")
        assert res.rc == 0, res.err
        header, *rows = table_rows(res.out)
        assert header == ["WHEN (UTC)", "PIPELINE", "RUN", "DURATION", "ROWS", "STATE", "OUTCOME"]
        assert [r[1] for r in rows] == [p for p, _ in reversed(history.order)]
        records = history.records()
        assert [r[2] for r in rows] == [r.run_id for r in records]
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r[0]) for r in rows)
        assert all(re.fullmatch(r"\d+\.\d\ds|\d+\.\ds|\d+m \d\ds", r[3]) for r in rows)
        by_run = {r[2]: r for r in rows}
        jsonl_runs = [by_run[r.run_id] for r in reversed(records) if r.pipeline_id == JSONL]
        assert [r[4] for r in jsonl_runs] == ["other 2, rows 150", "other 2, rows 1", "other 2, rows 11"]
        assert [r[5] for r in jsonl_runs] == ["moved: other, rows", "unchanged", "moved: rows"]
        assert [r[6] for r in jsonl_runs] == ["success"] * 3
        assert res.out.rstrip().endswith("8 runs of 5 pipelines: 5 success, 2 failed, 1 interrupted")

    def test_a_failed_run_says_why_on_its_one_line(self, history: History):
        rows = table_rows(history.dpone("runs", "--pipeline", BROKEN).out)[1:]
        assert len(rows) == 1
        _, pipeline, _, _, streams, state, outcome = rows[0]
        assert streams.startswith("other 2, rows ")  # sent, though never committed
        assert (pipeline, state) == (BROKEN, "unchanged")
        error = f"target-broken failed (exit 1): {HOSTILE}"
        assert outcome == f"failed: {error[:89]}…"  # one line: the page has the whole error

    def test_a_retried_run_shows_each_attempt(self, history: History):
        rows = table_rows(history.dpone("runs", "--pipeline", FLAKY).out)[1:]
        assert [r[6] for r in rows] == [
            "success (attempt 2)",
            "failed: target-flaky failed (exit 75): the warehouse dropped the connection",
        ]
        assert [r[5] for r in rows] == ["moved: other, rows", "unchanged"]

    def test_last_takes_the_newest_runs(self, history: History):
        rows = table_rows(history.dpone("runs", "--last", "3").out)[1:]
        assert [r[2] for r in rows] == [r.run_id for r in history.records(3)]
        rows = table_rows(history.dpone("runs", "--pipeline", JSONL, "--last", "2").out)[1:]
        assert [r[2] for r in rows] == [r.run_id for r in history.records(2, JSONL)]

    def test_an_old_record_reads_with_its_secrets_masked_and_no_terminal_escape(self, history: History):
        res = history.dpone("runs", "--pipeline", LEGACY)
        assert res.rc == 0
        (row,) = table_rows(res.out)[1:]
        assert row[:2] == ["2000-01-01 00:00:00", LEGACY]
        assert row[3:6] == ["1m 05s", "events 7", "moved"]
        assert row[6] == "interrupted: connect postgresql://loader:***@db.internal:5432/dw failed; token ***?[2J done"
        assert "Sup3rSecret" not in res.out and SECRET not in res.out and "\x1b" not in res.out

    def test_no_runs_of_a_pipeline_is_said_not_an_error(self, history: History):
        res = history.dpone("runs", "--pipeline", "no-such-pipeline")
        assert (res.rc, res.out) == (
            0,
            f"no runs of pipeline 'no-such-pipeline' recorded in the state store {history.backend}\n",
        )

    def test_where_no_store_exists_none_is_created(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        monkeypatch.delenv("DPONE_STATE_BACKEND", raising=False)
        out, err = io.StringIO(), io.StringIO()
        assert cli.run(["runs", "--project", str(tmp_path)], stdout=out, stderr=err) == 0, err.getvalue()
        assert out.getvalue() == f"no runs recorded in the state store sqlite:///{tmp_path}/.dpone/state.db\n"
        assert not (tmp_path / ".dpone").exists()

    @pytest.mark.parametrize("last", ["0", "-3"])
    def test_last_below_one_is_a_config_error(self, history: History, last: str):
        res = history.dpone("runs", "--last", last)
        assert res.rc == 78
        assert f"dpone: config error: --last must be 1 or more, not {last}" in res.err
        assert "Traceback" not in res.err


class TestRunsJson:
    def test_the_records_as_stored_with_a_summary_each(self, history: History):
        res = history.dpone("runs", "--format", "json")
        assert res.rc == 0, res.err
        documents = json.loads(res.out)
        records = history.records()
        assert [(d["pipeline_id"], d["run_id"], d["created_at"]) for d in documents] == [
            (r.pipeline_id, r.run_id, r.created_at) for r in records
        ]
        for document, record in zip(documents, records, strict=True):
            if record.pipeline_id != LEGACY:
                assert document["report"] == record.report
            summary = document["summary"]
            report = record.report
            assert summary["status"] == report["status"]
            assert summary["rows_out"] == sum(s["rows_out"] for s in report["streams"])
            assert summary["rows_per_stream"] == {s["stream"]: s["rows_out"] for s in report["streams"]}
            assert summary["state_moved"] == (report["state_after"] not in (None, report["state_before"]))

    def test_a_retried_run_names_its_attempt(self, history: History):
        documents = json.loads(history.dpone("runs", "--pipeline", FLAKY, "--format", "json").out)
        assert [(d["summary"]["attempt"], d["summary"]["attempts"]) for d in documents] == [(2, 2), (1, 1)]
        assert documents[0]["summary"]["moved_streams"] == ["other", "rows"]
        assert documents[1]["summary"]["error"] == "target-flaky failed (exit 75): the warehouse dropped the connection"

    def test_an_old_record_gets_defaults_and_masked_secrets(self, history: History):
        (document,) = json.loads(history.dpone("runs", "--pipeline", LEGACY, "--format", "json").out)
        summary = document["summary"]
        assert (summary["attempt"], summary["attempts"], summary["quarantined"]) == (1, 0, 0)
        assert (summary["state_moved"], summary["moved_streams"]) == (True, [])
        assert document["report"]["error"] == LEGACY_ERROR.replace("Sup3rSecret", "***").replace(SECRET, "***")

    def test_no_runs_is_an_empty_list(self, history: History):
        res = history.dpone("runs", "--pipeline", "no-such-pipeline", "--format", "json")
        assert (res.rc, json.loads(res.out)) == (0, [])


# -- dpone report --html --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def page(history: History) -> Page:
    """The page of every run, parsed."""
    return history.page("all.html")


class TestHtmlReport:
    def test_the_embedded_data_is_the_stores_records(self, page: Page, history: History):
        data = page.data()
        records = history.records(200)
        assert [(r["pipeline_id"], r["run_id"], r["created_at"]) for r in data["runs"]] == [
            (r.pipeline_id, r.run_id, r.created_at) for r in records
        ]
        for document, record in zip(data["runs"], records, strict=True):
            expected = dict(record.report)
            if record.pipeline_id == LEGACY:
                expected["error"] = LEGACY_ERROR.replace("Sup3rSecret", "***").replace(SECRET, "***")
            assert document["report"] == expected
        assert (data["pipeline"], data["last"], data["store"]) == (None, 200, history.backend)

    def test_one_bar_per_run_in_each_pipelines_rows_and_duration_charts(self, page: Page, history: History):
        records = history.records()
        for pipeline in {p for p, _ in history.order}:
            oldest_first = [r for r in reversed(records) if r.pipeline_id == pipeline]
            for chart in ("rows", "duration"):
                bars = page.marks(chart, pipeline)
                assert [b.attrs["data-run-id"] for b in bars] == [r.run_id for r in oldest_first], (pipeline, chart)
                statuses = [r.report["status"] for r in oldest_first]
                assert [b.classes - {"bar"} for b in bars] == [{f"status-{s}"} for s in statuses]
            heights = [float(b.attrs["data-value"]) for b in page.marks("rows", pipeline)]
            assert heights == [sum(s["rows_out"] for s in r.report["streams"]) for r in oldest_first]
            seconds = [float(b.attrs["data-value"]) for b in page.marks("duration", pipeline)]
            assert seconds == [r.report["duration_seconds"] for r in oldest_first]

    def test_a_throughput_point_per_stream_and_run(self, page: Page, history: History):
        records = [r for r in reversed(history.records()) if r.pipeline_id == JSONL]
        points = page.marks("throughput", JSONL, shape="circle")
        expected = Counter()
        for r in records:
            for s in r.report["streams"]:
                expected[(s["stream"], r.run_id)] += 1
        assert Counter((p.attrs["data-stream"], p.attrs["data-run-id"]) for p in points) == expected
        rates = [
            s["rows_in"] / r.report["duration_seconds"]
            for r in records
            for s in r.report["streams"]
            if s["stream"] == "rows"
        ]
        drawn = [float(p.attrs["data-value"]) for p in points if p.attrs["data-stream"] == "rows"]
        assert drawn == pytest.approx(rates, rel=1e-3)
        legend = [e.text for e in page.find("li") if e.inside("figure", data_chart="throughput", data_pipeline=JSONL)]
        assert sorted(legend) == ["other", "rows"]

    def test_failures_over_time_has_a_dot_per_run_in_its_pipelines_lane(self, page: Page, history: History):
        dots = page.marks("failures", shape="circle")
        records = history.records()
        assert sorted(d.attrs["data-run-id"] for d in dots) == sorted(r.run_id for r in records)
        failed = {r.run_id for r in records if r.report["status"] == "failed"}
        assert {d.attrs["data-run-id"] for d in dots if "status-failed" in d.classes} == failed
        lanes = [t.text for t in page.find("title") if t.inside("text", **{"class": "lane"})]
        assert sorted(lanes) == sorted({p for p, _ in history.order})

    def test_the_runs_table_has_a_row_per_run_with_the_whole_error(self, page: Page, history: History):
        rows = page.find("tr", "run")
        assert [r.attrs["data-run-id"] for r in rows] == [r.run_id for r in history.records()]
        (broken,) = [r for r in rows if r.attrs["data-pipeline"] == BROKEN]
        assert "status-failed" in broken.classes
        (error,) = [e for e in page.find("pre", "error") if e.within(broken)]
        assert error.text == f"target-broken failed (exit 1): {HOSTILE}"
        (flaky,) = [r for r in rows if r.attrs["data-pipeline"] == FLAKY and "status-success" in r.classes]
        (attempt,) = [e for e in page.find("li") if e.within(flaky)]
        assert (
            attempt.text
            == "attempt 1 failed (exit 75): target-flaky failed (exit 75): the warehouse dropped the connection"
        )

    def test_every_string_is_escaped(self, page: Page):
        # The error's markup is text: only the data block is a script, and it holds no tag.
        assert [e.attrs.get("id") for e in page.find("script")] == ["dpone-runs"]
        assert "<warehouse>" not in page.html and "<script>alert" not in page.html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.html
        assert page.html.count("</script>") == 1
        assert SECRET not in page.html and "Sup3rSecret" not in page.html

    def test_the_page_is_self_contained(self, page: Page):
        assert not [e for e in page.elements if {"src", "href"} & set(e.attrs)]
        assert "@import" not in page.html and "url(" not in page.html
        urls = set(re.findall(r"https?://[^\s\"'<)]+", page.html))
        assert urls == {"http://www.w3.org/2000/svg"}  # the SVG namespace, a name, not a fetch
        (policy,) = [e for e in page.find("meta") if e.attrs.get("http-equiv") == "Content-Security-Policy"]
        assert policy.attrs["content"].startswith("default-src 'none'")

    def test_one_pipeline_and_last(self, history: History):
        page = history.page("one.html", "--pipeline", JSONL, "--last", "2")
        data = page.data()
        assert [r["run_id"] for r in data["runs"]] == [r.run_id for r in history.records(2, JSONL)]
        assert (data["pipeline"], data["last"]) == (JSONL, 2)
        assert [s.attrs["data-pipeline"] for s in page.find("section", "pipeline")] == [JSONL]
        assert len(page.marks("rows", JSONL)) == 2

    def test_dash_writes_the_page_to_stdout(self, history: History):
        res = history.dpone("report", "--html", "-", "--pipeline", DUCKDB)
        assert res.rc == 0, res.err
        assert res.out.startswith("<!DOCTYPE html>")
        assert [r["pipeline_id"] for r in Page.parse(res.out).data()["runs"]] == [DUCKDB]

    def test_an_empty_history_is_a_page_that_says_so(self, history: History):
        page = history.page("none.html", "--pipeline", "no-such-pipeline")
        assert page.data()["runs"] == []
        assert [e.text for e in page.find("td")] == ["No runs recorded."]

    @pytest.mark.parametrize(
        ("where", "words"),
        [("missing-dir/report.html", "cannot write the report"), (".", "that is a directory")],
    )
    def test_a_file_that_cannot_be_written_is_a_config_error(self, history: History, where: str, words: str):
        res = history.dpone("report", "--html", str(history.root / where))
        assert res.rc == 78
        assert words in res.err and "Traceback" not in res.err

    def test_the_installed_commands(self, history: History, tmp_path: Path):
        common = history.common()
        runs = subprocess.run(
            [DPONE, "runs", "--last", "2", *common], capture_output=True, text=True, env=ENV, timeout=60
        )
        assert runs.returncode == 0, runs.stderr
        assert [r[2] for r in table_rows(runs.stdout)[1:]] == [r.run_id for r in history.records(2)]
        target = tmp_path / "history.html"
        report = subprocess.run(
            [DPONE, "report", "--html", str(target), *common], capture_output=True, text=True, env=ENV, timeout=60
        )
        assert report.returncode == 0, report.stderr
        assert report.stdout == f"wrote {target}: 8 run(s) of 5 pipeline(s)\n"
        assert len(Page.parse(target.read_text()).data()["runs"]) == 8


# -- the page as Chromium shows it ----------------------------------------------------------------


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit RGB or RGBA PNG (what Chromium writes), with the stdlib."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks, header = 8, [], b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0) and colour in (2, 6), (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * bpp
    prev, rows = bytearray(stride), []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:  # Up
            line = bytearray((a + b) & 255 for a, b in zip(line, prev, strict=True))
        elif kind == 3:  # Average
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 255
        elif kind == 4:  # Paeth
            for i in range(stride):
                a, b, c = (line[i - bpp] if i >= bpp else 0), prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line[i] for i in range(stride) if i % bpp < 3) if bpp == 4 else bytes(line))
        prev = line
    return width, height, rows


def chromium(*argv: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([*command, *argv], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(history: History) -> Path:
    """The page of every run, as a file."""
    path = history.root / "chromium.html"
    assert history.dpone("report", "--html", str(path)).rc == 0
    return path


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: scripts/install-system-deps.sh installs Debian's package")
class TestInChromium:
    def test_a_screenshot_shows_the_charts_in_their_colours(self, report: Path, tmp_path: Path):
        shot = tmp_path / "report.png"
        done = chromium(
            f"--screenshot={shot}",
            f"--window-size={SCREEN[0]},{SCREEN[1]}",
            report.as_uri(),
            profile=tmp_path / "profile",
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert shot.exists()
        width, height, rows = png_pixels(shot)
        assert (width, height) == SCREEN
        colours = Counter(row[i : i + 3] for row in rows for i in range(0, len(row), 3))
        white = colours[bytes((255, 255, 255))]
        assert white < width * height * 0.95, "the page rendered (almost) blank"
        assert len(colours) > 50
        # Bars and dots in the status colours: the green of the successes, the red of the failures.
        assert colours[bytes(OK)] > 500
        assert colours[bytes(FAILED)] > 100

    def test_the_rendered_dom_holds_the_charts_and_the_table(self, report: Path, history: History, tmp_path: Path):
        done = chromium("--dump-dom", report.as_uri(), profile=tmp_path / "profile")
        assert done.returncode == 0, done.stderr[-2000:]
        dom = Page.parse(done.stdout)
        records = history.records()
        assert len(dom.find("svg", "chart-svg")) == 1 + 3 * len({p for p, _ in history.order})
        assert len(dom.find("rect", "bar")) == 2 * len(records)
        assert len(dom.marks("failures", shape="circle")) == len(records)
        assert [r.attrs["data-run-id"] for r in dom.find("tr", "run")] == [r.run_id for r in records]
        (broken,) = [r for r in dom.find("tr", "run") if r.attrs["data-pipeline"] == BROKEN]
        assert HOSTILE in broken.text
        assert [e.attrs.get("id") for e in dom.find("script")] == ["dpone-runs"]
        assert dom.data()["runs"] == Page.parse(report.read_text()).data()["runs"]
