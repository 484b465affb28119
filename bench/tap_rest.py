"""tap-rest benchmark: our tap against tap-rest-api-msdk, the same records from the same local API.

    python bench/tap_rest.py [--pages 1000] [--per-page 100] [--repeat 3] [--wait-quiet S]
    python bench/tap_rest.py --only msdk          # one side only (no goal line)
    python bench/tap_rest.py --pages 200 --latency-ms 20   # an API 20 ms away: what concurrency buys

The API is bench/rest_pages.py in a process of its own: bench/records.py's records (ten fields: ints,
strings, a float, a two-decimal amount, a bool, a date-time, a date, a nullable int), --pages pages
of --per-page, every response rendered once when it starts; ThreadingHTTPServer on 127.0.0.1,
HTTP/1.1 keep-alive; --latency-ms makes it wait before each answer, as a remote API would. Two
pagination styles of the same pages, each tool configured for it:

- cursor: ``/records?per_page=P&page_token=T``, body ``{"data": [...], "next_page": T|null}``.
  Ours: ``{"type": "cursor", "cursor_path": "$.next_page", "cursor_param": "page_token"}``;
  msdk: pagination_request_style jsonpath_paginator, next_page_token_path ``$.next_page``,
  pagination_response_style page, pagination_next_page_param page_token.
- page numbers: ``/records?page=N&per_page=P``, body ``{"data": [...], "has_more": bool}``, an empty
  page past the last. Ours: ``{"type": "page", "page_size": P}`` (it stops at the short page past
  the last: one request more), once with concurrency 1 and once with 4; msdk:
  page_number_paginator from 1, which stops when ``$.has_more`` is false.

Both tools get the schema declared (ours inline, msdk a schema file), so neither samples pages to
infer one; both run with their default logging and no catalog (every stream), as one runs a tap. The
msdk tool is installed from PyPI into its own venv under bench/.work/ with pyenv's Python 3.11.7.

Every tool runs once untimed with its output checked: exactly pages*per-page RECORDs, the sum of
their ids, the SCHEMA it sent, the first and last record against the source, and the requests the
server answered. Then the timed runs, interleaved (order reversed every other round), each a fresh
process writing to /dev/null after a wait for the machine to go quiet (--wait-quiet): wall seconds
from start to exit, user+sys CPU of its process tree and per record, the server's CPU meanwhile,
peak RSS (GNU time); best of --repeat. Goal (issue #17): ours at least 5x faster than msdk in
every style at concurrency 1; concurrency 4 is reported beside it.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (python bench/tap_rest.py): make the repo root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench import evidence
from bench.host import commit, load_average
from bench.measure import MB, Finished, run_measured, wait_for_quiet
from bench.paths import BIN, REPO, WORK_DIR, shown, tail
from bench.records import DEFAULT_SEED, SCHEMA_MESSAGE, iter_records
from bench.ref_venvs import install, pyenv_python, version_of
from bench.rest_pages import RECORDS_PATH, PageServer

GOAL_SPEEDUP = 5.0  # msdk's wall time over ours, every style at concurrency 1
STREAM = "records"
LOGS = WORK_DIR / "tap-rest-logs"
MSDK = "tap-rest-api-msdk"
MSDK_VENV = WORK_DIR / "venv-tap-rest-api-msdk"
MSDK_PYTHON = "3.11.7"
CURSOR, PAGE = "cursor", "page numbers"
SCHEMA: dict[str, Any] = SCHEMA_MESSAGE["schema"]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    slug: str  # file names of its config and logs
    style: str
    ours: bool
    concurrency: int
    argv: list[str]


@dataclass(slots=True)
class Run:
    done: Finished
    server_cpu: float
    requests: int


@dataclass(slots=True)
class Result:
    tool: Tool
    runs: list[Run] = field(default_factory=list)
    requests: int = 0  # what the checked run asked for

    @property
    def best(self) -> Run:
        return min(self.runs, key=lambda r: r.done.seconds)


# -- the tools and their configs ---------------------------------------------------------------------
def our_command() -> list[str]:
    script = BIN / "tap-rest"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dpone.taps.rest.cli"]


def our_config(url: str, style: str, per_page: int, concurrency: int) -> dict[str, Any]:
    stream: dict[str, Any] = {
        "name": STREAM,
        "path": RECORDS_PATH,
        "records_path": "$.data[*]",
        "primary_keys": ["id"],
        "schema": SCHEMA,
    }
    config: dict[str, Any] = {"api_url": url, "streams": [stream]}
    if style == CURSOR:
        stream["params"] = {"per_page": per_page}
        config["pagination"] = {"type": "cursor", "cursor_path": "$.next_page", "cursor_param": "page_token"}
    else:
        config["pagination"] = {
            "type": "page",
            "page_param": "page",
            "start_page": 1,
            "page_size_param": "per_page",
            "page_size": per_page,
        }
        config["concurrency"] = concurrency
    return config


def msdk_config(url: str, style: str, per_page: int, schema_file: Path) -> dict[str, Any]:
    stream = {
        "name": STREAM,
        "path": RECORDS_PATH,
        "params": {"per_page": per_page},
        "records_path": "$.data[*]",
        "primary_keys": ["id"],
        "schema": str(schema_file),  # a path: read as it is (an inline schema goes through genson)
    }
    config: dict[str, Any] = {"api_url": url, "streams": [stream], "pagination_response_style": "page"}
    if style == CURSOR:
        config.update(
            pagination_request_style="jsonpath_paginator",
            next_page_token_path="$.next_page",
            pagination_next_page_param="page_token",
        )
    else:
        config.update(
            pagination_request_style="page_number_paginator",
            next_page_token_path="$.has_more",  # its page paginator goes on while this is true
            pagination_next_page_param="page",
            pagination_initial_offset=1,
        )
    return config


def tools(url: str, per_page: int, only: str | None) -> list[Tool]:
    schema_file = LOGS / "schema-records.json"
    schema_file.write_bytes(orjson.dumps(SCHEMA, option=orjson.OPT_INDENT_2))
    msdk_exe = str(MSDK_VENV / "bin" / MSDK)
    plan = [
        ("dpone tap-rest", "ours-cursor", CURSOR, True, 1),
        (MSDK, "msdk-cursor", CURSOR, False, 1),
        ("dpone tap-rest", "ours-page", PAGE, True, 1),
        ("dpone tap-rest, concurrency 4", "ours-page-c4", PAGE, True, 4),
        (MSDK, "msdk-page", PAGE, False, 1),
    ]
    made = []
    for name, slug, style, ours, concurrency in plan:
        if only is not None and only != ("ours" if ours else "msdk"):
            continue
        path = LOGS / f"{slug}.json"
        if ours:
            config = our_config(url, style, per_page, concurrency)
            argv = [*our_command(), "--config", str(path)]
        else:
            config = msdk_config(url, style, per_page, schema_file)
            argv = [msdk_exe, "--config", str(path)]
        path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
        made.append(Tool(name, slug, style, ours, concurrency, argv))
    return made


# -- the untimed check and the timed runs ------------------------------------------------------------
def source_ends(rows: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first and the last record the server sends."""
    first: dict[str, Any] = {}
    last: dict[str, Any] = {}
    for record in iter_records(rows, DEFAULT_SEED):
        first = first or record
        last = record
    return first, last


