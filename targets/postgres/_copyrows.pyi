"""Types of the compiled module built from _copyrows.c."""

from collections.abc import Callable
from typing import Any

KIND_TEXT: int
KIND_INT: int
KIND_FLOAT: int
KIND_DECIMAL: int
KIND_BOOL: int
KIND_JSON: int
NUL_STRIP: int
NUL_REPLACE: int
NUL_FAIL: int

class Encoder:
    rows: int
    nbytes: int
    duplicates: int
    def __init__(
        self,
        fields: dict[str, int],
        kinds: tuple[int, ...],
        keys: tuple[int, ...],
        extracted_at: int,
        version_at: int,
        nul_policy: int,
        max_rows: int,
        max_bytes: int,
        json_dumps: Callable[[Any], str],
        to_text: Callable[[Any], str],
        track_duplicates: bool,
    ) -> None: ...
    def add(self, record: dict[str, Any], version: int | None, time_extracted: str | None, size: int) -> bool: ...
    def feed_record(self, line: bytes) -> bool: ...
    def take(self) -> bytes: ...
    def take_keys(self) -> set[bytes] | None: ...
    def version_floor(self) -> int | None: ...
    def is_full(self) -> bool: ...
    def age(self) -> float: ...

class Router:
    def register(self, stream: str, encoder: Encoder) -> None: ...
    def unregister(self, stream: str) -> None: ...
    def feed(self, line: bytes) -> int: ...
    def feed_run(self, block: bytes, at: int, line: int) -> tuple[int, int, bool]: ...
