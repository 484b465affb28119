"""tap-postgres's doctor checks: can this config read the selected streams, the way a run would?

Connect (unreachable / refused login / missing database told apart), the clock, SELECT on every
selected table, and for LOG_BASED streams what logical decoding needs: wal_level, the REPLICATION
attribute, the slot (or room and wal2json to create it), and a primary key per stream.
tap-postgres decodes with wal2json, which reads every table's changes without a publication.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dpone_drivers.postgres import driver_errors
from dpone_drivers.postgres_doctor import clock_check, close_quietly, connect_check, query_check, scalar
from dpone_drivers.sql_names import ANSI
from dpone_protocol.catalog import LOG_BASED, Catalog
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError
from dpone_protocol.ops import FAIL, OK, SKIP, WARN, Check

if TYPE_CHECKING:
    from dpone.taps.postgres.tap import PostgresTap

APPLICATION_NAME = "dpone-tap-postgres-doctor"
# Creating a probe slot waits for running transactions to end: never hang the doctor on one.
SLOT_PROBE_TIMEOUT = "10s"
_TABLES = """
SELECT t.s, t.n, n.oid IS NOT NULL, c.oid IS NOT NULL,
       CASE WHEN n.oid IS NULL THEN false ELSE has_schema_privilege(n.oid, 'USAGE') END,
       CASE WHEN c.oid IS NULL THEN false ELSE has_table_privilege(c.oid, 'SELECT') END
