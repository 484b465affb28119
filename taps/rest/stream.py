"""One endpoint as a stream: its pages in order, its records, and its bookmark.

A child stream (`parent` set) is read once per parent record: the path's `{field}`s come from that
record and `parent_keys` carries its values into every child record. Each such partition keeps its
own bookmark, in the Singer SDK's shape: `{"partitions": [{"context": {...}, "replication_key": ...,
"replication_key_value": ...}]}`. A partition is read whole before the next, so its bookmark may
move to the newest value it saw as soon as it is done, even when the API does not sort.

Records the tap writes as they are (no stream map, projection or BATCH files) go out as the API
sent them: whole RECORD lines built from each record's text, in blocks of at most `state_every_rows`
so a STATE can follow any block. Otherwise they go out as decoded values, every number exact.
"""

from __future__ import annotations

import itertools
import logging
import operator
import re
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dpone.state.records import Bookmark, RawBookmark, StreamBookmark
from dpone.taps.framework.bookmarks import start_value
from dpone.taps.framework.schema_inference import SchemaInferrer
from dpone.taps.framework.stream import EncodedLines, ReadContext, Stream
from dpone.taps.rest.carried import carried_fields, lookup, property_schema, spliced
from dpone.taps.rest.client import Request, Response
from dpone.taps.rest.pages import Page, RecordsPath
from dpone.taps.rest.pagination import LoopGuard, Paginator
from dpone.taps.rest.partitions import Partition, context_id, order_key
from dpone.taps.rest.spec import PLACEHOLDER_RE, StreamSpec
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.errors import ConfigError, DataError
from dpone_protocol.messages import SchemaMessage

if TYPE_CHECKING:
    from dpone.taps.rest.tap import RestTap

log = logging.getLogger(__name__)


