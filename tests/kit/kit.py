"""What the shared suites need to know about a connector: how to run it, its config, and how to look
at the destination (targets) or feed the source (taps). A test module builds one kit in a fixture.

Connectors run in-process through the framework CLI (`target_cli.run` / `tap_cli.run`, stdio
injected) for speed, and as a process (`python -c "from <cli> import main; main()"`) where a test must
kill them. Neither needs an installed console script, so a freshly generated connector runs too.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import orjson

from dpone.taps.framework.tap import Tap
from dpone.taps.framework.tap_cli import run as run_tap_cli
from dpone.targets.framework.capabilities import APPEND, OVERWRITE, UPSERT, TargetCapabilities
from dpone.targets.framework.target import Target
from dpone.targets.framework.target_cli import run as run_target_cli
from tests.conftest import Run

REPO = Path(__file__).resolve().parents[2]
Row = dict[str, Any]
# A part of a hooked run's input: bytes are fed as lines; a callable runs once every line before it has
# been handled, and sees the target's stdout so far.
Hook = Callable[[bytes], None]


def conformed(stream: str) -> str:
    """The table a database target gives a stream without a table_name_map: identifier-safe, lower case."""
    return re.sub(r"[^0-9a-zA-Z_]+", "_", stream).strip("_").lower() or "stream"


def cli_module_of(cls: type[Any]) -> str:
    """Every connector's skeleton has `cli.py` next to the module of its class."""
    return cls.__module__.rsplit(".", 1)[0] + ".cli"


def process_command(cli_module: str) -> list[str]:
    """The connector as a process, from its `cli.main()`: `-c` keeps argv[1:] for the connector's flags."""
    return [sys.executable, "-c", f"from {cli_module} import main; main()"]


def process_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "DPONE_LOG_LEVEL": "WARNING", **extra}


def _messages(stdout: bytes) -> list[dict[str, Any]]:
    if stdout.startswith(b"{\n"):
        return []  # an indented document (--discover), not a message stream
    return [orjson.loads(line) for line in stdout.splitlines() if line.strip().startswith(b"{")]


@dataclass
class _Configs:
    """Config files written into the test's own directory, one per run."""

    workdir: Path
    counter: Iterator[int] = field(default_factory=itertools.count)

    def write(self, config: Mapping[str, Any], what: str) -> str:
        path = self.workdir / f"{what}-config-{next(self.counter)}.json"
        path.write_bytes(orjson.dumps(dict(config)))
        return str(path)


