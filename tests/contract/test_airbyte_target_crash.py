"""target-duckdb `write`, killed with SIGKILL at random moments, never echoes an Airbyte STATE
ahead of its data: every row the last echoed state covers is in the table."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import orjson

ROWS = 300
STATE_EVERY = 7
TRIALS = 6
PACE = 0.004
EXE = str(Path(sys.executable).parent / "target-duckdb")


def airbyte_input() -> list[bytes]:
    out = []
    for i in range(1, ROWS + 1):
        data = {"id": i, "payload": f"row {i}"}
        out.append(orjson.dumps({"type": "RECORD", "record": {"stream": "events", "data": data, "emitted_at": 0}}))
        if i % STATE_EVERY == 0 or i == ROWS:
            stream = {"stream_descriptor": {"name": "events"}, "stream_state": {"upto": i}}
            out.append(orjson.dumps({"type": "STATE", "state": {"type": "STREAM", "stream": stream}}))
    return [line + b"\n" for line in out]


def test_killed_target_never_echoes_uncommitted_state(tmp_path: Path) -> None:
    properties = {"id": {"type": "integer"}, "payload": {"type": "string"}}
    catalog = tmp_path / "catalog.json"
    catalog.write_text(
        json.dumps(
            {
                "streams": [
                    {
                        "stream": {"name": "events", "json_schema": {"type": "object", "properties": properties}},
                        "sync_mode": "incremental",
                        "destination_sync_mode": "append_dedup",
                        "primary_key": [["id"]],
                    }
                ]
            }
        )
    )
    rng = random.Random(7)
    interrupted = 0  # trials killed after echoing some states but before the end
    for trial in range(TRIALS):
        db = tmp_path / f"t{trial}.duckdb"
        config = tmp_path / f"c{trial}.json"
        config.write_text(json.dumps({"filepath": str(db), "batch_size_rows": rng.randint(3, 20)}))
        proc = subprocess.Popen(
            [EXE, "write", "--config", str(config), "--catalog", str(catalog)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "DPONE_LOG_LEVEL": "ERROR"},
        )
        echoed: list[int] = []

        def read(p: subprocess.Popen[bytes] = proc, into: list[int] = echoed) -> None:
            assert p.stdout is not None
            for line in p.stdout:
                message = orjson.loads(line)
                if message["type"] == "STATE":
                    into.append(message["state"]["stream"]["stream_state"]["upto"])

        reader = threading.Thread(target=read)
        reader.start()
        killer = threading.Timer(rng.uniform(0.6, 1.6), proc.send_signal, (signal.SIGKILL,))
        killer.start()
        assert proc.stdin is not None
        try:
            for line in airbyte_input():
                proc.stdin.write(line)
                proc.stdin.flush()
                time.sleep(PACE)
            proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        proc.wait(timeout=60)
        killer.cancel()
        reader.join(timeout=60)
        if not echoed:
            continue
        interrupted += proc.returncode == -signal.SIGKILL and max(echoed) < ROWS
        with duckdb.connect(str(db)) as conn:
            ids = {row[0] for row in conn.sql("SELECT id FROM events").fetchall()}
        assert set(range(1, max(echoed) + 1)) <= ids, f"trial {trial}: state {max(echoed)} echoed before its rows"
    assert interrupted, "no trial was killed mid-load: the test proved nothing"
