"""obstore vs fsspec (s3fs, gcsfs, adlfs) against local S3, GCS and Azure Blob emulators.

Servers come from tests/tools/object_stores.py (moto, fake-gcs-server, Azurite), all on loopback.
For each cloud and file set, each client uploads the same local files and downloads them into
memory, sequentially (one file at a time: the per-request cost) and concurrently (obstore's
`*_async` under a semaphore; fsspec's batched `put`/`cat`, its own default concurrency). Clients
alternate order each round; the table shows the best of the rounds. Also: the import time of each
library and the installed size of its dependency tree.

    python -m bench.object_storage [--rounds 3] [--clouds s3,gs,az] [--modes seq,conc]

Caveats, read with the numbers: the emulators, not the clients, bound most rows (moto is a Python
server keeping objects in memory; Azurite is node); fake-gcs-server refuses obstore's uploads (it
has no XML-API PUT), so that cell is n/a. Downloads: obstore `get().bytes()` vs fsspec `cat_file`
(one GET each; `open().read()` adds a HEAD). Uploads: obstore `put(store, key, Path)` (multipart
above its 5 MiB chunk size) vs fsspec `put_file`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata as md
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from bench.measure import wait_for_quiet
from tests.tools.object_stores import ObjectStoreServer, azure_server, gcs_server, s3_server

MB = 1024 * 1024
FILE_SETS: dict[str, tuple[int, int]] = {"20 x 8 MB": (20, 8 * MB), "500 x 16 KB": (500, 16 * 1024)}
CONCURRENCY = 16  # obstore's async runs: requests in flight at once
FSSPEC_MODULE = {"s3": "s3fs", "gs": "gcsfs", "az": "adlfs"}
SERVERS: dict[str, Callable[[], Any]] = {"s3": s3_server, "gs": gcs_server, "az": azure_server}


@dataclass
class Result:
    cloud: str
    files: str
    mode: str
    client: str
    op: str
    seconds: list[float]
    nbytes: int
    error: str = ""


# ---------------------------------------------------------------------------------------------
# clients


def fsspec_fs(server: ObjectStoreServer) -> Any:
    """The fsspec filesystem on the emulator, explicitly configured (no ambient credentials)."""
    if server.scheme == "s3":
        import s3fs  # type: ignore[import-untyped]

        return s3fs.S3FileSystem(
            key="x",
            secret="x",
            client_kwargs={"endpoint_url": server.endpoint, "region_name": "us-east-1"},
            skip_instance_cache=True,
        )
    if server.scheme == "gs":
        # The plain class: gcsfs' default ExtendedGcsFileSystem asks Storage Control over gRPC for the
        # bucket type, which fake-gcs-server lacks: 60 s timeouts, not cached.
        from gcsfs.core import GCSFileSystem  # type: ignore[import-untyped]

        return GCSFileSystem(endpoint_url=server.endpoint, token="anon", project="p", skip_instance_cache=True)
    import adlfs  # type: ignore[import-untyped]

    return adlfs.AzureBlobFileSystem(connection_string=server.extra["connection_string"], skip_instance_cache=True)


class Obstore:
    name = "obstore"

    def __init__(self, server: ObjectStoreServer) -> None:
        self.store = server.store()

    def upload_seq(self, files: list[Path], keys: list[str]) -> None:
        import obstore

        for path, key in zip(files, keys, strict=True):
            obstore.put(self.store, key, path)

    def download_seq(self, keys: list[str]) -> int:
        import obstore

        return sum(len(obstore.get(self.store, key).bytes()) for key in keys)

    def upload_conc(self, files: list[Path], keys: list[str]) -> None:
        import obstore

        async def run() -> None:
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(path: Path, key: str) -> None:
                async with gate:
                    await obstore.put_async(self.store, key, path)

            await asyncio.gather(*(one(p, k) for p, k in zip(files, keys, strict=True)))

        asyncio.run(run())

    def download_conc(self, keys: list[str]) -> int:
        import obstore

        async def run() -> int:
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(key: str) -> int:
                async with gate:
                    result = await obstore.get_async(self.store, key)
                    return len(await result.bytes_async())

            return sum(await asyncio.gather(*(one(k) for k in keys)))

        return asyncio.run(run())


class Fsspec:
    def __init__(self, server: ObjectStoreServer) -> None:
        self.name = FSSPEC_MODULE[server.scheme]
        self.fs = fsspec_fs(server)
        self.base = f"{server.bucket}"

    def upload_seq(self, files: list[Path], keys: list[str]) -> None:
        for path, key in zip(files, keys, strict=True):
            self.fs.put_file(str(path), f"{self.base}/{key}")

    def download_seq(self, keys: list[str]) -> int:
        return sum(len(self.fs.cat_file(f"{self.base}/{key}")) for key in keys)

    def upload_conc(self, files: list[Path], keys: list[str]) -> None:
        self.fs.put([str(p) for p in files], [f"{self.base}/{k}" for k in keys])

    def download_conc(self, keys: list[str]) -> int:
        return sum(len(v) for v in self.fs.cat([f"{self.base}/{k}" for k in keys]).values())


# ---------------------------------------------------------------------------------------------
# runs


def make_files(folder: Path, count: int, size: int) -> list[Path]:
    # Random bytes so no layer can compress; written once and reused by every round.
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"f{i:04d}.bin" for i in range(count)]
    for path in files:
        if not path.exists() or path.stat().st_size != size:
            path.write_bytes(os.urandom(size))
    return files


def bench_cloud(cloud: str, rounds: int, modes: list[str], scratch: Path, quiet: float) -> list[Result]:
    results: list[Result] = []
    with SERVERS[cloud]() as server:
        clients: list[Any] = [Obstore(server), Fsspec(server)]
        for files_label, (count, size) in FILE_SETS.items():
            files = make_files(scratch / f"{count}x{size}", count, size)
            total = count * size
            for mode in modes:
                table: dict[tuple[str, str], Result] = {}
                for rnd in range(rounds):
                    order = clients if rnd % 2 == 0 else clients[::-1]  # interleave: neither always goes first
                    for client in order:
                        keys = [f"{client.name}/{mode}/{count}x{size}/{p.name}" for p in files]
                        if quiet:
                            wait_for_quiet(quiet)
                        for op in ("upload", "download"):
                            res = table.setdefault(
                                (client.name, op),
                                Result(cloud, files_label, mode, client.name, op, [], total),
                            )
                            if res.error:
                                continue
                            try:
                                if op == "upload":
                                    if cloud == "gs" and client.name == "obstore":
                                        # fake-gcs-server has no XML-API PUT: seed through fsspec, time nothing.
                                        clients[1].upload_conc(files, keys)
                                        raise RuntimeError("n/a: fake-gcs-server has no XML-API PUT")
                                    upload = getattr(client, f"upload_{mode}")
                                    start = time.perf_counter()
                                    upload(files, keys)
                                    res.seconds.append(time.perf_counter() - start)
                                else:
                                    download = getattr(client, f"download_{mode}")
                                    start = time.perf_counter()
                                    got = download(keys)
                                    res.seconds.append(time.perf_counter() - start)
                                    if got != total:
                                        raise RuntimeError(f"downloaded {got} bytes, expected {total}")
                            except Exception as exc:  # a failed cell is reported in the table, not fatal
                                res.error = str(exc).splitlines()[0][:120]
                        print(f"  {cloud} {files_label} {mode} round {rnd + 1}: {client.name} done", flush=True)
                results.extend(table.values())
    return results


# ---------------------------------------------------------------------------------------------
# import time and installed size


def import_seconds(module: str, repeat: int = 5) -> float:
    """Best wall time of `import module` in a fresh interpreter (bytecode already cached)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    runs = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
        runs.append(float(out.stdout.strip()))
    return min(runs)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_tree(root: str) -> set[str]:
    """Installed distributions `root` needs (markers evaluated, extras named in requirements followed)."""
    seen: set[str] = set()
    visited: set[tuple[str, frozenset[str]]] = set()  # (dist, extras): bounds the walk on cycles
    todo: list[tuple[str, frozenset[str]]] = [(_norm(root), frozenset())]
    while todo:
        item = todo.pop()
        if item in visited:
            continue
        visited.add(item)
        name, extras = item
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen.add(name)
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
                todo.append((_norm(req.name), frozenset(req.extras)))
    return seen


