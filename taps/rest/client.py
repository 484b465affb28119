"""HTTP for tap-rest: retries with backoff, a request rate limit, and errors typed by what the user
should do, over transport.py's keep-alive connections.

- 429, 408 and 5xx answers, timeouts and connections that fail or are cut mid-body are retried:
  the wait is the answer's Retry-After (seconds or an HTTP date) when it has one, else exponential
  backoff with jitter; after `max_retries` the run stops with a transient error (exit 75).
- A 401 gets one retry with renewed credentials when the auth can renew them (OAuth2).
- Any other 4xx stops at once with a config error (exit 78) naming the method, the URL with its
  secrets masked, the status and the start of the body.

urllib3 (through transport.py) and tenacity are imported when the first request is made.
"""

from __future__ import annotations

import email.utils
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import orjson

from dpone.taps.rest.auth import Auth, make_auth
from dpone.taps.rest.transport import Answer, Transport, Unreachable
from dpone_protocol.about import dpone_version
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.config import MASK, is_secret_name
from dpone_protocol.errors import ConfigError, TransientError

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_BODY_SHOWN = 200  # characters of an error answer's body put in the message


@dataclass(frozen=True, slots=True)
class Request:
    """One page's request. `params` are added to the URL's own query (a followed next link has its own)."""

    url: str
    params: Mapping[str, Any] = field(default_factory=dict)
    method: str = "GET"
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    empty_on: frozenset[int] = frozenset()  # 4xx statuses that mean "no records here"

    def key(self) -> tuple[Any, ...]:
        """What tells two requests apart, for the pagination loop guard."""
        body = tuple(sorted((k, repr(v)) for k, v in self.body.items())) if self.body else ()
        return (self.method, self.url, tuple(sorted((k, repr(v)) for k, v in self.params.items())), body)


@dataclass(slots=True)
class Response:
    status: int
    url: str  # as sent, secrets masked: for messages
    content: bytes
    headers: Mapping[str, str]
    next_link: str | None  # the Link header's rel="next", absolute
    final_url: str = ""  # where the answer came from, after redirects (not masked: for relative links)