FROM unnest(%s::text[], %s::text[]) AS t(s, n)
LEFT JOIN pg_namespace n ON n.nspname = t.s
LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.n
"""


@dataclass(frozen=True, slots=True)
class Selected:
    stream: str
    schema: str
    table: str
    method: str
    keys: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return ANSI.qualified(self.schema, self.table)


def selected_tables(catalog: Catalog) -> list[Selected]:
    found = []
    for entry in catalog.selected():
        meta = entry.stream_metadata()
        if meta.get("schema-name") and meta.get("table-name"):
            found.append(
                Selected(
                    entry.name,
                    str(meta["schema-name"]),
                    str(meta["table-name"]),
                    entry.effective_replication_method(),
                    tuple(entry.key_properties),  # the table's own key: what CDC applies changes by
                )
            )
    return found


def checks(tap: PostgresTap, catalog: Catalog | None) -> list[Check]:
    connected, conn = connect_check(tap.config, tap.redactor, APPLICATION_NAME)
    if conn is None:
        return [connected]
    try:
        found = [connected, query_check("clock", tap.redactor, lambda: clock_check(conn))]
        if catalog is None:
            return [*found, Check("tables", SKIP, "no catalog given: the selected tables are not known")]
        tables = selected_tables(catalog)
        found.append(query_check("SELECT on tables", tap.redactor, lambda: table_check(conn, tables)))
        cdc = [t for t in tables if t.method == LOG_BASED]
        if cdc:
            found += log_based_checks(conn, tap.config, tap.redactor, cdc)
        return found
    finally:
        close_quietly(conn)


def table_check(conn: Any, tables: list[Selected]) -> Check:
    if not tables:
        return Check("SELECT on tables", SKIP, "no table is selected")
    rows = conn.execute(_TABLES, ([t.schema for t in tables], [t.table for t in tables])).fetchall()
    user = scalar(conn, "SELECT current_user")
    missing = [ANSI.qualified(s, n) for s, n, _, has_table, _, _ in rows if not has_table]
    no_usage = sorted({ANSI.q(s) for s, _, has_schema, _, usage, _ in rows if has_schema and not usage})
    no_select = [ANSI.qualified(s, n) for s, n, _, has_table, _, select in rows if has_table and not select]
    if missing:
        return Check(
            "SELECT on tables",
            FAIL,
            f"selected tables not found: {', '.join(missing)}",
            "the catalog is older than the database: check the names, or select the tables anew",
        )
    if no_usage or no_select:
        grants = ([f"GRANT USAGE ON SCHEMA {', '.join(no_usage)} TO {ANSI.q(user)}"] if no_usage else []) + (
            [f"GRANT SELECT ON {', '.join(no_select)} TO {ANSI.q(user)}"] if no_select else []
        )
        lacking = [f"USAGE on schema {s}" for s in no_usage] + [f"SELECT on {t}" for t in no_select]
        return Check("SELECT on tables", FAIL, f"user {user} lacks {', '.join(lacking)}", "; ".join(grants))
    return Check("SELECT on tables", OK, f"{len(tables)} selected table(s) readable by {user}")


def log_based_checks(conn: Any, config: Mapping[str, Any], redactor: Redactor, tables: list[Selected]) -> list[Check]:
    level = query_check("wal_level", redactor, lambda: wal_level_check(conn))
    found = [level, query_check("replication privilege", redactor, lambda: replication_check(conn))]
    if level.status == OK:
        found.append(query_check("replication slot", redactor, lambda: slot_check(conn, config, redactor)))
    else:
        found.append(Check("replication slot", SKIP, "needs wal_level = logical first"))
    keyless = [t.stream for t in tables if not t.keys]
    found.append(
        Check(
            "LOG_BASED keys",
            FAIL,
            f"no primary key on {', '.join(keyless)}: changes cannot be applied by key",
            "add a primary key to the table, or replicate it FULL_TABLE or INCREMENTAL",
        )
        if keyless
        else Check("LOG_BASED keys", OK, f"{len(tables)} LOG_BASED stream(s) have a primary key")
    )
    return found


def wal_level_check(conn: Any) -> Check:
    level = scalar(conn, "SHOW wal_level")
    if level == "logical":
        return Check("wal_level", OK, "logical")
    return Check(
        "wal_level",
        FAIL,
        f"wal_level is {level!r}; LOG_BASED streams need 'logical'",
        "ALTER SYSTEM SET wal_level = logical; then restart the server",
    )


def replication_check(conn: Any) -> Check:
    user, allowed = conn.execute(
        "SELECT rolname, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if allowed:
        return Check("replication privilege", OK, f"user {user} may read replication slots")
    return Check(
        "replication privilege",
        FAIL,
        f"user {user} has neither REPLICATION nor SUPERUSER",
        f"ALTER ROLE {ANSI.q(user)} REPLICATION",
    )


def slot_check(conn: Any, config: Mapping[str, Any], redactor: Redactor) -> Check:
    from dpone.taps.postgres.cdc import check_setup  # noqa: PLC0415 - only LOG_BASED needs it

    slot = str(config.get("replication_slot") or "dpone")
    exists = scalar(conn, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    if exists:
        try:
            check_setup(conn, slot, create=False)  # its plugin and database, as a run checks them
        except ConfigError as exc:
            return Check("replication slot", FAIL, str(exc), "set replication_slot to a wal2json slot of this database")
        return Check("replication slot", OK, f"slot {slot} exists (wal2json, this database)")
    if not config.get("create_replication_slot", True):
        return Check(
            "replication slot",
            FAIL,
            f"slot {slot} does not exist and create_replication_slot is false",
            f"SELECT pg_create_logical_replication_slot('{slot}', 'wal2json'); or set create_replication_slot: true",
        )
    limit = int(scalar(conn, "SHOW max_replication_slots"))
    used = int(scalar(conn, "SELECT count(*) FROM pg_replication_slots"))
    if used >= limit:
        return Check(
            "replication slot",
            FAIL,
            f"slot {slot} does not exist and all {limit} replication slots are in use",
            "drop an unused slot (pg_drop_replication_slot) or raise max_replication_slots and restart",
        )
    room = f"slot {slot} will be created on the first run ({limit - used} of {limit} slots free"
    if not scalar(conn, "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user"):
        return Check("replication slot", OK, f"{room})")  # wal2json cannot be tried: see replication privilege
    problem = wal2json_problem(conn, redactor)
    return problem or Check("replication slot", OK, f"{room}; wal2json loads)")


def wal2json_problem(conn: Any, redactor: Redactor) -> Check | None:
    """Create and drop a temporary wal2json slot: the one sure test the plugin is installed (it
    needs the REPLICATION attribute)."""
    probe = f"dpone_doctor_{os.getpid()}"
    conn.execute(f"SET statement_timeout = '{SLOT_PROBE_TIMEOUT}'")
    try:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'wal2json', true)", (probe,))
        conn.execute("SELECT pg_drop_replication_slot(%s)", (probe,))
    except driver_errors() as exc:
        text = redactor(" ".join(str(exc).split()))
        if "statement timeout" in text:
            return Check(
                "replication slot",
                WARN,
                f"could not test wal2json: creating a slot waited over {SLOT_PROBE_TIMEOUT} for running transactions",
                "the first run waits for them too: let long transactions end before it",
            )
        if "could not access file" in text:
            return Check(
                "replication slot",
                FAIL,
                f"the wal2json output plugin is not installed on the server: {text}",
                "install wal2json on the server (Debian/Ubuntu: apt-get install postgresql-<version>-wal2json)",
            )
        return Check("replication slot", FAIL, f"cannot create a wal2json slot: {text}", "see the message")
    finally:
        conn.execute("RESET statement_timeout")
    return None
