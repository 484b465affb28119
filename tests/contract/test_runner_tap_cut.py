"""A tap that dies mid-stream: its cut-off last line is no message, and the targets learn the cut.

The tap here is a real process that writes a SCHEMA, records and a STATE every 10 records, then
the first bytes of one more RECORD (no newline), logs an INFO line, and SIGKILLs itself: what a
tap killed by the OOM killer looks like from the pipe. The runner must not forward that fragment
nor count it (no phantom stream), must end every target's input with the cut mark so each
commits what its last state covers and exits 74, save the state the targets echoed, and name
the signal as the reason, not the INFO line.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import duckdb
import orjson

from dpone_runner import cli

FAULT_TARGET = Path(__file__).resolve().parent.parent / "crash" / "fault_target.py"
EXIT_FATAL = 70
EXIT_INPUT_CUT = 74
RECORDS = 25
STATE_EVERY = 10
INFO_LINE = "2026-01-01 00:00:00,000 INFO taps.dying: extracted 25 records"

DYING_TAP = """\
import json, os, signal, sys

out = sys.stdout.buffer
schema = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}
out.write(json.dumps({"type": "SCHEMA", "stream": "customers", "schema": schema, "key_properties": ["id"]}).encode())
out.write(b"\\n")
for i in range(1, __RECORDS__ + 1):
    out.write(json.dumps({"type": "RECORD", "stream": "customers", "record": {"id": i, "name": f"c{i}"}}).encode())
    out.write(b"\\n")
    if i % __STATE_EVERY__ == 0:
        out.write(json.dumps({"type": "STATE", "value": {"bookmarks": {"customers": {"upto": i}}}}).encode() + b"\\n")
out.write(__TAIL__)
out.flush()
print(__INFO_LINE__, file=sys.stderr, flush=True)
if __KILL__:
    os.kill(os.getpid(), signal.SIGKILL)
"""


class Lab:
    def __init__(self, root: Path, tail: bytes, kill: bool) -> None:
        self.root = root
        values = {"RECORDS": RECORDS, "STATE_EVERY": STATE_EVERY, "INFO_LINE": INFO_LINE, "TAIL": tail, "KILL": kill}
        body = DYING_TAP
        for name, value in values.items():
            body = body.replace(f"__{name}__", repr(value))
        (root / "dying_tap.py").write_text(body)
        scripts = {
            "tap-dying": f'#!/bin/sh\nexec "{sys.executable}" "{root / "dying_tap.py"}" "$@"\n',
            "target-fault": f'#!/bin/sh\nexec "{sys.executable}" "{FAULT_TARGET}" "$@"\n',
        }
        for name, text in scripts.items():
            (root / name).write_text(text)
            (root / name).chmod(0o755)
        project = {
            "plugins": {
                "extractors": [{"name": "tap-dying", "executable": str(root / "tap-dying"), "capabilities": ["state"]}],
                "loaders": [
                    {
                        "name": "target-jsonl",
                        "executable": "target-jsonl",
                        "config": {"destination_path": str(root / "out"), "add_record_metadata": False},
                    },
                    {
                        "name": "target-fault",
                        "executable": str(root / "target-fault"),
                        "config": {
                            "filepath": str(root / "out.duckdb"),
                            "echo_log": str(root / "fault.echo"),
                            "batch_size_rows": 4,
                        },
                    },
                ],
            }
        }
        (root / "meltano.yml").write_bytes(orjson.dumps(project))

    def run(self, *targets: str) -> tuple[int, dict[str, Any], str]:
        out, err = io.StringIO(), io.StringIO()
        argv = ["run", "tap-dying", *targets, "--project", str(self.root), "--no-progress", "--format", "json"]
        rc = cli.run([*argv, "--state-backend", f"sqlite:///{self.root / 'state.db'}"], stdout=out, stderr=err)
        return rc, orjson.loads(out.getvalue()), err.getvalue()

    def saved(self, *targets: str) -> Any:
        out = io.StringIO()
        backend = f"sqlite:///{self.root / 'state.db'}"
        pipeline = "tap-dying-to-" + "-".join(targets)
        assert cli.run(["state", "get", pipeline, "--state-backend", backend], stdout=out, stderr=io.StringIO()) == 0
        return orjson.loads(out.getvalue())

    def jsonl_ids(self) -> list[int]:
        path = self.root / "out" / "customers.jsonl"
        return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]

    def echoed(self) -> list[Any]:
        return [orjson.loads(line) for line in (self.root / "fault.echo").read_bytes().splitlines()]


def upto(n: int) -> dict[str, Any]:
    return {"bookmarks": {"customers": {"upto": n}}}


CUT_RECORD = b'{"type":"RECORD","stream":"cust'


def test_tap_killed_mid_line_is_a_cut_not_data(tmp_path: Path) -> None:
    lab = Lab(tmp_path, CUT_RECORD, kill=True)
    rc, report, err = lab.run("target-jsonl")
    assert rc == EXIT_FATAL, err
    assert report["status"] == "failed"
    # The reason is the signal, named as such; no log line stands in for it.
    assert report["error"] == "tap-dying was killed by signal 9 (SIGKILL)"
    assert "dpone: fatal error: tap-dying was killed by signal 9 (SIGKILL)" in err
    assert INFO_LINE not in report["error"]
    # No phantom stream built from the cut line; the fragment is not counted as data.
    assert [s["stream"] for s in report["streams"]] == ["customers"]
    assert report["streams"][0]["rows_in"] == RECORDS
    # The target was told its input was cut: it committed what the last state covers, echoed it, and
    # answered 74, which is the tap's failure, not a second one.
    assert report["exit_codes"] == {"tap-dying": -9, "target-jsonl": EXIT_INPUT_CUT}
    ids = lab.jsonl_ids()
    assert ids[:20] == list(range(1, 21))
    assert b"cust\n" not in (tmp_path / "out" / "customers.jsonl").read_bytes()
    assert lab.saved("target-jsonl") == upto(20)
    assert report["state_after"] == upto(20)
    assert "output ended inside a line" in err


def test_tap_killed_with_two_targets_saves_the_last_state_both_echoed(tmp_path: Path) -> None:
    lab = Lab(tmp_path, CUT_RECORD, kill=True)
    rc, report, err = lab.run("target-fault", "target-jsonl")
    assert rc == EXIT_FATAL, err
    assert report["error"] == "tap-dying was killed by signal 9 (SIGKILL)"
    assert report["exit_codes"] == {"tap-dying": -9, "target-fault": EXIT_INPUT_CUT, "target-jsonl": EXIT_INPUT_CUT}
    assert [s["stream"] for s in report["streams"]] == ["customers"]
    echoed = lab.echoed()
    assert echoed[-1] == upto(20)
    assert lab.saved("target-fault", "target-jsonl") == echoed[-1]
    with duckdb.connect(str(tmp_path / "out.duckdb"), read_only=True) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM customers ORDER BY id").fetchall()]
    assert ids[:20] == list(range(1, 21))  # every row the saved state covers is committed


def test_tap_exiting_cleanly_without_a_final_newline_loses_nothing(tmp_path: Path) -> None:
    last = b'{"type":"STATE","value":{"bookmarks":{"customers":{"upto":25}}}}'
    lab = Lab(tmp_path, last, kill=False)
    rc, report, err = lab.run("target-jsonl")
    assert rc == 0, err
    assert report["exit_codes"] == {"tap-dying": 0, "target-jsonl": 0}
    assert report["states_received"] == 3
    assert lab.saved("target-jsonl") == upto(25)
    assert lab.jsonl_ids() == list(range(1, RECORDS + 1))