class RestStream(Stream):
    def __init__(self, tap: RestTap, spec: StreamSpec, parent: RestStream | None) -> None:
        self.tap = tap
        self.spec = spec
        self.parent = parent
        self.name = spec.name
        self.key_properties = list(spec.primary_keys)  # type: ignore[misc]  # per endpoint
        self.replication_key = spec.replication_key
        self.valid_replication_keys = [spec.replication_key] if spec.replication_key else []  # type: ignore[misc]
        self.is_sorted = spec.is_sorted
        self.records_path = RecordsPath(spec.records_path)
        self._schema: dict[str, Any] | None = None
        self.partitions: dict[bytes, Partition] = {}
        self._rk: str | None = None
        self._since_state = 0  # records handed on since the last STATE
        self._warned_unmatched = False
        self._schema_from = "inferred"  # declared | inferred (in this run: it grows) | catalog
        self._known: set[str] = set()  # the properties of the schema sent
        self._integers: list[str] = []  # its integer fields, while it may grow
        self._own_keys = [k for k in spec.primary_keys if k not in spec.parent_keys]

    # -- schema -------------------------------------------------------------------------------------
    @property
    def schema(self) -> dict[str, Any]:
        if self._schema is None:
            self._schema_from = "declared" if self.spec.schema else "inferred"
            self._schema = self._with_carried(dict(self.spec.schema) if self.spec.schema else self._inferred())
        return self._schema

    @schema.setter
    def schema(self, value: dict[str, Any]) -> None:
        """The catalog's schema (chosen by whoever made the catalog: it does not grow)."""
        self._schema, self._schema_from = value, "catalog"

    def _drift(self, page: Page, can_grow: bool) -> SchemaMessage | None:
        """A SCHEMA for what this page has that the schema lacks, when the schema was inferred in this
        run (so it grows as a larger sample would have): new fields, and `number` for an integer field
        that brings a fraction. A declared or catalog schema was chosen, and stays as it is, with a
        word in the log for fields it leaves out. None when nothing changes."""
        records = page.records
        new = set().union(*records) - self._known if records else set()
        grows = can_grow and self._schema_from == "inferred"
        widened = self._fractions(records) if grows and self._integers else []
        if not new and not widened:
            return None
        self._known |= new
        fields = [k for k in dict.fromkeys(k for record in records for k in record) if k in new]
        if fields and not grows:
            log.log(
                logging.INFO if self._schema_from == "declared" else logging.WARNING,
                "stream %s: %s on page %s %s not in the %s schema: targets leave %s out%s",
                self.name,
                ", ".join(fields[:10]),
                page.url,
                "is" if len(fields) == 1 else "are",
                self._schema_from,
                "it" if len(fields) == 1 else "them",
                "; run discovery again to take them" if self._schema_from == "catalog" else "",
            )
        if not grows:
            return None
        properties = dict(self.schema["properties"])
        if fields:
            inferrer = SchemaInferrer()
            for record in records:
                inferrer.observe(record)
            found = inferrer.schema()["properties"]
            properties.update((k, found[k]) for k in fields)
        for name in widened:
            properties[name] = {**properties[name], "type": ["null", "number"]}
        self._schema = {**self.schema, "properties": properties}
        self._integers = self._integer_fields()
        said = [f"{', '.join(fields)} appeared"] if fields else []
        said += [f"{', '.join(widened)} became numbers"] if widened else []
        log.info(
            "stream %s: %s on page %s, after the sample: a new SCHEMA says so", self.name, "; ".join(said), page.url
        )
        return SchemaMessage(self.name, self._schema, self.key_properties)

    def _integer_fields(self) -> list[str]:
        """The fields the schema sent types as integers only: a fraction in one widens it."""
        properties = self.schema.get("properties", {})
        return [
            k for k, p in properties.items() if isinstance(p, dict) and set(p.get("type") or ()) == {"null", "integer"}
        ]

    def _fractions(self, records: list[dict[str, Any]]) -> list[str]:
        fractional = (float, Decimal)
        return [f for f in self._integers if any(isinstance(r.get(f), fractional) for r in records)]

    def _with_carried(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Carried parent fields first, typed as the parent's schema types them."""
        if not self.spec.parent_keys or self.parent is None:
            return schema
        own = dict(schema.get("properties") or {})
        parent = self.parent.schema
        carried = {name: own.pop(name, property_schema(parent, field)) for name, field in self.spec.parent_keys.items()}
        return {**schema, "properties": {**carried, **own}}

    def _inferred(self) -> dict[str, Any]:
        inferrer = SchemaInferrer()
        budget = max(1, int(self.tap.config.get("schema_sample_pages") or 5))
        for partition in self._partitions(None):
            for page in self._pages(self._request(partition)):
                for record in page.records:
                    inferrer.observe(record)
                budget -= 1
                if budget == 0:
                    break
            if budget == 0:
                break
        if not inferrer.count:
            log.warning(
                "stream %s: the API sent no records to infer a schema from; declare the stream's `schema`", self.name
            )
        schema = inferrer.schema()
        missing = [
            k for k in (*self.spec.primary_keys, self.spec.replication_key) if k and k not in schema["properties"]
        ]
        if inferrer.count and missing:
            log.warning("stream %s: %s never appeared in the sample; declare the stream's `schema`", self.name, missing)
        return schema

    def discovery_metadata(self) -> dict[str, Any]:
        return {"parent-tap-stream-id": self.parent.name} if self.parent else {}

    # -- requests and pages -------------------------------------------------------------------------
    def _request(self, partition: Partition) -> Request:
        spec, config = self.spec, self.tap.config
        path = PLACEHOLDER_RE.sub(lambda m: quote(str(partition.path_values[m.group(1)]), safe=""), spec.path)
        url = path if re.match(r"^https?://", path) else config["api_url"].rstrip("/") + "/" + path.lstrip("/")
        params = {**(config.get("params") or {}), **spec.params}
        if spec.replication_param and partition.start is not None:
            params[spec.replication_param] = partition.start
        return Request(url, params, spec.method, spec.body, spec.headers, spec.empty_on_status)

    def _paginator(self, base: Request) -> Paginator:
        return self.tap.paginators[self.spec.pagination.kind](self.spec.pagination, base)

    def _pages(self, base: Request, exact: bool = True) -> Iterator[Page]:
        """The pages of one partition, in order; page and offset pagination may fetch ahead. `exact`
        False when records are written from their text (see RecordsPath.parse)."""
        pages = self._paginator(base)
        guard = LoopGuard(self.name)
        if pages.numbered and self.spec.concurrency > 1:
            yield from self._pages_ahead(pages, guard, exact)
            return
        client = self.tap.client
        request: Request | None = pages.first()
        first = True
        while request is not None:
            guard.request(request, client.shown_url(request.url, request.params))
            response, page = self._fetch(request, exact, first=first)
            first = False
            guard.page(page)
            yield page
            request = pages.following(request, response, page)

    def _fetch(
        self, request: Request, exact: bool, cancel: threading.Event | None = None, first: bool = False
    ) -> tuple[Response, Page]:
        response = self.tap.client.fetch(request, cancel)
        if response.status in request.empty_on and first and self.parent is None:
            # A stream's own endpoint is there: its first page missing is a wrong path, not an empty API.
            raise ConfigError(
                f"{request.method} {response.url}: answered {response.status} for the stream's first page: no such "
                "endpoint: check api_url and the stream's path (empty_on_status covers the pages after the "
                "first, and child streams' partitions)"
            )
        if response.status == 204 or response.status in request.empty_on:  # a page without records
            return response, Page(response.url, None, [], [])
        page = self.records_path.parse(response.content, response.url, exact)
        if not page.matched and not self._warned_unmatched:
            self._warned_unmatched = True
            keys = ", ".join(list(page.document)[:10]) if isinstance(page.document, dict) else "none"
            log.warning(
                "stream %s: nothing at records_path %s on page %s (its top-level keys: %s); check records_path",
                self.name,
                self.spec.records_path,
                page.url,
                keys,
            )
        return response, page

    def _pages_ahead(self, pages: Paginator, guard: LoopGuard, exact: bool) -> Iterator[Page]:
        """`concurrency` pages in flight; each handed on in page order, and none past the last."""
        ahead = self.spec.concurrency
        pool = ThreadPoolExecutor(ahead, thread_name_prefix=f"tap-rest-{self.name}")
        cancel = threading.Event()  # set when the stream ends: pages past it stop retrying
        in_flight: deque[tuple[Request, Future[tuple[Response, Page]]]] = deque()
        index = 0
        try:
            for index in range(ahead):
                request = pages.nth(index)
                in_flight.append((request, pool.submit(self._fetch, request, exact, cancel, index == 0)))
            while in_flight:
                request, future = in_flight.popleft()
                response, page = future.result()
                guard.page(page)
                yield page
                if pages.following(request, response, page) is None:
                    return
                index += 1
                following = pages.nth(index)
                in_flight.append((following, pool.submit(self._fetch, following, exact, cancel)))
        finally:
            cancel.set()
            pool.shutdown(wait=True, cancel_futures=True)

    # -- partitions ---------------------------------------------------------------------------------
    def _partitions(self, ctx: ReadContext | None) -> Iterator[Partition]:
        """The reads this run makes: one for a top-level stream, one per distinct parent record for a child."""
        committed = self._committed(ctx) if ctx is not None else {}
        default_start = ctx.start_value if ctx is not None else None
        syncing = ctx is not None
        if self.parent is None:
            # A start that is the committed bookmark, not start_date, fixes the kind of the key's values.
            anchored = syncing and start_value(ctx.bookmark, ctx.replication_key) is not None  # type: ignore[union-attr]
            yield self._partition({}, {}, committed, default_start, anchored, syncing)
            return
        seen: set[bytes] = set()
        fields = self.spec.path_fields()
        for row in self.parent.rows():
            values = {f: lookup(row, f) for f in fields}
            missing = [f for f, v in values.items() if v is None]
            if missing:
                raise DataError(
                    f"stream {self.name!r}: a {self.parent.name!r} record has no {', '.join(missing)} for the path "
                    f"{self.spec.path!r}: {_excerpt(row)}"
                )
            context = {name: lookup(row, field) for name, field in self.spec.parent_keys.items()}
            key = context_id({**context, **{f"{{{f}}}": v for f, v in values.items()}})
            if key in seen:
                continue
            seen.add(key)
            yield self._partition(context, values, committed, default_start, False, syncing)

    def _partition(
        self,
        context: dict[str, Any],
        values: dict[str, Any],
        committed: dict[bytes, Any],
        start: Any,
        anchored: bool,
        syncing: bool,
    ) -> Partition:
        # The state knows a partition by its carried fields and any path value they leave out, so
        # parent_keys naming a shared field (a team) cannot merge two parents' bookmarks.
        covered = set(self.spec.parent_keys.values())
        known_as = {**context, **{f: v for f, v in values.items() if f not in covered}}
        key = context_id(known_as)
        start, anchored = (committed[key], True) if key in committed else (start, anchored)
        partition = Partition(known_as, context, values, start, anchored)
        if syncing:  # a read for a child or for a sample has no bookmark
            self.partitions[key] = partition
        return partition

    def _committed(self, ctx: ReadContext) -> dict[bytes, Any]:
        """A child stream's committed value per partition (its bookmark's `partitions`)."""
        if self.parent is None or not ctx.replication_key:
            return {}
        bookmark = ctx.bookmark
        raw = bookmark.extra.get("partitions") if isinstance(bookmark, StreamBookmark) else None
        if raw is None:
            return {}
        entries: list[Any] = raw if isinstance(raw, list) else [None]
        if not all(isinstance(e, Mapping) and isinstance(e.get("context"), Mapping) for e in entries):
            raise ConfigError(
                f"stream {self.name!r}: malformed bookmark in the state: partitions must be a list of "
                '{"context": {...}, "replication_key_value": ...}; fix it, or clear the stream\'s bookmark'
            )
        out: dict[bytes, Any] = {}
        for entry in entries:
            if entry.get("replication_key") in (None, ctx.replication_key):
                key, value = context_id(entry["context"]), entry.get("replication_key_value")
                out[key] = value
                # Kept in the next STATE even when its parent record is gone.
                self.partitions[key] = Partition(dict(entry["context"]), {}, {}, value, anchored=True, done=True)
        return out

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every record of the stream as values, carried fields included: what a child stream reads from."""
        for partition in self._partitions(None):
            carried = partition.carried
            for page in self._pages(self._request(partition)):
                for record in page.records:
                    yield {**carried, **record} if carried else record

    # -- records ------------------------------------------------------------------------------------
    def records(self, ctx: ReadContext) -> Iterator[Any]:
        self._rk = ctx.replication_key
        self.partitions = {}
        self._known = set(self.schema.get("properties", {}))
        self._integers = self._integer_fields() if self._schema_from == "inferred" else []
        for partition in self._partitions(ctx):
            if ctx.envelope is not None:
                yield from self._lines(ctx, partition)
            else:
                yield from self._values(ctx, partition)
            partition.done = True
            if partition.odd is not None:
                log.warning(
                    "stream %s%s: %s value %r is not of the kind the others are: it did not move the bookmark",
                    self.name,
                    f" {partition.context}" if partition.context else "",
                    self._rk,
                    partition.odd,
                )

    def _kept(self, page: Page, partition: Partition) -> list[int]:
        """Indexes of the page's records at or after the partition's start (ties come again); a record
        whose value cannot be compared with the start (none, or another kind) is kept."""
        rk = self._rk
        start = partition.start_key() if rk is not None else None
        if rk is None or start is None:
            return list(range(len(page.records)))
        kind = start[0]
        return [
            i
            for i, r in enumerate(page.records)
            if (v := r.get(rk)) is None or (key := order_key(v))[0] != kind or key >= start
        ]

    def _check_keys(self, page: Page) -> None:
        """Every record has the stream's key properties (the carried ones come later): a record without
        one is most often an error object where the list should be."""
        records = page.records
        for key in self._own_keys:
            if not all(map(operator.contains, records, itertools.repeat(key))):  # a loop in C
                record = next(r for r in records if key not in r)
                missing = [k for k in self._own_keys if k not in record]
                raise DataError(
                    f"page {page.url}: a record has no {', '.join(missing)} (the stream's primary_keys): "
                    f"{_excerpt(record)}; check records_path, or what the API answered"
                )

    def _check_sorted(self, page: Page, kept: list[int], partition: Partition) -> None:
        """With is_sorted, a replication-key value below one already sent means the API does not sort:
        a STATE may have promised too much. The partition goes back to where it started (the STATE
        written as the run stops says so) and the run stops."""
        rk = self._rk
        if not self.is_sorted or rk is None:
            return
        last, last_value = partition.newest_key, partition.newest
        for i in kept:
            value = page.records[i].get(rk)
            if value is None or value == "":
                continue
            key = order_key(value)
            if last is not None and key[0] == last[0] and key < last:
                partition.newest = partition.newest_key = None
                raise DataError(
                    f"stream {self.name!r}: is_sorted is set, but {rk} goes down on page {page.url} "
                    f"({last_value!r}, then {value!r}): the API does not return records in ascending {rk} order. "
                    "The state goes back to where this run started; unset is_sorted, or have the API sort"
                )
            if last is None or key[0] == last[0]:
                last, last_value = key, value

    def _values(self, ctx: ReadContext, partition: Partition) -> Iterator[dict[str, Any]]:
        rk, carried = self._rk, partition.carried
        for page in self._pages(self._request(partition)):
            records = page.records
            self._drift(page, can_grow=False)
            self._check_keys(page)
            kept = self._kept(page, partition)
            self._check_sorted(page, kept, partition)
            for i in kept:
                record = records[i]
                if rk is not None:
                    partition.observe(record.get(rk))
                yield {**carried, **record} if carried else record

    def _lines(self, ctx: ReadContext, partition: Partition) -> Iterator[EncodedLines | SchemaMessage]:
        assert ctx.envelope is not None
        head, tail = (part.decode() for part in ctx.envelope)
        every = max(1, int(ctx.config.get("state_every_rows") or 10_000))
        rk, carried = self._rk, partition.carried
        splice = carried_fields(carried)
        for page in self._pages(self._request(partition), exact=False):
            records = page.records
            texts = page.texts if page.texts is not None else [DEFAULT_CODEC.dumps(r).decode() for r in records]
            grown = self._drift(page, can_grow=True)
            if grown is not None:
                yield grown
            self._check_keys(page)
            kept = self._kept(page, partition)
            self._check_sorted(page, kept, partition)
            at = 0
            while at < len(kept):
                # Blocks end where the framework's count reaches state_every_rows, so a STATE can follow.
                block = kept[at : at + max(1, every - self._since_state)]
                at += len(block)
                self._since_state += len(block)
                if rk is not None:
                    for i in block:
                        partition.observe(records[i].get(rk))
                if carried:
                    lines = [head + spliced(texts[i], records[i], carried, splice) + tail for i in block]
                else:
                    lines = [head + texts[i] + tail for i in block]
                yield EncodedLines("".join(lines).encode(), len(block))

    # -- bookmark -----------------------------------------------------------------------------------
    def position(self, final: bool) -> Bookmark | None:
        self._since_state = 0  # called at each STATE
        rk = self._rk
        if rk is None:
            return None
        if self.parent is None:
            (partition,) = self.partitions.values() or (None,)
            value = partition.committed(self.is_sorted, final) if partition else None
            return StreamBookmark(self.name, rk, value) if value is not None else None
        entries = [
            {"context": p.context, "replication_key": rk, "replication_key_value": value}
            for p in self.partitions.values()
            if (value := p.committed(self.is_sorted, final)) is not None
        ]
        return RawBookmark(self.name, {"partitions": entries})

    def bookmark_key(self, value: Any) -> Any:
        return order_key(value)


def _excerpt(row: Mapping[str, Any]) -> str:
    text = DEFAULT_CODEC.dumps(dict(row)).decode()
    return text if len(text) <= 200 else text[:197] + "..."
