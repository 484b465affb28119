"""--profile of bench/tap_postgres.py: where our tap's time goes (no reference tools).

Four tables: variants of our tap's query through psql (the server's share), the tap's per-row steps
rebuilt in-process with psycopg (the client's share), our tap in-process with its COPY rewritten or
its gzip writes buffered (monkeypatched, to size a fix before making it), and our tap as a process;
then py-spy samples of the real processes.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.measure import wait_for_quiet
from bench.paths import REPO
from bench.pg_server import PgServer
from bench.pyspy import SAMPLE_RATE, Categories, ensure_py_spy, print_samples, record_argv, sort_samples
from bench.ref_venvs import pyenv_python
from bench.tap_postgres_bench import FLOOR, OURS_QUERY, Bench, Measured, Tool
from bench.tap_postgres_checks import check_batch
from bench.tap_postgres_table import COLUMNS, DATABASE, SCHEMA, TABLE

_ROW = "_dpone_row"  # the alias our tap's query gives the rendered row
_TRANSLATED = f"translate(row_to_json({_ROW})::text, E'\\n\\r', '  ')"
_NO_TRANSLATE = f"row_to_json({_ROW})::text"
_REPLACE = f"replace(replace(row_to_json({_ROW})::text, E'\\n', ' '), E'\\r', ' ')"


def _copy_blocks(server: PgServer, sql: str) -> Iterator[Any]:
    import psycopg

    with (
        psycopg.connect(server.dsn(DATABASE), autocommit=True) as conn,
        conn.cursor() as cur,
        cur.copy(sql) as copy,
    ):
        yield from copy


def _staircase_step(step: str, server: PgServer, sql: str, rows: int) -> tuple[float, float]:
    """One in-process read of a COPY doing what the tap does per row, up to `step`: (wall, client CPU)."""
    head = b'{"type":"RECORD","stream":"public-bench_records","record":'
    tail = b',"version":1717171717171,"time_extracted":"2024-06-01T00:00:00+00:00"}\n'
    n = 0
    start, cpu = time.perf_counter(), time.process_time()
    if step == "read":
        for _ in _copy_blocks(server, sql):
            n += 1
    elif step == "frame":
        for block in _copy_blocks(server, sql):
            data = bytes(block)
            sep = data.index(b"\x1f")
            key = data[sep + 1 :].rstrip(b"\n")
            record = data[:sep]
            n += 1
        del key, record
    elif step == "stdout":
        with open(os.devnull, "wb", buffering=1 << 20) as out:
            for block in _copy_blocks(server, sql):
                data = bytes(block)
                sep = data.index(b"\x1f")
                key = data[sep + 1 :].rstrip(b"\n")
                out.write(head + data[:sep] + tail)
                n += 1
        del key
    elif step in ("gzip", "gzip-buffered"):
        with (
            tempfile.TemporaryDirectory(prefix="dpone-tap-gzip-") as tmp,
            gzip.open(Path(tmp) / "b.jsonl.gz", "wb", compresslevel=1) as raw,
        ):
            fh: Any = io.BufferedWriter(raw, 1 << 20) if step == "gzip-buffered" else raw  # type: ignore[arg-type]
            for block in _copy_blocks(server, sql):
                data = bytes(block)
                sep = data.index(b"\x1f")
                key = data[sep + 1 :].rstrip(b"\n")
                fh.write(data[:sep] + b"\n")
                n += 1
            if fh is not raw:
                fh.flush()
                fh.detach()
        del key
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if n != rows:
        raise SystemExit(f"error: staircase step {step} read {n:,} rows, expected {rows:,}")
    return seconds, cpu


def _server_only(bench: Bench, query: str) -> float:
    """The server renders every row (the tap's SELECT) but sends nothing: SELECT sum(length(...))."""
    sql = f"\\timing on\nSELECT sum(length(j)) FROM ({query}) AS t(j, k);\n"
    script = bench.logs / "server-only.sql"
    script.write_text(sql)
    done = subprocess.run(
        [*bench.server.psql_command(DATABASE), "-f", str(script)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"error: server-only query failed: {done.stderr}")
    time.sleep(0.3)  # its backend is reaped before the next measured run reads the server's CPU
    found = re.findall(r"Time: ([0-9.]+) ms", done.stdout)
    return float(found[-1]) / 1000


@contextmanager
def _what_if(rewrite: str | None, buffered_gzip: bool) -> Iterator[None]:
    """Our tap, in-process, with its COPY's translate() rewritten and/or its gzip writes buffered.

    Monkeypatches for an experiment only: psycopg's Cursor.copy and JsonlBatchWriter._open.
    """
    import psycopg

    import dpone_protocol.batch_files as batch_files_module

    copy, open_ = psycopg.Cursor.copy, batch_files_module.JsonlBatchWriter._open

    def rewritten_copy(self: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if rewrite is not None and isinstance(statement, str) and _TRANSLATED in statement:
            statement = statement.replace(_TRANSLATED, rewrite)
        return copy(self, statement, *args, **kwargs)

    def buffered_open(self: Any) -> Any:
        fh = open_(self)
        return io.BufferedWriter(fh, 1 << 20) if buffered_gzip else fh

    psycopg.Cursor.copy = rewritten_copy  # type: ignore[method-assign]
    batch_files_module.JsonlBatchWriter._open = buffered_open  # type: ignore[method-assign]
    try:
        yield
    finally:
        psycopg.Cursor.copy = copy  # type: ignore[method-assign]
        batch_files_module.JsonlBatchWriter._open = open_  # type: ignore[method-assign]


def _in_process(bench: Bench, tool: Tool, rewrite: str | None, buffered_gzip: bool) -> tuple[float, float]:
    from dpone.taps.framework.tap_cli import run
    from dpone.taps.postgres.tap import PostgresTap

    bench.clear_batches()
    os.environ["DPONE_LOG_LEVEL"] = "WARNING"
    with _what_if(rewrite, buffered_gzip), open(os.devnull, "wb", buffering=1 << 20) as out:
        start, cpu = time.perf_counter(), time.process_time()
        code = run(PostgresTap, tool.argv[1:], stdout=out)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    if code != 0:
        raise SystemExit(f"error: in-process {tool.name} exited {code}")
    if tool.kind == "batch":
        rows = check_batch(sorted(bench.batch_root.iterdir()), with_ids=False).rows
        bench.clear_batches()
        if rows != bench.rows:
            raise SystemExit(f"error: in-process {tool.name} wrote {rows:,} rows, expected {bench.rows:,}")
    return seconds, cpu


_SAMPLE_CATEGORIES: Categories = (
    ("start-up: imports, config, discovery, connect", lambda s: "_StreamSync.run" not in s),
    ("psycopg: waiting for / reading COPY data (Copy.__iter__)", lambda s: "copy.py" in s or "Copy." in s),
    ("gzip: compressing batch files", lambda s: "gzip" in s),
    ("stdout: writing RECORD lines", lambda s: "write (" in s.rsplit(";", 1)[-1] and "gzip" not in s),
    ("STATE checkpoints", lambda s: "_checkpoint" in s),
    ("framing: the stream's row loop (read_rows)", lambda s: "read_rows (" in s.rsplit(";", 1)[-1]),
    ("framing: the tap loop (_StreamSync.run) and generators", lambda s: True),
)


def pyspy_breakdown(tool: Tool, py_spy: Path, logs: Path) -> None:
    raw = logs / f"pyspy-{tool.kind}.txt"
    out = logs / "pyspy.stdout"
    with out.open("wb") as fo:
        done = subprocess.run(
            [*record_argv(py_spy, raw), *tool.argv], stdout=fo, stderr=subprocess.DEVNULL, cwd=REPO, check=False
        )
    if done.returncode != 0:
        raise SystemExit(f"error: py-spy run of {tool.name} failed ({done.returncode})")
    counts = sort_samples(raw, _SAMPLE_CATEGORIES)
    total = sum(counts.values()) or 1
    print(f"\npy-spy of {tool.name}, {total:,} samples at {SAMPLE_RATE}/s ({total / SAMPLE_RATE:.1f}s):")
    print_samples(counts)


def _table(title: str, header: str, rows: list[tuple[str, ...]]) -> None:
    print(f"\n{title}\n")
    print(header)
    print("|---" + "|---:" * (header.count("|") - 2) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def profile(args: argparse.Namespace, bench: Bench) -> None:
    columns = ", ".join(COLUMNS)
    record, batch = bench.ours(batch=False), bench.ours(batch=True)
    captured = bench.our_copy_sql(record)
    if not captured:
        raise SystemExit("error: our tap's COPY was not found in the server log")
    query, options = captured.split("\x00")
    print(f"\nour tap's COPY:\n  COPY ({query}) TO STDOUT {options}")
    translated = _TRANSLATED in query  # the tap's line-break fix over the whole row (before 2026-11-25)
    if not translated:
        print("(the tap's query has no translate() over the row: its variants are left out)")
    floor = bench.psql(FLOOR, f"SELECT {columns} FROM {SCHEMA}.{TABLE}")
    ours_psql = bench.psql(OURS_QUERY, query, " " + options)
    for tool in (floor, ours_psql, batch):
        bench.check_run(tool)
    rows = args.rows

    def quiet(fn: Callable[[], Any]) -> Any:
        wait_for_quiet(args.wait_quiet)
        return fn()

    def best(fn: Callable[[], tuple[float, float]]) -> tuple[float, float]:
        return min((quiet(fn) for _ in range(args.repeat)), key=lambda r: r[0])

    def best_run(tool: Tool) -> Measured:
        return min((quiet(lambda: bench.timed_run(tool)) for _ in range(args.repeat)), key=lambda m: m.seconds)

    def rate(seconds: float) -> str:
        return f"{rows / seconds:,.0f}"

    # 1. The server's share: our query and variants of it, each through psql \copy to /dev/null.
    no_translate = query.replace(_TRANSLATED, _NO_TRANSLATE)
    key_text = re.sub(r"json_build_array\(([^()]*)\)::text", r"\1::text", no_translate)
    without = " without translate()" if translated else ""
    unordered = query.rsplit(" ORDER BY ", 1)[0]
    no_jit = bench.psql("no-jit", query, " " + options)
    no_jit.env = {**os.environ, "PGOPTIONS": "-c jit=off"}
    variants = [
        ("psql \\copy of the 10 plain columns (the floor)", floor),
        ("psql \\copy of our tap's query", ours_psql),
        ("  without ORDER BY the key", bench.psql("unordered", unordered, " " + options)),
        ("  with jit=off", no_jit),
    ]
    if translated:
        variants += [
            (
                "  replace(replace(...)) instead of translate()",
                bench.psql("replace", query.replace(_TRANSLATED, _REPLACE), " " + options),
            ),
            ("  without translate()", bench.psql("no-translate", no_translate, " " + options)),
        ]
    key_label = "  without translate(), key as plain text" if translated else "  key as plain text"
    variants.append((key_label, bench.psql("key-text", key_text, " " + options)))
    seconds = best(lambda: (_server_only(bench, query), 0.0))[0]
    lines = [
        (
            "our query rendered by the server, nothing sent (SELECT sum(length(json)))",
            f"{seconds:.2f}",
            rate(seconds),
            "",
            "",
        )
    ]
    for what, tool in variants:
        m = best_run(tool)
        lines.append((what, f"{m.seconds:.2f}", rate(m.seconds), f"{m.tool_cpu:.2f}", f"{m.server_cpu:.2f}"))
    _table(
        f"The server's share, {rows:,} rows (best of {args.repeat}):",
        "| query | seconds | rows/s | psql CPU s | server CPU s |",
        lines,
    )

    # 2. The tap's share: what the tap does per row, step by step, in-process, reading the COPY without
    #    translate() (the server's part is then small enough for the client's to show).
    copy_sql = f"COPY ({no_translate}) TO STDOUT {options}"
    lines = []
    for step, what in (
        ("read", "psycopg: iterate the COPY rows, nothing else"),
        ("frame", "+ frame each row (bytes, find the separator, slice record and key)"),
        ("stdout", "+ write RECORD lines to /dev/null (1 MB buffer)"),
        ("gzip", "instead: write each record line into a gzip (level 1) file, as the tap does"),
        ("gzip-buffered", "instead: the same through a 1 MB io.BufferedWriter"),
    ):
        wall, cpu = best(lambda step=step: _staircase_step(step, bench.server, copy_sql, rows))
        lines.append((what, f"{wall:.2f}", rate(wall), f"{cpu:.2f}"))
    _table(
        f"The tap's share, in-process, our COPY{without}:",
        "| step | seconds | rows/s | client CPU s |",
        lines,
    )

    # 3. What would help: our tap itself, in-process, with its COPY rewritten and its gzip writes buffered.
    lines = []
    experiments: list[tuple[str, Tool, str | None, bool]] = [("RECORD, as it is", record, None, False)]
    if translated:
        experiments += [
            ("RECORD, replace(replace(...)) instead of translate()", record, _REPLACE, False),
            ("RECORD, without translate()", record, _NO_TRANSLATE, False),
        ]
    experiments.append(("BATCH, as it is", batch, None, False))
    if translated:
        experiments.append(("BATCH, without translate()", batch, _NO_TRANSLATE, False))
    experiments.append((f"BATCH,{without} gzip writes through a 1 MB buffer", batch, _NO_TRANSLATE, True))
    for what, tool, rewrite, buffered in experiments:
        wall, cpu = best(
            lambda tool=tool, rewrite=rewrite, buffered=buffered: _in_process(bench, tool, rewrite, buffered)
        )
        lines.append((what, f"{wall:.2f}", rate(wall), f"{cpu:.2f}"))
    _table(
        "What would help: tap-postgres in-process (no interpreter start-up), patched for the experiment:",
        "| our tap | seconds | rows/s | tap CPU s |",
        lines,
    )

    # 4. The real thing, and its start-up alone.
    lines = []
    for what, tool in (("tap-postgres RECORD, to /dev/null", record), ("tap-postgres BATCH", batch)):
        m = best_run(tool)
        lines.append((what, f"{m.seconds:.2f}", rate(m.seconds), f"{m.tool_cpu:.2f}", f"{m.server_cpu:.2f}"))
    start = time.perf_counter()
    bench.discover("dpone-record", record.argv[:3])
    seconds = time.perf_counter() - start
    lines.append(
        ("tap-postgres --discover (interpreter, imports, connect, one discovery)", f"{seconds:.2f}", "", "", "")
    )
    _table("Our tap as a process:", "| run | seconds | rows/s | tap CPU s | server CPU s |", lines)

    found = ensure_py_spy(pyenv_python("3.11.7"))
    if isinstance(found, str):
        print(f"py-spy breakdown skipped: {found}")
        return
    pyspy_breakdown(record, found, bench.logs)
    bench.clear_batches()
    pyspy_breakdown(batch, found, bench.logs)
    bench.clear_batches()
