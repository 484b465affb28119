"""BATCH files: gzip/plain JSONL and Parquet, file:// manifests, and clear errors."""

from __future__ import annotations

import gzip
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dpone_protocol.batch_files import (
    JsonlBatchWriter,
    iter_batch_records,
    iter_jsonl_lines,
    uri_to_path,
    write_jsonl_batch,
)
from dpone_protocol.errors import ConfigError, DataError
from dpone_protocol.messages import BatchEncoding

RECORDS: list[dict[str, Any]] = [
    {"id": 1, "name": "Zoë", "tags": ["a", "b"], "amount": 12.5, "meta": {"x": None}},
    {"id": 2, "name": 'quote " and \\ backslash', "tags": [], "amount": None, "meta": {}},
    {"id": 3, "name": "中文 😀", "tags": ["c"], "amount": -0.25, "meta": {"nested": {"deep": True}}},
]
GZIP_JSONL = BatchEncoding("jsonl", "gzip")
PLAIN_JSONL = BatchEncoding("jsonl", None)


def _records(manifest: list[str], encoding: BatchEncoding) -> list[dict[str, Any]]:
    return [r for uri in manifest for r in iter_batch_records(uri, encoding)]


def test_gzip_writer_round_trip(tmp_path: Path) -> None:
    writer = JsonlBatchWriter(tmp_path / "batches", "run1-", "public.orders")
    assert writer.encoding == GZIP_JSONL
    for record in RECORDS:
        writer.write(record)
    manifest = [f.uri for f in writer.close()]
    assert len(manifest) == 1
    uri = manifest[0]
    assert uri.startswith("file:///")
    path = uri_to_path(uri)
    assert path.parent == (tmp_path / "batches").resolve()
    assert path.name.startswith("run1-public_orders-")
    assert path.name.endswith(".jsonl.gz")
    with gzip.open(path, "rb") as fh:  # really gzip
        assert fh.read().count(b"\n") == 3
    assert _records(manifest, writer.encoding) == RECORDS


def test_writer_keeps_exact_numbers_exact(tmp_path: Path) -> None:
    # What an exact decoder gives (Decimal for a fraction or a wide integer) goes out digit for digit.
    writer = JsonlBatchWriter(tmp_path / "batches", "", "s", compression="none")
    writer.write({"amount": Decimal("0.1000000000000000055511151231257827"), "id": Decimal("12345678901234567890123")})
    (uri,) = [f.uri for f in writer.close()]
    assert (
        uri_to_path(uri).read_bytes()
        == b'{"amount":0.1000000000000000055511151231257827,"id":12345678901234567890123}\n'
    )


def test_writer_full_and_close_start_a_new_file(tmp_path: Path) -> None:
    writer = JsonlBatchWriter(tmp_path, "", "s", max_rows=2)
    writer.write(RECORDS[0])
    assert not writer.full()
    writer.write(RECORDS[1])
    assert writer.full()
    first = [f.uri for f in writer.close()]
    assert not writer.full()
    writer.write(RECORDS[2])
    second = [f.uri for f in writer.close()]
    assert len(first) == 1
    assert len(second) == 1
    assert first != second
    assert _records(first + second, GZIP_JSONL) == RECORDS
    assert [f.uri for f in writer.close()] == []  # nothing written since


def test_writer_that_wrote_nothing_has_an_empty_manifest(tmp_path: Path) -> None:
    writer = JsonlBatchWriter(tmp_path / "never-created", "", "s")
    assert [f.uri for f in writer.close()] == []
    assert not (tmp_path / "never-created").exists()


def test_uncompressed_writer_and_large_files_round_trip(tmp_path: Path) -> None:
    writer = JsonlBatchWriter(tmp_path, "", "s", compression="none")
    assert writer.encoding == BatchEncoding("jsonl", "none")
    many = [{"id": i, "text": "x" * 100} for i in range(20_000)]  # more than one buffered write
    for record in many:
        writer.write(record)
    manifest = [f.uri for f in writer.close()]
    path = uri_to_path(manifest[0])
    assert path.name.endswith(".jsonl") and path.read_bytes().count(b"\n") == len(many)
    assert _records(manifest, writer.encoding) == many


