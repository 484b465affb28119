"""target-bigquery benchmark on the BigQuery emulator: our target against the limit and row inserts.

    python -m bench.target_bigquery [--records 100000] [--repeat 3] [--unbounded-numbers float64] [--no-inserts]

One emulator (tests/tools/bigquery_emulator.py) for the whole run; every tool loads the stream of
bench/records.py (SCHEMA, N RECORDs of 10 columns, a STATE every 10,000) into a dataset of its own,
in interleaved rounds (ours, limit, insert_rows_json, ours, ...), and the table must then hold N rows:

- ``dpone target-bigquery``: the console script of this venv, as a user runs it (a process, stdin =
  the Singer file), default settings but two the emulator needs: ``load_compression: none`` (gzip
  uploads fail on it) and ``unbounded_numbers`` other than the default bignumeric (its load jobs
  cannot make BIGNUMERIC columns): ``float64`` by default, which like bignumeric lets the stream's
  batches load as its RECORD lines; ``string`` makes ``score`` a STRING column, which takes the
  decoded path (a load job reads a bare number into STRING through a double). Upsert on ``id``,
  5 metadata columns.
- ``limit``: the same records as one ready NDJSON file (rendered untimed), ``load_table_from_file``
  into a table with the 10 columns our target makes: one load job, what nothing that reads Singer
  can beat.
- ``insert_rows_json x500``: what row-based targets do, the rows decoded from the Singer file and
  sent with ``insert_rows_json`` 500 at a time (timed in this process, decoding included).

Then one run of our target in this process, in batches of 25,000 rows, counts its HTTP requests
to the API by kind (a response hook on the client's session): the calls per batch.
Goal: ours at most 1.5x the limit's wall time; at most 4 API calls (jobs and table calls) per batch.
Times on the emulator are not BigQuery's (no network, no slot scheduling): they measure the client side.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench import evidence
from bench.paths import BIN, REPO, WORK_DIR, shown
from bench.records import DEFAULT_SEED, SCHEMA_MESSAGE, STREAM, write_stream

GOAL_VS_LIMIT = 1.5
GOAL_CALLS_PER_BATCH = 4
EMULATOR_SETTINGS: dict[str, Any] = {"load_compression": "none", "unbounded_numbers": "float64"}


def inputs(rows: int) -> tuple[Path, Path]:
    singer = WORK_DIR / f"bigquery-stream-{rows}.jsonl"
    bare = WORK_DIR / f"bigquery-records-{rows}.ndjson"
    if not singer.exists():
        write_stream(singer, rows, DEFAULT_SEED)
    if not bare.exists():
        with singer.open("rb") as src, bare.open("wb") as out:
            for line in src:
                if line.startswith(b'{"type":"RECORD"'):
                    out.write(orjson.dumps(orjson.loads(line)["record"]) + b"\n")
    return singer, bare


def columns() -> dict[str, str]:
    from dpone.targets.bigquery.type_map import bigquery_type
    from dpone_protocol.json_schema import stream_columns

    cols = stream_columns(SCHEMA_MESSAGE["schema"], STREAM)
    numbers = str(EMULATOR_SETTINGS["unbounded_numbers"])
    return {name: bigquery_type(col, numbers) for name, col in cols.items()}


def count(client: Any, dataset: str) -> int:
    rows = list(client.query(f"SELECT COUNT(*) FROM `{dataset}`.`{STREAM}`").result())
    return int(rows[0][0])


def run_ours(emulator: Any, singer: Path) -> tuple[float, str]:
    dataset = f"ours_{uuid.uuid4().hex[:8]}"
    config = WORK_DIR / f"bigquery-{dataset}.json"
    config.write_text(json.dumps(emulator.target_config(dataset, **EMULATOR_SETTINGS)))
    start = time.perf_counter()
    with singer.open("rb") as stdin:
        done = subprocess.run(
            [str(BIN / "target-bigquery"), "--config", str(config)],
            stdin=stdin,
            capture_output=True,
            cwd=REPO,
            check=False,
        )
    seconds = time.perf_counter() - start
    config.unlink()
    if done.returncode != 0:
        raise SystemExit(f"target-bigquery failed: {done.stderr.decode()[-2000:]}")
    return seconds, dataset


def run_limit(emulator: Any, bare: Path) -> tuple[float, str]:
    from google.cloud import bigquery

    from dpone.targets.bigquery.ddl import schema_fields

    client = emulator.client()
    dataset = f"limit_{uuid.uuid4().hex[:8]}"
    client.create_dataset(dataset)
    config = bigquery.LoadJobConfig(
        schema=schema_fields(bigquery, columns()), source_format="NEWLINE_DELIMITED_JSON", max_bad_records=0
    )
    start = time.perf_counter()
    with bare.open("rb") as fh:
        client.load_table_from_file(fh, f"{emulator.project}.{dataset}.{STREAM}", job_config=config).result()
    return time.perf_counter() - start, dataset


def run_inserts(emulator: Any, singer: Path) -> tuple[float, str]:
    from google.cloud import bigquery

    from dpone.targets.bigquery.ddl import schema_fields

    client = emulator.client()
    dataset = f"rows_{uuid.uuid4().hex[:8]}"
    client.create_dataset(dataset)
    table = bigquery.Table(f"{emulator.project}.{dataset}.{STREAM}", schema=schema_fields(bigquery, columns()))
    client.create_table(table)
    start = time.perf_counter()
    batch: list[dict[str, Any]] = []
    with singer.open("rb") as src:
        for line in src:
            message = orjson.loads(line)
            if message["type"] == "RECORD":
                batch.append(message["record"])
                if len(batch) == 500:
                    client.insert_rows_json(table, batch)
                    batch = []
    if batch:
        client.insert_rows_json(table, batch)
    return time.perf_counter() - start, dataset


def calls_per_batch(emulator: Any, singer: Path, batch_rows: int) -> tuple[collections.Counter[str], str]:
    """Our target in this process, its HTTP requests to the API counted by kind."""
    from dpone.targets.bigquery.loader import BigQueryLoader
    from dpone.targets.bigquery.target import BigQueryTarget
    from dpone.targets.framework.loader import Loader
    from dpone.targets.framework.target_cli import run

    seen: collections.Counter[str] = collections.Counter()

    def kind(response: Any, *args: Any, **kwargs: Any) -> None:
        request = response.request
        path = request.path_url.split("?")[0]
        if "/upload/" in request.url:
            what = "load job: upload (initiate + send)"
        elif path.endswith("/jobs") and request.method == "POST":
            what = "job insert (query, copy)"
        elif "/queries/" in path or ("/jobs/" in path and request.method == "GET"):
            what = "job wait (getQueryResults / jobs.get)"
        elif "/tables" in path:
            what = f"tables.{request.method.lower()}"
        else:
            what = f"other {request.method} {path.rsplit('/', 2)[-2]}"
        seen[what] += 1

    class Counted(BigQueryTarget):
        def make_loader(self) -> Loader:
            loader = super().make_loader()
            assert isinstance(loader, BigQueryLoader)
            loader.client._http.hooks["response"].append(kind)
            return loader

    dataset = f"count_{uuid.uuid4().hex[:8]}"
    config = WORK_DIR / f"bigquery-{dataset}.json"
    config.write_text(json.dumps(emulator.target_config(dataset, batch_size_rows=batch_rows, **EMULATOR_SETTINGS)))
    with singer.open("rb") as stdin:
        rc = run(Counted, ["--config", str(config)], stdin=stdin, stdout=io.BytesIO(), stderr=io.StringIO())
    config.unlink()
    assert rc == 0
    return seen, dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", "--rows", dest="rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--count-batch-rows", type=int, default=25_000)
    parser.add_argument(
        "--unbounded-numbers",
        default="float64",
        choices=("float64", "string"),
        help="the target's unbounded_numbers (float64: the raw path; string: score takes the decoded path)",
    )
    parser.add_argument("--no-inserts", action="store_true", help="skip insert_rows_json (slow at 1,000,000)")
    args = parser.parse_args(argv)
    EMULATOR_SETTINGS["unbounded_numbers"] = args.unbounded_numbers
    from tests.tools.bigquery_emulator import running

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    singer, bare = inputs(args.rows)
    print(f"input: {shown(singer)} ({args.rows:,} records), unbounded_numbers: {args.unbounded_numbers}")
    times: dict[str, list[float]] = collections.defaultdict(list)
    tools = {
        "dpone target-bigquery": lambda em: run_ours(em, singer),
        "limit (load_table_from_file)": lambda em: run_limit(em, bare),
        "insert_rows_json x500": lambda em: run_inserts(em, singer),
    }
    if args.no_inserts:
        del tools["insert_rows_json x500"]
    with running() as emulator:
        checker = emulator.client()
        for round_ in range(args.repeat):
            for name, tool in tools.items():
                seconds, dataset = tool(emulator)
                loaded = count(checker, dataset)
                if loaded != args.rows:
                    raise SystemExit(f"{name}: {loaded} rows loaded, expected {args.rows}")
                times[name].append(seconds)
                print(f"round {round_ + 1}: {name}: {seconds:.2f} s", flush=True)
        seen, dataset = calls_per_batch(emulator, singer, args.count_batch_rows)
        if count(checker, dataset) != args.rows:
            raise SystemExit("the counted run loaded another number of rows")
    limit = min(times["limit (load_table_from_file)"])
    print("\n| tool | best wall s | median wall s | vs limit |\n|---|---|---|---|")
    for name, values in times.items():
        best, median = min(values), sorted(values)[len(values) // 2]
        print(f"| {name} | {best:.2f} | {median:.2f} | {best / limit:.2f}x |")
    batches = -(-args.rows // args.count_batch_rows)
    print(f"\nHTTP requests of one run in {batches} batches of {args.count_batch_rows:,} rows:")
    for what, n in sorted(seen.items()):
        print(f"  {what}: {n} ({n / batches:.2f} per batch)")
    ours = min(times["dpone target-bigquery"])
    verdict = "met" if ours / limit <= GOAL_VS_LIMIT else "NOT met"
    print(f"\ngoal {GOAL_VS_LIMIT}x the limit: {verdict} ({ours / limit:.2f}x)")
    figures = {f"{name} s": min(values) for name, values in times.items()}
    sizes = {"rows": args.rows, "repeat": args.repeat}
    evidence.record(
        "target-bigquery",
        "load against one load job (emulator)",
        {**sizes, **figures, "vs limit": f"{ours / limit:.2f}x"},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
