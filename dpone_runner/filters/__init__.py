"""In-stream filters: each maps one message to zero or more messages.

A filter sees SCHEMA and RECORD of the same stream, so schema and record transforms
travel together. The pump decodes messages only when at least one filter is configured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError
from dpone_protocol.messages import Message


class Filter(Protocol):
    def __call__(self, message: Message) -> Iterable[Message]: ...


def apply_chain(chain: Sequence[Filter], message: Message) -> Iterator[Message]:
    if not chain:
        yield message
        return
    head, rest = chain[0], chain[1:]
    for out in head(message):
        yield from apply_chain(rest, out)


def build_filters(specs: Iterable[dict[str, Any]], redactor: Redactor | None = None) -> list[Filter]:
    """Filters from dpone.yml `filters:` entries, in order. A filter's secrets (a hash key) go to
    the redactor, so no log line or error shows them."""
    from dpone_runner.filters import stream_maps  # noqa: PLC0415 - avoids a cycle at import

    builders: dict[str, Callable[[dict[str, Any]], Filter]] = {
        "select": stream_maps.SelectStreams.from_spec,
        "rename": stream_maps.RenameStream.from_spec,
        "drop": stream_maps.DropProperties.from_spec,
        "hash": stream_maps.HashProperties.from_spec,
    }
    chain: list[Filter] = []
    for spec in specs:
        kind = spec.get("type")
        if kind not in builders:
            raise ConfigError(f"filters: unknown type {kind!r} (use one of {', '.join(builders)})")
        built = builders[kind](spec)
        if redactor is not None and isinstance(built, stream_maps.HashProperties):
            redactor.add(built.secrets())
        chain.append(built)
    return chain
