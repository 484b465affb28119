"""tap-rest: a JSON REST API as Singer streams, declared in config (one stream per endpoint).

An API tap written in code subclasses :class:`RestTap`: it may build its own `streams` config in
`__init__`, swap `stream_class` for a RestStream subclass (to shape requests or records), or add
pagination kinds to `paginators`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from dpone.taps.framework.stream import Stream
from dpone.taps.framework.tap import Tap
from dpone.taps.rest.pagination import PAGINATORS, Paginator
from dpone.taps.rest.settings import SETTINGS
from dpone.taps.rest.spec import check_config
from dpone.taps.rest.stream import RestStream
from dpone_protocol.catalog import Catalog
from dpone_protocol.codec import MessageWriter
from dpone_protocol.settings import Setting

if TYPE_CHECKING:
    from dpone.taps.rest.client import HttpClient

log = logging.getLogger(__name__)


class RestTap(Tap):
    name = "tap-rest"
    drivers: ClassVar[dict[str, str]] = {"urllib3": "rest", "tenacity": "rest"}
    description = "Reads JSON REST APIs declared in config: auth, pagination, retries, incremental and child streams."
    settings: ClassVar[tuple[Setting, ...]] = SETTINGS
    stream_class: ClassVar[type[RestStream]] = RestStream
    paginators: ClassVar[Mapping[str, type[Paginator]]] = PAGINATORS

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.specs = check_config(config, {kind: cls.options for kind, cls in self.paginators.items()})
        self._streams: list[RestStream] | None = None
        self._client: HttpClient | None = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> HttpClient:
        # Pages fetched at once ask for it together: one client, so one token and one rate limit.
        with self._client_lock:
            if self._client is None:
                from dpone.taps.rest.client import HttpClient  # noqa: PLC0415 - imports requests

                self._client = HttpClient(self.config)
            return self._client

    def discover_streams(self) -> list[Stream]:
        streams: list[Stream] = list(self.rest_streams())
        return streams

    def rest_streams(self) -> list[RestStream]:
        """The streams, parents before their children, built once."""
        if self._streams is None:
            built: dict[str, RestStream] = {}
            pending = list(self.specs)
            while pending:  # parents before children; spec.py refused loops
                spec = next(s for s in pending if s.parent is None or s.parent in built)
                pending.remove(spec)
                built[spec.name] = self.stream_class(self, spec, built[spec.parent] if spec.parent else None)
            self._streams = [built[s.name] for s in self.specs]
        return self._streams

    def sync(
        self, writer: MessageWriter, catalog: Catalog | None = None, state: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if catalog is not None:
            # The catalog's schema is the one discovery inferred: no second sample of the API.
            by_name = {s.name: s for s in self.rest_streams()}
            for entry in catalog.streams:
                stream = by_name.get(entry.tap_stream_id)
                if stream is not None and stream.spec.schema is None:
                    stream.schema = dict(entry.schema)
        try:
            return super().sync(writer, catalog, state)
        finally:
            if self._client is not None:
                self._client.close()

    def check(self) -> None:
        """The first page of every top-level stream answers, with records where records_path says."""
        for stream in self.rest_streams():
            if stream.parent is None:
                for _ in stream.rows():
                    break
