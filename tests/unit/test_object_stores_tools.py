"""The local object-store servers of tests/tools/object_stores.py work with obstore.

Each server starts once (module fixtures) and a key goes through put/head/get/list/delete; a
second test checks that what `env()` advertises is enough for obstore in a child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import obstore
import pytest

from tests.tools.object_stores import ObjectStoreServer, azure_server, gcs_server, s3_server

SERVERS = {"s3": s3_server, "gs": gcs_server, "az": azure_server}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[ObjectStoreServer]:
    with SERVERS[request.param]() as handle:
        yield handle


def test_round_trip(server: ObjectStoreServer) -> None:
    store = server.store()
    data = os.urandom(70_000)
    server.upload("dir/one.bin", data)  # obstore.put except on fake-gcs, which refuses it
    assert obstore.head(store, "dir/one.bin")["size"] == len(data)
    assert bytes(obstore.get(store, "dir/one.bin").bytes()) == data
    assert b"".join(bytes(c) for c in obstore.get(store, "dir/one.bin").stream()) == data
    listed = [meta["path"] for batch in obstore.list(store, prefix="dir") for meta in batch]
    assert listed == ["dir/one.bin"]
    assert obstore.list_with_delimiter(store)["common_prefixes"] == ["dir"]
    obstore.delete(store, "dir/one.bin")
    assert [meta for batch in obstore.list(store, prefix="dir") for meta in batch] == []
    with pytest.raises(FileNotFoundError):
        obstore.head(store, "dir/one.bin")


def test_obstore_put_large_multipart(server: ObjectStoreServer) -> None:
    if server.scheme == "gs":
        pytest.skip("fake-gcs-server has no XML-API PUT/multipart, which obstore.put uses")
    store = server.store()
    data = os.urandom(11 * 1024 * 1024)
    obstore.put(store, "big.bin", data, chunk_size=5 * 1024 * 1024)  # 3 parts
    assert bytes(obstore.get(store, "big.bin").bytes()) == data
    obstore.delete(store, "big.bin")


def test_env_is_enough_for_a_child(server: ObjectStoreServer) -> None:
    server.upload("env.txt", b"from-parent")
    child = (
        "import sys, obstore\n"
        "from obstore.store import from_url\n"
        "print(bytes(obstore.get(from_url(sys.argv[1]), 'env.txt').bytes()).decode())\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), **server.env()}
    out = subprocess.run(
        [sys.executable, "-c", child, server.url()], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "from-parent", out.stderr[-2000:]


def test_gcs_filesystem_layout(tmp_path: Path) -> None:
    # gs://BUCKET/KEY is the file ROOT/BUCKET/KEY: what the BigQuery emulator's
    # BQEMU_GCS_LOCAL_ROOT expects.
    root = tmp_path / "gcs"
    with gcs_server(bucket="layout", root=root) as gcs:
        gcs.upload("a/b/c.csv", b"x,y\n1,2\n")
        assert (root / "layout" / "a" / "b" / "c.csv").read_bytes() == b"x,y\n1,2\n"
