"""A port setting checked before connecting: drivers report a bad one only as a failed connection."""

from __future__ import annotations

import re
from typing import Any

from dpone_protocol.errors import ConfigError

_PLAIN_VALUE_RE = re.compile(r"[\w.+-]{1,16}")


def check_port(value: Any, where: str, *, several: bool = False) -> None:
    """A number from 1 to 65535, else ConfigError naming `where`. `several`: a comma-separated list,
    one per host (libpq), where an empty entry means the default port."""
    for entry in str(value).split(",") if several else [str(value)]:
        part = entry.strip()
        if (part or not several) and not (part.isascii() and part.isdigit() and 1 <= int(part) <= 65535):
            # The value is shown only when it cannot be a piece of a mis-parsed password.
            shown = repr(part) if _PLAIN_VALUE_RE.fullmatch(part) else "a value that is not a number"
            raise ConfigError(f"{where}: the port must be a number from 1 to 65535, got {shown}")