def installed_bytes(names: set[str]) -> int:
    total = 0
    for name in names:
        dist = md.distribution(name)
        for file in dist.files or []:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                total += path.stat().st_size
    return total


# ---------------------------------------------------------------------------------------------
# report


def report(results: list[Result], statistic: str) -> None:
    pick: Callable[[list[float]], float] = min if statistic == "best" else statistics.median
    print(f"\nTransfers ({statistic} of rounds; MB/s = MiB moved / s; seq = one file at a time, conc = concurrent):\n")
    print(
        "| cloud | files | mode | op | obstore s | obstore MB/s | fsspec lib | fsspec s | fsspec MB/s "
        "| obstore speed-up |"
    )
    print("|---|---|---|---|---:|---:|---|---:|---:|---:|")
    index = {(r.cloud, r.files, r.mode, r.client, r.op): r for r in results}
    for r in results:
        if r.client != "obstore":
            continue
        lib = FSSPEC_MODULE[r.cloud]
        other = index.get((r.cloud, r.files, r.mode, lib, r.op))

        def cell(res: Result | None) -> tuple[str, str, float | None]:
            if res is None or res.error or not res.seconds:
                return (res.error if res else "-") or "-", "", None
            best = pick(res.seconds)
            return f"{best:.2f}", f"{res.nbytes / MB / best:.0f}", best

        o_s, o_mb, o_best = cell(r)
        f_s, f_mb, f_best = cell(other)
        ratio = f"{f_best / o_best:.2f}x" if o_best and f_best else ""
        print(f"| {r.cloud} | {r.files} | {r.mode} | {r.op} | {o_s} | {o_mb} | {lib} | {f_s} | {f_mb} | {ratio} |")


