"""A tap that fails mid-way never gets a partial full refresh swapped into the destination."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import duckdb

from dpone_runner.cli import run as dpone

SCHEMA = (
    '{"type":"SCHEMA","stream":"s","schema":{"type":"object","properties":{"id":{"type":"integer"}}},'
    '"key_properties":["id"]}'
)


def project(tmp_path: Path, rows: int, fail: bool) -> Path:
    tap = tmp_path / "tap-fake"
    tap.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(f"""
        import sys
        print({SCHEMA!r})
        for i in range({rows}):
            print('{{"type":"RECORD","stream":"s","record":{{"id":%d}}}}' % i)
        print('{{"type":"STATE","value":{{"n":{rows}}}}}', flush=True)
        sys.exit(3 if {fail} else 0)
    """)
    )
    tap.chmod(0o755)
    (tmp_path / "meltano.yml").write_text(
        textwrap.dedent(f"""
        plugins:
          extractors:
          - name: tap-fake
            executable: {tap}
            capabilities: [state]
          loaders:
          - name: target-duckdb
            config: {{filepath: {tmp_path / "db.duckdb"}, load_method: overwrite, batch_size_rows: 10}}
        """)
    )
    return tmp_path


def run(tmp_path: Path) -> int:
    return dpone(
        [
            "run",
            "tap-fake",
            "target-duckdb",
            "--project",
            str(tmp_path),
            "--no-progress",
            "--state-backend",
            f"sqlite:///{tmp_path / 'state.db'}",
        ]
    )


def count(tmp_path: Path) -> int:
    with duckdb.connect(str(tmp_path / "db.duckdb"), read_only=True) as conn:
        return int(conn.execute("SELECT count(*) FROM s").fetchone()[0])


def test_failed_tap_leaves_the_previous_full_refresh_in_place(tmp_path, capsys):
    assert run(project(tmp_path, 50, fail=False)) == 0
    assert count(tmp_path) == 50
    assert run(project(tmp_path, 7, fail=True)) != 0
    assert count(tmp_path) == 50
    assert "tap-fake failed" in capsys.readouterr().err
    assert run(project(tmp_path, 7, fail=False)) == 0
    assert count(tmp_path) == 7
