"""A target killed with SIGKILL at random points never echoes a state ahead of its data.

Each trial streams records with a STATE every few rows into target-duckdb (merge mode,
small random batches), kills it at a random moment, then checks that every record the
last echoed state covers is in the table. Resuming from that state completes the load
with every row exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import orjson
import pytest

from tests.conftest import lines, record, schema, state

ROWS = 120
STATE_EVERY = 7
TRIALS = 20
PACE = 0.004  # seconds between lines: the target works while input is still arriving
EXE = str(Path(sys.executable).parent / "target-duckdb")
PROPS = {"id": {"type": "integer"}, "payload": {"type": "string"}}


def stream(start: int) -> list[bytes]:
    out = [lines(schema("events", PROPS))]
    for i in range(start, ROWS + 1):
        out.append(lines(record("events", {"id": i, "payload": f"row {i}"})))
        if i % STATE_EVERY == 0 or i == ROWS:
            out.append(lines(state({"upto": i})))
    return out


def run_until_killed(config: Path, chunks: list[bytes], kill_at: float | None) -> list[int]:
    """Feed `chunks` at a steady pace; SIGKILL the target `kill_at` seconds after its start."""
    proc = subprocess.Popen(
        [EXE, "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "DPONE_LOG_LEVEL": "ERROR"},
    )
    echoed: list[int] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            echoed.append(orjson.loads(line)["upto"])

    reader = threading.Thread(target=read)
    reader.start()
    killer = threading.Timer(kill_at, proc.send_signal, (signal.SIGKILL,)) if kill_at is not None else None
    if killer:
        killer.start()
    assert proc.stdin is not None
    try:
        for chunk in chunks:
            proc.stdin.write(chunk)
            proc.stdin.flush()
            time.sleep(PACE)
        proc.stdin.close()
    except (BrokenPipeError, ValueError):
        pass  # killed while we were writing
    proc.wait(timeout=60)
    if killer:
        killer.cancel()
    reader.join(timeout=60)
    if kill_at is None:
        assert proc.returncode == 0
    return echoed


def ids(db: Path) -> list[int]:
    if not db.exists():
        return []
    with duckdb.connect(str(db), read_only=True) as conn:
        tables = {r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "events" not in tables:
            return []
        return [r[0] for r in conn.execute("SELECT id FROM events ORDER BY id").fetchall()]


@pytest.mark.parametrize("seed", range(TRIALS))
def test_killed_target_never_echoes_past_committed_data(tmp_path, seed):
    rng = random.Random(seed)
    db = tmp_path / "crash.duckdb"
    config = tmp_path / "config.json"
    config.write_bytes(orjson.dumps({"filepath": str(db), "batch_size_rows": rng.randint(2, 25)}))
    chunks = stream(1)
    # Start-up takes ~0.2 s and feeding ~0.6 s: kill before, during and after the work.
    echoed = run_until_killed(config, chunks, kill_at=rng.uniform(0.1, 0.7))
    committed = ids(db)
    last = echoed[-1] if echoed else 0
    assert set(range(1, last + 1)) <= set(committed), f"state upto={last} but table has {len(committed)} rows"
    # Resume like a tap given the last echoed state: at-least-once from the bookmark on.
    run_until_killed(config, stream(last + 1), kill_at=None)
    assert ids(db) == list(range(1, ROWS + 1))


def test_a_target_killed_while_creating_its_file_leaves_none_or_a_whole_one(tmp_path):
    """DuckDB writes a new file's headers in several writes; a process killed between them used to
    leave a file no later run could open. Here the driver writes one header page and the process
    dies (os._exit), as under SIGKILL at that moment."""
    db = tmp_path / "new.duckdb"
    dying = textwrap.dedent(f"""
        import os, duckdb
        from dpone.targets.duckdb import connector
        def connect(path, **kwargs):
            with open(path, "wb") as fh:
                fh.write(b"\\0" * 4096)
            os._exit(9)
        duckdb.connect = connect
        connector.connect({str(db)!r})
    """)
    assert subprocess.run([sys.executable, "-c", dying], check=False).returncode == 9
    assert ids(db) == []  # no file, or one that opens
    config = tmp_path / "config.json"
    config.write_bytes(orjson.dumps({"filepath": str(db)}))
    run_until_killed(config, stream(1), kill_at=None)
    assert ids(db) == list(range(1, ROWS + 1))
    assert [p.name for p in tmp_path.iterdir() if "dpone-new" in p.name] == []  # the dead run's file is gone