class Cancelled(Exception):
    """A page fetched ahead that is no longer wanted: the stream ended before it."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header as seconds from now: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RateLimiter:
    """At most `per_second` requests a second over every thread: each takes the next free slot."""

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.next_slot = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next_slot)
            self.next_slot = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


class HttpClient:
    def __init__(self, config: Mapping[str, Any]) -> None:
        # Defaults as settings.py declares them, for a tap built in code without the CLI's defaults.
        self.timeout = float(config.get("timeout", 60))
        self.max_retries = int(config.get("max_retries", 5))
        self.backoff = float(config.get("backoff_seconds", 1))
        self.backoff_max = float(config.get("backoff_max_seconds", 60))
        self.max_retry_after = float(config.get("max_retry_after_seconds", 300))
        self.limiter = RateLimiter(config.get("max_requests_per_second"))
        self.base_headers = {
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": f"dpone-tap-rest/{dpone_version()}",
        }
        self.headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
        self.auth: Auth = make_auth(config, self._post_form)
        # Credentials and configured headers go to api_url's origin and the trusted hosts only: a next
        # link or a redirect elsewhere gets neither.
        api_url = str(config["api_url"])
        scheme = urlsplit(api_url).scheme
        self.trusted = {_origin(api_url)} | {
            _origin(h if "://" in h else f"{scheme}://{h}") for h in trusted_hosts(config)
        }
        self._untrusted_seen: set[str] = set()
        stream_headers = {
            h for s in config.get("streams") or () if isinstance(s, Mapping) for h in s.get("headers") or ()
        }
        private = {*self.headers, *stream_headers, *self.auth.header_names, "Authorization", "Cookie"}
        self.transport = Transport(self.timeout, bool(config.get("verify_ssl", True)), private)
        self.masked_params = {self.auth.query_param} if self.auth.query_param else set()

    def close(self) -> None:
        self.transport.close()

    def _trusted(self, url: str) -> bool:
        origin = _origin(url)
        if origin in self.trusted:
            return True
        if origin not in self._untrusted_seen:
            self._untrusted_seen.add(origin)
            log.warning(
                "following a link to %s, which is not api_url's host: no credential nor configured header is sent "
                "there (add the host to trusted_hosts if it should get them)",
                origin,
            )
        return False

    # -- what is shown ----------------------------------------------------------------------------
    def shown_url(self, url: str, params: Mapping[str, Any] | None = None) -> str:
        """The URL with its query, secret-looking parameters and any password masked."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True) + [(k, str(v)) for k, v in (params or {}).items()]
        masked = [(k, MASK if k in self.masked_params or _secret_param(k) else v) for k, v in query]
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}" if ":" in userinfo else netloc
        return urlunsplit((parts.scheme, netloc, parts.path, urlencode(masked, safe="/:,*"), parts.fragment))

    # -- requests ---------------------------------------------------------------------------------
    def fetch(self, request: Request, cancel: threading.Event | None = None) -> Response:
        """One page's answer (2xx), retried as the module says; a DponeError when it cannot be had.
        Once `cancel` is set (the page is no longer wanted), no further attempt is made: Cancelled."""
        shown = self.shown_url(request.url, request.params)
        return self._retried(request.method, shown, lambda: self._attempt(request, shown, cancel), cancel)

    def _retried(self, method: str, shown: str, attempt: Callable[[], _T], cancel: threading.Event | None = None) -> _T:
        import tenacity  # noqa: PLC0415 - at the first request, as urllib3 is

        # backoff_seconds, doubling each retry up to backoff_max_seconds, plus up to backoff_seconds of jitter.
        exponential = tenacity.wait_exponential(multiplier=self.backoff, max=self.backoff_max) + tenacity.wait_random(
            0, self.backoff
        )

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, _Retryable) and error.retry_after is not None:
                return error.retry_after
            return float(exponential(state))

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "%s %s: %s; retry %d of %d in %.1f s",
                method,
                shown,
                error,
                state.attempt_number,
                self.max_retries,
                delay,
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=wait,
            retry=tenacity.retry_if_exception_type(_Retryable),
            before_sleep=before_sleep,
            sleep=time.sleep if cancel is None else cast(Callable[[float], None], cancel.wait),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Retryable as exc:
            tries = self.max_retries + 1
            raise TransientError(
                f"{method} {shown}: {exc.reason} ({tries} attempt{'s' * (tries != 1)}); "
                "the API may be down or rate limiting: re-run later, or raise max_retries / timeout"
            ) from None

    def _attempt(self, request: Request, shown: str, cancel: threading.Event | None) -> Response:
        renewed = False
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled(shown)
            self.limiter.wait()
            params = dict(request.params)
            if self._trusted(request.url):
                headers = {**self.base_headers, **self.headers, **request.headers}
                self.auth.apply(headers, params)
                if self.auth.query_param and self.auth.query_param in dict(parse_qsl(urlsplit(request.url).query)):
                    params.pop(self.auth.query_param)  # a followed link carries the key already
            else:
                headers = dict(self.base_headers)  # no credential, no configured header
            body = None
            if request.body is not None and request.method != "GET":
                headers.setdefault("Content-Type", "application/json")
                body = DEFAULT_CODEC.dumps(dict(request.body))
            answer = self._send(request.method, _with_query(request.url, params), headers, body, shown)
            if answer.status == 401 and not renewed and self.auth.renew_after_401(headers):
                renewed = True
                log.info("%s %s: 401 with the current token; retrying once with a new one", request.method, shown)
                continue
            return self._checked(request, answer, shown)

    def _send(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, shown: str) -> Answer:
        try:
            return self.transport.send(method, url, headers, body)
        except Unreachable as exc:
            raise _Retryable(str(exc)) from None
        except ConfigError as exc:
            raise ConfigError(f"{method} {shown}: {exc}") from None

    def _checked(self, request: Request, answer: Answer, shown: str) -> Response:
        status = answer.status
        if status in {429, 408} or status >= 500:
            after = retry_after_seconds(answer.headers.get("Retry-After"))
            if after is not None and after > self.max_retry_after:
                raise TransientError(
                    f"{request.method} {shown}: answered {status} and asks to wait {after:.0f} s, more than "
                    f"max_retry_after_seconds ({self.max_retry_after:g}); re-run later"
                )
            raise _Retryable(f"answered {status} {answer.reason}".rstrip(), after)
        if status in request.empty_on:
            log.info("%s %s: answered %d: no records there (empty_on_status)", request.method, shown, status)
            return Response(status, shown, b"", answer.headers, None, answer.url)
        if status >= 400:
            body = " ".join(answer.text[:_BODY_SHOWN].split())
            hint = {
                401: "the API refused the credentials: check auth_method and its settings",
                403: "the credentials lack permission for this endpoint",
                404: "no such endpoint: check api_url and the stream's path "
                "(or set empty_on_status when a 404 means no records)",
            }.get(status, "the API rejected the request: check the stream's path, params and body")
            raise ConfigError(f"{request.method} {shown}: answered {status} {answer.reason}: {body!r}; {hint}")
        link = answer.next_link()
        next_link = urljoin(answer.url, link) if link else None
        return Response(status, shown, answer.content, answer.headers, next_link, answer.url)

    def _post_form(self, url: str, form: Mapping[str, str], headers: Mapping[str, str]) -> tuple[int, Any, str]:
        """The OAuth2 token request: retried like a page, but its 4xx are the auth's to report."""
        shown = self.shown_url(url)
        sent = {**headers, "Content-Type": "application/x-www-form-urlencoded"}

        def attempt() -> tuple[int, Any, str]:
            self.limiter.wait()
            answer = self._send("POST", url, sent, urlencode(dict(form)).encode(), shown)
            if answer.status in {429, 408} or answer.status >= 500:
                raise _Retryable(f"answered {answer.status}", retry_after_seconds(answer.headers.get("Retry-After")))
            try:
                body = orjson.loads(answer.content)
            except orjson.JSONDecodeError:
                body = None
            return answer.status, body, answer.text

        return self._retried("POST", f"{shown} (OAuth2 token)", attempt)


# Query parameter names that carry secrets besides the usual ones (is_secret_name): API keys as `key`,
# signatures of presigned URLs, sessions, OAuth codes.
_QUERY_SECRET_RE = re.compile(
    r"(^|[-_.])(key|sig|signature|session|sessionid|sid|code|hash|credential|x-amz-[a-z-]+)$", re.IGNORECASE
)


def _secret_param(name: str) -> bool:
    return is_secret_name(name) or _QUERY_SECRET_RE.search(name) is not None


def trusted_hosts(config: Mapping[str, Any]) -> list[str]:
    """The trusted_hosts entries: `host`, `host:port` (over api_url's scheme) or `scheme://host[:port]`."""
    return [str(h) for h in config.get("trusted_hosts") or ()]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _with_query(url: str, params: Mapping[str, Any]) -> str:
    """The URL with `params` added to its own query (booleans as true/false, as APIs expect)."""
    if not params:
        return url
    pairs = [(k, ("true" if v else "false") if isinstance(v, bool) else v) for k, v in params.items()]
    return url + ("&" if urlsplit(url).query else ("" if url.endswith("?") else "?")) + urlencode(pairs, doseq=True)
