"""The exporters' libraries log their own retries and failures (urllib3's "Retrying ...", the OTLP
exporter's "Failed to export ..."); an observer tells each failure once, as its own warning, and
only the gist of it (a refused connection, a timeout, an HTTP status), not three nested reprs.

Records of those libraries logged on a thread inside `held()` are kept back from the log and
handed to the caller; other threads' records pass as usual (with DPONE_LOG_LEVEL=DEBUG, all pass).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

LIBRARIES = ("urllib3", "requests", "opentelemetry", "openlineage")
_local = threading.local()
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^\"')]+)")
_READ_TIMEOUT = re.compile(r"Read timed out\. \(read timeout=[\d.]+\)")
_TRANSIENT = re.compile(r"Transient error (.+?) encountered")


class _Held(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        into: list[str] | None = getattr(_local, "into", None)
        if into is None or not record.name.startswith(LIBRARIES):
            return True
        if record.levelno >= logging.WARNING:
            into.append(record.getMessage())
        return logging.getLogger().isEnabledFor(logging.DEBUG)


_FILTER = _Held()


@contextlib.contextmanager
def held() -> Iterator[list[str]]:
    """The libraries' warnings logged on this thread meanwhile, instead of in the log."""
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    previous = getattr(_local, "into", None)
    said: list[str] = []
    _local.into = said
    try:
        yield said
    finally:
        _local.into = previous


def gist(text: str) -> str:
    """What went wrong, from a library's message: `Connection refused`, `Read timed out. (...)`."""
    for pattern in (_ERRNO, _READ_TIMEOUT, _TRANSIENT):
        found = pattern.search(text)
        if found:
            return (found.group(1) if found.groups() else found.group(0)).strip().rstrip(".")
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


def shown_url(url: str) -> str:
    """A URL as messages show it: a password in it masked."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()
