"""SqlLoader: the staging-first loader of a SQL database, written once.

A database supplies its driver calls (`execute`, `error`), how it reads a table's columns, its
bulk path into staging, and its words (a :class:`SqlDialect`); everything else is here: the
transaction around each batch (schema changes first, then the move into the table), staging and
shadow names, the swap of a full refresh, ACTIVATE_VERSION, table versions and typed errors.

Where the dialect has no multi-statement transactions (`SqlDialect.transactional` False), the
same steps run one statement at a time and each must be atomic on its own: the loader of such a
database orders them so that a failure between two leaves the table as a reader expects (a
staging table left behind, never a half-moved batch), and documents that guarantee.
"""

from __future__ import annotations

import contextlib
import logging
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, final

from dpone.targets.framework.loader import Loader, StreamPlan
from dpone.targets.framework.schema_evolution import SchemaPlan, change_statements
from dpone.targets.framework.sql_dialect import DELETED_AT, TABLE_VERSION, SqlDialect
from dpone_protocol.errors import DponeError

log = logging.getLogger(__name__)
STAGING_PREFIX = "_dpone_stage_"
SHADOW_SUFFIX = "__dpone_new"


class FetchedRows:
    """Rows a client returned whole, answering `fetchone()`/`fetchall()` as `execute` results must."""

    def __init__(self, rows: Sequence[Sequence[Any]]) -> None:
        self.rows = rows

    def fetchone(self) -> Sequence[Any] | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> Sequence[Sequence[Any]]:
        return self.rows


