"""PostgreSQL connections and error classification; the only module that imports psycopg."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dpone_drivers.ports import check_port
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError, DponeError, TransientError
from dpone_protocol.settings import Setting

CONNECTION_SETTINGS: tuple[Setting, ...] = (
    Setting("host", "string", "Server host.", default="localhost"),
    Setting("port", "integer", "Server port.", default=5432),
    Setting("user", "string", "User name."),
    Setting("password", "string", "Password.", secret=True),
    Setting("database", "string", "Database name."),
    Setting("sslmode", "string", "libpq sslmode (disable, require, verify-full, ...)."),
    Setting("dsn", "string", "A libpq connection string or URL instead of the fields above.", secret=True),
    Setting("connect_timeout", "integer", "Seconds to wait for a connection.", default=30),
)
# libpq's words for a connection option it cannot use: a setting to fix, not a server to wait for.
_BAD_OPTION_SIGNS = ("invalid port number", "invalid integer value", "invalid connection option", "invalid sslmode")
# The server said who or what is wrong: retrying cannot help.
_REFUSED_SIGNS = ("authentication failed", "does not exist", "no password", "no pg_hba.conf entry")


def _psycopg() -> Any:
    try:
        import psycopg  # noqa: PLC0415 - lazy: `--help` must not need the driver
    except ImportError:
        raise ConfigError("PostgreSQL connectors need psycopg 3: pip install 'dpone[postgres]'") from None
    return psycopg


def conninfo(config: Mapping[str, Any]) -> dict[str, Any]:
    if config.get("dsn"):
        dsn = str(config["dsn"])
        try:
            parsed = _psycopg().conninfo.conninfo_to_dict(dsn)
        except _psycopg().ProgrammingError:
            # libpq's message quotes the string around the mistake, which may be the password.
            raise ConfigError("setting 'dsn' is not a valid libpq connection string or URL") from None
        if "port" in parsed:
            check_port(parsed["port"], "setting 'dsn'", several=True)
        return {"conninfo": dsn}
    port = config.get("port") or 5432
    check_port(port, "setting 'port'", several=True)
    params: dict[str, Any] = {
        "host": config.get("host") or "localhost",
        "port": int(port),
        "user": config.get("user"),
        "dbname": config.get("database") or config.get("dbname"),
    }
    if config.get("password"):
        params["password"] = config["password"]
    if config.get("sslmode"):
        params["sslmode"] = config["sslmode"]
    return {k: v for k, v in params.items() if v is not None}


def connect(config: Mapping[str, Any], redactor: Redactor, application_name: str, **options: Any) -> Any:
    psycopg = _psycopg()
    params = conninfo(config)
    timeout = int(config.get("connect_timeout") or 30)
    try:
        # UTF-8 whatever the database's encoding: JSON is UTF-8, and rows travel as bytes both ways
        # (the tap frames the server's text, the target's encoder sends the input's); the server
        # converts, and refuses a character the database cannot hold.
        options.setdefault("client_encoding", "UTF8")
        return psycopg.connect(**params, **options, application_name=application_name, connect_timeout=timeout)
    except psycopg.OperationalError as exc:
        raise classify(exc, redactor, "connecting to PostgreSQL") from None


def classify(exc: Exception, redactor: Redactor, doing: str) -> DponeError:
    """A driver error as the kind of error the caller should act on, secrets removed."""
    psycopg = _psycopg()
    errors = psycopg.errors
    text = redactor(" ".join(str(exc).split()))
    message = f"{doing}: {text}"
    if isinstance(exc, (errors.InsufficientPrivilege,)):
        return ConfigError(f"{message} ({_privilege_hint(text)})")
    if isinstance(
        exc,
        (
            errors.SerializationFailure,
            errors.DeadlockDetected,
            errors.LockNotAvailable,
            errors.AdminShutdown,
            errors.CannotConnectNow,
            errors.QueryCanceled,
        ),
    ):
        return TransientError(message)
    if isinstance(exc, psycopg.OperationalError):
        # A host name that does not resolve stays transient: DNS outages and services that are
        # not registered yet look the same from here as a typo, and retrying costs little.
        lowered = text.lower()
        if any(sign in lowered for sign in _REFUSED_SIGNS + _BAD_OPTION_SIGNS):
            return ConfigError(message)
        return TransientError(message)
    if isinstance(exc, (psycopg.DataError, psycopg.IntegrityError)):
        return DataError(message)
    if isinstance(exc, psycopg.ProgrammingError):
        return ConfigError(message)
    return TransientError(message) if isinstance(exc, psycopg.InterfaceError) else DataError(message)


def _privilege_hint(text: str) -> str:
    lowered = text.lower()
    if "temporary tables" in lowered:
        return "GRANT TEMPORARY ON DATABASE <db> TO the user: staging tables are temporary"
    if "for database" in lowered:
        return "GRANT CREATE ON DATABASE <db> TO the user, or create the schema beforehand"
    if "for schema" in lowered:
        return "GRANT USAGE, CREATE ON SCHEMA <schema> TO the user"
    return "the user must own the tables it loads, or have the privileges the statement needs"


def driver_errors() -> tuple[type[Exception], ...]:
    return (_psycopg().Error,)


def jsonb_wrapper(dumps: Callable[[Any], str]) -> Callable[[Any], Any]:
    """Wraps a value so COPY writes it as jsonb text, serialized by `dumps`."""
    from psycopg.types.json import Jsonb  # noqa: PLC0415

    return lambda value: Jsonb(value, dumps=dumps)