def test_writer_refuses_an_unknown_compression(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gzip, none"):
        JsonlBatchWriter(tmp_path, "", "s", compression="zstd")


def test_write_jsonl_batch_helper(tmp_path: Path) -> None:
    manifest = write_jsonl_batch(tmp_path, "orders", iter(RECORDS))
    assert _records(manifest, GZIP_JSONL) == RECORDS


def test_plain_jsonl_with_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl"
    path.write_bytes(b'{"id":1}\n\n  \n{"id":2,"s":"x"}\r\n{"id":3}')
    assert list(iter_batch_records(path.as_uri(), PLAIN_JSONL)) == [{"id": 1}, {"id": 2, "s": "x"}, {"id": 3}]
    assert list(iter_batch_records(str(path), PLAIN_JSONL)) == [{"id": 1}, {"id": 2, "s": "x"}, {"id": 3}]
    assert list(iter_jsonl_lines(str(path), PLAIN_JSONL)) == [b'{"id":1}', b'{"id":2,"s":"x"}', b'{"id":3}']


def test_sdk_style_none_compression_reads_plain_files(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl"
    path.write_bytes(b'{"id":1}\n')
    assert list(iter_batch_records(path.as_uri(), BatchEncoding("jsonl", "none"))) == [{"id": 1}]


def test_gz_suffix_is_read_as_gzip_when_compression_is_unset(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id":1}\n{"id":2}\n'))
    assert list(iter_batch_records(path.as_uri(), PLAIN_JSONL)) == [{"id": 1}, {"id": 2}]


def test_uri_with_escaped_characters(tmp_path: Path) -> None:
    path = tmp_path / "dir with space" / "a#b.jsonl"
    path.parent.mkdir()
    path.write_bytes(b'{"id":1}\n')
    uri = path.as_uri()
    assert "%20" in uri
    assert uri_to_path(uri) == path
    assert list(iter_batch_records(uri, PLAIN_JSONL)) == [{"id": 1}]


def test_parquet_records(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{"id": i, "name": f"n{i}", "amount": i / 4, "flag": i % 2 == 0} for i in range(5)]
    path = tmp_path / "part-0.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=2)
    assert list(iter_batch_records(path.as_uri(), BatchEncoding("parquet", None))) == rows


def test_missing_jsonl_file_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "gone.jsonl.gz"
    with pytest.raises(DataError, match=f"^{re.escape(f'BATCH file not found: {missing}')}$"):
        list(iter_batch_records(missing.as_uri(), GZIP_JSONL))


def test_missing_parquet_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="BATCH file not found"):
        list(iter_batch_records((tmp_path / "gone.parquet").as_uri(), BatchEncoding("parquet", None)))


def test_corrupt_gzip_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match="is unreadable"):
        list(iter_batch_records(path.as_uri(), GZIP_JSONL))


def test_malformed_json_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"id":1}\n\n{"id":\n')
    uri = path.as_uri()
    records = iter_batch_records(uri, PLAIN_JSONL)
    assert next(records) == {"id": 1}
    with pytest.raises(DataError, match=f"^{re.escape(f'BATCH file {uri} line 2: malformed JSON')}"):
        next(records)


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("s3://bucket/key.jsonl.gz", "in object storage"),
        ("gs://b/o.parquet", "in object storage"),
        ("https://example.com/x.jsonl", "unsupported URL scheme 'https'"),
    ],
)
def test_non_file_uri_is_a_config_error(uri: str, reason: str) -> None:
    # Remote files are fetched (and checked) by batch_manifest.fetch before they are read.
    with pytest.raises(ConfigError, match=reason):
        list(iter_batch_records(uri, GZIP_JSONL))


def test_unsupported_format_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unsupported BATCH encoding format 'csv'"):
        list(iter_batch_records((tmp_path / "x.csv").as_uri(), BatchEncoding("csv", None)))
