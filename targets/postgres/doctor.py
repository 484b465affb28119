"""target-postgres's doctor checks: can this config load, the way a run would?

Connect (unreachable / refused login / missing database told apart), the clock, the privileges a
load uses (CREATE on the database when the target schema is still to be made, USAGE and CREATE
on it when it exists; TEMPORARY for the staging tables), and whether the C COPY encoder was built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dpone.targets.postgres import copy_rows
from dpone_drivers.postgres_doctor import clock_check, close_quietly, connect_check, query_check, scalar
from dpone_drivers.sql_names import ANSI
from dpone_protocol.config import Redactor
from dpone_protocol.ops import FAIL, OK, WARN, Check

APPLICATION_NAME = "dpone-target-postgres-doctor"
ENCODER_HINT = (
    "install a C compiler and the Python headers (Debian: apt-get install gcc python3-dev), then reinstall "
    "dpone (pip install -e . in a checkout, or make dev)"
)


def checks(config: Mapping[str, Any], redactor: Redactor) -> list[Check]:
    found = [encoder_check()]
    connected, conn = connect_check(config, redactor, APPLICATION_NAME)
    if conn is None:
        return [connected, *found]
    try:
        schema = str(config.get("default_target_schema") or "public")
        return [
            connected,
            query_check("clock", redactor, lambda: clock_check(conn)),
            query_check("schema privileges", redactor, lambda: schema_check(conn, schema)),
            query_check("staging (TEMPORARY)", redactor, lambda: temp_check(conn)),
            *found,
        ]
    finally:
        close_quietly(conn)


def schema_check(conn: Any, schema: str) -> Check:
    name = "schema privileges"
    user, database = conn.execute("SELECT current_user, current_database()").fetchone()
    exists = scalar(conn, "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,))
    if not exists:
        if scalar(conn, "SELECT has_database_privilege(current_database(), 'CREATE')"):
            return Check(name, OK, f"schema {schema} does not exist yet; user {user} may create it")
        return Check(
            name,
            FAIL,
            f"schema {schema} does not exist and user {user} lacks CREATE on database {database}",
            f"GRANT CREATE ON DATABASE {ANSI.q(database)} TO {ANSI.q(user)}; or create the schema beforehand: "
            f"CREATE SCHEMA {ANSI.q(schema)} AUTHORIZATION {ANSI.q(user)}",
        )
    usage, create = conn.execute(
        "SELECT has_schema_privilege(%s, 'USAGE'), has_schema_privilege(%s, 'CREATE')", (schema, schema)
    ).fetchone()
    lacking = [word for word, granted in (("USAGE", usage), ("CREATE", create)) if not granted]
    if lacking:
        return Check(
            name,
            FAIL,
            f"user {user} lacks {' and '.join(lacking)} on schema {schema}",
            f"GRANT {', '.join(lacking)} ON SCHEMA {ANSI.q(schema)} TO {ANSI.q(user)}",
        )
    return Check(name, OK, f"user {user} may create tables in schema {schema}")


def temp_check(conn: Any) -> Check:
    name = "staging (TEMPORARY)"
    user, database = conn.execute("SELECT current_user, current_database()").fetchone()
    if scalar(conn, "SELECT has_database_privilege(current_database(), 'TEMPORARY')"):
        return Check(name, OK, f"user {user} may create the temporary staging tables")
    return Check(
        name,
        FAIL,
        f"user {user} lacks TEMPORARY on database {database}: staging tables are temporary",
        f"GRANT TEMPORARY ON DATABASE {ANSI.q(database)} TO {ANSI.q(user)}",
    )


def encoder_check() -> Check:
    name = "COPY encoder"
    if copy_rows.available():
        return Check(name, OK, "built: records are encoded into COPY straight from their lines")
    reason = copy_rows.missing_reason()
    if reason is None:
        return Check(name, OK, f"off ({copy_rows.PURE_PYTHON_ENV} is set): records load through the decoded path")
    return Check(name, WARN, reason, ENCODER_HINT)
