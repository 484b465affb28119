"""Types of the compiled module built from copyjson/*.c."""

K_INT: int
K_FLOAT: int
K_BOOL: int
K_TEXT: int
K_TIMESTAMP: int
K_BYTEA: int
K_JSON: int
K_JSON_DOC: int
KEY_NONE: int
KEY_JSON: int
KEY_INTS: int

def load(path: str) -> None: ...

class Reader:
    def __init__(
        self, conn: int, prefixes: tuple[bytes, ...], kinds: bytes, key_mode: int, key_fields: int
    ) -> None: ...
    def read(
        self, head: bytes, tail: bytes, max_rows: int, max_bytes: int
    ) -> tuple[bytes, int, bytes | None, int, int]: ...
    def error(self) -> str: ...
