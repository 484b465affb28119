"""Driver errors of the tap's reads, typed by dpone_drivers.mssql.classify, with the GRANT that fixes a
permission error named for what was being read (a table, the cdc schema, change tracking)."""

from __future__ import annotations

from dpone_drivers import mssql
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DponeError

# The SELECT (229) or column (230) permission denied; VIEW DATABASE STATE/VIEW SERVER STATE (297, 300).
PERMISSION_DENIED = frozenset({229, 230, 297, 300})
USER = "the tap's user"


def select_grant(qualified: str) -> str:
    return f"GRANT SELECT ON {qualified} TO {USER}"


def cdc_grant(qualified: str) -> str:
    return (
        f"GRANT SELECT ON SCHEMA::cdc TO {USER}, with SELECT on {qualified}, and membership of the capture "
        "instance's gating role if it has one"
    )


def change_tracking_grant(qualified: str) -> str:
    return f"GRANT VIEW CHANGE TRACKING ON {qualified} TO {USER}, with SELECT on it"


def classified(exc: Exception, redactor: Redactor, doing: str, grant: str) -> DponeError:
    """The error as classify types it; a permission error names `grant`."""
    if mssql.error_number(exc) in PERMISSION_DENIED:
        return ConfigError(f"{doing}: {mssql.message_of(exc, redactor)} ({grant})")
    return mssql.classify(exc, redactor, doing)
