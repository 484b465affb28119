"""Data contracts: settings parsing, each rule, key uniqueness, and the stage's three modes."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone_protocol.errors import ConfigError, ProtocolError
from dpone_runner.contracts import ContractStage, ContractViolation, RunContext, parse_contracts
from dpone_runner.contracts.quarantine import MARKER, summarize
from dpone_runner.contracts.rules import Checker, KeyTracker, render_value
from dpone_runner.contracts.spec import DEFAULT_QUARANTINE_PATH, ColumnSpec

ROOT = Path("/project")


def column(**rules: Any) -> ColumnSpec:
    (contract,) = parse_contracts({"s": {"columns": {"c": rules}}}, ROOT).contracts
    (spec,) = contract.columns
    return spec


def passes(spec: ColumnSpec, record: dict[str, Any]) -> bool:
    """The fast check and explain() together, as the stage uses them: explain has the last word."""
    checker = Checker([spec], None)
    return checker.check(record) or not checker.explain(record)


def broken(spec: ColumnSpec, record: dict[str, Any]) -> list[str]:
    return [v.name for v in Checker([spec], None).explain(record)]


# -- settings ---------------------------------------------------------------------------------
def test_defaults_and_relative_quarantine_path() -> None:
    (contract,) = parse_contracts({"orders": None}, ROOT).contracts
    assert (contract.mode, contract.quarantine, contract.unique_key) == ("enforce", "file", False)
    assert contract.quarantine_path == ROOT / DEFAULT_QUARANTINE_PATH
    (other,) = parse_contracts({"o": {"quarantine_path": "/abs/q"}}, ROOT).contracts
    assert other.quarantine_path == Path("/abs/q")


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"columns": {"email": {"patern": "x"}}}, "contracts.orders.columns.email: unknown rule 'patern'"),
        ({"columns": {"email": {"pattern": "(["}}}, "contracts.orders.columns.email.pattern: invalid regular"),
        ({"mode": "strict"}, "contracts.orders.mode: 'strict' is not one of enforce, quarantine, warn"),
        ({"quarantine": "s3"}, "contracts.orders.quarantine: 's3' is not one of file, table"),
        ({"colums": {}}, "contracts.orders: unknown setting 'colums'"),
        ({"columns": {"id": {"type": "int"}}}, "contracts.orders.columns.id.type: 'int' is not one of"),
        ({"columns": {"id": {"min": 5, "max": 1}}}, "contracts.orders.columns.id: min 5 is greater than max 1"),
        ({"columns": {"id": {"min": 1, "max": "z"}}}, "min and max must both be numbers or both be strings"),
        ({"columns": {"id": {"min": True}}}, "contracts.orders.columns.id.min: must be a number or a string"),
        ({"columns": {"id": {"not_null": "yes"}}}, "contracts.orders.columns.id.not_null: must be true or false"),
        ({"columns": {"id": {"allowed": []}}}, "contracts.orders.columns.id.allowed: must be a non-empty list"),
        ({"columns": {"id": {"allowed": [1, None]}}}, "null is always allowed unless not_null is set"),
        ({"columns": {"id": {"max_length": -1}}}, "contracts.orders.columns.id.max_length: must be a whole number"),
        ({"unique_key": "id"}, "contracts.orders.unique_key: use true"),
        ({"columns": ["id"]}, "contracts.orders.columns: must map column names to rules"),
    ],
)
def test_bad_settings_name_the_stream_and_the_rule(settings: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_contracts({"orders": settings}, ROOT)
    assert says in str(caught.value)


def test_contracts_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="contracts must map stream names"):
        parse_contracts(["orders"], ROOT)


def test_glob_patterns_first_match_wins() -> None:
    contracts = parse_contracts({"public-orders": {"mode": "warn"}, "public-*": {"mode": "quarantine"}}, ROOT)
    assert contracts.for_stream("public-orders").mode == "warn"  # type: ignore[union-attr]
    assert contracts.for_stream("public-users").mode == "quarantine"  # type: ignore[union-attr]
    assert contracts.for_stream("private-x") is None


def test_yaml_dates_as_bounds_become_iso_strings() -> None:
    spec = column(min=dt.date(2024, 1, 1))
    assert spec.min == "2024-01-01"
    assert passes(spec, {"c": "2024-03-01T10:00:00Z"})
    assert broken(spec, {"c": "2023-12-31"}) == ["c.min"]


# -- each rule --------------------------------------------------------------------------------
def test_required_fails_only_on_absent() -> None:
    spec = column(required=True)
    assert passes(spec, {"c": None}) and passes(spec, {"c": 0})
    assert broken(spec, {}) == ["c.required"]


def test_not_null_fails_on_null_and_absent() -> None:
    spec = column(not_null=True)
    assert passes(spec, {"c": ""}) and passes(spec, {"c": False})
    assert broken(spec, {"c": None}) == ["c.not_null"]
    assert broken(spec, {}) == ["c.not_null"]


def test_value_rules_skip_null_and_absent() -> None:
    spec = column(type="integer", allowed=[1], pattern="x", min=0, max=1, max_length=1)
    assert passes(spec, {"c": None}) and passes(spec, {})


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("integer", [1, -5, 3.0, 2**62], [1.5, "1", True]),
        ("number", [1, 1.5, -0.0], ["1.5", False]),
        ("string", ["", "x"], [1, 2.5, ["x"]]),
        ("boolean", [True, False], [1, "true"]),
        ("object", [{}, {"a": 1}], [[], "{}"]),
        ("array", [[], [1]], [{}, "[]"]),
        ("date-time", ["2024-01-02T03:04:05Z", "2024-01-02 03:04:05.123+02:00"], ["2024-01-02", "yesterday", 5]),
        ("date", ["2024-02-29"], ["2023-02-29", "2024-01-02T00:00:00", "20240102", 20240102]),
        ("decimal", [1, 1.25, "12.50", "-3", "1e5", ".5"], ["12,50", "1.2.3", "", True, "nan"]),
    ],
)
def test_type(kind: str, good: list[Any], bad: list[Any]) -> None:
    spec = column(type=kind)
    for value in good:
        assert passes(spec, {"c": value}), value
    for value in bad:
        assert broken(spec, {"c": value}) == ["c.type"], value


def test_allowed_keeps_booleans_and_numbers_apart() -> None:
    spec = column(allowed=["new", "paid", 1])
    assert passes(spec, {"c": "paid"}) and passes(spec, {"c": 1}) and passes(spec, {"c": 1.0})
    assert broken(spec, {"c": "PAID"}) == ["c.allowed"]
    assert broken(spec, {"c": True}) == ["c.allowed"]  # True == 1 in Python, not in a contract
    assert broken(spec, {"c": ["new"]}) == ["c.allowed"]
    flags = column(allowed=[True])
    assert passes(flags, {"c": True}) and broken(flags, {"c": 1}) == ["c.allowed"]
    mixed = column(allowed=[True, 0])
    assert passes(mixed, {"c": 0}) and passes(mixed, {"c": True})
    assert broken(mixed, {"c": False}) == ["c.allowed"] and broken(mixed, {"c": 1}) == ["c.allowed"]


def test_pattern_must_match_the_whole_string() -> None:
    spec = column(pattern=r"[^@\s]+@[^@\s]+")
    assert passes(spec, {"c": "a@b.c"})
    assert broken(spec, {"c": "say a@b.c"}) == ["c.pattern"]  # re.search would have passed it
    assert broken(spec, {"c": 42}) == ["c.pattern"]
    assert passes(column(pattern=".*paid.*"), {"c": "unpaid"})


def test_min_max_on_numbers_and_numeric_strings() -> None:
    spec = column(min=0, max=100000)
    for value in (0, 100000, 5.5, "99.99", "1e3"):
        assert passes(spec, {"c": value}), value
    assert broken(spec, {"c": -0.01}) == ["c.min"]
    assert broken(spec, {"c": 100000.5}) == ["c.max"]
    assert broken(spec, {"c": "abc"}) == ["c.min", "c.max"]  # not comparable with a number
    assert broken(spec, {"c": True}) == ["c.min", "c.max"]
    assert broken(column(max=10), {"c": "10.000001"}) == ["c.max"]


def test_min_max_on_strings_compare_as_strings() -> None:
    spec = column(min="2024-01-01", max="2024-12-31")
    assert passes(spec, {"c": "2024-06-01"}) and passes(spec, {"c": "2024-12-31"})
    assert broken(spec, {"c": "2025-01-01"}) == ["c.max"]
    assert broken(spec, {"c": 20240601}) == ["c.min", "c.max"]


def test_max_length_counts_characters() -> None:
    spec = column(max_length=3)
    assert passes(spec, {"c": "épé"}) and passes(spec, {"c": ""})
    assert broken(spec, {"c": "abcd"}) == ["c.max_length"]
    assert broken(spec, {"c": 1234}) == ["c.max_length"]


def test_several_rules_report_every_one_broken() -> None:
    spec = column(type="string", pattern="[a-z]+", max_length=2)
    assert broken(spec, {"c": "ABC"}) == ["c.pattern", "c.max_length"]


# -- keys ----------------------------------------------------------------------------------------
def test_key_tracker_single_composite_and_unhashable_keys() -> None:
    single = KeyTracker(["id"])
    first = single.first_time()
    assert first({"id": 1}) and not first({"id": 1}) and first({"id": 2})
    single.reset()
    assert first({"id": 1})
    pair = KeyTracker(["a", "b"]).first_time()
    assert pair({"a": 1, "b": 1}) and pair({"a": 1, "b": 2}) and not pair({"a": 1, "b": 1})
    blob = KeyTracker(["k"])
    check = blob.first_time()
    assert check({"k": {"x": [1]}}) and not check({"k": {"x": [1]}})
    assert blob.contains({"k": {"x": [1]}})


def test_checker_remembers_a_key_only_for_a_record_that_passes() -> None:
    keys = KeyTracker(["id"])
    checker = Checker([column(not_null=True)], keys)
    assert not checker.check({"id": 1, "c": None})
    assert checker.check({"id": 1, "c": "x"})  # the bad copy above did not take the key
    assert not checker.check({"id": 1, "c": "y"})
    assert [v.name for v in checker.explain({"id": 1, "c": "y"})] == ["unique_key"]


def test_value_rendering_is_cut_to_40_characters() -> None:
    assert render_value("x" * 100) == '"' + "x" * 36 + "..."
    assert len(render_value("x" * 100)) == 40
    assert render_value({"a": 1}) == '{"a":1}'


# -- the stage ---------------------------------------------------------------------------------
SCHEMA = {
    "type": "SCHEMA",
    "stream": "orders",
    "schema": {"type": "object", "properties": {"id": {"type": "integer"}, "status": {"type": "string"}}},
    "key_properties": ["id"],
}


def line(record: dict[str, Any], stream: str = "orders") -> bytes:
    return orjson.dumps({"type": "RECORD", "stream": stream, "record": record}) + b"\n"


def stage_for(settings: dict[str, Any], tmp_path: Path) -> tuple[ContractStage, list[bytes]]:
    emitted: list[bytes] = []
    stage = ContractStage(parse_contracts({"orders": settings}, tmp_path), RunContext("pipe", "run1"))
    stage.attach(emitted.append)
    stage.on_schema(SCHEMA, 1)
    return stage, emitted


STATUS = {"status": {"allowed": ["new", "paid"], "not_null": True}}


def test_enforce_raises_naming_stream_line_column_rule_and_value(tmp_path: Path) -> None:
    stage, _ = stage_for({"columns": STATUS}, tmp_path)
    guard = stage.guards[b"orders"]
    assert guard(line({"id": 1, "status": "new"}), 2)
    with pytest.raises(ContractViolation) as caught:
        guard(line({"id": 2, "status": "refunded-" + "z" * 80}), 3)
    text = str(caught.value)
    assert text.startswith("line 3, stream 'orders': contract broken: status.allowed: column 'status'")
    assert '(value "refunded-zzzzzzzzzzzzzzzzzzzzzzzzzzz...)' in text
    assert caught.value.exit_code == 65


def test_quarantine_file_is_replayable_singer(tmp_path: Path) -> None:
    stage, emitted = stage_for({"mode": "quarantine", "columns": STATUS, "unique_key": True}, tmp_path)
    guard = stage.guards[b"orders"]
    bad = b'{"type":"RECORD","stream":"orders","record":{"id":2,"status":"x","n":12345678901234567890.5}}\n'
    assert guard(line({"id": 1, "status": "new"}), 2)
    assert not guard(bad, 3)
    assert not guard(line({"id": 1, "status": "paid"}), 4)
    stage.on_state()
    assert guard(line({"id": 1, "status": "paid"}), 6)  # a new batch: the key is new again
    stage.close()
    assert emitted == []
    path = tmp_path / ".dpone" / "quarantine" / "pipe" / "orders" / "run1.jsonl"
    first, second, third = path.read_bytes().splitlines()
    assert orjson.loads(first) == SCHEMA
    assert second.startswith(bad.rstrip()[:-1] + b',"_dpone_quarantine":')  # the tap's bytes, as they came
    meta = orjson.loads(second)[MARKER]
    assert meta["rules"] == ["status.allowed"] and meta["line"] == 3 and meta["run_id"] == "run1"
    assert meta["pipeline"] == "pipe" and meta["at"]
    assert orjson.loads(third)[MARKER]["rules"] == ["unique_key"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    report = stage.reports()["orders"]
    assert (report.quarantined, report.violations) == (2, {"status.allowed": 1, "unique_key": 1})
    assert report.quarantine == str(path)
    found = summarize(path)
    assert (found.stream, found.pipeline, found.rows) == ("orders", "pipe", 2)


def test_quarantine_table_sends_a_schema_once_then_rows(tmp_path: Path) -> None:
    stage, emitted = stage_for({"mode": "quarantine", "quarantine": "table", "columns": STATUS}, tmp_path)
    guard = stage.guards[b"orders"]
    assert not guard(line({"id": 1, "status": None}), 2)
    assert not guard(line({"id": 2}), 3)
    schema, *rows = [orjson.loads(x) for x in emitted]
    assert schema["type"] == "SCHEMA" and schema["stream"] == "orders__quarantine"
    assert set(schema["schema"]["properties"]) == {"record", "rules", "reason", "line", "run_id", "quarantined_at"}
    assert [r["record"]["record"] for r in rows] == [{"id": 1, "status": None}, {"id": 2}]
    assert rows[0]["record"]["rules"] == ["status.not_null"] and rows[1]["record"]["line"] == 3
    assert rows[0]["record"]["reason"] == "column 'status' is null"
    assert not (tmp_path / ".dpone").exists()


def test_warn_logs_ten_examples_per_rule_then_a_summary(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    stage, _ = stage_for({"mode": "warn", "columns": STATUS, "unique_key": True}, tmp_path)
    guard = stage.guards[b"orders"]
    with caplog.at_level(logging.WARNING, logger="dpone.contracts"):
        for n in range(15):
            assert guard(line({"id": n, "status": "secret-value"}), n + 2)
        assert guard(line({"id": 0, "status": "new"}), 20)  # a duplicate of a record that went through
        stage.close()
    examples = [r.getMessage() for r in caplog.records if "contract warning" in r.getMessage()]
    assert len([m for m in examples if "status.allowed" in m]) == 10
    assert len([m for m in examples if "unique_key" in m]) == 1
    assert caplog.records[-1].getMessage() == (
        "stream 'orders': 16 record(s) broke the contract and were loaded anyway (warn mode): "
        "status.allowed 15, unique_key 1"
    )
    report = stage.reports()["orders"]
    assert (report.warned, report.quarantined) == (16, 0)


def test_unique_key_true_needs_key_properties(tmp_path: Path) -> None:
    stage = ContractStage(parse_contracts({"o*": {"unique_key": True}}, tmp_path), RunContext("p", "r"))
    with pytest.raises(ConfigError, match=r"contracts\.o\*\.unique_key: stream 'orders' has no key_properties"):
        stage.on_schema({**SCHEMA, "key_properties": []}, 7)
    listed = ContractStage(parse_contracts({"o*": {"unique_key": ["status"]}}, tmp_path), RunContext("p", "r"))
    listed.attach(lambda b: None)
    listed.on_schema({**SCHEMA, "key_properties": []}, 1)
    with pytest.raises(ContractViolation, match="unique_key"):
        for n in range(2):
            listed.guards[b"orders"](line({"id": n, "status": "same"}), n + 2)


def test_streams_without_a_contract_get_no_guard_and_bad_json_is_a_protocol_error(tmp_path: Path) -> None:
    stage, _ = stage_for({"columns": STATUS}, tmp_path)
    stage.on_schema({**SCHEMA, "stream": "users"}, 5)
    assert set(stage.guards) == {b"orders"}
    assert stage.check_line("users", b"not json", 6)
    with pytest.raises(ProtocolError, match="line 7, stream 'orders': malformed JSON"):
        stage.guards[b"orders"](b'{"type":"RECORD","stream":"orders","record":{', 7)


def test_a_contract_column_missing_from_the_schema_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dpone.contracts"):
        stage_for({"columns": {"emial": {"not_null": True}}}, tmp_path)
    assert "stream 'orders' has no column 'emial' in its SCHEMA" in caplog.text


def test_quarantine_directories_are_all_created_0700(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # the usual umask, under which parents came out 0755
    try:
        stage, _ = stage_for({"mode": "quarantine", "columns": STATUS}, tmp_path)
        assert not stage.guards[b"orders"](line({"id": 1, "status": "x"}), 2)
        stage.close()
    finally:
        os.umask(previous)
    made = [tmp_path / ".dpone", tmp_path / ".dpone" / "quarantine", tmp_path / ".dpone" / "quarantine" / "pipe"]
    made.append(made[-1] / "orders")
    assert {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in made} == {
        str(p.relative_to(tmp_path)): "0o700" for p in made
    }


def test_a_directory_that_exists_keeps_its_mode(tmp_path: Path) -> None:
    (tmp_path / ".dpone").mkdir(mode=0o755)
    (tmp_path / ".dpone").chmod(0o755)
    stage, _ = stage_for({"mode": "quarantine", "columns": STATUS}, tmp_path)
    assert not stage.guards[b"orders"](line({"id": 1, "status": "x"}), 2)
    stage.close()
    assert oct((tmp_path / ".dpone").stat().st_mode & 0o777) == "0o755"
    assert oct((tmp_path / ".dpone" / "quarantine").stat().st_mode & 0o777) == "0o700"


DECIMAL_SCHEMA = {
    "type": "SCHEMA",
    "stream": "orders",
    "schema": {
        "properties": {
            "id": {"type": ["integer"]},
            "amount": {"type": ["string", "null"], "format": "singer.decimal"},  # tap-postgres's numeric
        }
    },
    "key_properties": ["id"],
}


def test_number_type_on_a_decimal_string_column_is_named_at_schema_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stage = ContractStage(
        parse_contracts({"orders": {"columns": {"amount": {"type": "number"}}}}, tmp_path), RunContext("p", "r")
    )
    with caplog.at_level(logging.WARNING, logger="dpone.contracts"):
        stage.on_schema(DECIMAL_SCHEMA, 1)
    assert (
        "contracts.orders.columns.amount: type number, but stream 'orders' sends it as a string (singer.decimal); "
        "every value will break the rule: use type: decimal"
    ) in caplog.text


def test_decimal_type_accepts_what_tap_postgres_sends_for_numeric(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {"mode": "quarantine", "columns": {"amount": {"type": "decimal", "min": 0, "max": 100000}}}
    stage = ContractStage(parse_contracts({"orders": settings}, tmp_path), RunContext("p", "r"))
    stage.attach(lambda b: None)
    with caplog.at_level(logging.WARNING, logger="dpone.contracts"):
        stage.on_schema(DECIMAL_SCHEMA, 1)
    assert caplog.text == ""
    guard = stage.guards[b"orders"]
    assert guard(line({"id": 1, "amount": "10.50"}), 2)
    assert guard(line({"id": 2, "amount": "99999.99999999999999"}), 3)
    assert not guard(line({"id": 3, "amount": "-0.01"}), 4)
