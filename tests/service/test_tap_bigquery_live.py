"""tap-bigquery against BigQuery itself, for what the emulator does not keep: BIGNUMERIC, INTERVAL,
GEOGRAPHY and JSON columns, PRIMARY KEY constraints, and the Storage Read API on Google's endpoint.

Runs when DPONE_TEST_BIGQUERY_PROJECT names a project the Application Default Credentials can
create datasets and run jobs in (roles/bigquery.user and roles/bigquery.readSessionUser);
DPONE_TEST_BIGQUERY_LOCATION picks the location (default US). Each run makes a dataset of its own
and deletes it.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dpone.taps.bigquery.tap import BigQueryTap
from dpone.taps.framework.tap_cli import run as run_tap_cli
from tests.service.bigquery_source import Num, exact

PROJECT = os.environ.get("DPONE_TEST_BIGQUERY_PROJECT", "")
LOCATION = os.environ.get("DPONE_TEST_BIGQUERY_LOCATION", "US")

pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(not PROJECT, reason="set DPONE_TEST_BIGQUERY_PROJECT to run against BigQuery"),
]


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[Any, str]]:
    from google.cloud import bigquery

    client = bigquery.Client(project=PROJECT, location=LOCATION)
    dataset = f"dpone_tap_{uuid.uuid4().hex[:10]}"
    client.create_dataset(bigquery.Dataset(f"{PROJECT}.{dataset}"))
    try:
        client.query(
            f"""CREATE TABLE `{PROJECT}.{dataset}.wide` (
              id INT64 NOT NULL, bn BIGNUMERIC, n NUMERIC(10, 2), iv INTERVAL, g GEOGRAPHY, j JSON,
              ts TIMESTAMP, PRIMARY KEY (id) NOT ENFORCED)"""
        ).result()
        client.query(
            f"""INSERT INTO `{PROJECT}.{dataset}.wide` (id, bn, n, iv, g, j, ts) VALUES
              (1, BIGNUMERIC '1.12345678901234567890123456789012345678', 12.34, INTERVAL '1-2 3 4:5:6.5' YEAR TO SECOND,
               ST_GEOGPOINT(1, 2), JSON '{{"a": 0.10000000000000000001}}', TIMESTAMP '2024-01-02 03:04:05.123456+00'),
              (2, BIGNUMERIC '-578960446186580977117854925043439539266.34992332820282019728792003956564819968',
               NULL, NULL, NULL, NULL, TIMESTAMP '0001-01-01 00:00:00+00')"""
        ).result()
        yield client, dataset
    finally:
        client.delete_dataset(f"{PROJECT}.{dataset}", delete_contents=True, not_found_ok=True)


def _run(tmp_path: Path, config: dict[str, Any], *args: str) -> tuple[int, bytes, str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    out, err = io.BytesIO(), io.StringIO()
    rc = run_tap_cli(BigQueryTap, ["--config", str(path), *args], stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_discovery_reads_the_primary_key_and_wide_types(live: tuple[Any, str], tmp_path: Path) -> None:
    _, dataset = live
    rc, out, err = _run(tmp_path, {"project": PROJECT, "dataset": dataset, "location": LOCATION}, "--discover")
    assert rc == 0, err
    (entry,) = exact(out)["streams"]
    assert entry["key_properties"] == ["id"]
    props = entry["schema"]["properties"]
    assert props["bn"]["scale"] == 38 and props["n"]["precision"] == 10 and props["n"]["scale"] == 2


@pytest.mark.parametrize("storage", ["never", "always"])
def test_values_are_exact_on_both_read_paths(live: tuple[Any, str], tmp_path: Path, storage: str) -> None:
    _, dataset = live
    config = {"project": PROJECT, "dataset": dataset, "location": LOCATION, "use_storage_api": storage}
    rc, out, err = _run(tmp_path, config)
    assert rc == 0, err
    rows = sorted(
        (exact(line)["record"] for line in out.splitlines() if line.startswith(b'{"type":"RECORD"')),
        key=lambda r: r["id"],
    )
    assert rows[0]["bn"].rstrip("0") == "1.12345678901234567890123456789012345678"
    assert rows[1]["bn"] == "-578960446186580977117854925043439539266.34992332820282019728792003956564819968"
    assert rows[0]["n"] in ("12.34", "12.340000000")
    assert rows[0]["iv"] == "1-2 3 4:5:6.5"
    assert rows[0]["g"] == "POINT(1 2)"
    assert rows[0]["j"] == {"a": Num("0.10000000000000000001")} or rows[0]["j"]["a"] == Num("0.1")
    assert rows[0]["ts"] == "2024-01-02T03:04:05.123456+00:00"
    assert rows[1]["ts"] == "0001-01-01T00:00:00+00:00"
    if storage == "always":
        assert "Storage Read API" in err


def test_a_missing_table_names_it(live: tuple[Any, str], tmp_path: Path) -> None:
    _, dataset = live
    config = {"project": PROJECT, "dataset": dataset, "streams": [{"name": "x", "table": "nope"}]}
    rc, _, err = _run(tmp_path, config, "--discover")
    assert rc == 78 and f"{dataset}.nope" in err