@dataclass
class SqlReader:
    """`read_table` and `tables` for a kit over a database file the test opens itself with a DB-API
    `connect()` (a fresh connection per query, closed after it)."""

    connect: Callable[[], Any]
    tables_sql: str  # one column: every table's name
    select_sql: str = 'SELECT * FROM "{table}"'
    exists: Callable[[], bool] = lambda: True  # False while the target has not created the file

    def query(self, sql: str) -> list[Row]:
        conn = self.connect()
        try:
            cursor = conn.execute(sql)
            names = [d[0] for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            conn.close()

    def tables(self) -> set[str]:
        return {next(iter(r.values())) for r in self.query(self.tables_sql)} if self.exists() else set()

    def read_table(self, table: str) -> list[Row] | None:
        return self.query(self.select_sql.format(table=table)) if table in self.tables() else None


@dataclass
class TargetKit:
    """One target as the shared suite sees it.

    `read_table(table)` returns the table's rows as dicts (every column, the driver's Python values)
    or None when there is no such table; `tables()` names every table (file) in the destination, so a
    test can see that nothing else was left behind.
    """

    target: type[Target]
    config: Mapping[str, Any]
    read_table: Callable[[str], list[Row] | None]
    tables: Callable[[], set[str]]
    workdir: Path
    # False for a file target: no typed columns, nothing to merge, delete or evolve.
    has_tables: bool = True
    table_for: Callable[[str], str] = conformed
    # Text the connector's own error line says on top of what the suite checks, by scenario.
    says: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # The connector's own checks after a scenario's, by scenario (e.g. "sdk:encoded_string_data").
    also: Mapping[str, Callable[[TargetKit], None]] = field(default_factory=dict)
    # Scenarios that cannot apply to this destination, with the reason shown as the skip's (e.g. a
    # database without a boolean type cannot tell a boolean column from an integer one).
    lacks: Mapping[str, str] = field(default_factory=dict)
    cli_module: str = ""
    capabilities: TargetCapabilities | None = None
    # In-process runs read a file instead of lines one by one (the block path a process takes).
    stdin_file: bool = False
    # Records reach the destination as they are read (an event log), not in batches that commit or
    # roll back whole: a record read before a bad line may be there after the run stops.
    sends_as_it_reads: bool = False
    _configs: _Configs = field(init=False)

    def __post_init__(self) -> None:
        self.cli_module = self.cli_module or cli_module_of(self.target)
        self.capabilities = self.capabilities or self.target.capabilities
        self._configs = _Configs(self.workdir)

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def caps(self) -> TargetCapabilities:
        assert self.capabilities is not None
        return self.capabilities

    # -- what applies -------------------------------------------------------------------------------
    def load_methods(self) -> tuple[str, ...]:
        return tuple(self.caps.load_methods)

    def default_load_method(self) -> str:
        for setting in self.target.all_settings():
            if setting.name == "load_method":
                return str(setting.default)
        return APPEND

    def merges(self) -> bool:
        return UPSERT in self.caps.load_methods

    def overwrites(self) -> bool:
        return OVERWRITE in self.caps.load_methods

    def activates_versions(self) -> bool:
        return bool(getattr(self.caps, "activate_version", False))

    def deletes(self, hard: bool) -> bool:
        """A target that honours `hard_delete` marks `_sdc_deleted_at` rows (soft) when it is off."""
        return bool(self.caps.hard_delete)

    def evolves_schemas(self) -> bool:
        return self.has_tables and bool(getattr(self.caps, "schema_evolution", ()))

    def widens(self) -> bool:
        """Whether the target alters a column to a wider type (a destination that cannot stops instead)."""
        return "widen" in getattr(self.caps, "schema_evolution", ())

    # -- running it ---------------------------------------------------------------------------------
    def settings(self, **extra: Any) -> dict[str, Any]:
        return {**self.config, **extra}

    def run(self, data: bytes, **config: Any) -> Run:
        """One run in-process, the whole input at once."""
        return self.run_hooked(data, **config)

    def run_hooked(self, *parts: bytes | Hook, **config: Any) -> Run:
        """One run in-process; a callable part runs once every line before it has been handled."""
        out, err = io.BytesIO(), io.StringIO()

        def feed() -> Iterator[bytes]:
            for part in parts:
                if callable(part):
                    part(out.getvalue())
                else:
                    yield from part.splitlines(keepends=True)

        argv = ["--config", self._configs.write(self.settings(**config), "target")]
        if self.stdin_file and not any(callable(part) for part in parts):
            # A file, as a process's stdin is: the target reads it in blocks (Target._read).
            with tempfile.TemporaryFile() as source:
                source.write(b"".join(cast("list[bytes]", parts)))
                source.seek(0)
                rc = run_target_cli(self.target, argv, stdin=source, stdout=out, stderr=err)  # type: ignore[arg-type]
        else:
            rc = run_target_cli(self.target, argv, stdin=feed(), stdout=out, stderr=err)  # type: ignore[arg-type]
        return Run(rc, out.getvalue(), err.getvalue(), _messages(out.getvalue()))

    def command(self) -> list[str]:
        return process_command(self.cli_module)

    def spawn(self, argv_prefix: Sequence[str], **config: Any) -> subprocess.Popen[bytes]:
        """The connector as a process (argv_prefix in front of its flags), stdio piped."""
        path = self._configs.write(self.settings(**config), "target")
        return subprocess.Popen(
            [*argv_prefix, "--config", path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=process_env(),
        )

    def rows(self, stream: str) -> list[Row] | None:
        return self.read_table(self.table_for(stream))


@dataclass
class TapKit:
    """One tap as the shared suite sees it.

    The fixture gives the suite two streams of the same shape, `id` (integer, the key), `name`
    (string) and `updated_at` (a date-time, the replication key): `put_rows(stream, rows)` adds rows
    to the source (both streams start empty; a tap that needs a row to discover a stream may take
    it from the first put_rows, which the suite calls before each first run).
    """

    tap: type[Tap]
    config: Mapping[str, Any]
    streams: tuple[str, str]
    put_rows: Callable[[str, list[Row]], None]
    workdir: Path
    # Where the source has key properties (a CSV file has them only when the config names them).
    has_keys: bool = True
    # FULL_TABLE resumes from the position a STATE recorded, instead of starting over.
    resumes_full_table: bool = False
    replication_key: str = "updated_at"
    # The replication method the suite selects to read a stream without a replication key: FULL_TABLE,
    # or the method a tap forces (LOG_BASED for a tap that reads a log from its offsets).
    read_method: str = "FULL_TABLE"
    # Properties the tap adds to every stream after the source's own (e.g. `_sdc_deleted_at` for a tap
    # that emits deletes): in the schema, and in a record only when it has a value.
    added_properties: tuple[str, ...] = ()
    # Scenarios that cannot apply to this source, with the reason shown as the skip's: "incremental"
    # (a replication key), "full_table_resume" (a FULL_TABLE read resumed mid-table).
    lacks: Mapping[str, str] = field(default_factory=dict)
    cli_module: str = ""
    _configs: _Configs = field(init=False)

    def __post_init__(self) -> None:
        self.cli_module = self.cli_module or cli_module_of(self.tap)
        self._configs = _Configs(self.workdir)

    @property
    def name(self) -> str:
        return self.tap.name

    def run(self, *args: str, **config: Any) -> Run:
        stdout, err = io.BytesIO(), io.StringIO()
        argv = ["--config", self._configs.write({**self.config, **config}, "tap"), *args]
        rc = run_tap_cli(self.tap, argv, stdout=stdout, stderr=err)
        return Run(rc, stdout.getvalue(), err.getvalue(), _messages(stdout.getvalue()))

    def file(self, what: str, value: Any) -> str:
        return self._configs.write(value, what)

    def discover(self, **config: Any) -> dict[str, Any]:
        result = self.run("--discover", **config)
        assert result.rc == 0, result.stderr
        catalog: dict[str, Any] = orjson.loads(result.stdout)
        return catalog

    def sync(self, catalog: Mapping[str, Any] | None = None, state: Any = None, **config: Any) -> Run:
        args: list[str] = []
        if catalog is not None:
            args += ["--catalog", self.file("catalog", catalog)]
        if state is not None:
            args += ["--state", self.file("state", state)]
        return self.run(*args, **config)


def feed_lines(proc: subprocess.Popen[bytes], chunks: Iterable[bytes]) -> None:
    """Write to a connector's stdin, and stop quietly when it is gone."""
    stdin: IO[bytes] | None = proc.stdin
    assert stdin is not None
    try:
        for chunk in chunks:
            stdin.write(chunk)
            stdin.flush()
        stdin.close()
    except (BrokenPipeError, ValueError):
        pass