class SqlLoader(Loader):
    sql: SqlDialect  # the words
    schema: str  # where tables go (schema, dataset or database)
    keep_staging: bool = False
    # Set (from DPONE_RANGE_TOKEN) when the whole input is one key range, loaded in one transaction
    # that also writes the token to the range ledger (dpone_protocol/key_ranges.py).
    range_token: str | None = None
    _range_open = False
    _range_committed = False
    _savepoints = 0

    def loads_one_range(self) -> bool:
        return self.range_token is not None

    def range_pending(self) -> bool:
        return self.range_token is not None and not self._range_committed

    # -- what a database supplies ---------------------------------------------------------------
    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        """Run one statement on the connection; the result can `fetchone()`/`fetchall()`. Driver
        errors pass through: the callers here type them with `error`."""

    def error(self, exc: Exception, doing: str) -> Exception:
        """The typed error (dpone_protocol.errors) for a driver error met while `doing`: a
        TransientError for what a retry may fix, DataError for rows the table refuses, ..."""
        return exc

    def stored_name(self, table: str) -> str:
        """The name a table has in the database (e.g. a long name fitted to its limit)."""
        return table

    # -- names ----------------------------------------------------------------------------------
    def table_ref(self, table: str) -> str:
        return self.sql.qualified(self.schema, self.stored_name(table))

    def temp_ref(self, name: str) -> str:
        """How a temporary table is named in statements."""
        return self.sql.q(name)

    def column_types(self, plan: StreamPlan) -> dict[str, str]:
        return {name: self.dialect.column_type(col) for name, col in plan.columns.items()}

    # -- running statements ---------------------------------------------------------------------
    @final
    def typed_error(self, exc: Exception, doing: str) -> Exception:
        return exc if isinstance(exc, DponeError) else self.error(exc, doing)

    @final
    def run(self, sql: str, doing: str, params: Sequence[Any] | None = None) -> Any:
        """One statement on its own, its error typed."""
        try:
            return self.execute(sql, params)
        except Exception as exc:
            raise self.typed_error(exc, doing) from None

    @final
    @contextlib.contextmanager
    def raw_transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT (ROLLBACK on error), driver errors untouched: for a loader that inspects
        them (a unique violation telling an INSERT to become a MERGE)."""
        if not self.sql.transactional:
            yield
            return
        if self.range_token is not None:
            with self._in_range():
                yield
            return
        self.execute(self.sql.begin)
        try:
            yield
            self.execute(self.sql.commit)
        except BaseException:
            # A COMMIT that failed (a read-only file, a full disk) has already ended the
            # transaction: the rollback's own error must not hide the one that got us here.
            with contextlib.suppress(Exception):
                self.execute(self.sql.rollback)
            raise

    @final
    @contextlib.contextmanager
    def _in_range(self) -> Iterator[None]:
        """A batch's transaction inside the range's: a savepoint, so what fails (an INSERT refused on a
        duplicate key, retried as MERGE) is undone alone and the range goes on."""
        self.enter_range()
        self._savepoints += 1
        name = f"dpone_{self._savepoints}"
        self.execute(self.sql.savepoint.format(name))
        try:
            yield
            self.execute(self.sql.release_savepoint.format(name))
        except BaseException:
            with contextlib.suppress(Exception):
                self.execute(self.sql.rollback_to_savepoint.format(name))
            raise

    @final
    def enter_range(self) -> None:
        """Open the range's transaction and take its ledger row. Another load of the same range that has
        not ended holds that row: this waits for it, and fails if it committed."""
        if self._range_open or self.range_token is None:
            return
        self.execute(self.sql.begin)
        self._range_open = True
        try:
            self.ledger_claim(self.range_token)
        except Exception as exc:
            with contextlib.suppress(Exception):
                self.execute(self.sql.rollback)
            self._range_open = False
            raise self.typed_error(exc, "taking the range's ledger row") from None

    @final
    def commit_range(self, rows: int) -> None:
        """The range is whole: its rows and its ledger row commit together."""
        if self.range_token is None:
            return
        self.enter_range()  # a range without rows is recorded all the same
        try:
            self.ledger_record(self.range_token, rows)
            self.execute(self.sql.commit)
            self._range_committed = True
        except Exception as exc:
            raise self.typed_error(exc, "committing the key range") from None
        finally:
            self._range_open = False
        log.info("key range %s committed: %d records", self.range_token, rows)

    # -- the range ledger: a database that loads key ranges implements these -----------------------
    def ledger_prepare(self) -> None:
        """Create the ledger table when missing (asked once, before workers start)."""
        raise NotImplementedError

    def ledger_claim(self, token: str) -> None:
        """Insert the token's row in the open transaction; raise RangeLoaded when it is committed."""
        raise NotImplementedError

    def ledger_record(self, token: str, rows: int) -> None:
        raise NotImplementedError

    def ledger_lookup(self, token: str) -> int | None:
        """The records of the committed range `token`, or None when it is not committed."""
        raise NotImplementedError

    @final
    @contextlib.contextmanager
    def transaction(self, doing: str) -> Iterator[None]:
        try:
            with self.raw_transaction():
                yield
        except Exception as exc:
            raise self.typed_error(exc, doing) from None

    @final
    def run_all(self, statements: list[str], doing: str) -> None:
        """Statements that commit together (one after the other where the dialect has no transactions)."""
        if not statements:
            return
        with self.transaction(doing):
            for sql in statements:
                self.execute(sql)

    # -- the loader contract ---------------------------------------------------------------------
    def schema_statements(self, plan: StreamPlan, schema: SchemaPlan, table: str) -> list[str]:
        target = self.table_ref(table)
        if schema.creates:
            keys = plan.key_columns if plan.merges else []
            return [self.sql.create_table(target, schema.table_columns, keys, key_name=self.key_name(table))]
        return change_statements(schema, target, self.sql)

    def key_name(self, table: str) -> str:
        """The name of a table's primary key, where the dialect makes one."""
        return self.sql.fit_name(self.stored_name(table), "_pkey")

    def apply_schema(self, table: str, statements: list[str]) -> None:
        token = self.range_token
        if token is not None and not self._range_open:
            # Before the range's transaction: committed on their own, so the table's lock is not held
            # for the whole range while other workers' ranges wait on it.
            self.range_token = None
        try:
            self.run_all(statements, f"changing the schema of {self.schema}.{table}")
        finally:
            self.range_token = token
        for sql in statements:
            log.info("schema change on %s.%s: %s", self.schema, table, sql)

    def prepare_staging(self, plan: StreamPlan) -> str:
        name = self.sql.fit_name(STAGING_PREFIX + self.stored_name(plan.table))
        # Kept staging must outlive the session to be inspected: a regular table then.
        staging = self.table_ref(name) if self.keep_staging else self.temp_ref(name)
        self.run(self.sql.drop_table(staging), "dropping old staging")
        self.run(self.staging_table(plan, staging), "creating staging")
        return staging

    def staging_table(self, plan: StreamPlan, staging: str) -> str:
        """The CREATE statement of a batch's staging table."""
        return self.sql.create_table(staging, self.column_types(plan), temp=not self.keep_staging)

    def finalize(self, plan: StreamPlan, staging: str, table: str, schema: list[str]) -> None:
        moves = self.move_statements(plan, staging, self.table_ref(table))
        # Schema changes commit with the rows they are for, or not at all.
        self.run_all([*schema, *moves], f"stream {plan.stream!r}: loading {self.schema}.{table}")

    def move_statements(self, plan: StreamPlan, staging: str, target: str) -> list[str]:
        """Staging into the table: append, or merge on the key (CDC deletes hard when asked)."""
        columns = list(plan.columns)
        if plan.merges:
            hard = plan.hard_delete and DELETED_AT in plan.columns
            return self.sql.merge(target, staging, columns, plan.key_columns, hard)
        return [self.sql.insert(target, staging, columns)]

    def cleanup(self, plan: StreamPlan, staging: str) -> None:
        if self.keep_staging:
            return
        try:
            self.execute(self.sql.drop_table(staging))
        except Exception:
            # Runs in a `finally`: the batch's own error, if any, is the one to report.
            log.debug("dropping staging %s failed; it is temporary and goes with the session", staging)

    def shadow_name(self, table: str) -> str:
        return self.sql.fit_name(self.stored_name(table), SHADOW_SUFFIX)

    def begin_replace(self, plan: StreamPlan) -> str:
        shadow = self.shadow_name(plan.table)
        ref = self.table_ref(shadow)
        keys = plan.key_columns if plan.merges else []
        columns = plan.table_columns or self.column_types(plan)
        create = self.sql.create_table(ref, columns, keys, key_name=self.key_name(shadow))
        self.run_all([self.sql.drop_table(ref), create], f"creating the shadow table {shadow}")
        return shadow

    def swap_statements(self, table: str, shadow: str) -> list[str]:
        return self.sql.swap(self.schema, self.stored_name(table), shadow)

    def swap(self, plan: StreamPlan, shadow: str, schema: list[str]) -> None:
        self.run_all([*schema, *self.swap_statements(plan.table, shadow)], f"replacing {self.schema}.{plan.table}")
        log.info("replaced %s.%s", self.schema, plan.table)

    def table_version(self, table: str) -> int | None:
        columns = self.describe_table(table)
        if not columns or TABLE_VERSION not in columns:
            return None
        row = self.run(self.sql.max_version(self.table_ref(table)), "reading the table version").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def merge_shadow(self, plan: StreamPlan, shadow: str, schema: list[str]) -> None:
        self.finalize(plan, self.table_ref(shadow), plan.table, schema)
        self.run(self.sql.drop_table(self.table_ref(shadow)), "dropping the shadow table")

    def activate_version(self, plan: StreamPlan, version: int) -> None:
        statement = self.sql.activate_version(self.table_ref(plan.table), version, plan.hard_delete)
        self.run_all([statement], f"applying ACTIVATE_VERSION to {self.schema}.{plan.table}")
