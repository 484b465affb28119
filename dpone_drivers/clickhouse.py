"""ClickHouse connections and error classification; the only module that imports clickhouse_connect.

One client for both ends of a deployment: HTTP(S) to a server in production, and the embedded
engine (chdb, a `chdb:///data/dir` DSN) in tests and on a laptop. The embedded engine allows one
process per data directory at a time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from dpone_drivers.ports import check_port
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError, DponeError, TransientError
from dpone_protocol.settings import Setting

CONNECTION_SETTINGS: tuple[Setting, ...] = (
    Setting("host", "string", "Server host (HTTP interface).", default="localhost"),
    Setting("port", "integer", "HTTP(S) port: 8123, or 8443 with secure."),
    Setting("username", "string", "User name.", default="default"),
    Setting("password", "string", "Password.", secret=True),
    Setting(
        "database",
        "string",
        "Database the tables are in (created by the target when missing); default: the DSN's path, else default.",
    ),
    Setting("secure", "boolean", "HTTPS instead of HTTP.", default=False),
    Setting(
        "dsn",
        "string",
        "Instead of the fields above: clickhouse://user:password@host:port/database, https://..., or "
        "chdb:///absolute/dir for the embedded engine (one process per directory at a time).",
        secret=True,
    ),
    Setting("connect_timeout", "integer", "Seconds to wait for a connection.", default=10),
    Setting("send_receive_timeout", "integer", "Seconds to wait for a statement's answer.", default=300),
    Setting(
        "clickhouse_settings",
        "object",
        'ClickHouse settings for the session, e.g. {"max_insert_threads": 4}.',
    ),
)
SECRET_KEYS = ("password", "dsn")

# ClickHouse error codes by what the caller should do (src/Common/ErrorCodes.cpp).
_CONFIG_CODES = {
    36,  # BAD_ARGUMENTS
    43,  # ILLEGAL_TYPE_OF_ARGUMENT: in a statement we build, only a user's layout expression
    44,  # ILLEGAL_COLUMN (e.g. a Nullable column in a partition or sorting key)
    47,  # UNKNOWN_IDENTIFIER
    80,  # INCORRECT_QUERY
    450,  # BAD_TTL_EXPRESSION
    60,  # UNKNOWN_TABLE
    62,  # SYNTAX_ERROR
    81,  # UNKNOWN_DATABASE
    115,  # UNKNOWN_SETTING
    164,  # READONLY
    192,  # UNKNOWN_USER
    193,  # WRONG_PASSWORD
    194,  # REQUIRED_PASSWORD
    195,  # IP_ADDRESS_NOT_ALLOWED
    497,  # ACCESS_DENIED
    516,  # AUTHENTICATION_FAILED
}
_TRANSIENT_CODES = {
    159,  # TIMEOUT_EXCEEDED
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY (a replica lost its keeper session)
    252,  # TOO_MANY_PARTS: inserts outrun merges; waiting lets them catch up
    285,  # TOO_FEW_LIVE_REPLICAS
    319,  # UNKNOWN_STATUS_OF_INSERT
    394,  # QUERY_WAS_CANCELLED
    425,  # SYSTEM_ERROR
    999,  # KEEPER_EXCEPTION
}
# DSN scheme -> the interface it asks for ("" : by the port, 8443 and 443 being HTTPS).
_SCHEMES = {"clickhouse": "", "clickhouses": "https", "http": "http", "https": "https"}
_HTTP_REFUSED = re.compile(r"(?<![\w-])(?:401|403)(?![\w-])")
_CODE_RE = re.compile(r"Code: (\d+)\.")
# The server repeats its message inside itself and appends its version and stack: one clause is enough.
# It may also echo the statement, `(in query: ...)`, just before that trailer.
_NOISE_RE = re.compile(
    r"\s*\((?:version [^)]*|[A-Z_]+)\)\s*$|\s*: (?i:while executing) .*$|\s*: \(in file/uri [^)]*\)"
    r"|\s*:?\s*\(in query: .*?\)(?=\.?\s*(?:\([A-Z_]+\)\s*)?$)"
)


def _driver() -> Any:
    try:
        import clickhouse_connect  # noqa: PLC0415 - lazy: `--help` must not need the driver
    except ImportError:
        raise ConfigError("ClickHouse connectors need clickhouse-connect: pip install 'dpone[clickhouse]'") from None
    return clickhouse_connect


def is_embedded(config: Mapping[str, Any]) -> bool:
    return str(config.get("dsn") or "").startswith("chdb:")


def database_of(config: Mapping[str, Any]) -> str:
    """The database named by the settings: `database`, else the DSN's path, else `default`."""
    if config.get("database"):
        return str(config["database"])
    dsn = str(config.get("dsn") or "")
    if dsn and not dsn.startswith("chdb:"):
        path = urlsplit(dsn).path.strip("/")
        if path:
            return path
    return "default"