def check(tool: Tool, server: PageServer, rows: int, ends: tuple[dict[str, Any], ...]) -> tuple[int, list[str]]:
    """Untimed: every record came, once (count and sum of ids); the requests it made and any notes."""
    err = LOGS / f"{tool.slug}-check.stderr"
    count = total = 0
    schema: dict[str, Any] | None = None
    seen: dict[int, dict[str, Any]] = {}
    before = server.requests()
    with err.open("wb") as fe:
        proc = subprocess.Popen(tool.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=fe, cwd=REPO)
        assert proc.stdout is not None
        for line in proc.stdout:
            message = orjson.loads(line)
            kind = message.get("type")
            if kind == "RECORD" and message.get("stream") == STREAM:
                record = message["record"]
                count, total = count + 1, total + record["id"]
                if record["id"] in (1, rows):
                    seen[record["id"]] = record
            elif kind == "SCHEMA" and message.get("stream") == STREAM:
                schema = message["schema"]
        code = proc.wait()
    requests = server.requests() - before
    if code != 0:
        raise SystemExit(f"error: {tool.name} ({tool.style}) failed ({code}): {' '.join(tool.argv)}\n{tail(err)}")
    if (count, total) != (rows, rows * (rows + 1) // 2):
        raise SystemExit(
            f"error: {tool.name} ({tool.style}) wrote {count:,} records (id sum {total}); expected {rows:,} "
            f"(id sum {rows * (rows + 1) // 2}): {' '.join(tool.argv)}\n{tail(err)}"
        )
    notes = []
    if schema is None:
        notes.append("no SCHEMA message")
    elif set(schema.get("properties", {})) != set(SCHEMA["properties"]):
        notes.append(f"SCHEMA properties {sorted(schema.get('properties', {}))} are not the declared ones")
    for expected in ends:
        got = seen.get(expected["id"])
        if got != expected:
            notes.append(f"record {expected['id']} is {got!r}; the server sent {expected!r}")
    return requests, notes


def timed(tool: Tool, server: PageServer) -> Run:
    err = LOGS / f"{tool.slug}.stderr"
    cpu_before, requests_before = server.cpu(), server.requests()
    with open(os.devnull, "wb") as out, err.open("wb") as fe:
        done = run_measured(tool.argv, subprocess.DEVNULL, out, fe)
    if done.returncode != 0:
        raise SystemExit(f"error: {tool.name} ({tool.style}) failed ({done.returncode}):\n{tail(err)}")
    return Run(done, server.cpu() - cpu_before, server.requests() - requests_before)


# -- the report --------------------------------------------------------------------------------------
def msdk_line() -> str:
    python = subprocess.run(
        [str(MSDK_VENV / "bin" / "python"), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        f"{MSDK} {version_of(MSDK_VENV, MSDK)} (singer-sdk {version_of(MSDK_VENV, 'singer-sdk')}, "
        f"requests {version_of(MSDK_VENV, 'requests')}) on Python {python or '?'}, venv {shown(MSDK_VENV)}"
    )


def our_line() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        requests = version("requests")
    except PackageNotFoundError:
        requests = "not installed"
    return f"dpone tap-rest at {commit()} on Python {platform.python_version()} (requests {requests})"


def speedups(results: dict[str, Result]) -> list[tuple[Result, Result, float]]:
    """(ours, msdk, msdk's seconds over ours) for every style both ran."""
    pairs = []
    for ours in results.values():
        if not ours.tool.ours:
            continue
        for msdk in results.values():
            if not msdk.tool.ours and msdk.tool.style == ours.tool.style:
                pairs.append((ours, msdk, msdk.best.done.seconds / ours.best.done.seconds))
    return pairs


def report(rows: int, pages: int, repeat: int, results: dict[str, Result], latency_ms: float = 0.0) -> None:
    best = f"best of {repeat}" if repeat > 1 else "one run"
    msdk_seconds = {r.tool.style: r.best.done.seconds for r in results.values() if not r.tool.ours}
    print(f"\n{rows:,} records over {pages:,} pages, wall time ({best}; CPU and server CPU of that run):\n")
    print(
        "| style | tool | runs (s) | seconds | records/s | CPU s | CPU µs/record | server CPU s | requests "
        "| peak RSS MB | msdk time / this |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for result in sorted(results.values(), key=lambda r: (r.tool.style != CURSOR, not r.tool.ours)):
        tool, run = result.tool, result.best
        m = run.done
        rss = f"{max(r.done.rss_kb or 0 for r in result.runs) / MB:.0f}" if m.rss_kb is not None else "?"
        times = ", ".join(f"{r.done.seconds:.2f}" for r in result.runs)
        theirs = msdk_seconds.get(tool.style)
        share = f"{theirs / m.seconds:.1f}x" if theirs is not None else "-"
        print(
            f"| {tool.style} | {tool.name} | {times} | {m.seconds:.2f} | {rows / m.seconds:,.0f} | {m.cpu:.2f} | "
            f"{m.cpu / rows * 1e6:.1f} | {run.server_cpu:.2f} | {run.requests:,} | {rss} | {share} |"
        )
    pairs = speedups(results)
    if not pairs:
        print("\ngoal: not measured (one side only)")
        return
    if latency_ms:
        # Then the API's own waiting is most of every run: the goal is about the tools, so it is measured without.
        print(f"\ngoal: not measured (the API waits {latency_ms:g} ms an answer); ratios above are msdk's time / ours")
        return
    print()
    met = True
    for ours, msdk, ratio in pairs:
        cpu = msdk.best.done.cpu / ours.best.done.cpu
        counted = ours.tool.concurrency == 1
        met = met and (ratio >= GOAL_SPEEDUP or not counted)
        verdict = ("MET" if ratio >= GOAL_SPEEDUP else "MISSED") if counted else "(not counted)"
        print(
            f"goal: {ours.tool.name} >= {GOAL_SPEEDUP:g}x faster than {MSDK}, {ours.tool.style}: "
            f"{ratio:.1f}x wall, {cpu:.1f}x CPU -> {verdict}"
        )
    print(f"goal (issue #17, {GOAL_SPEEDUP:g}x in every style at concurrency 1): {'MET' if met else 'MISSED'}")


# -- main --------------------------------------------------------------------------------------------
def prepare(only: str | None) -> None:
    if only != "ours":
        failed = install(MSDK_VENV, pyenv_python(MSDK_PYTHON), MSDK, MSDK)
        if failed:
            raise SystemExit(f"error: installing {MSDK}: {failed}")
    if only != "msdk":
        about = subprocess.run([*our_command(), "--about"], capture_output=True, text=True, check=False, cwd=REPO)
        if about.returncode != 0:
            raise SystemExit(
                f"error: `{' '.join(our_command())} --about` failed ({about.returncode}); "
                f"--only msdk measures the other side alone:\n{about.stderr[-2000:]}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/tap_rest.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000, help="pages the API serves (default 1000)")
    parser.add_argument("--per-page", type=int, default=100, help="records a page (default 100)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool; the best counts (default 3)")
    parser.add_argument("--only", choices=("ours", "msdk"), help="measure one side only")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=120,
        metavar="SECONDS",
        help="before each timed run, wait up to this long for other processes to go quiet (default 120)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="the API waits this long before each answer, as a remote one would (default 0: local speed)",
    )
    args = parser.parse_args(argv)
    if args.pages < 1 or args.per_page < 1 or args.repeat < 1:
        parser.error("--pages, --per-page and --repeat must be >= 1")
    rows = args.pages * args.per_page

    LOGS.mkdir(parents=True, exist_ok=True)
    prepare(args.only)
    print(f"rendering {args.pages:,} pages of {args.per_page} records and starting the API ...", flush=True)
    server = PageServer(args.pages, args.per_page, latency_ms=args.latency_ms)
    try:
        runs = tools(server.url, args.per_page, args.only)
        print(f"{our_line()}; {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, load {load_average()}")
        if args.only != "ours":
            print(msdk_line())
        print(f"API: bench/rest_pages.py at {server.url} (pid {server.process.pid}); configs and logs in {shown(LOGS)}")
        print("checking every tool's output (untimed; also warms the caches) ...", flush=True)
        ends = source_ends(rows)
        results = {tool.slug: Result(tool) for tool in runs}
        for tool in runs:
            start = time.perf_counter()
            requests, notes = check(tool, server, rows, ends)
            results[tool.slug].requests = requests
            print(
                f"  {tool.style:<13} {tool.name:<30} {rows:,} records, ids add up, {requests:,} requests "
                f"({time.perf_counter() - start:.1f}s)",
                flush=True,
            )
            for note in notes:
                print(f"    note: {note}")
        for number in range(1, args.repeat + 1):  # interleaved, order reversed every other round
            for tool in reversed(runs) if number % 2 == 0 else runs:
                wait_for_quiet(args.wait_quiet)
                run = timed(tool, server)
                results[tool.slug].runs.append(run)
                m = run.done
                rss = f"{m.rss_kb / MB:5.0f} MB" if m.rss_kb is not None else "?"
                print(
                    f"  run {number}: {tool.style:<13} {tool.name:<30} {m.seconds:6.2f}s  CPU {m.cpu:6.2f}s  "
                    f"server CPU {run.server_cpu:5.2f}s  peak RSS {rss}",
                    flush=True,
                )
    finally:
        server.close()
    report(rows, args.pages, args.repeat, results, args.latency_ms)
    figures = {f"{r.tool.style}, {r.tool.name} s": r.best.done.seconds for r in results.values()}
    sizes = {"records": rows, "pages": args.pages, "latency ms": args.latency_ms, "repeat": args.repeat}
    evidence.record("tap-rest", "pages against tap-rest-api-msdk", {**sizes, **figures})
    print(f"load at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
