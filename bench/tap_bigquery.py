"""tap-bigquery against a bare `client.list_rows(...).to_arrow()` on the BigQuery emulator.

    python -m bench.tap_bigquery [ROWS]        # default 100,000

Fills a table of ROWS rows (INT64, STRING, NUMERIC, FLOAT64, BOOL, TIMESTAMP, DATE) with one NDJSON
load job, then times, each in-process and best of three: the bare client read (REST pages into
Arrow, no messages), tap-bigquery through REST, and tap-bigquery through the Storage Read API (the
emulator's gRPC endpoint), both writing RECORD lines to a null sink. The emulator serves both APIs
from one local DuckDB, so the figures compare the client-side work, not BigQuery's network paths.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench import evidence
from dpone.taps.bigquery.tap import BigQueryTap
from dpone.taps.framework.tap_cli import run as run_tap_cli
from tests.tools.bigquery_emulator import running


class _Null(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return len(data)


def _best(label: str, rows: int, fn: Callable[[], None]) -> float:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    best = min(times)
    print(f"| {label} | {best:.2f} s | {rows / best:,.0f} rows/s |")
    return best


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    from google.cloud import bigquery
    from google.cloud.bigquery import SchemaField as F

    with running() as emulator, tempfile.TemporaryDirectory() as tmp:
        client = emulator.client()
        dataset = f"bench_{uuid.uuid4().hex[:8]}"
        client.create_dataset(dataset)
        fields = [
            F("id", "INT64"),
            F("name", "STRING"),
            F("amount", "NUMERIC"),
            F("score", "FLOAT64"),
            F("active", "BOOL"),
            F("updated_at", "TIMESTAMP"),
            F("born", "DATE"),
        ]
        table_id = f"{emulator.project}.{dataset}.wide"
        client.create_table(bigquery.Table(table_id, schema=fields))
        data = b"".join(
            json.dumps(
                {
                    "id": i,
                    "name": f"name {i}",
                    "amount": f"{i}.{i % 100:02d}",
                    "score": i / 7,
                    "active": i % 2 == 0,
                    "updated_at": f"2025-01-01T00:00:{i % 60:02d}.{i % 1_000_000:06d}Z",
                    "born": f"19{i % 100:02d}-01-01",
                }
            ).encode()
            + b"\n"
            for i in range(rows)
        )
        config = bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON")
        client.load_table_from_file(io.BytesIO(data), table_id, job_config=config).result()
        table = client.get_table(table_id)

        def bare() -> None:
            client.list_rows(table, page_size=10_000).to_arrow(create_bqstorage_client=False)

        def tap(extra: dict[str, object]) -> Callable[[], None]:
            path = Path(tmp) / f"{uuid.uuid4().hex}.json"
            path.write_text(json.dumps(emulator.target_config(dataset, **extra)))

            def go() -> None:
                out = io.BufferedWriter(_Null(), 1 << 20)
                assert run_tap_cli(BigQueryTap, ["--config", str(path)], stdout=out, stderr=io.StringIO()) == 0

            return go

        print(f"{rows:,} rows, 7 columns, on bqemulator\n")
        print("| reader | time | rate |\n|---|---|---|")
        figures = {
            "rows": rows,
            "client.list_rows s": _best("`client.list_rows(...).to_arrow()` (REST, no messages)", rows, bare),
        }
        figures["REST pages s"] = _best("tap-bigquery, REST pages", rows, tap({"use_storage_api": "never"}))
        storage = {"use_storage_api": "always", "storage_api_endpoint": emulator.grpc_endpoint}
        figures["Storage Read API s"] = _best("tap-bigquery, Storage Read API", rows, tap(storage))
        evidence.record("tap-bigquery", "read against client.list_rows (emulator)", figures)


if __name__ == "__main__":
    main()