def report_footprint() -> None:
    print("\nImport time (best of 5 fresh interpreters) and installed size of the dependency tree:\n")
    print("| library | import s | dists in tree | installed MB | tree |")
    print("|---|---:|---:|---:|---|")
    for lib in ("obstore", "s3fs", "gcsfs", "adlfs"):
        tree = dependency_tree(lib)
        size = installed_bytes(tree)
        shown = ", ".join(sorted(tree))
        print(f"| {lib} | {import_seconds(lib):.3f} | {len(tree)} | {size / MB:.1f} | {shown} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.object_storage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per cell (default 3)")
    parser.add_argument("--clouds", default="s3,gs,az", help="comma-separated of s3, gs, az (default all)")
    parser.add_argument("--modes", default="seq,conc", help="comma-separated of seq, conc (default both)")
    parser.add_argument("--statistic", choices=("best", "median"), default="best", help="of the rounds (default best)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=30,
        metavar="SECONDS",
        help="before each timed pair, wait up to this long for other processes to go quiet (0: don't)",
    )
    parser.add_argument("--no-footprint", action="store_true", help="skip import times and installed sizes")
    args = parser.parse_args(argv)
    clouds = [c for c in args.clouds.split(",") if c]
    modes = [m for m in args.modes.split(",") if m]
    if args.rounds < 1 or not set(clouds) <= set(SERVERS) or not set(modes) <= {"seq", "conc"}:
        parser.error("--rounds >= 1; --clouds from s3,gs,az; --modes from seq,conc")

    results: list[Result] = []
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dpone-bench-objstore-")))
        for cloud in clouds:
            print(f"{cloud}: starting the emulator ...", flush=True)
            results.extend(bench_cloud(cloud, args.rounds, modes, scratch, args.wait_quiet))
    report(results, args.statistic)
    if not args.no_footprint:
        report_footprint()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
