"""`--discover` output checked the way singer-check-tap checks a tap, plus a sync of every stream.

The validator (also used by tests/service/test_discover_validation_postgres.py):
- every stream schema is a valid JSON Schema (Draft 7 metaschema) describing an object;
- metadata is a list of {breadcrumb, metadata}; breadcrumbs are unique, well formed, and name
  existing properties; the stream-level entry exists and every property has one;
- table-key-properties, valid-replication-keys and replication-key name existing properties;
- inclusion is available / automatic / unsupported, and keys are automatic;
- replication methods are Singer's;
- each stream, selected with standard metadata (`selected`, `replication-method`,
  `replication-key`), syncs: SCHEMA first, RECORDs valid against it, a final STATE.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from dpone.taps.csv.tap import CsvTap
from dpone.taps.framework.tap import Tap
from tests.conftest import Run, write_config
from tests.tools import ROOT

INCLUSION = {"available", "automatic", "unsupported"}
METHODS = {"FULL_TABLE", "INCREMENTAL", "LOG_BASED"}
STREAM_FIELDS = {"tap_stream_id": str, "stream": str, "schema": dict, "metadata": list}


def _properties_at(schema: dict[str, Any], breadcrumb: list[Any]) -> bool:
    """Whether a breadcrumb (properties, a, properties, b, ...) names a property of the schema."""
    node = schema
    if len(breadcrumb) % 2:
        return False
    for keyword, name in zip(breadcrumb[::2], breadcrumb[1::2], strict=True):
        if keyword != "properties" or not isinstance(name, str):
            return False
        node = (node.get("properties") or {}).get(name)
        if not isinstance(node, dict):
            return False
    return True


def catalog_problems(catalog: Any) -> list[str]:
    """Every way a discovered catalog breaks the Singer spec; empty when it is valid."""
    if not isinstance(catalog, dict) or not isinstance(catalog.get("streams"), list):
        return ["catalog must be an object with a 'streams' list"]
    problems: list[str] = []
    ids = [s.get("tap_stream_id") for s in catalog["streams"] if isinstance(s, dict)]
    if len(ids) != len(set(ids)):
        problems.append("tap_stream_id values are not unique")
    for stream in catalog["streams"]:
        problems += [f"{stream.get('tap_stream_id')}: {p}" for p in stream_problems(stream)]
    return problems


def stream_problems(stream: dict[str, Any]) -> list[str]:
    problems = [f"'{k}' must be {t.__name__}" for k, t in STREAM_FIELDS.items() if not isinstance(stream.get(k), t)]
    if problems:
        return problems
    schema = stream["schema"]
    try:
        jsonschema.Draft7Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        problems.append(f"schema is not valid Draft 7 JSON Schema: {exc.message} at {list(exc.path)}")
    types = schema.get("type")
    if "object" not in (types if isinstance(types, list) else [types]):
        problems.append("schema type must be object")
    props = schema.get("properties")
    if not isinstance(props, dict):
        return [*problems, "schema has no properties"]

    entries: dict[tuple[Any, ...], dict[str, Any]] = {}
    for item in stream["metadata"]:
        if not isinstance(item, dict) or not isinstance(item.get("breadcrumb"), list):
            problems.append(f"metadata item without a breadcrumb list: {item!r}")
            continue
        if not isinstance(item.get("metadata"), dict):
            problems.append(f"metadata of {item['breadcrumb']} must be an object")
            continue
        crumb = tuple(item["breadcrumb"])
        if crumb in entries:
            problems.append(f"breadcrumb {list(crumb)} appears twice")
        if crumb and not _properties_at(schema, list(crumb)):
            problems.append(f"breadcrumb {list(crumb)} does not name a property of the schema")
        entries[crumb] = item["metadata"]
    root = entries.get(())
    if root is None:
        return [*problems, "no stream-level metadata (breadcrumb [])"]
    missing = [p for p in props if ("properties", p) not in entries]
    if missing:
        problems.append(f"properties without metadata: {missing}")

    keys = root.get("table-key-properties", [])
    valid_rks = root.get("valid-replication-keys", [])
    for field, names in (("table-key-properties", keys), ("valid-replication-keys", valid_rks)):
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            problems.append(f"{field} must be a list of property names")
        elif unknown := [n for n in names if n not in props]:
            problems.append(f"{field} name missing properties: {unknown}")
    rk = root.get("replication-key")
    if rk is not None and (rk not in props or rk not in valid_rks):
        problems.append(f"replication-key {rk!r} is not a property listed in valid-replication-keys")
    for field in ("replication-method", "forced-replication-method"):
        if field in root and root[field] not in METHODS:
            problems.append(f"{field} {root[field]!r} is not one of {sorted(METHODS)}")
    for crumb, md in entries.items():
        if "inclusion" in md and md["inclusion"] not in INCLUSION:
            problems.append(f"inclusion {md['inclusion']!r} at {list(crumb)} is not one of {sorted(INCLUSION)}")
        if "selected-by-default" in md and not isinstance(md["selected-by-default"], bool):
            problems.append(f"selected-by-default at {list(crumb)} must be a boolean")
        if "selected" in md and not isinstance(md["selected"], bool):
            problems.append(f"selected at {list(crumb)} must be a boolean")
    for key in keys if isinstance(keys, list) else []:
        if entries.get(("properties", key), {}).get("inclusion") != "automatic":
            problems.append(f"key property {key!r} must have inclusion automatic")
    return problems


def select_one(catalog: dict[str, Any], stream_id: str, method: str, replication_key: str | None) -> dict[str, Any]:
    """The catalog with one stream selected the way Meltano and other runners select it."""
    out = copy.deepcopy(catalog)
    for stream in out["streams"]:
        root = next(i["metadata"] for i in stream["metadata"] if i["breadcrumb"] == [])
        root["selected"] = stream["tap_stream_id"] == stream_id
        if root["selected"]:
            root["replication-method"] = method
            if replication_key:
                root["replication-key"] = replication_key
            else:
                root.pop("replication-key", None)
    return out


def sync_problems(run: Run, stream_name: str) -> list[str]:
    if run.rc != 0:
        return [f"sync failed: {run.stderr.strip().splitlines()[-1:]}"]
    kinds = [m["type"] for m in run.messages]
    if not kinds or kinds[0] != "SCHEMA" or kinds[-1] != "STATE":
        return [f"a sync must start with SCHEMA and end with STATE, got {kinds[:1]}...{kinds[-1:]}"]
    problems: list[str] = []
    validators: dict[str, jsonschema.Draft7Validator] = {}
    for m in run.messages:
        if m["type"] == "SCHEMA":
            validators[m["stream"]] = jsonschema.Draft7Validator(m["schema"])
        elif m["type"] == "RECORD":
            validator = validators.get(m["stream"])
            if validator is None:
                problems.append(f"RECORD for {m['stream']!r} before its SCHEMA")
                continue
            problems += [f"record {m['record']!r}: {e.message}" for e in validator.iter_errors(m["record"])][:3]
    if stream_name not in validators:
        problems.append(f"no SCHEMA for the selected stream {stream_name!r}")
    return problems


def check_tap(
    run_tap: Callable[..., Run],
    tmp_path: Path,
    cls: type[Tap],
    config: dict[str, Any],
    incremental: dict[str, str] | None = None,
) -> list[tuple[str, str]]:
    """Discover, validate, then sync each stream every way its metadata allows (and INCREMENTAL on the
    `incremental` stream -> replication key pairs, for taps that leave the choice to the user);
    returns the (stream, method) pairs synced."""
    discovered = run_tap(cls, config, "--discover")
    assert discovered.rc == 0, discovered.stderr
    catalog = orjson.loads(discovered.stdout)
    assert catalog_problems(catalog) == []
    synced: list[tuple[str, str]] = []
    for stream in catalog["streams"]:
        root = next(i["metadata"] for i in stream["metadata"] if i["breadcrumb"] == [])
        ways: list[tuple[str, str | None]] = [("FULL_TABLE", None)]
        ways += [("INCREMENTAL", rk) for rk in root.get("valid-replication-keys", [])]
        if stream["tap_stream_id"] in (incremental or {}):
            ways.append(("INCREMENTAL", (incremental or {})[stream["tap_stream_id"]]))
        for method, rk in ways:
            selected = select_one(catalog, stream["tap_stream_id"], method, rk)
            path = write_config(tmp_path, selected, f"catalog-{stream['tap_stream_id']}-{method}.json")
            run = run_tap(cls, config, "--catalog", path)
            assert sync_problems(run, stream["stream"]) == [], (stream["tap_stream_id"], method, rk)
            synced.append((stream["tap_stream_id"], method))
    return synced


# -- the validator catches what it should ----------------------------------------------------------------

GOOD_STREAM = {
    "tap_stream_id": "s",
    "stream": "s",
    "schema": {"type": "object", "properties": {"id": {"type": "integer"}, "at": {"type": "string"}}},
    "metadata": [
        {
            "breadcrumb": [],
            "metadata": {"table-key-properties": ["id"], "valid-replication-keys": ["at"], "inclusion": "available"},
        },
        {"breadcrumb": ["properties", "id"], "metadata": {"inclusion": "automatic"}},
        {"breadcrumb": ["properties", "at"], "metadata": {"inclusion": "available"}},
    ],
}


def _broken(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    stream = copy.deepcopy(GOOD_STREAM)
    change(stream)
    return {"streams": [stream]}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: s["schema"]["properties"].update(x={"type": "nope"}), "not valid Draft 7"),
        (lambda s: s["metadata"][0]["metadata"].update({"table-key-properties": ["zz"]}), "table-key-properties"),
        (lambda s: s["metadata"][0]["metadata"].update({"valid-replication-keys": ["zz"]}), "valid-replication-keys"),
        (lambda s: s["metadata"][0]["metadata"].update({"replication-key": "id"}), "replication-key 'id'"),
        (lambda s: s["metadata"][1]["metadata"].update(inclusion="sometimes"), "inclusion 'sometimes'"),
        (lambda s: s["metadata"][1]["metadata"].update(inclusion="available"), "must have inclusion automatic"),
        (lambda s: s["metadata"].append({"breadcrumb": ["properties", "ghost"], "metadata": {}}), "does not name"),
        (lambda s: s["metadata"].append({"breadcrumb": ["id"], "metadata": {}}), "does not name"),
        (lambda s: s["metadata"].pop(0), "no stream-level metadata"),
        (lambda s: s["metadata"].pop(2), "properties without metadata: ['at']"),
        (lambda s: s["metadata"][0]["metadata"].update({"replication-method": "SOMETIMES"}), "replication-method"),
        (lambda s: s["metadata"][0]["metadata"].update(selected="yes"), "selected at [] must be a boolean"),
    ],
)
def test_the_validator_catches(change, problem):
    assert catalog_problems({"streams": [GOOD_STREAM]}) == []
    problems = catalog_problems(_broken(change))
    assert any(problem in p for p in problems), problems


# -- the taps ---------------------------------------------------------------------------------------------


def test_tap_csv_discovery_is_valid_and_every_stream_syncs(run_tap, tmp_path):
    config = {
        "base_path": str(ROOT / "examples" / "data"),
        "files": [
            {"entity": "customers", "path": "customers*.csv", "keys": ["id"], "replication_key": "updated_at"},
            {"entity": "orders", "path": "orders*.csv", "keys": ["order_id"], "replication_key": "ordered_at"},
            {"entity": "customers_no_key", "path": "customers*.csv"},
        ],
    }
    assert check_tap(run_tap, tmp_path, CsvTap, config) == [
        ("customers", "FULL_TABLE"),
        ("customers", "INCREMENTAL"),
        ("orders", "FULL_TABLE"),
        ("orders", "INCREMENTAL"),
        ("customers_no_key", "FULL_TABLE"),
    ]
