"""Credentials on every request: bearer token, basic, API key (header or query), OAuth2.

OAuth2 tokens come from the token endpoint (client_credentials or refresh_token grant), are
renewed shortly before they expire, and once more when the API answers 401 with a token that
should still be good (revoked, or the clocks disagree). A token is registered for redaction the
moment it arrives, so no log line or error can show it.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from dpone_protocol.config import register_secret
from dpone_protocol.errors import ConfigError

log = logging.getLogger(__name__)

AUTH_METHODS = ("none", "bearer", "basic", "api_key", "oauth2")
# Renew a token this long before it expires, or at a tenth of its lifetime if that is shorter.
_RENEW_MARGIN_SECONDS = 60.0


class Auth:
    """No credentials. Subclasses add theirs to a request's headers or query parameters."""

    # A query parameter the credentials travel in: masked in every URL shown.
    query_param: str | None = None
    # The headers they travel in: dropped on a redirect to another host.
    header_names: tuple[str, ...] = ()

    def apply(self, headers: MutableMapping[str, str], params: MutableMapping[str, Any]) -> None:
        """Add the credentials to one request."""

    def renew_after_401(self, sent: Mapping[str, str]) -> bool:
        """Fresh credentials after the API refused those `sent` (a request's headers); False when
        there is nothing to renew."""
        return False


class HeaderAuth(Auth):
    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value
        self.header_names = (name,)

    def apply(self, headers: MutableMapping[str, str], params: MutableMapping[str, Any]) -> None:
        headers[self.name] = self.value


class QueryAuth(Auth):
    def __init__(self, name: str, value: str) -> None:
        self.query_param, self.value = name, value

    def apply(self, headers: MutableMapping[str, str], params: MutableMapping[str, Any]) -> None:
        assert self.query_param is not None
        params[self.query_param] = self.value


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


# POST form data to a URL; returns (status, JSON body or None, body text). Retries transient failures.
TokenPost = Callable[[str, Mapping[str, str], Mapping[str, str]], tuple[int, Any, str]]


class OAuth2(Auth):
    def __init__(self, config: Mapping[str, Any], post: TokenPost) -> None:
        self.url = str(config.get("oauth2_token_url") or "")
        self.grant = str(config.get("oauth2_grant_type") or "client_credentials")
        self.client_id = str(config.get("client_id") or "")
        self.client_secret = str(config.get("client_secret") or "")
        self.refresh_token = str(config.get("refresh_token") or "")
        self.scope = config.get("oauth2_scope")
        self.client_auth = str(config.get("oauth2_client_auth") or "body")
        self.extra = {str(k): str(v) for k, v in (config.get("oauth2_params") or {}).items()}
        self.post = post
        self.token: str | None = None
        self.renew_at = 0.0
        self.lock = threading.Lock()
        self.rotated = False

    def apply(self, headers: MutableMapping[str, str], params: MutableMapping[str, Any]) -> None:
        with self.lock:
            if self.token is None or time.monotonic() >= self.renew_at:
                self._fetch()
            headers["Authorization"] = f"Bearer {self.token}"

    def renew_after_401(self, sent: Mapping[str, str]) -> bool:
        with self.lock:
            # Pages in flight refused together renew once: the first renews, the others see a new token.
            if sent.get("Authorization") == f"Bearer {self.token}":
                self._fetch()
        return True

    def _form(self) -> tuple[dict[str, str], dict[str, str]]:
        form = {"grant_type": self.grant, **self.extra}
        if self.grant == "refresh_token":
            form["refresh_token"] = self.refresh_token
        if self.scope:
            form["scope"] = str(self.scope)
        headers = {"Accept": "application/json"}
        if self.client_auth == "basic":
            headers["Authorization"] = basic_header(self.client_id, self.client_secret)
        else:
            form["client_id"] = self.client_id
            if self.client_secret:
                form["client_secret"] = self.client_secret
        return form, headers

    def _fetch(self) -> None:
        form, headers = self._form()
        status, body, text = self.post(self.url, form, headers)
        if status >= 400 or not isinstance(body, Mapping) or not isinstance(body.get("access_token"), str):
            said = (text or "").strip()[:200]
            what = f"answered {status}" if status >= 400 else "answered without an access_token"
            raise ConfigError(
                f"OAuth2 token request ({self.grant}) to {self.url} {what}: {said!r}; "
                "check client_id, client_secret, refresh_token, oauth2_scope and oauth2_client_auth"
            )
        token = body["access_token"]
        register_secret(token)
        self.token = token
        lifetime = _seconds(body.get("expires_in"))
        margin = min(_RENEW_MARGIN_SECONDS, lifetime / 10) if lifetime else 0.0
        self.renew_at = time.monotonic() + lifetime - margin if lifetime else float("inf")
        fresh = body.get("refresh_token")
        if isinstance(fresh, str) and fresh and fresh != self.refresh_token and self.grant == "refresh_token":
            register_secret(fresh)
            self.refresh_token = fresh
            if not self.rotated:
                self.rotated = True
                log.warning(
                    "the token endpoint rotated the refresh token: this run uses the new one, but your config "
                    "still holds the old one, which the provider may now refuse; update refresh_token"
                )
        log.info(
            "OAuth2: got an access token (%s), valid for %s",
            self.grant,
            f"{lifetime:g} s" if lifetime else "no stated time",
        )


def _seconds(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return 0.0
    return seconds if seconds > 0 else 0.0


# What each auth method needs besides itself; oauth2 also needs its grant's credential.
_NEEDS: dict[str, tuple[str, ...]] = {
    "none": (),
    "bearer": ("bearer_token",),
    "basic": ("username", "password"),
    "api_key": ("api_key",),
    "oauth2": ("oauth2_token_url", "client_id"),
}


def auth_problems(config: Mapping[str, Any]) -> list[str]:
    """What the config lacks for its auth_method (empty when nothing)."""
    method = str(config.get("auth_method") or "none")
    if method not in _NEEDS:
        return [f"auth_method must be one of {', '.join(AUTH_METHODS)}; got {method!r}"]
    needs = _NEEDS[method]
    if method == "oauth2":
        grant = config.get("oauth2_grant_type") or "client_credentials"
        needs += ("refresh_token",) if grant == "refresh_token" else ("client_secret",)
    missing = [n for n in needs if not config.get(n)]
    return [f"auth_method {method!r} needs {', '.join(missing)}"] if missing else []


def make_auth(config: Mapping[str, Any], post: TokenPost) -> Auth:
    """The auth the config asks for (checked by auth_problems)."""
    problems = auth_problems(config)
    if problems:
        raise ConfigError("tap-rest: " + "; ".join(problems))
    method = str(config.get("auth_method") or "none")
    if method == "bearer":
        return HeaderAuth("Authorization", f"Bearer {config['bearer_token']}")
    if method == "basic":
        return HeaderAuth("Authorization", basic_header(str(config["username"]), str(config["password"])))
    if method == "api_key":
        name = str(config.get("api_key_name") or "X-API-Key")
        if config.get("api_key_location", "header") == "query":
            return QueryAuth(name, str(config["api_key"]))
        return HeaderAuth(name, str(config["api_key"]))
    if method == "oauth2":
        return OAuth2(config, post)
    return Auth()
