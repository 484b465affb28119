"""Requests on the wire, through urllib3's connection pools: keep-alive, TLS, proxies, redirects.

urllib3 rather than requests: at a page of 100 records, requests' own per-request work (cookies,
hooks, settings merged from the environment) costs more than reading the page. What this module
adds is small: the environment's proxies (HTTP(S)_PROXY, NO_PROXY) looked up once per host, the
CA bundle requests would use (REQUESTS_CA_BUNDLE, SSL_CERT_FILE, certifi), and urllib3's errors
sorted into the two kinds the client acts on. urllib3 is thread-safe: one pool serves every
thread that fetches pages at once.
"""

from __future__ import annotations

import os
import re
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from dpone_protocol.errors import ConfigError

_LINK_RE = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")
_REL_RE = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|([^\s;,]*))""", re.IGNORECASE)
_MAX_REDIRECTS = 5


class Unreachable(Exception):
    """No answer: the connection failed, timed out or was cut. Worth another try."""


@dataclass(slots=True)
class Answer:
    status: int
    reason: str
    headers: Mapping[str, str]  # case-insensitive
    content: bytes
    url: str  # where the answer came from, after redirects

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def next_link(self) -> str | None:
        """The Link header's rel="next" URL, as written (maybe relative)."""
        header = self.headers.get("Link")
        if not header:
            return None
        for match in _LINK_RE.finditer(header):
            for rel in _REL_RE.finditer(match.group(2)):
                if "next" in (rel.group(1) or rel.group(2) or "").lower().split():
                    return match.group(1).strip()
        return None


def _ca_bundle() -> str | None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(name):
            return os.environ[name]
    try:
        import certifi  # noqa: PLC0415 - the bundle requests would use, when installed
    except ImportError:
        return None  # the system's certificates
    return str(certifi.where())


class Transport:
    def __init__(self, timeout: float, verify: bool, private_headers: set[str] | None = None) -> None:
        import urllib3  # noqa: PLC0415 - a driver: imported when the first request is made

        self.urllib3 = urllib3
        self.timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self.timeout_seconds = timeout
        self.tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED", "ca_certs": _ca_bundle()}
        if not verify:
            self.tls = {"cert_reqs": "CERT_NONE"}
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        # Redirects followed, nothing else retried here: the client retries, with its own backoff.
        # A redirect to another host drops the credentials and every configured header (urllib3 alone
        # drops only Authorization and Cookie).
        private = {"Authorization", "Cookie", "Proxy-Authorization", *(private_headers or ())}
        self.retries = urllib3.Retry(
            total=None,
            connect=0,
            read=0,
            status=0,
            other=0,
            redirect=_MAX_REDIRECTS,
            remove_headers_on_redirect=private,
        )
        self.pools: dict[str | None, Any] = {}
        self.proxy_of: dict[str, str | None] = {}
        self.lock = threading.Lock()

    def _pool(self, url: str) -> Any:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self.lock:
            if origin not in self.proxy_of:
                proxies = urllib.request.getproxies()
                bypass = urllib.request.proxy_bypass(parts.hostname or "") if proxies else True
                self.proxy_of[origin] = None if bypass else proxies.get(parts.scheme)
            proxy = self.proxy_of[origin]
            pool = self.pools.get(proxy)
            if pool is None:
                urllib3 = self.urllib3
                options = {"maxsize": 8, "retries": self.retries, "timeout": self.timeout, **self.tls}
                pool = urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
                self.pools[proxy] = pool
            return pool

    def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> Answer:
        """One exchange; Unreachable when no whole answer came, ConfigError for a URL or TLS problem."""
        exceptions = self.urllib3.exceptions
        try:
            response = self._pool(url).request(method, url, headers=dict(headers), body=body, preload_content=True)
        except exceptions.MaxRetryError as exc:
            raise self._sorted(exc.reason or exc) from None
        except (exceptions.LocationValueError, exceptions.LocationParseError, exceptions.URLSchemeUnknown):
            raise ConfigError(f"not a valid URL: {url}") from None
        except exceptions.HTTPError as exc:
            raise self._sorted(exc) from None
        final = urljoin(url, response.geturl() or url)  # urllib3 may give the path alone
        return Answer(response.status, response.reason or "", response.headers, response.data, final)

    def _sorted(self, error: BaseException) -> Exception:
        exceptions = self.urllib3.exceptions
        if isinstance(error, exceptions.SSLError):
            return ConfigError(f"TLS failed ({_first_line(error)}); check the URL, or set verify_ssl")
        if isinstance(error, exceptions.NewConnectionError):  # before the timeouts: it is one of them
            return Unreachable(f"cannot connect ({_first_line(error)})")
        if isinstance(error, exceptions.TimeoutError):
            return Unreachable(f"no answer within {self.timeout_seconds:g} s (timeout)")
        if isinstance(error, (exceptions.LocationValueError, exceptions.URLSchemeUnknown)):
            return ConfigError(f"not a valid URL ({_first_line(error)})")
        if isinstance(error, exceptions.ResponseError) and "redirect" in str(error):
            return ConfigError(f"more than {_MAX_REDIRECTS} redirects")
        return Unreachable(f"connection failed or cut ({_first_line(error)})")

    def close(self) -> None:
        with self.lock:
            for pool in self.pools.values():
                pool.clear()
            self.pools.clear()


def _first_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    # urllib3 prefixes its connection's repr: the cause alone says it better.
    text = re.sub(r"<urllib3\.[^>]*>:\s*", "", text.splitlines()[0])
    return text[:200]
