"""target-postgres's loader: COPY into a typed staging table, then one set-based statement.

Records are streamed into `COPY ... FROM STDIN` (psycopg formats each row in C); the move into
the table (append, or MERGE on the key) is one statement in one transaction, so a failed batch
leaves the table as it was.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dpone.targets.framework.batching import BatchPolicy
from dpone.targets.framework.committer import Turn
from dpone.targets.framework.encoded_rows import EncodedRows, LineRouter, RowEncoder
from dpone.targets.framework.loader import StreamPlan
from dpone.targets.framework.schema_evolution import DestinationColumn, SchemaPlan
from dpone.targets.framework.sql_dialect import DELETED_AT
from dpone.targets.framework.sql_loader import SqlLoader
from dpone.targets.postgres import copy_rows, ddl
from dpone.targets.postgres.ddl import LOAD_TIME_COLUMNS, SQL
from dpone.targets.postgres.type_map import POSTGRES
from dpone.targets.postgres.type_map import dialect as postgres_dialect
from dpone_drivers.postgres import classify, connect, driver_errors, jsonb_wrapper
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError, DponeError, TransientError
from dpone_protocol.key_ranges import RangeLoaded

log = logging.getLogger(__name__)
APPLICATION_NAME = "dpone-target-postgres"
NUL = "\x00"
_NUL_REPLACEMENTS = {"strip": "", "replace": "\ufffd"}
_JSON_NUL_REPLACEMENTS = {"strip": "", "replace": "\\ufffd"}
# \u0000 in JSON text, not preceded by an escaped backslash ("\\u0000" is the six characters, no NUL).
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


RANGE_LEDGER = "_dpone_ranges"  # one row per key range loaded by a partitioned load
LEDGER_WAIT_SECONDS = 30
AHEAD_CHECK_SECONDS = 0.2  # a batch loaded ahead, waiting for its turn, checks this often that none waits on it
_BLOCKING_OTHERS = "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid)))"
CARDINALITY_VIOLATION = "21000"  # MERGE: a target row matched by two staging rows
# A table comment naming the stream table a cut (legacy) table name belongs to.
OWNER_COMMENT = "dpone table for: "
NUL_REFUSED = (
    "a string holds a NUL character (\\u0000), which PostgreSQL cannot store; set nul_character_policy to strip "
    "or replace"
)


class _GaveWay(Exception):
    """A batch loaded ahead held rows another transaction waits on: it rolls back."""


class PostgresLoader(SqlLoader):
    dialect = POSTGRES
    sql = SQL
    stamps_load_times = True  # staging defaults them to now(): nothing to set per row in Python
    background_commit = True  # finalize waits on the server: decode the next batch meanwhile

    def __init__(
        self,
        config: Mapping[str, Any],
        redactor: Redactor,
        *,
        read_only: bool = False,
        primary: PostgresLoader | None = None,
    ) -> None:
        self.config = config
        self.redactor = redactor
        self.schema = str(config.get("default_target_schema") or "public")
        self.keep_staging = bool(config.get("keep_staging", False))
        self.nul_policy = str(config.get("nul_character_policy") or "strip")
        self.read_only = read_only
        self.dialect = postgres_dialect(str(config.get("number_type") or "numeric"))
        # Kept staging is one named table per target table: one lane, or two batches would share it.
        # Without the encoder, batches are record dicts: a second one in flight costs more memory
        # than the lane saves time (the decoded path is bound by the client's CPU).
        lanes = max(1, int(config.get("load_connections") or 2))
        self.lanes = 1 if self.keep_staging or not copy_rows.available() else lanes
        self._lanes: list[PostgresLoader] = []  # lanes 1.. (lane 0 is this loader)
        self._stream = ""  # the stream being loaded, for messages
        # Shared by every lane: what one lane learns about a table holds for all.
        self._unique_keys: dict[str, bool] = primary._unique_keys if primary else {}  # a unique index on the key
        self._overlapping: set[str] = primary._overlapping if primary else set()  # keys existed: MERGE from now on
        self._names: dict[str, str] = primary._names if primary else {}  # table name -> the name in PostgreSQL
        # Tables this run created (a first load's, an overwrite's shadow): columns as planned, rows only ours.
        self._fresh: set[str] = primary._fresh if primary else set()
        # The lowest _sdc_table_version loaded into each table this run, by its planned name (None: a
        # row had none).
        self._floors: dict[str, int | None] = primary._floors if primary else {}
        self._errors = driver_errors()
        self._router: LineRouter | None = None
        self._warned = False
        self.conn = self._connect()

    def lane(self, index: int) -> PostgresLoader:
        if index == 0:
            return self
        while len(self._lanes) < index:
            self._lanes.append(PostgresLoader(self.config, self.redactor, read_only=self.read_only, primary=self))
        return self._lanes[index - 1]

    # -- plumbing ---------------------------------------------------------------
    def _connect(self) -> Any:
        # UTC: a date-time without offset means UTC whatever the server's zone. No JIT: compiling a
        # batch's MERGE costs more than it saves. random_page_cost 1.1 (an SSD's, or a table in
        # cache): a MERGE of a batch into a large table then looks its keys up in the key's index
        # instead of hashing the whole table for every batch (a re-load of 1M rows: 17.4 s -> 10.6 s).
        options = "-c TimeZone=UTC -c jit=off -c random_page_cost=1.1"
        conn = connect(self.config, self.redactor, APPLICATION_NAME, options=options)
        conn.autocommit = True  # transactions are explicit: one per finalize
        try:
            # Staging is a temp table: room for a whole batch in memory instead of spilling (default 8MB).
            conn.execute(f"SET temp_buffers = '{int(self.config.get('temp_buffers_mb') or 256)}MB'")
            # Only when missing: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the
            # schema exists, and a loader with USAGE + CREATE on its schema has all it needs.
            missing = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)).fetchone() is None
            if missing and not self.read_only:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SQL.q(self.schema)}")
        except self._errors as exc:
            raise classify(exc, self.redactor, f"creating schema {self.schema}") from None
        return conn

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        return self.conn.execute(sql, params)

    def error(self, exc: Exception, doing: str) -> Exception:
        return classify(exc, self.redactor, doing) if isinstance(exc, self._errors) else exc

    def reconnect(self) -> None:
        try:
            self.conn.close()
        finally:
            self.conn = self._connect()

    def stored_name(self, table: str) -> str:
        """The PostgreSQL name of a table: itself within 63 bytes, else cut with a hash of the whole
        name (ddl.pg_name), so two long names never meet. A table an older version made under the
        plainly cut name is still used, by the first long name that finds it (a table comment
        records which); any other name sharing the cut gets its hashed table."""
        if len(table.encode()) <= SQL.max_name_bytes:
            return table
        if table not in self._names:
            self._names[table] = self._resolve_long(table)
        return self._names[table]

    def _resolve_long(self, table: str) -> str:
        hashed, cut = ddl.pg_name(table), ddl.truncated(table)
        row = self.run(
            "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = ANY(%s)",
            "reading the table's name",
            (self.schema, [hashed, cut]),
        ).fetchall()
        found = dict(row)
        if hashed in found or cut not in found:
            return hashed
        claimed = {long for long, name in self._names.items() if name == cut}
        comment = found[cut] or ""
        owner = comment.removeprefix(OWNER_COMMENT) if comment.startswith(OWNER_COMMENT) else None
        if claimed - {table} or owner not in (None, table):
            return hashed  # the cut table is another long name's
        if owner is None and not self.read_only:
            self.run(self._owner_comment(table, cut), "recording which stream table a cut table name is for")
        log.info("table %s.%s: loading into %r, the name an older version gave it", self.schema, table, cut)
        return cut

    def _owner_comment(self, table: str, name: str) -> str:
        return f"COMMENT ON TABLE {SQL.qualified(self.schema, name)} IS {SQL.literal(OWNER_COMMENT + table)}"

    def swap_statements(self, table: str, shadow: str) -> list[str]:
        """The swap; a table kept under its cut legacy name keeps the comment that says whose it is."""
        name = self.stored_name(table)
        legacy = name != table and name != ddl.pg_name(table)
        return super().swap_statements(table, shadow) + ([self._owner_comment(table, name)] if legacy else [])

    def describe_table(self, table: str) -> dict[str, DestinationColumn] | None:
        rows = self.run(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            "reading the table's columns",
            (self.schema, self.stored_name(table)),
        ).fetchall()
        return {name: DestinationColumn(type_, nullable) for name, type_, nullable in rows} or None

    # -- the loader contract ------------------------------------------------------
    def schema_statements(self, plan: StreamPlan, schema: SchemaPlan, table: str) -> list[str]:
        if schema.creates:
            self._fresh.add(self.stored_name(table))
            if plan.merges and plan.key_properties:
                self._unique_keys[self.stored_name(table)] = True  # the primary key we are about to create
        return super().schema_statements(plan, schema, table)

    def begin_replace(self, plan: StreamPlan) -> str:
        shadow = super().begin_replace(plan)
        self._fresh.add(self.stored_name(shadow))
        return shadow

    def staging_table(self, plan: StreamPlan, staging: str) -> str:
        # Kept staging must outlive the session to be inspected: an unlogged table then. The load
        # times default to now(): nothing to set per row.
        kind = "UNLOGGED" if self.keep_staging else "TEMPORARY"
        columns = ", ".join(
            f"{SQL.q(c)} {t}{' DEFAULT now()' if c in LOAD_TIME_COLUMNS else ''}"
            for c, t in self.column_types(plan).items()
        )
        return f"CREATE {kind} TABLE {staging} ({columns})"

    def _no_nul(self, text: str) -> str:
        if self.nul_policy == "fail":
            raise DataError(f"stream {self._stream!r}: {NUL_REFUSED}")
        return text.replace(NUL, _NUL_REPLACEMENTS[self.nul_policy])

    def _jsonb_dumps(self, *, in_encoder: bool = False) -> Callable[[Any], str]:
        """JSON text for a jsonb column, the NUL policy applied. In the encoder, a refused NUL is a
        ValueError, which the sink reports with the line and the stream."""
        dumps = DEFAULT_CODEC.dumps  # Decimals (exact streams) stay bare numbers

        def dump(value: Any) -> str:
            text = dumps(value).decode()
            if "\\u0000" not in text or not _ESCAPED_NUL.search(text):
                return text
            if self.nul_policy == "fail":
                if in_encoder:
                    raise ValueError(NUL_REFUSED)
                self._no_nul(NUL)  # raises with the explanation
            return _ESCAPED_NUL.sub(lambda m: m.group(1) + _JSON_NUL_REPLACEMENTS[self.nul_policy], text)

        return dump

    def _copy_columns(self, plan: StreamPlan) -> dict[str, str]:
        """What COPY fills, in order: the load times are staging's defaults."""
        return {c: t for c, t in self.column_types(plan).items() if c not in LOAD_TIME_COLUMNS}

    # -- the fast path: rows encoded from the input lines (copy_rows.py) --------------------------
    def row_encoder(self, plan: StreamPlan, policy: BatchPolicy, *, metadata: bool) -> RowEncoder | None:
        if not copy_rows.available():
            return None
        columns = self._copy_columns(plan)
        encoder: RowEncoder = copy_rows.make_encoder(
            plan,
            list(columns),
            list(columns.values()),
            metadata=metadata,
            nul_policy=self.nul_policy,
            policy=policy,
            json_dumps=self._jsonb_dumps(in_encoder=True),
        )
        return encoder

    def line_router(self) -> LineRouter | None:
        if self._router is None:
            if copy_rows.available():
                self._router = copy_rows.make_router()
            elif (reason := copy_rows.missing_reason()) is not None and not self._warned:
                log.warning(reason)
                self._warned = True
        return self._router

    def bulk_load_encoded(self, plan: StreamPlan, staging: str, rows: EncodedRows) -> None:
        self._stream = plan.stream
        data = rows.data
        assert isinstance(data, bytes)  # the C encoder's batches are bytes (dedupe_last needs them)
        columns = list(self._copy_columns(plan))
        if rows.duplicates and plan.merges:
            data = copy_rows.dedupe_last(data, [columns.index(k) for k in copy_rows.key_columns(plan)])
        try:
            with self.conn.cursor() as cur, cur.copy(ddl.copy_into(staging, columns)) as copy:
                copy.write(data)
        except self._errors as exc:
            raise classify(exc, self.redactor, f"stream {plan.stream!r}: COPY into staging") from None

    def load_direct(
        self,
        plan: StreamPlan,
        table: str,
        rows: EncodedRows,
        schema: Callable[[], list[str]],
        turn: Turn,
        ahead: bool = False,
    ) -> bool:
        """A batch COPYed straight into a table this run created, in the transaction of its schema changes.

        Staging exists to merge and to convert: a fresh table has the planned column types, so the COPY
        parses each value as the INSERT from staging would have converted it, and holds no rows but this
        run's. A keyed batch goes straight in only with no key twice in it (and no hard delete); a key an
        earlier batch loaded fails the COPY on the primary key, which rolls it back, and the batch (and
        the table's later ones) take staging and MERGE.

        A batch `ahead` COPYs while the batch before is still loading on the other lane, and commits
        after it: the server's share of a load runs on two backends. Their key sets are disjoint as
        texts, but one key written two ways (0 and -0 into a bigint) is one key to the server: should
        the batch before then wait on this one's row while this one waits for it to commit, this one
        rolls back and loads again in its turn."""
        name = self.stored_name(table)
        if self.keep_staging or name not in self._fresh or name in self._overlapping:
            return False
        if plan.merges and (rows.duplicates or (plan.hard_delete and DELETED_AT in plan.columns)):
            return False
        self._stream = plan.stream
        taken: list[str] | None = None

        def statements() -> list[str]:
            nonlocal taken  # a transaction that gave way gives its schema changes to the next attempt
            if taken is None:
                taken = schema()
            return taken

        if ahead:
            try:
                return self._copy_direct(plan, table, rows, statements, turn)
            except _GaveWay:
                log.info("stream %s: a batch loaded ahead waited on the batch before; loading it again", plan.stream)
        turn()
        if name in self._overlapping:
            return False  # the batch before met existing keys
        return self._copy_direct(plan, table, rows, statements, None)

    def _copy_direct(
        self, plan: StreamPlan, table: str, rows: EncodedRows, schema: Callable[[], list[str]], turn: Turn | None
    ) -> bool:
        """The COPY of load_direct, with its turn (ahead) or after it (turn None)."""
        # The load times are left out: the table this run created defaults them (ddl.column_def).
        copy = ddl.copy_into(self.table_ref(table), self._copy_columns(plan))
        try:
            with self.raw_transaction():
                for sql in schema():
                    self.execute(sql)
                with self.conn.cursor() as cur, cur.copy(copy) as into:
                    into.write(rows.data)
                if turn is not None:
                    # Commits in order: after the batch before (whose failure rolls this one back).
                    while not turn(AHEAD_CHECK_SECONDS):
                        if self.execute(_BLOCKING_OTHERS).fetchone()[0]:
                            raise _GaveWay
        except self._errors as exc:
            if plan.merges and getattr(exc, "sqlstate", None) == "23505":
                log.info("stream %s: keys already in %s.%s; merging from staging", plan.stream, self.schema, table)
                self._overlapping.add(self.stored_name(table))
                return False
            raise classify(exc, self.redactor, f"stream {plan.stream!r}: COPY into {self.schema}.{table}") from None
        return True

    def bulk_load(self, plan: StreamPlan, staging: str, records: list[dict[str, Any]]) -> None:
        self._stream = plan.stream
        wanted = self._copy_columns(plan)
        columns = list(wanted)
        json_at = [i for i, t in enumerate(wanted.values()) if t == "jsonb"]
        text_at = [i for i, t in enumerate(wanted.values()) if t == "text" or t.startswith("character varying")]
        try:
            # Optimistic: strings are not checked for NUL one by one. psycopg refuses a NUL before the
            # row leaves the client, the COPY is abandoned (staging stays empty), and the batch is
            # copied again with the NUL policy applied.
            self._copy(staging, columns, records, json_at, [])
        except self._errors as exc:
            if not text_at or "NUL (0x00)" not in str(exc):
                raise classify(exc, self.redactor, f"stream {plan.stream!r}: COPY into staging") from None
            try:
                self._copy(staging, columns, records, json_at, text_at)
            except self._errors as again:
                raise classify(again, self.redactor, f"stream {plan.stream!r}: COPY into staging") from None

    def _copy(
        self, staging: str, columns: list[str], records: list[dict[str, Any]], json_at: list[int], text_at: list[int]
    ) -> None:
        wrap = jsonb_wrapper(self._jsonb_dumps())
        no_nul = self._no_nul
        with self.conn.cursor() as cur, cur.copy(ddl.copy_into(staging, columns)) as copy:
            write = copy.write_row
            for record in records:
                row = list(map(record.get, columns))
                for i in json_at:
                    if row[i] is not None:
                        row[i] = wrap(row[i])
                for i in text_at:
                    value = row[i]
                    if value.__class__ is str and NUL in value:
                        row[i] = no_nul(value)
                write(row)

    def note_versions(self, table: str, floor: int | None) -> None:
        # By the name as planned: the sink calls this while batches load, and finding a long name's
        # PostgreSQL name may take a query on a connection a lane is using.
        if table in self._floors:
            before = self._floors[table]
            floor = None if before is None or floor is None else min(before, floor)
        self._floors[table] = floor

    def activate_version(self, plan: StreamPlan, version: int) -> None:
        # A table this run created holds only this run's rows: when none is older than `version`, the
        # statement would scan the whole table (a quarter of a second per million rows) to change nothing.
        name = self.stored_name(plan.table)
        floor = self._floors.get(plan.table)
        if name in self._fresh and floor is not None and floor >= version:
            log.info(
                "stream %s: ACTIVATE_VERSION %d: %s.%s holds no older rows", plan.stream, version, self.schema, name
            )
            return
        super().activate_version(plan, version)

    def finalize(self, plan: StreamPlan, staging: str, table: str, schema: list[str]) -> None:
        if not plan.merges:
            super().finalize(plan, staging, table, schema)
            return
        columns = list(plan.columns)
        target = self.table_ref(table)
        doing = f"stream {plan.stream!r}: loading {self.schema}.{table}"
        hard = plan.hard_delete and DELETED_AT in plan.columns
        keys = plan.key_columns
        merge = SQL.merge(target, staging, columns, keys, hard)
        name = self.stored_name(table)
        if name in self._overlapping:
            self._merge([*schema, *merge], staging, keys, doing)
            return
        unique = self._has_unique_key(name, keys)
        try:
            with self.raw_transaction():
                for sql in schema:
                    self.execute(sql)
                # A batch of only new keys (a first load, an append-mostly stream) is a plain INSERT, several
                # times cheaper than MERGE. With a unique key the INSERT itself finds out (a violation rolls it
                # back); without one, a probe on the keys decides.
                # A hard delete of an existing key inserts nothing and conflicts with nothing: MERGE it.
                deletes = hard and self.execute(ddl.has_deletes(staging)).fetchone()[0]
                overlap = deletes or (
                    not unique and self.execute(ddl.keys_overlap(target, staging, keys)).fetchone()[0]
                )
                for sql in merge if overlap else self.move_statements_appending(plan, staging, target):
                    self.execute(sql)
        except self._errors as exc:
            if getattr(exc, "sqlstate", None) != "23505":
                raise classify(exc, self.redactor, doing) from None
            # Some keys exist: merge this batch, and the rest of this run's batches straight away.
            self._overlapping.add(name)
            self._merge([*schema, *merge], staging, keys, doing)

    def move_statements_appending(self, plan: StreamPlan, staging: str, target: str) -> list[str]:
        """A merge batch whose keys are all new: an INSERT (hard-deleted rows left out)."""
        hard = plan.hard_delete and DELETED_AT in plan.columns
        return [SQL.insert(target, staging, list(plan.columns), f"{SQL.q(DELETED_AT)} IS NULL" if hard else "")]

    def _merge(self, statements: list[str], staging: str, keys: list[str], doing: str) -> None:
        """The merge transaction. A batch can hold one key twice under two spellings that only the server
        finds equal (10 and 10.0 in a numeric key): MERGE refuses to update a row twice, so the earlier
        row is dropped from staging and the merge runs again."""
        try:
            with self.raw_transaction():
                for sql in statements:
                    self.execute(sql)
        except self._errors as exc:
            if getattr(exc, "sqlstate", None) != CARDINALITY_VIOLATION:
                raise classify(exc, self.redactor, doing) from None
            self.run(ddl.dedupe_staging(staging, keys), doing)
            self.run_all(statements, doing)

    def _has_unique_key(self, table: str, keys: list[str]) -> bool:
        if table not in self._unique_keys:
            row = self.run(ddl.UNIQUE_ON_KEYS, "reading the table's keys", (self.schema, table, sorted(keys)))
            self._unique_keys[table] = bool(row.fetchone()[0])
        return self._unique_keys[table]

    def swap(self, plan: StreamPlan, shadow: str, schema: list[str]) -> None:
        try:
            super().swap(plan, shadow, schema)
        except DponeError as exc:
            if "depend" in str(exc):
                raise ConfigError(f"{exc} (views depend on the table: drop them, or use load_method upsert)") from None
            raise

    # -- the range ledger (partitioned loads: dpone_protocol/key_ranges.py) ------------------------
    def _ledger(self) -> str:
        return SQL.qualified(self.schema, RANGE_LEDGER)

    def ledger_prepare(self) -> None:
        self.run(
            f"CREATE TABLE IF NOT EXISTS {self._ledger()} (token text PRIMARY KEY, records bigint NOT NULL, "
            "committed_at timestamptz NOT NULL DEFAULT now())",
            "creating the range ledger",
        )

    def ledger_claim(self, token: str) -> None:
        # Waits while another load of this range holds the row uncommitted; a committed one is a
        # unique violation: this load must not add the range's rows a second time.
        try:
            # Not forever: a worker that hangs (its lease expired, its load still open) would block this
            # one for good; a transient error lets the range be tried again later instead.
            self.execute(f"SET LOCAL lock_timeout = '{LEDGER_WAIT_SECONDS}s'")
            self.execute(f"INSERT INTO {self._ledger()} (token, records) VALUES (%s, 0)", (token,))
            self.execute("SET LOCAL lock_timeout TO DEFAULT")
        except self._errors as exc:
            if getattr(exc, "sqlstate", None) == "55P03":
                raise TransientError(
                    f"key range {token} is being loaded by another worker that holds it still (hung?); try again later"
                ) from None
            if getattr(exc, "sqlstate", None) == "23505":
                raise RangeLoaded(
                    f"key range {token} is loaded already (its ledger row exists): not loaded again"
                ) from None
            if getattr(exc, "sqlstate", None) == "42P01":
                raise ConfigError(
                    f"the range ledger {self.schema}.{RANGE_LEDGER} does not exist: `dpone partitions plan` creates it"
                ) from None
            raise

    def ledger_record(self, token: str, rows: int) -> None:
        self.execute(f"UPDATE {self._ledger()} SET records = %s, committed_at = now() WHERE token = %s", (rows, token))

    def ledger_lookup(self, token: str) -> int | None:
        if self.execute("SELECT to_regclass(%s)", (f"{SQL.q(self.schema)}.{RANGE_LEDGER}",)).fetchone()[0] is None:
            return None
        row = self.execute(f"SELECT records FROM {self._ledger()} WHERE token = %s", (token,)).fetchone()
        return None if row is None else int(row[0])

    def close(self) -> None:
        for lane in self._lanes:
            lane.close()
        if not self.conn.closed:
            self.conn.close()
