"""A local JSON API for the tap-rest benchmark: the same records, pre-rendered, in two pagination styles.

    python -m bench.rest_pages [--pages 1000] [--per-page 100] [--seed 20240101]

The records are bench/records.py's (ids 1..pages*per-page), cut into pages. Every response, status
line and headers included, is rendered once at start, so a request costs a header parse and one
write. Its own process (the tools measured do not share its interpreter), the standard library's
ThreadingHTTPServer on 127.0.0.1 speaking HTTP/1.1 with keep-alive (a thread per connection, Nagle
off). It prints ``listening on http://127.0.0.1:PORT`` once ready and stops when its stdin closes.

    GET /records?page=N&per_page=P      page numbers from 1: {"data": [...], "has_more": true|false};
                                        a page past the last is {"data": [], "has_more": false}
    GET /records?page_token=T           a cursor: {"data": [...], "next_page": "<token>"|null};
                                        no page_token is the first page
    GET /stats                          {"requests": N}: the /records requests answered so far

A per_page other than the one served, an unknown token or page 0 is a 400.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from urllib.request import urlopen

if __package__ in (None, ""):
    # Run as a script (python bench/rest_pages.py): make the repo root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench.paths import REPO
from bench.records import DEFAULT_SEED, iter_records

RECORDS_PATH = "/records"
READY = "listening on "


def token(page: int) -> str:
    """The opaque cursor of a page (the first page has none)."""
    return f"pg{page * 7919:x}"


def response(body: bytes) -> bytes:
    """A whole 200 response: status line, headers and body, written with one call."""
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)


@dataclass(frozen=True, slots=True)
class Pages:
    """Every response the server can give, rendered."""

    per_page: int
    by_number: list[bytes]  # index 0 is the empty page past the last
    by_token: dict[str, bytes]  # "" is the first page

    @classmethod
    def render(cls, pages: int, per_page: int, seed: int) -> Pages:
        records = iter_records(pages * per_page, seed)
        by_number = [response(b'{"data":[],"has_more":false}')]
        by_token: dict[str, bytes] = {}
        for page in range(1, pages + 1):
            data = b",".join(orjson.dumps(r) for r in itertools.islice(records, per_page))
            more = b"true" if page < pages else b"false"
            by_number.append(response(b'{"data":[%b],"has_more":%b}' % (data, more)))
            after = orjson.dumps(token(page + 1) if page < pages else None)
            by_token["" if page == 1 else token(page)] = response(b'{"data":[%b],"next_page":%b}' % (data, after))
        return cls(per_page, by_number, by_token)

    def answer(self, target: str) -> bytes | None:
        """The rendered response to a request target, or None for a 400."""
        query = parse_qs(urlsplit(target).query)
        if query.get("per_page", [str(self.per_page)]) != [str(self.per_page)]:
            return None
        if "page" in query:
            page = int(query["page"][0]) if query["page"][0].isdigit() else 0
            if page < 1:
                return None
            return self.by_number[page] if page < len(self.by_number) else self.by_number[0]
        return self.by_token.get(query.get("page_token", [""])[0])


def serve(pages: Pages, latency: float = 0.0) -> ThreadingHTTPServer:
    lock = threading.Lock()
    counted = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            if self.path.startswith("/stats"):
                self.wfile.write(response(orjson.dumps({"requests": counted[0]})))
                return
            if latency:
                time.sleep(latency)  # a remote API's round trip and its own work
            rendered = pages.answer(self.path) if urlsplit(self.path).path == RECORDS_PATH else None
            if rendered is None:
                self.send_error(400 if self.path.startswith(RECORDS_PATH) else 404)
                return
            self.wfile.write(rendered)
            with lock:
                counted[0] += 1

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


# -- the benchmark's side: the server as a child process -----------------------------------------------
class PageServer:
    """The server in a child process of our venv's Python; closed (stdin EOF) it stops by itself."""

    def __init__(self, pages: int, per_page: int, seed: int = DEFAULT_SEED, latency_ms: float = 0.0) -> None:
        argv = [sys.executable, "-m", "bench.rest_pages", "--pages", str(pages), "--per-page", str(per_page)]
        argv += ["--latency-ms", str(latency_ms)]
        self.process = subprocess.Popen(
            [*argv, "--seed", str(seed)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith(READY):
            self.close()
            raise SystemExit(f"error: the page server did not start (it said {line!r})")
        self.url = line[len(READY) :].strip()

    def requests(self) -> int:
        """The /records requests it has answered so far."""
        with urlopen(f"{self.url}/stats", timeout=10) as answer:
            return int(orjson.loads(answer.read())["requests"])

    def cpu(self) -> float:
        """User + system CPU seconds it has used so far, all its threads (/proc/<pid>/stat)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rest_pages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--per-page", type=int, default=100)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="wait this long before each answer")
    args = parser.parse_args(argv)
    if args.pages < 1 or args.per_page < 1:
        parser.error("--pages and --per-page must be >= 1")
    server = serve(Pages.render(args.pages, args.per_page, args.seed), args.latency_ms / 1000)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    print(f"{READY}http://{host!s}:{port}", flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin (or dies)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
