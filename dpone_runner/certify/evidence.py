"""The evidence behind the cells: test records left by pytest, and benchmark figures.

Test records are the JSON lines tests/certify_evidence.py writes under DPONE_EVIDENCE_DIR (one
file a pytest session; `make test` writes build/evidence): connector, cell, outcome, node id,
date. A test run again supersedes its older record, so the newest outcome of each test counts.
Benchmark figures are bench/results/<connector>.json, written by bench/evidence.py.

A cell is proven when at least one test proving it passed and none failed, failed when the newest
run of any of its tests failed, and unproven otherwise: no test ran, or every one was skipped
(whose reasons say why). The benchmark cell is proven by recorded figures.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dpone_protocol.errors import ConfigError

log = logging.getLogger("dpone.certify")

PROVEN = "proven"
FAILED = "failed"
UNPROVEN = "unproven"
NOT_APPLICABLE = "n/a"
OUTCOMES = ("passed", "failed", "skipped")


@dataclass(frozen=True, slots=True)
class TestRecord:
    connector: str
    cell: str
    outcome: str
    nodeid: str
    date: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Figures:
    """One benchmark's last measurement."""

    name: str
    figures: dict[str, Any]
    date: str
    machine: dict[str, Any]


@dataclass(slots=True)
class Verdict:
    status: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    last: str | None = None  # the date of the newest record behind it
    reasons: list[str] = field(default_factory=list)  # skip reasons, failure lines, or why there is nothing
    tests: list[TestRecord] = field(default_factory=list)
    figures: list[Figures] = field(default_factory=list)


def read_tests(directory: Path) -> list[TestRecord]:
    """The newest record of each (connector, cell, test) in every *.jsonl file under `directory`."""
    newest: dict[tuple[str, str, str], TestRecord] = {}
    for path in sorted(directory.glob("*.jsonl")):
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            if not line.strip():
                continue
            record = _test_record(line, path, number)
            if record is None:
                continue
            key = (record.connector, record.cell, record.nodeid)
            if key not in newest or newest[key].date <= record.date:
                newest[key] = record
    return list(newest.values())


def _test_record(line: bytes, path: Path, number: int) -> TestRecord | None:
    """One record; a line that is none (a test session killed mid-write) is skipped with a warning:
    the cells it would have proven stay unproven."""
    try:
        doc = orjson.loads(line)
        record = TestRecord(
            connector=str(doc["connector"]),
            cell=str(doc["cell"]),
            outcome=str(doc["outcome"]),
            nodeid=str(doc["nodeid"]),
            date=str(doc["date"]),
            reason=str(doc.get("reason") or ""),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        log.warning("%s, line %d: not an evidence record, skipped (%s: %s)", path, number, type(exc).__name__, exc)
        return None
    if record.outcome not in OUTCOMES:
        raise ConfigError(f"{path}, line {number}: outcome {record.outcome!r} is not one of {', '.join(OUTCOMES)}")
    return record


def read_benchmarks(directory: Path) -> dict[str, list[Figures]]:
    """Each connector's benchmarks, the newest figures of each name, from bench/results/*.json."""
    found: dict[str, list[Figures]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            doc = orjson.loads(path.read_bytes())
            connector = str(doc["connector"])
            newest: dict[str, Figures] = {}
            for run in doc["runs"]:
                figures = Figures(str(run["name"]), dict(run["figures"]), str(run["date"]), dict(run["machine"]))
                if figures.name not in newest or newest[figures.name].date <= figures.date:
                    newest[figures.name] = figures
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: not a benchmark results file ({type(exc).__name__}: {exc})") from None
        found.setdefault(connector, []).extend(sorted(newest.values(), key=lambda f: f.name))
    return found


def judge(declared: bool, tests: Iterable[TestRecord]) -> Verdict:
    tests = sorted(tests, key=lambda t: t.nodeid)
    counts = {outcome: sum(t.outcome == outcome for t in tests) for outcome in OUTCOMES}
    last = max((t.date for t in tests), default=None)
    verdict = Verdict(NOT_APPLICABLE, counts["passed"], counts["failed"], counts["skipped"], last, tests=tests)
    if not declared:
        return verdict
    if counts["failed"]:
        verdict.status = FAILED
        verdict.reasons = _unique(f"{t.nodeid}: {t.reason}" for t in tests if t.outcome == "failed")
    elif counts["passed"]:
        verdict.status = PROVEN
    else:
        verdict.status = UNPROVEN
        skips = _unique(f"skipped: {t.reason}" for t in tests if t.outcome == "skipped")
        verdict.reasons = skips or ["no test result"]
    return verdict


def judge_benchmark(declared: bool, figures: list[Figures]) -> Verdict:
    if not declared:
        return Verdict(NOT_APPLICABLE, figures=figures)
    if not figures:
        return Verdict(UNPROVEN, reasons=["no benchmark figures recorded"])
    return Verdict(PROVEN, last=max(f.date for f in figures), figures=figures)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
