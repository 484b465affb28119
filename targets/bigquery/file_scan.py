"""The look an in-place load of gs:// BATCH files takes at their bytes before BigQuery reads them.

The files stream through the target for their SHA-256 anyway (dpone_protocol/batch_manifest.py);
on the way the same pattern the row path uses (envelope.suspects) looks for a value a load job may
not read exactly or that the decoded path would refuse: an integer of 16 digits or more (BigQuery
reads bare JSON integers beyond 2^53 through a double), a decimal with more digits than a double
keeps or than its column holds, an exponent, a null or missing key. Any of them, and the target
reads the files itself, which writes such numbers as text and checks every value.
"""

from __future__ import annotations

import re
import zlib


class FileScan:
    def __init__(self, pattern: re.Pattern[bytes] | None, keys: list[str], rows: list[int], gzip: bool) -> None:
        self.pattern = pattern
        self.key_marks = [f'"{k}":'.encode() for k in keys]
        self.rows = list(rows)  # each file's rows, from the manifest, in order
        self.gzip = gzip
        self._file = 0
        self._keys_seen = [0] * len(keys)
        self._reset()
        self.reason: str | None = None

    def _reset(self) -> None:
        self._inflate = zlib.decompressobj(wbits=47) if self.gzip else None  # 47: a gzip or zlib header
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        if self.reason is not None:
            return
        data = chunk
        if self._inflate is not None:
            try:
                data = self._inflate.decompress(chunk)
                while self._inflate.eof and self._inflate.unused_data:  # another gzip member follows
                    rest = self._inflate.unused_data
                    self._inflate = zlib.decompressobj(wbits=47)
                    data += self._inflate.decompress(rest)
            except zlib.error as exc:
                # Damaged: the file's SHA-256 check, a moment later, is the error to report.
                self.reason = f"the file does not decompress ({exc})"
                return
        data = self._tail + data
        cut = data.rfind(b"\n") + 1
        self._tail = data[cut:]
        self._look(data[:cut])

    def _look(self, block: bytes) -> None:
        if self.pattern is not None and (found := self.pattern.search(block)) is not None:
            self.reason = f"a value to check or to load as text ({found.group(0)[:60].decode(errors='replace')})"
        for n, mark in enumerate(self.key_marks):
            self._keys_seen[n] += block.count(mark)

    def next_file(self) -> None:
        if self._tail:
            self._look(self._tail + b"\n")
        expected = self.rows[self._file] if self._file < len(self.rows) else 0
        if self.reason is None and any(seen < expected for seen in self._keys_seen):
            self.reason = "a record without its key property"
        self._file += 1
        self._keys_seen = [0] * len(self.key_marks)
        self._reset()

    def refuses(self) -> str | None:
        return self.reason