def client_options(config: Mapping[str, Any], *, session: bool = False) -> dict[str, Any]:
    """get_client's keyword arguments for the settings (no database: the caller creates it first).
    `session`: an HTTP session of the client's own, for temporary tables."""
    options: dict[str, Any] = {
        "connect_timeout": int(config.get("connect_timeout") or 10),
        "send_receive_timeout": int(config.get("send_receive_timeout") or 300),
        # Our own statements carry their settings; the session keeps only the user's.
        "settings": dict(config.get("clickhouse_settings") or {}),
        "autogenerate_session_id": session,
    }
    dsn = config.get("dsn")
    if dsn:
        dsn = str(dsn)
        if dsn.startswith("chdb:"):
            return {"dsn": dsn, "settings": options["settings"]}
        parts = urlsplit(dsn)
        if parts.scheme not in _SCHEMES:
            raise ConfigError(
                "setting 'dsn' must start with clickhouse://, clickhouses://, http://, https:// or chdb://"
            )
        _, colon, port_text = parts.netloc.rpartition("@")[2].rpartition(":")
        if colon and not port_text.endswith("]"):  # `[::1]` is a host, not a port
            check_port(port_text, "setting 'dsn'")
        options["dsn"] = dsn
        if _SCHEMES[parts.scheme]:
            # clickhouse-connect reads TLS from the port alone: an https:// DSN must say it.
            options["interface"] = _SCHEMES[parts.scheme]
        return options
    port = config.get("port")
    if port is not None:
        check_port(port, "setting 'port'")
    secure = bool(config.get("secure", False))
    options.update(
        host=str(config.get("host") or "localhost"),
        port=int(port) if port is not None else (8443 if secure else 8123),
        username=str(config.get("username") or "default"),
        password=str(config.get("password") or ""),
        secure=secure,
    )
    return options


def connect(config: Mapping[str, Any], redactor: Redactor, *, session: bool = False) -> Any:
    """A client on the server (or embedded engine) the settings name; raises ConfigError or
    TransientError. Statements name their database: the client selects none."""
    driver = _driver()
    options = client_options(config, session=session)
    try:
        client = driver.get_client(**options)
    except (TypeError, ValueError) as exc:
        # The DSN's parameters clash with each other or with the settings (?database=... twice).
        raise ConfigError(f"setting 'dsn' is not one clickhouse-connect can use: {redactor(str(exc))}") from None
    except Exception as exc:
        raise classify(exc, redactor, "connecting to ClickHouse") from None
    return client


def error_code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    match = _CODE_RE.search(str(exc))
    return int(match.group(1)) if match else None


def message_of(exc: BaseException, redactor: Redactor) -> str:
    """The server's message, one line, its repeated prefix, pipeline and version trailer cut."""
    text = " ".join(str(exc).split())
    # "Code: 27. DB::Exception: Code: 27. DB::Exception: ..." -> the innermost clause
    text = text[text.rfind("DB::Exception: ") + len("DB::Exception: ") :] if "DB::Exception: " in text else text
    previous = None
    while previous != text:
        previous, text = text, _NOISE_RE.sub("", text)
    return redactor(text.strip())


def classify(exc: BaseException, redactor: Redactor, doing: str) -> DponeError:
    """A driver error as the kind of error the caller should act on, secrets removed."""
    if isinstance(exc, DponeError):
        return exc
    if isinstance(exc, ImportError):
        return ConfigError(f"{doing}: {exc}")
    code = error_code(exc)
    message = f"{doing}: {message_of(exc, redactor)}"
    if "initializing EmbeddedServer" in str(exc):
        # chdb says no more when another process holds the data directory's lock.
        return TransientError(f"{message} (is another process using this data directory? one at a time)")
    if code in _CONFIG_CODES:
        return ConfigError(message)
    if code in _TRANSIENT_CODES:
        return TransientError(message)
    name = type(exc).__name__
    if code is None and name in ("OperationalError", "StreamFailureError", "StreamCompleteException"):
        text = str(exc).lower()
        # An HTTP status, not digits of the query id (a UUID) the message also carries.
        if _HTTP_REFUSED.search(text) or "authentication" in text:
            return ConfigError(message)
        return TransientError(message)  # refused, reset, unresolved host, timeout: the network
    if code is None and name in ("ProgrammingError", "NotSupportedError", "InterfaceError"):
        return ConfigError(message)
    return DataError(message)


def driver_errors() -> tuple[type[Exception], ...]:
    from clickhouse_connect.driver.exceptions import Error  # noqa: PLC0415

    return (Error,)
