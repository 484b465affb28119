"""Doctor checks both PostgreSQL connectors share: connect (telling an unreachable server from a
refused login from a missing database) and the server's clock against this machine's.

psycopg stays behind dpone_drivers.postgres: a failed connection arrives here as its classified,
redacted DponeError, whose libpq wording says which of the three it was.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from dpone_drivers.postgres import classify, connect, driver_errors
from dpone_protocol.config import Redactor
from dpone_protocol.errors import DponeError
from dpone_protocol.ops import FAIL, HINTS, OK, WARN, Check

# Timestamps stamped here (_sdc_* columns) and there (now(), bookmarks) are compared: a few
# seconds apart is noise, more is a clock that drifts.
CLOCK_SKEW_WARN_SECONDS = 5.0

UNREACHABLE_HINT = "check host and port, that the server is up, and that no firewall blocks the port from this machine"
AUTH_HINT = "check user and password; the server's pg_hba.conf must let this user in from this host"
DATABASE_HINT = "fix the database setting, or create the database (CREATE DATABASE ...)"
OPTION_HINT = "fix the connection setting the message names"
# libpq's words, lowercased, for each way a connection is refused.
_AUTH_SIGNS = ("authentication failed", "no password supplied", "no pg_hba.conf entry", 'role "')
_OPTION_SIGNS = ("invalid port number", "invalid integer value", "invalid connection option", "invalid sslmode")


def connection_failure(message: str) -> tuple[str, str]:
    """What a failed connection's message means, and the hint for it."""
    lowered = message.lower()
    if any(sign in lowered for sign in _OPTION_SIGNS) or "setting '" in lowered:
        return "bad connection setting", OPTION_HINT
    if 'database "' in lowered and "does not exist" in lowered:
        return "database does not exist", DATABASE_HINT
    if any(sign in lowered for sign in _AUTH_SIGNS):
        return "authentication failed", AUTH_HINT
    return "host unreachable", UNREACHABLE_HINT


def connect_check(config: Mapping[str, Any], redactor: Redactor, application_name: str) -> tuple[Check, Any]:
    """The `connect` check and, when it passed, the open connection (autocommit; the caller closes it)."""
    try:
        conn = connect(config, redactor, application_name, autocommit=True)
    except DponeError as exc:
        finding, hint = connection_failure(str(exc))
        return Check("connect", FAIL, redactor(f"{finding}: {exc}"), hint), None
    info = conn.info
    version = conn.execute("SHOW server_version").fetchone()[0]
    detail = f"PostgreSQL {version} at {info.host}:{info.port}, database {info.dbname}, user {info.user}"
    return Check("connect", OK, detail), conn


def clock_check(conn: Any) -> Check:
    """The server's now() against this machine's clock, measured at the middle of the round trip."""
    before = time.time()
    server_now, zone = conn.execute(
        "SELECT extract(epoch FROM clock_timestamp()), current_setting('TimeZone')"
    ).fetchone()
    after = time.time()
    skew = float(server_now) - (before + after) / 2
    detail = f"server clock {skew:+.1f}s from this machine's; server time zone {zone}"
    if abs(skew) > CLOCK_SKEW_WARN_SECONDS:
        return Check(
            "clock",
            WARN,
            detail,
            "synchronise both clocks (NTP: chrony or systemd-timesyncd): load times and time bookmarks are "
            "compared across machines",
        )
    return Check("clock", OK, detail)


def scalar(conn: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(sql, params or None).fetchone()
    return None if row is None else row[0]


def query_check(name: str, redactor: Redactor, action: Any) -> Check:
    """Run `action() -> Check`; a driver error on the way becomes a failed check with its kind's hint."""
    try:
        found: Check = action()
    except driver_errors() as exc:
        error = classify(exc, redactor, name)
        return Check(name, FAIL, str(error), HINTS[error.kind])
    return found


def close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except driver_errors():
        pass  # the checks are done; a connection that will not close is no finding
