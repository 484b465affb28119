"""Config files: JSON loading, ${ENV} expansion, and redaction of secrets everywhere.

A :class:`Redactor` knows every secret value of a run (from secret-named settings and
DSN passwords) and scrubs them from any text; :func:`install_redaction` attaches it to
logging so no log line or error message can carry them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import orjson

from dpone_protocol.errors import ConfigError

ENV_VAR_RE = _ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
SECRET_NAME_RE = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|private[_-]?key|credentials?|auth|dsn|jaas)", re.IGNORECASE
)
# user:password@ in URLs and DSNs; password=... in libpq/ODBC connection strings.
_URL_PASSWORD_RE = re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^\s/?#]+)(?=@)")
_KV_PASSWORD_RE = re.compile(
    r"(?P<pre>\b(?:password|pwd|passwd)\s*=\s*)(?P<pw>\{(?:[^}]|\}\})*\}|'[^']*'|[^\s;]+)", re.IGNORECASE
)
MASK = "***"


def expand_env(value: Any, environ: Mapping[str, str] | None = None, *, where: str = "") -> Any:
    """Expand ${VAR} and ${VAR:-default} in every string of a JSON-like value."""
    env = os.environ if environ is None else environ
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if default is not None:
                return env.get(name) or default  # like the shell: empty counts as unset
            if name in env:
                return env[name]
            raise ConfigError(f"{where or 'config'}: environment variable {name} is not set")

        return _ENV_RE.sub(substitute, value)
    if isinstance(value, dict):
        return {k: expand_env(v, env, where=f"{where}.{k}" if where else k) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, where=where) for v in value]
    return value


def load_json_file(path: str | Path, what: str = "config") -> Any:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror}") from None
    try:
        return orjson.loads(data) if data.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{what} file {path} is not valid JSON: {exc}") from None


def load_config(paths: Iterable[str | Path], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Merge one or more JSON config files (later wins) and expand ${ENV} references."""
    merged: dict[str, Any] = {}
    for path in paths:
        data = load_json_file(path)
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a JSON object")
        merged.update(data)
    expanded = expand_env(merged, environ)
    assert isinstance(expanded, dict)
    return expanded


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME_RE.search(name))


class Redactor:
    """Replaces known secret values, and passwords inside DSNs, with ***."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        # Very short values would mask ordinary words; they are still caught inside DSNs.
        found = [s for s in secrets if isinstance(s, str) and len(s) >= 4]
        # As a URL's query carries them too (a driver's debug line shows the request it sent).
        self._secrets.update(found, (quote(s, safe="") for s in found), (quote_plus(s) for s in found))
        self._ordered = sorted(self._secrets, key=len, reverse=True)

    def add_config(
        self, config: Mapping[str, Any], secret_keys: Iterable[str] = (), known_keys: Iterable[str] = ()
    ) -> None:
        """Register the config's secrets: the `secret_keys`, and values under secret-looking names. A
        top-level key in `known_keys` (a declared setting) is a secret only when it is in `secret_keys`:
        `auth_method` names no secret, and its value ("bearer") must stay readable in messages."""
        declared = set(secret_keys)
        known = set(known_keys) - declared
        found: list[str] = []

        def walk(value: Any, key: str, top: bool) -> None:
            if isinstance(value, Mapping):
                for k, v in value.items():
                    walk(v, str(k), False)
            elif isinstance(value, list):
                for v in value:
                    walk(v, key, False)
            elif isinstance(value, str) and (key in declared or (is_secret_name(key) and not (top and key in known))):
                found.append(value)
                match = _URL_PASSWORD_RE.search(value)
                if match:
                    found.append(match.group("pw"))

        for k, v in config.items():
            walk(v, str(k), True)
        self.add(found)

    def __call__(self, text: str) -> str:
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _URL_PASSWORD_RE.sub(lambda m: m.group("pre") + MASK, text)
        return _KV_PASSWORD_RE.sub(lambda m: m.group("pre") + MASK, text)


class RedactingFilter(logging.Filter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        record.msg = self.redactor(message)
        record.args = None
        return True


def install_redaction(redactor: Redactor, logger: logging.Logger | None = None) -> None:
    """Scrub every record that reaches the handlers of `logger` (root by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(redactor))


def register_secret(value: str) -> None:
    """Mask a secret learned during the run (an OAuth2 access token) wherever redaction is installed."""
    for handler in logging.getLogger().handlers:
        for f in handler.filters:
            if isinstance(f, RedactingFilter):
                f.redactor.add([value])


def redact_config(config: Mapping[str, Any], secret_keys: Iterable[str] = ()) -> dict[str, Any]:
    """A copy safe to print: secret settings replaced by ***."""
    declared = set(secret_keys)
    return {key: _redact_value(value, str(key), declared) for key, value in config.items()}


def _redact_value(value: Any, key: str, declared: set[str]) -> Any:
    if isinstance(value, Mapping):
        return redact_config(value, declared)
    if isinstance(value, list):
        return [_redact_value(v, key, declared) for v in value]
    if isinstance(value, str):
        if key in declared or is_secret_name(key):
            return MASK
        return _URL_PASSWORD_RE.sub(lambda m: m.group("pre") + MASK, value)
    return value
