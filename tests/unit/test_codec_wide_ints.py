"""Integers wider than 64 bits are written with every digit (orjson refuses them), in RECORD lines
and in BATCH files: a 20-digit id column is common in CSV exports and in BigQuery JSON values."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from dpone.taps.csv.tap import CsvTap
from dpone_protocol.codec import DEFAULT_CODEC, EXACT_CODEC
from dpone_protocol.object_store import local_path

WIDE = 99999999999999999999


@pytest.mark.parametrize("codec", [DEFAULT_CODEC, EXACT_CODEC])
def test_wide_integers_are_written_exactly(codec) -> None:
    value = {"a": WIDE, "b": [2**70, {"c": -(2**64)}], "d": 2**64 - 1, "e": -(2**63)}
    assert codec.dumps(value) == (
        b'{"a":99999999999999999999,"b":[1180591620717411303424,{"c":-18446744073709551616}],'
        b'"d":18446744073709551615,"e":-9223372036854775808}'
    )
    assert codec.dumps_line({"a": WIDE}) == b'{"a":99999999999999999999}\n'
    assert EXACT_CODEC.loads(codec.dumps(value))["a"] == WIDE


@pytest.mark.parametrize("batch", [False, True])
def test_tap_csv_sends_a_wide_integer_column(run_tap, tmp_path: Path, batch: bool) -> None:
    (tmp_path / "ids.csv").write_text(f"id,qty\n1,{WIDE}\n2,5\n")
    config: dict = {"base_path": str(tmp_path), "files": [{"entity": "ids", "path": "ids.csv", "keys": ["id"]}]}
    if batch:
        config["batch_config"] = {"storage": {"root": (tmp_path / "b").as_uri()}}
    result = run_tap(CsvTap, config)
    assert result.rc == 0, result.stderr
    if batch:
        (message,) = result.of_type("BATCH")
        data = gzip.decompress(local_path(message["manifest"][0]).read_bytes())
    else:
        data = result.stdout
    assert b'"qty":99999999999999999999' in data
