"""Evidence for `dpone certify`: with DPONE_EVIDENCE_DIR set, each test marked `certifies` leaves a record.

`@pytest.mark.certifies("load_method:{method}")` says a test proves one cell of a connector's capability
matrix. The cell may name the test's parameters (`{method}`) and its fixtures' values
(`{tap_kit.read_method}`); the other keyword arguments are conditions on the parameters
(`hard=True`: only the hard-delete case). The connector is the mark's `connector=` (a name or a tuple
of names), else the `name` of the kit the test ran with (`target_kit`, `tap_kit`), else the one dpone
Tap or Target class the test's module holds.

Each finished test appends a JSON line per cell to DIR/<session>.jsonl: connector, cell, outcome
(passed, failed or skipped), node id, date, and the skip's reason or the failure's first line. A
skip is recorded as such: certify shows its cell unproven and says why, never proven.
"""

from __future__ import annotations

import datetime as dt
import os
import string
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

ENV = "DPONE_EVIDENCE_DIR"
MARK = "certifies"
KITS = ("target_kit", "tap_kit")
_FORMAT = string.Formatter()


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too, so a test file run outside this checkout's pytest config knows the mark.
    config.addinivalue_line(
        "markers", f"{MARK}(cell, connector=None, **when): the test is evidence for a cell of `dpone certify`"
    )
    directory = os.environ.get(ENV)
    if directory:
        config.pluginmanager.register(EvidenceWriter(Path(directory)), "dpone-certify-evidence")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A mark whose connector cannot be found would record nothing: say so while collecting."""
    for item in items:
        for mark in item.iter_markers(MARK):
            if not mark.args or not isinstance(mark.args[0], str):
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{MARK} needs the cell as its first argument")
            known = mark.kwargs.get("connector") or set(KITS) & set(getattr(item, "fixturenames", ()))
            if not known and len(module_connectors(item)) != 1:
                raise pytest.UsageError(
                    f"{item.nodeid}: @pytest.mark.{MARK}({mark.args[0]!r}) cannot tell which connector it proves: "
                    "pass connector='tap-...' or 'target-...'"
                )


def module_connectors(item: pytest.Item) -> set[str]:
    """The names of the dpone Tap and Target classes in the test's module."""
    from dpone.taps.framework.tap import Tap
    from dpone.targets.framework.target import Target

    module = getattr(item, "module", None)
    found = set()
    for value in vars(module).values() if module is not None else ():
        if isinstance(value, type) and issubclass(value, Tap | Target) and value.name:
            found.add(value.name)
    return found


@dataclass(frozen=True, slots=True)
class Claim:
    connector: str
    cell: str


def claims(item: pytest.Item) -> list[Claim]:
    """The cells this test proves, with what is known of it now (its fixtures once set up)."""
    callspec = getattr(item, "callspec", None)
    params: Mapping[str, Any] = callspec.params if callspec is not None else {}
    funcargs: Mapping[str, Any] = getattr(item, "funcargs", {}) or {}
    found: list[Claim] = []
    for mark in item.iter_markers(MARK):
        when = {k: v for k, v in mark.kwargs.items() if k != "connector"}
        if any(params.get(k, _Missing) != v for k, v in when.items()):
            continue
        try:
            # A fixture's value, not its parameter (a parametrized kit's param is only its id).
            cell = _FORMAT.vformat(mark.args[0], (), {**params, **funcargs})
        except (KeyError, AttributeError, IndexError):
            continue  # it names a fixture that never got set up (a skip before it): no cell to speak for
        for connector in _connectors(item, mark.kwargs.get("connector"), funcargs):
            found.append(Claim(connector, cell))
    return list(dict.fromkeys(found))


class _Missing:
    """A parameter the test does not have: equal to no condition's value."""


def _connectors(item: pytest.Item, named: Any, funcargs: Mapping[str, Any]) -> tuple[str, ...]:
    if named:
        return (named,) if isinstance(named, str) else tuple(named)
    for fixture in KITS:
        name = getattr(funcargs.get(fixture), "name", None)
        if isinstance(name, str) and name:
            return (name,)
    found = module_connectors(item)
    return tuple(found) if len(found) == 1 else ()


@dataclass
class _Test:
    """What the phases of one test said so far."""

    claims: list[Claim] = field(default_factory=list)
    outcome: str = "passed"
    reason: str = ""


class EvidenceWriter:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        self.path = directory / f"{stamp}-{os.getpid()}.jsonl"
        self.tests: dict[str, _Test] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if item.get_closest_marker(MARK) is None:
            return report
        test = self.tests.setdefault(item.nodeid, _Test())
        if report.when in ("setup", "call"):
            test.claims = claims(item) or test.claims
        if test.outcome == "passed":
            if report.failed:
                test.outcome, test.reason = "failed", _failure(report, call)
            elif report.skipped:
                test.outcome, test.reason = "skipped", _skip_reason(report)
        if report.when == "teardown":
            self._write(item.nodeid, self.tests.pop(item.nodeid))
        return report

    def _write(self, nodeid: str, test: _Test) -> None:
        if not test.claims:
            return
        date = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as fh:
            for line in _lines(nodeid, test, date):
                fh.write(line)


def _lines(nodeid: str, test: _Test, date: str) -> Iterator[bytes]:
    for claim in test.claims:
        record = {"connector": claim.connector, "cell": claim.cell, "outcome": test.outcome, "nodeid": nodeid}
        record["date"] = date
        if test.reason:
            record["reason"] = test.reason
        yield orjson.dumps(record) + b"\n"


def _skip_reason(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return f"expected to fail: {report.wasxfail}".rstrip(": ")
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr or "skipped")


def _failure(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str:
    where = "" if report.when == "call" else f"error in {report.when}: "
    text = call.excinfo.exconly() if call.excinfo is not None else report.longreprtext
    first = next((line.strip() for line in text.splitlines() if line.strip()), "failed")
    return (where + first)[:300]
