"""The keyed hash through `dpone run`: values land as HMAC-SHA256, the key shows nowhere, and a
missing key stops the run before any process starts."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import sys
from pathlib import Path

import orjson
import pytest

from dpone_runner import cli

KEY = "pepper-4b1d6c0e9a7f3d2c"
EMAIL = "kofi.muller1@example.com"

TAP = """\
import json, os, sys
print("hash key seen by the tap: " + os.environ.get("PII_HASH_KEY", ""), file=sys.stderr, flush=True)
schema = {"type": "object", "properties": {"id": {"type": "integer"}, "email": {"type": "string"}}}
print(json.dumps({"type": "SCHEMA", "stream": "customers", "schema": schema, "key_properties": ["id"]}))
print(json.dumps({"type": "RECORD", "stream": "customers", "record": {"id": 1, "email": EMAIL}}))
print(json.dumps({"type": "STATE", "value": {"n": 1}}))
if os.environ.get("GARBAGE"):
    print("garbage " + os.environ["PII_HASH_KEY"])
"""


def make_project(root: Path) -> Path:
    (root / "tap.py").write_text(TAP.replace("EMAIL", repr(EMAIL)))
    tap = root / "tap-people"
    tap.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{root / "tap.py"}" "$@"\n')
    tap.chmod(0o755)
    jsonl = {"destination_path": str(root / "out"), "add_record_metadata": False}
    project = {
        "plugins": {
            "extractors": [{"name": "tap-people", "executable": str(tap), "capabilities": ["state"]}],
            "loaders": [{"name": "target-jsonl", "executable": "target-jsonl", "config": jsonl}],
        }
    }
    (root / "meltano.yml").write_bytes(orjson.dumps(project))
    filters = [{"type": "hash", "stream": "customers", "properties": ["email"], "key_env": "PII_HASH_KEY"}]
    (root / "dpone.yml").write_bytes(orjson.dumps({"filters": filters}))
    return root


def dpone(root: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    backend = f"sqlite:///{root / 'state.db'}"
    rc = cli.run([*argv, "--project", str(root), "--state-backend", backend], stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_keyed_hash_lands_and_the_key_shows_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", KEY)
    monkeypatch.setenv("DPONE_LOG_LEVEL", "DEBUG")
    root = make_project(tmp_path)
    rc, out, err = dpone(root, "run", "tap-people", "target-jsonl", "--no-progress", "--format", "json")
    assert rc == 0, err
    (row,) = [orjson.loads(x) for x in (root / "out" / "customers.jsonl").read_bytes().splitlines()]
    assert row["email"] == hmac.new(KEY.encode(), EMAIL.encode(), hashlib.sha256).hexdigest()
    assert "hash key seen by the tap: ***" in err
    runs = dpone(root, "state", "runs", "tap-people-to-target-jsonl")[1]
    for text in (out, err, runs):
        assert KEY not in text


def test_the_key_is_masked_in_the_error_of_a_failed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_HASH_KEY", KEY)
    monkeypatch.setenv("GARBAGE", "1")
    root = make_project(tmp_path)
    rc, out, err = dpone(root, "run", "tap-people", "target-jsonl", "--no-progress", "--format", "json")
    assert rc == 65, err
    assert "'garbage ***'" in orjson.loads(out)["error"]
    runs = dpone(root, "state", "runs", "tap-people-to-target-jsonl")[1]
    for text in (out, err, json.dumps(runs)):
        assert KEY not in text


def test_a_missing_key_is_a_config_error_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PII_HASH_KEY", raising=False)
    root = make_project(tmp_path)
    rc, out, err = dpone(root, "run", "tap-people", "target-jsonl", "--no-progress")
    assert rc == 78
    assert err.strip() == (
        "dpone: config error: filters: hash key_env: environment variable PII_HASH_KEY is not set or empty"
    )
    assert out == ""
    assert not (root / "out").exists()
