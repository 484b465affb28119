"""Which request follows a page, for each pagination kind, and the guard against an endless loop.

A paginator answers `first()` and `following(request, response, page)` (None: that was the last page).
Numbered kinds (page, offset) also answer `nth(k)` without any page, which is what lets pages be
fetched ahead. An API tap written in code adds its own kinds to `PAGINATORS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urljoin

import orjson

from dpone.taps.rest.client import Request, Response
from dpone.taps.rest.pages import Page, compile_jsonpath, first_match
from dpone.taps.rest.spec import Pagination
from dpone_protocol.errors import ConfigError


class Paginator:
    numbered: ClassVar[bool] = False
    # The keys its config takes, with their defaults (None: required); checked before any request.
    options: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, spec: Pagination, base: Request) -> None:
        self.spec = spec
        self.base = base

    def first(self) -> Request:
        return self.nth(0) if self.numbered else self.base

    def nth(self, index: int) -> Request:
        raise NotImplementedError

    def following(self, request: Request, response: Response, page: Page) -> Request | None:
        """The next request after `page`, or None when it was the last."""
        return None

    def is_last(self, page: Page) -> bool:
        """A page that ends the stream whatever it links to: empty, or shorter than a full one."""
        count = len(page.records)
        size = self.spec.page_size
        return (count == 0 and self.spec.stop_on_empty_page) or (size > 0 and count < size)

    def with_params(self, request: Request, **params: Any) -> Request:
        return dataclasses.replace(request, params={**request.params, **params})


class NoPagination(Paginator):
    pass


class PageNumbers(Paginator):
    numbered = True
    options: ClassVar[Mapping[str, Any]] = {
        "page_param": "page",
        "start_page": 1,
        "page_size_param": "",
        "page_size": 0,
    }

    def nth(self, index: int) -> Request:
        o = self.spec.options
        params = {o["page_param"]: o["start_page"] + index}
        if o["page_size_param"] and o["page_size"]:
            params[o["page_size_param"]] = o["page_size"]
        return self.with_params(self.base, **params)

    def following(self, request: Request, response: Response, page: Page) -> Request | None:
        return None if self.is_last(page) else self._next_number(request)

    def _next_number(self, request: Request) -> Request:
        o = self.spec.options
        return self.with_params(request, **{o["page_param"]: request.params[o["page_param"]] + 1})


class Offsets(Paginator):
    numbered = True
    options: ClassVar[Mapping[str, Any]] = {
        "offset_param": "offset",
        "limit_param": "limit",
        "limit": None,
        "start_offset": 0,
    }

    def nth(self, index: int) -> Request:
        o = self.spec.options
        return self.with_params(
            self.base, **{o["offset_param"]: o["start_offset"] + index * o["limit"], o["limit_param"]: o["limit"]}
        )

    def following(self, request: Request, response: Response, page: Page) -> Request | None:
        if self.is_last(page):
            return None
        o = self.spec.options
        return self.with_params(request, **{o["offset_param"]: request.params[o["offset_param"]] + o["limit"]})


class Cursor(Paginator):
    options: ClassVar[Mapping[str, Any]] = {"cursor_path": None, "cursor_param": "cursor"}

    def __init__(self, spec: Pagination, base: Request) -> None:
        super().__init__(spec, base)
        self.query = compile_jsonpath(spec.get("cursor_path"), "pagination cursor_path")

    def following(self, request: Request, response: Response, page: Page) -> Request | None:
        cursor = first_match(self.query, page.document)
        if cursor is None or cursor == "" or self.is_last(page):
            return None
        return self.with_params(request, **{self.spec.get("cursor_param"): cursor})


class LinkHeader(Paginator):
    def following(self, request: Request, response: Response, page: Page) -> Request | None:
        if response.next_link is None or self.is_last(page):
            return None
        return dataclasses.replace(request, url=response.next_link, params={})


class NextUrl(Paginator):
    options: ClassVar[Mapping[str, Any]] = {"next_url_path": None}

    def __init__(self, spec: Pagination, base: Request) -> None:
        super().__init__(spec, base)
        self.query = compile_jsonpath(spec.get("next_url_path"), "pagination next_url_path")

    def following(self, request: Request, response: Response, page: Page) -> Request | None:
        link = first_match(self.query, page.document)
        if not link or self.is_last(page):
            return None
        if not isinstance(link, str):
            raise ConfigError(f"page {page.url}: next_url_path found {link!r}, not a URL; check next_url_path")
        # Relative to the page that named it (where it came from, after redirects), as a browser would.
        return dataclasses.replace(request, url=urljoin(response.final_url or request.url, link), params={})


PAGINATORS: dict[str, type[Paginator]] = {
    "none": NoPagination,
    "page": PageNumbers,
    "offset": Offsets,
    "cursor": Cursor,
    "link_header": LinkHeader,
    "next_url": NextUrl,
}


class LoopGuard:
    """Stops a stream that asks for the same page twice, or gets the records of an earlier page again
    (in a row, or in a cycle): an API that ignores the pagination parameter would otherwise be read
    forever. An API that changes something in every answer (a timestamp) is not caught."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.seen: set[tuple[Any, ...]] = set()
        self.digests: dict[int, str] = {}  # every page's records seen so far -> its URL

    def request(self, request: Request, shown: str) -> None:
        key = request.key()
        if key in self.seen:
            raise ConfigError(
                f"stream {self.stream!r}: the pagination asks for {shown} a second time; stopping instead of "
                "looping: check the stream's pagination settings (does the API take that parameter?)"
            )
        self.seen.add(key)

    def page(self, page: Page) -> None:
        if not page.records:
            return
        # The records, not the whole body: a cursor that changes on every page (an API that ignores a
        # wrong cursor_param) must not hide the same records served again.
        texts = page.texts if page.texts is not None else [orjson.dumps(r, default=str).decode() for r in page.records]
        digest = hash(tuple(texts))
        if digest in self.digests:
            raise ConfigError(
                f"stream {self.stream!r}: {page.url} answered the same records as {self.digests[digest]}; the API "
                "seems to ignore the pagination parameter: check the stream's pagination settings"
            )
        self.digests[digest] = page.url
