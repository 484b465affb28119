"""A client of the Confluent Schema Registry HTTP API: register, fetch by id, latest of a subject.

Only the calls the Kafka connectors make. requests is imported when a client is built, so importing
this module loads no driver. Schemas are cached per process: a subject's schema is registered once,
an id is fetched once. Errors come out typed by what to do about them: an incompatible or invalid
schema is a DataError, a refused login or an unknown id a ConfigError, an unreachable or failing
registry a TransientError; every message names the registry by its URL without credentials.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError, TransientError

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
# Registry error codes of a 404: the subject, or its version, does not exist (yet).
_NO_SUBJECT_CODES = {40401, 40402}
_ERRNO_RE = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def subject_for(topic: str, *, key: bool = False) -> str:
    """The subject a topic's values (or keys) are registered under: TopicNameStrategy."""
    return f"{topic}-key" if key else f"{topic}-value"


def schema_text(schema: Any) -> str:
    """The text sent to the registry: compact, in the schema's own order (field order matters)."""
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def _canonical(schema: Any) -> str:
    # Key order inside an object carries no meaning in Avro; list order (fields, symbols) does.
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class SchemaRegistry:
    """One registry, one keep-alive session; safe to share between threads."""

    def __init__(
        self,
        url: str,
        redactor: Redactor,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        try:
            import requests  # noqa: PLC0415 - lazy: importing the connector must not need it
        except ImportError:
            raise ConfigError("the schema registry client needs requests: pip install 'dpone[kafka]'") from None
        self._requests = requests
        self._redactor = redactor
        self.url, url_user, url_password = _split_credentials(url)
        # The settings win over credentials in the URL; the URL's fill in what the settings leave out.
        username = url_user if username is None else username
        password = url_password if password is None else password
        if password:
            # The password may reach an error text in another shape than the URL's; mask it everywhere.
            redactor.add([password])
        self._timeout = timeout
        self._session = requests.Session()
        self._session.headers.update({"Accept": f"{CONTENT_TYPE}, application/json"})
        if username is not None:
            self._session.auth = (username, password or "")
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}

    def close(self) -> None:
        self._session.close()

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        """The id of `schema` under `subject`, registering it as a new version when it is new there."""
        key = (subject, _canonical(schema))
        found = self._ids.get(key)
        if found is not None:
            return found
        body = json.dumps({"schema": schema_text(schema)})
        answer = self._call("POST", f"/subjects/{quote(subject, safe='')}/versions", subject, body=body)
        schema_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(schema_id, int):
            raise ConfigError(self._say(f"registering a schema for subject {subject!r}: the answer has no id"))
        self._ids[key] = schema_id
        self._schemas.setdefault(schema_id, schema)
        return schema_id

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        """The schema registered under `schema_id`; a primitive or union schema comes as {"type": ...}."""
        found = self._schemas.get(schema_id)
        if found is not None:
            return found
        answer = self._call("GET", f"/schemas/ids/{int(schema_id)}", None)
        schema = self._parse(answer, f"schema id {schema_id}")
        self._schemas[schema_id] = schema
        return schema

    def latest(self, subject: str) -> tuple[int, dict[str, Any]] | None:
        """The id and schema of the subject's latest version, or None when the subject has none."""
        answer = self._call("GET", f"/subjects/{quote(subject, safe='')}/versions/latest", subject, missing_ok=True)
        if answer is None:
            return None
        schema_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(schema_id, int):
            raise ConfigError(self._say(f"the latest version of subject {subject!r} has no id"))
        schema = self._parse(answer, f"subject {subject!r}")
        self._schemas.setdefault(schema_id, schema)
        return schema_id, schema

    def compatibility(self, subject: str) -> str | None:
        """The subject's compatibility level (the global one when it has none), None if unknown."""
        try:
            answer = self._call("GET", f"/config/{quote(subject, safe='')}?defaultToGlobal=true", None)
        except (ConfigError, TransientError):
            return None
        level = answer.get("compatibilityLevel") if isinstance(answer, dict) else None
        return level if isinstance(level, str) else None

    def _parse(self, answer: Any, what: str) -> dict[str, Any]:
        if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
            raise ConfigError(self._say(f"{what}: the answer holds no schema"))
        kind = answer.get("schemaType", "AVRO")
        if kind != "AVRO":
            raise ConfigError(self._say(f"{what} is a {kind} schema; dpone reads Avro only"))
        if answer.get("references"):
            raise ConfigError(self._say(f"{what} refers to other subjects' schemas, which dpone does not resolve"))
        try:
            schema = json.loads(answer["schema"])
        except ValueError:
            raise ConfigError(self._say(f"{what}: the registry's schema text is not JSON")) from None
        return schema if isinstance(schema, dict) else {"type": schema}

    def _say(self, text: str) -> str:
        return self._redactor(f"schema registry {self.url}: {text}")

    def _call(
        self, method: str, path: str, subject: str | None, *, body: str | None = None, missing_ok: bool = False
    ) -> Any:
        requests = self._requests
        headers = {"Content-Type": CONTENT_TYPE} if body is not None else None
        doing = f"{method} {path.partition('?')[0]}"
        try:
            # A Session shares its connection pool; one request at a time keeps it simple and safe.
            with self._lock:
                response = self._session.request(
                    method, self.url + path, data=body, headers=headers, timeout=self._timeout
                )
        except requests.exceptions.SSLError as exc:
            raise ConfigError(self._say(f"{doing}: TLS failed ({_reason(exc)})")) from None
        except requests.exceptions.Timeout:
            raise TransientError(self._say(f"{doing}: no answer within {self._timeout:g}s")) from None
        except requests.exceptions.ConnectionError as exc:
            raise TransientError(self._say(f"{doing}: cannot connect ({_reason(exc)})")) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema):
            raise ConfigError(self._say("the URL is not one requests can use")) from None
        except requests.exceptions.RequestException as exc:
            raise TransientError(self._say(f"{doing}: {_reason(exc)}")) from None
        status = response.status_code
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if 200 <= status < 300:
            if answer is None:
                raise ConfigError(self._say(f"{doing}: the answer is not JSON; is this a schema registry?"))
            return answer
        code = answer.get("error_code") if isinstance(answer, dict) else None
        message = answer.get("message") if isinstance(answer, dict) else None
        said = " ".join(str(message).split())[:500] if message else f"HTTP {status}"
        if status in (401, 403):
            raise ConfigError(
                self._say(
                    f"authentication refused (HTTP {status}): check schema_registry_username/password "
                    "or the credentials in the URL"
                )
            )
        if status == 404:
            if missing_ok and code in _NO_SUBJECT_CODES:
                return None
            raise ConfigError(self._say(f"{doing}: not found: {said}"))
        if status == 409 and subject is not None:
            level = self.compatibility(subject) or "unknown"
            raise DataError(
                self._say(
                    f"schema for subject {subject!r} is incompatible with the registry's earlier version "
                    f"(compatibility level {level}): {said}"
                )
            )
        if status == 422:
            raise DataError(self._say(f"the registry refused the schema for subject {subject!r} as invalid: {said}"))
        if status >= 500 or status in (408, 429):
            raise TransientError(self._say(f"{doing}: HTTP {status}: {said}"))
        raise ConfigError(self._say(f"{doing}: HTTP {status}: {said}"))


def _split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """The URL without user:password@ (and without a trailing slash), and the credentials it held."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("the schema registry URL must look like http(s)://host:port")
    host = parts.netloc.rpartition("@")[2]
    clean = urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
    if "@" not in parts.netloc:
        return clean, None, None
    user = unquote(parts.username or "")
    password = unquote(parts.password) if parts.password is not None else None
    return clean, user, password


def _reason(exc: BaseException) -> str:
    """The OS's words from deep inside a requests error ("Connection refused"), else its class."""
    match = _ERRNO_RE.search(str(exc))
    return match.group(1).strip() if match else type(exc).__name__
