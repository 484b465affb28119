"""URL handling and client errors of dpone_protocol/object_store.py (servers: tests/service)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dpone_protocol.batch_manifest import BatchLayout
from dpone_protocol.config import Redactor, install_redaction
from dpone_protocol.errors import ConfigError
from dpone_protocol.object_store import ObjectStores, file_digests, is_remote, join, local_path


@pytest.mark.parametrize("uri", ["s3://b/k", "gs://b/k", "az://c/k", "abfs://c/k", "azure://c/k", "s3a://b/k"])
def test_remote_schemes(uri: str) -> None:
    assert is_remote(uri)


@pytest.mark.parametrize("uri", ["/tmp/x", "file:///tmp/x", "relative/x"])
def test_local_paths(uri: str) -> None:
    assert not is_remote(uri)
    assert local_path(uri).name == "x"


def test_unsupported_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unsupported URL scheme 'ftp'"):
        local_path("ftp://host/x")


def test_join_keeps_one_slash() -> None:
    assert join("s3://b/root/", "/p/", "run") == "s3://b/root/p/run"
    assert join("s3://b", "") == "s3://b"


def test_unknown_option_is_a_config_error_not_a_crash() -> None:
    stores = ObjectStores({"no_such_key": "x"})
    with pytest.raises(ConfigError, match="cannot make a client"):
        stores.size("s3://bucket/key")


def test_url_without_bucket_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no bucket"):
        ObjectStores().size("s3:///key")


def test_secret_options_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction(Redactor())
    ObjectStores({"secret_access_key": "s3cr3t-value-123", "region": "eu-west-1"})
    with caplog.at_level(logging.INFO):
        logging.getLogger("dpone.test").info("key is s3cr3t-value-123, region eu-west-1")
    assert "s3cr3t-value-123" not in caplog.text
    assert "eu-west-1" in caplog.text


def test_file_digests(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert file_digests(path) == (
        3,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "900150983cd24fb0d6963f7d28e17f72",
    )


def test_layout_from_runner_and_meltano_variables() -> None:
    layout = BatchLayout.from_config({"root": "s3://b/dpone"}, "tap-x", {"DPONE_PIPELINE": "a/b", "DPONE_RUN_ID": "r1"})
    assert layout.directory == "s3://b/dpone/a_b/r1"
    layout = BatchLayout.from_config({"root": "/tmp/x"}, "tap-x", {"MELTANO_RUN_ID": "m-9"})
    assert layout.directory == "/tmp/x/tap-x/m-9"
    generated = BatchLayout.from_config({"root": "/tmp/x", "pipeline": "p"}, "tap-x", {})
    assert generated.directory.startswith("/tmp/x/p/20")


def test_layout_needs_a_root() -> None:
    with pytest.raises(ConfigError, match=r"storage\.root is required"):
        BatchLayout.from_config({}, "tap-x", {})


@pytest.mark.parametrize(("value", "expected"), [("false", False), ("true", True), (False, False), (True, True)])
def test_allow_http_as_meltano_passes_it(value: object, expected: bool) -> None:
    from dpone_protocol.object_store import _flag

    assert _flag(value) is expected
