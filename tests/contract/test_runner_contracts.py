"""Data contracts through `dpone run`: each rule in each mode, the quarantine file and its replay,
the quarantine table, report counts, and the state in enforce mode.

The tap is a replay tap (a shell script that `cat`s the test's input file), or tap-csv; the
target is the real target-jsonl. Runs are in-process (`dpone_runner.cli.run`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone_runner import cli

EXIT_DATA = 65
EXIT_CONFIG = 78
PIPELINE = "tap-replay-to-target-jsonl"
RULES = [
    "email.required",
    "id.type",
    "status.not_null",
    "status.allowed",
    "email.pattern",
    "email.max_length",
    "amount.min",
    "amount.max",
    "unique_key",
]
CONTRACT: dict[str, Any] = {
    "unique_key": True,
    "columns": {
        "id": {"type": "integer"},
        "status": {"not_null": True, "allowed": ["new", "paid", "shipped"]},
        "email": {"required": True, "pattern": r"[^@\s]+@[^@\s]+", "max_length": 30},
        "amount": {"min": 0, "max": 100000},
    },
}
PROPERTIES = {
    "id": {"type": ["integer", "string", "null"]},
    "status": {"type": ["string", "null"]},
    "email": {"type": ["string", "null"]},
    "amount": {"type": ["number", "null"]},
}


def schema(stream: str = "orders") -> dict[str, Any]:
    return {"type": "SCHEMA", "stream": stream, "schema": {"properties": PROPERTIES}, "key_properties": ["id"]}


def good(n: int) -> dict[str, Any]:
    return {"id": n, "status": "new", "email": f"u{n}@shop.io", "amount": 10.5}


def bad(rule: str, n: int, duplicate_of: int) -> dict[str, Any]:
    """A record breaking exactly `rule`."""
    record = good(n)
    if rule == "email.required":
        del record["email"]
    elif rule == "id.type":
        record["id"] = f"{n}x"
    elif rule == "status.not_null":
        record["status"] = None
    elif rule == "status.allowed":
        record["status"] = "lost"
    elif rule == "email.pattern":
        record["email"] = "nobody"
    elif rule == "email.max_length":
        record["email"] = "a" * 30 + "@shop.io"
    elif rule == "amount.min":
        record["amount"] = -1
    elif rule == "amount.max":
        record["amount"] = 100000.01
    else:
        record = good(duplicate_of)
    return record


def rec(record: dict[str, Any], stream: str = "orders") -> dict[str, Any]:
    return {"type": "RECORD", "stream": stream, "record": record}


def state(n: int) -> dict[str, Any]:
    return {"type": "STATE", "value": {"bookmarks": {"orders": {"upto": n}}}}


class Project:
    """meltano.yml: tap-replay (cats input.jsonl), tap-csv (people.csv), target-jsonl (into out/)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.backend = f"sqlite:///{root / 'state.db'}"
        self.out = root / "out"
        tap = root / "tap-replay"
        tap.write_text(f'#!/bin/sh\nexec cat "{root / "input.jsonl"}"\n')
        tap.chmod(0o755)
        people = {"entity": "people", "path": "people.csv", "keys": ["id"]}
        project = {
            "version": 1,
            "plugins": {
                "extractors": [
                    {"name": "tap-replay", "executable": str(tap), "capabilities": ["state"]},
                    {"name": "tap-csv", "executable": "tap-csv", "config": {"base_path": str(root), "files": [people]}},
                ],
                "loaders": [
                    {
                        "name": "target-jsonl",
                        "executable": "target-jsonl",
                        "config": {"destination_path": str(self.out), "add_record_metadata": False},
                    }
                ],
            },
        }
        (root / "meltano.yml").write_bytes(orjson.dumps(project))

    def settings(self, contracts: dict[str, Any], **extra: Any) -> None:
        (self.root / "dpone.yml").write_bytes(orjson.dumps({"contracts": contracts, **extra}))  # JSON is YAML

    def input(self, *messages: dict[str, Any]) -> None:
        (self.root / "input.jsonl").write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))

    def dpone(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        rc = cli.run([*argv, "--project", str(self.root), "--state-backend", self.backend], stdout=out, stderr=err)
        return rc, out.getvalue(), err.getvalue()

    def run(self, tap: str = "tap-replay", *extra: str) -> tuple[int, dict[str, Any], str]:
        rc, out, err = self.dpone("run", tap, "target-jsonl", "--no-progress", "--format", "json", *extra)
        return rc, (orjson.loads(out) if out else {}), err

    def rows(self, stream: str = "orders") -> list[dict[str, Any]]:
        path = self.out / f"{stream}.jsonl"
        return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []

    def saved_state(self) -> Any:
        rc, out, _ = self.dpone("state", "get", PIPELINE)
        return json.loads(out) if rc == 0 else None

    def quarantine_files(self, pipeline: str = PIPELINE, stream: str = "orders") -> list[Path]:
        return sorted((self.root / ".dpone" / "quarantine" / pipeline / stream).glob("*.jsonl"))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def every_rule_broken_once() -> list[dict[str, Any]]:
    """15 records: 6 good (one repeats a key across a STATE, which is allowed), 9 each breaking one rule."""
    messages = [schema(), rec(good(1)), rec(good(2)), rec(good(3)), state(3), rec(good(1)), rec(good(10))]
    messages += [rec(bad(rule, 100 + i, duplicate_of=10)) for i, rule in enumerate(RULES)]
    return [*messages, rec(good(11)), state(11)]


# -- enforce -------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", RULES)
def test_enforce_stops_at_the_bad_record_and_keeps_the_state_before_it(project: Project, rule: str) -> None:
    project.settings({"orders": CONTRACT})
    before = [rec(good(n)) for n in range(1, 5)]
    project.input(schema(), *before, state(4), rec(good(5)), rec(bad(rule, 6, duplicate_of=5)), rec(good(7)), state(7))
    rc, report, err = project.run()
    assert rc == EXIT_DATA, err
    column = rule.split(".", maxsplit=1)[0] if "." in rule else None
    expected = f"dpone: data error: line 8, stream 'orders': contract broken: {rule}: "
    assert expected in err, err
    if column:
        assert f"column {column!r}" in err
    assert report["status"] == "failed" and report["error"].startswith("line 8, stream 'orders'")
    # What came before the bad record is committed (as on any tap failure); the state stays before it.
    assert [r["id"] for r in project.rows()] == [1, 2, 3, 4, 5]
    assert project.saved_state() == state(4)["value"]
    assert report["state_after"] == state(4)["value"]


def test_enforce_value_in_the_message_is_truncated(project: Project) -> None:
    project.settings({"orders": {"columns": {"email": {"max_length": 10}}}})
    project.input(schema(), rec({**good(1), "email": "x" * 500 + "@shop.io"}), state(1))
    rc, _, err = project.run()
    assert rc == EXIT_DATA
    assert '(value "' + "x" * 36 + "...)" in err
    assert "x" * 37 not in err


# -- quarantine --------------------------------------------------------------------------------
def test_quarantine_file_holds_each_bad_record_and_the_good_ones_load(project: Project) -> None:
    project.settings({"orders": {**CONTRACT, "mode": "quarantine"}})
    project.input(*every_rule_broken_once())
    rc, report, err = project.run()
    assert rc == 0, err
    assert [r["id"] for r in project.rows()] == [1, 2, 3, 1, 10, 11]
    assert report["streams"] == [{"stream": "orders", "rows_in": 15, "rows_out": 6, "quarantined": 9}]
    (path,) = project.quarantine_files()
    assert path.name == f"{report['run_id']}.jsonl"
    contract = report["contracts"]["orders"]
    assert contract["mode"] == "quarantine" and contract["quarantined"] == 9 and contract["warned"] == 0
    assert contract["violations"] == dict.fromkeys(RULES, 1)
    assert contract["quarantine"] == str(path)
    head, *lines = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    assert head == schema()
    assert [m["_dpone_quarantine"]["rules"] for m in lines] == [[rule] for rule in RULES]
    assert [m["_dpone_quarantine"]["line"] for m in lines] == list(range(8, 17))
    assert all(m["type"] == "RECORD" and m["stream"] == "orders" for m in lines)
    assert lines[0]["record"] == bad(RULES[0], 100, 10)
    assert project.saved_state() == state(11)["value"]


def test_text_report_shows_the_contract_line(project: Project) -> None:
    project.settings({"orders": {**CONTRACT, "mode": "quarantine"}})
    project.input(*every_rule_broken_once())
    rc, out, err = project.dpone("run", "tap-replay", "target-jsonl", "--no-progress")
    assert rc == 0, err
    assert ["orders", "15", "6", "9"] in [line.split() for line in out.splitlines()]
    assert "  contract orders (quarantine): 9 quarantined (amount.max 1, amount.min 1, " in out


def test_fixed_quarantine_file_replays_into_the_target(project: Project) -> None:
    project.settings({"orders": {**CONTRACT, "mode": "quarantine"}})
    project.input(*every_rule_broken_once())
    assert project.run()[0] == 0
    (path,) = project.quarantine_files()
    rc, listed, _ = project.dpone("quarantine", "list")
    assert rc == 0 and f"{PIPELINE}\torders\t9 rows\tpending\t" in listed and "email.pattern 1" in listed
    # The fix: every record but the one with the bad email gets a good version.
    fixed = []
    for n, raw in enumerate(path.read_bytes().splitlines()):
        message = orjson.loads(raw)
        if message["type"] == "RECORD" and message["_dpone_quarantine"]["rules"] != ["email.pattern"]:
            message["record"] = good(500 + n)
        fixed.append(orjson.dumps(message))
    path.write_bytes(b"\n".join(fixed) + b"\n")

    rc, out, err = project.dpone("quarantine", "replay", str(path), "target-jsonl")
    assert rc == 0, err
    assert "replayed 9 row(s) of stream 'orders' into target-jsonl: 8 loaded, 1 still break the contract" in out
    assert sorted(r["id"] for r in project.rows())[-8:] == [501, 502, 503, 504, 506, 507, 508, 509]
    assert len(project.rows()) == 6 + 8
    assert not path.exists() and path.with_name(path.name + ".replayed").exists()
    (again,) = project.quarantine_files()
    head, still = [orjson.loads(x) for x in again.read_bytes().splitlines()]
    assert head["type"] == "SCHEMA" and still["record"]["email"] == "nobody"
    assert still["_dpone_quarantine"]["rules"] == ["email.pattern"] and still["_dpone_quarantine"]["line"] == 6
    assert project.saved_state() == state(11)["value"]  # the replay left the state alone
    rc, listed, _ = project.dpone("quarantine", "list")
    assert listed.count("\n") == 1 and "1 rows\tpending\temail.pattern 1" in listed
    rc, listed, _ = project.dpone("quarantine", "list", "--all")
    assert listed.count("\n") == 2 and "9 rows\treplayed" in listed


def test_replay_refuses_an_overwrite_target(project: Project, tmp_path: Path) -> None:
    project.settings({"orders": {**CONTRACT, "mode": "quarantine"}})
    project.input(*every_rule_broken_once())
    assert project.run()[0] == 0
    (path,) = project.quarantine_files()
    override = tmp_path / "overwrite.json"
    override.write_text('{"load_method": "overwrite"}')
    rc, _, err = project.dpone("quarantine", "replay", str(path), "target-jsonl", "--target-config", str(override))
    assert rc == EXIT_CONFIG and "load_method: overwrite" in err
    assert path.exists()


def test_quarantine_table_lands_as_its_own_stream(project: Project) -> None:
    project.settings({"orders": {**CONTRACT, "mode": "quarantine", "quarantine": "table"}})
    project.input(*every_rule_broken_once())
    rc, report, err = project.run()
    assert rc == 0, err
    assert [r["id"] for r in project.rows()] == [1, 2, 3, 1, 10, 11]
    rows = project.rows("orders__quarantine")
    assert [r["rules"] for r in rows] == [[rule] for rule in RULES]
    assert rows[4]["record"] == {**good(104), "email": "nobody"}
    assert rows[4]["reason"] == "column 'email' does not match the pattern"
    assert {r["run_id"] for r in rows} == {report["run_id"]} and rows[0]["line"] == 8 and rows[0]["quarantined_at"]
    assert report["contracts"]["orders"]["quarantine"] == "stream orders__quarantine"
    assert report["streams"][0]["quarantined"] == 9
    assert not (project.root / ".dpone" / "quarantine").exists()


# -- warn ----------------------------------------------------------------------------------------
def test_warn_loads_everything_and_counts(project: Project) -> None:
    project.settings({"orders": {**CONTRACT, "mode": "warn"}})
    project.input(*every_rule_broken_once())
    rc, report, err = project.run()
    assert rc == 0, err
    assert len(project.rows()) == 15
    assert report["streams"] == [{"stream": "orders", "rows_in": 15, "rows_out": 15, "quarantined": 0}]
    contract = report["contracts"]["orders"]
    assert (contract["warned"], contract["quarantined"]) == (9, 0)
    assert contract["violations"] == dict.fromkeys(RULES, 1)
    warnings = [line for line in err.splitlines() if "contract warning" in line]
    assert [w.split(": contract warning: ")[1].split(":")[0] for w in warnings] == RULES
    assert "stream 'orders': 9 record(s) broke the contract and were loaded anyway (warn mode)" in err
    assert not (project.root / ".dpone" / "quarantine").exists()


# -- settings, filters, a real tap --------------------------------------------------------------
def test_bad_contract_is_a_config_error_before_anything_runs(project: Project) -> None:
    project.settings({"orders": {"columns": {"email": {"regex": ".*"}}}})
    project.input(schema(), rec(good(1)), state(1))
    rc, report, err = project.run()
    assert rc == EXIT_CONFIG
    assert "dpone: config error: contracts.orders.columns.email: unknown rule 'regex'" in err
    assert report == {} and not project.out.exists() and project.saved_state() is None
    rc, _, _ = project.dpone("state", "list")
    assert rc == 0  # a bad contract does not lock an operator out of the state commands


def test_contracts_check_what_the_filters_put_out(project: Project) -> None:
    project.settings(
        {"sales": {"mode": "quarantine", "columns": {"status": {"allowed": ["new"]}}}},
        filters=[{"type": "rename", "stream": "orders", "to": "sales"}],
    )
    project.input(schema(), rec(good(1)), rec({**good(2), "status": "paid"}), state(2))
    rc, report, err = project.run()
    assert rc == 0, err
    assert [r["id"] for r in project.rows("sales")] == [1]
    (path,) = project.quarantine_files(stream="sales")
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    assert lines[0]["stream"] == "sales" and lines[1]["record"]["id"] == 2
    assert report["streams"] == [{"stream": "orders", "rows_in": 2, "rows_out": 0, "quarantined": 0}, {
        "stream": "sales", "rows_in": 0, "rows_out": 1, "quarantined": 1}]  # fmt: skip


def test_with_tap_csv(project: Project) -> None:
    with (project.root / "people.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "email"])
        writer.writerows([[n, f"p{n}@x.io" if n % 4 else f"p{n} at x.io"] for n in range(1, 21)])
    project.settings({"peo*": {"mode": "quarantine", "columns": {"email": {"pattern": r"\S+@\S+"}}}})
    rc, report, err = project.run("tap-csv")
    assert rc == 0, err
    assert [r["id"] for r in project.rows("people")] == [n for n in range(1, 21) if n % 4]
    assert report["contracts"]["people"]["violations"] == {"email.pattern": 5}
    (path,) = project.quarantine_files(pipeline="tap-csv-to-target-jsonl", stream="people")
    assert [orjson.loads(x)["record"]["id"] for x in path.read_bytes().splitlines()[1:]] == [4, 8, 12, 16, 20]


def test_records_off_the_byte_path_are_checked_too(project: Project) -> None:
    """singer-python writes `{"type": "RECORD", ...}` with spaces: the pump peeks instead, and still checks."""
    project.settings({"orders": {"mode": "quarantine", "columns": {"status": {"allowed": ["new"]}}}})
    messages = [schema(), rec(good(1)), rec({**good(2), "status": "paid"}), state(2)]
    (project.root / "input.jsonl").write_text("".join(json.dumps(m) + "\n" for m in messages))
    rc, report, err = project.run()
    assert rc == 0, err
    assert [r["id"] for r in project.rows()] == [1]
    assert report["streams"] == [{"stream": "orders", "rows_in": 2, "rows_out": 1, "quarantined": 1}]


def test_enforce_report_names_the_stop_and_counts_only_what_was_forwarded(project: Project) -> None:
    project.settings({"orders": CONTRACT})
    project.input(schema(), rec(good(1)), rec(good(2)), state(2), rec(bad("status.allowed", 3, 0)), rec(good(4)))
    rc, out, err = project.dpone("run", "tap-replay", "target-jsonl", "--no-progress")
    assert rc == EXIT_DATA, err
    lines = out.splitlines()
    # Three records read, the bad one not sent on: two forwarded.
    assert ["orders", "3", "2", "0"] in [line.split() for line in lines]
    assert "  contract orders (enforce): stopped the run at line 5 (status.allowed 1)" in lines
    assert "all rows passed" not in out
    assert lines[-1].startswith("  error: line 5, stream 'orders': contract broken: status.allowed")

    rc, report, _ = project.run()
    assert rc == EXIT_DATA
    assert report["streams"] == [{"stream": "orders", "rows_in": 3, "rows_out": 2, "quarantined": 0}]
    assert report["contracts"]["orders"]["stopped_at"] == 5
    assert report["contracts"]["orders"]["violations"] == {"status.allowed": 1}
