"""A recording stand-in for pyodbc: the SQL Server connectors run against it, up to the wire.

`Recorder.install(monkeypatch)` makes `dpone_drivers.mssql.pyodbc()` return a module whose
`connect` hands out :class:`RecordingConnection`s; everything else (exception classes, SQL type
constants) is the real pyodbc's, so `setinputsizes` entries are the driver's own numbers.

Every statement is checked with sqlglot's T-SQL parser as it is recorded (tests/tools/tsql.py),
then answered by the first rule whose pattern matches it: rows, an exception (a real pyodbc
error with the SQLSTATE and message a server would give), or a callable computing either.
Unmatched statements return no rows and a row count of 0.
"""

from __future__ import annotations

import re
import threading
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.tools import tsql

Answer = Sequence[Sequence[Any]] | BaseException | Callable[[str, tuple[Any, ...]], Any]


@dataclass
class Call:
    connection: int  # which connection (0, 1, ...) ran it
    kind: str  # execute | executemany | commit | rollback | close | connect | setinputsizes | set_attr
    sql: str = ""
    params: tuple[Any, ...] = ()
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # executemany's parameter rows
    inputsizes: list[Any] | None = None
    fast: bool = False  # fast_executemany was on

    def __str__(self) -> str:
        return f"{self.connection}:{self.kind} {self.sql}".rstrip()


def odbc_error(sqlstate: str, message: str, number: int, cls: str = "ProgrammingError") -> Exception:
    """A pyodbc error as the real driver raises it for a server error `number`."""
    import pyodbc

    text = f"[{sqlstate}] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]{message} ({number}) (SQLExecDirectW)"
    error: Exception = getattr(pyodbc, cls)(sqlstate, text)
    return error


class Recorder:
    def __init__(self, *, check_sql: bool = True) -> None:
        self.calls: list[Call] = []
        self.rules: list[tuple[re.Pattern[str], Answer, int | None]] = []
        self.connection_strings: list[str] = []
        self.check_sql = check_sql
        self.checked: list[str] = []  # every statement that passed the T-SQL check
        self._lock = threading.Lock()

    # -- scripting -------------------------------------------------------------------
    def on(self, pattern: str, answer: Answer, times: int | None = None) -> Recorder:
        """Answer statements matching `pattern` (re.search, case-insensitive); `times` limits the rule."""
        self.rules.append((re.compile(pattern, re.IGNORECASE | re.DOTALL), answer, times))
        return self

    def answer(self, sql: str, params: tuple[Any, ...]) -> Any:
        with self._lock:
            for i, (pattern, answer, times) in enumerate(self.rules):
                if pattern.search(sql):
                    if times is not None:
                        if times <= 1:
                            del self.rules[i]
                        else:
                            self.rules[i] = (pattern, answer, times - 1)
                    break
            else:
                return []
        if callable(answer) and not isinstance(answer, BaseException):
            answer = answer(sql, params)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    # -- reading the record ------------------------------------------------------------
    def statements(self, kind: str | None = None) -> list[str]:
        return [c.sql for c in self.calls if c.sql and (kind is None or c.kind == kind)]

    def sequence(self) -> list[str]:
        """Each call as `kind sql`, SQL with its whitespace folded: what a test compares."""
        return [" ".join(f"{c.kind} {c.sql}".split()) for c in self.calls if c.kind != "setinputsizes"]

    def record(self, call: Call) -> None:
        if call.sql and self.check_sql:
            tsql.check(call.sql)
            self.checked.append(call.sql)
        with self._lock:
            self.calls.append(call)

    # -- installing ----------------------------------------------------------------------
    def module(self) -> types.SimpleNamespace:
        import pyodbc

        recorder = self
        names = {n: getattr(pyodbc, n) for n in dir(pyodbc) if not n.startswith("__")}

        def connect(text: str, autocommit: bool = False, timeout: int = 0, **_: Any) -> RecordingConnection:
            recorder.connection_strings.append(text)
            conn = RecordingConnection(recorder, len(recorder.connection_strings) - 1, autocommit)
            recorder.record(Call(conn.index, "connect"))
            return conn

        names["connect"] = connect
        names["drivers"] = lambda: ["ODBC Driver 18 for SQL Server", "FreeTDS"]
        return types.SimpleNamespace(**names)

    def install(self, monkeypatch: Any) -> Recorder:
        module = self.module()
        monkeypatch.setattr("dpone_drivers.mssql.pyodbc", lambda: module)
        return self


class RecordingCursor:
    def __init__(self, conn: RecordingConnection) -> None:
        self.conn = conn
        self.fast_executemany = False
        self.rowcount = -1
        self.description: list[tuple[Any, ...]] | None = None
        self._rows: list[Sequence[Any]] = []
        self._sizes: list[Any] | None = None

    def execute(self, sql: str, *params: Any) -> RecordingCursor:
        if len(params) == 1 and isinstance(params[0], (list, tuple)):
            params = tuple(params[0])
        self.conn.check_open()
        self.conn.recorder.record(Call(self.conn.index, "execute", sql, tuple(params)))
        result = self.conn.recorder.answer(sql, tuple(params))
        self._rows = list(result) if result is not None else []
        self.rowcount = len(self._rows) if self._rows else 0
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.check_open()
        copied = [tuple(r) for r in rows]
        fast = self.fast_executemany
        call = Call(self.conn.index, "executemany", sql, rows=copied, inputsizes=self._sizes, fast=fast)
        self.conn.recorder.record(call)
        self.conn.recorder.answer(sql, ())
        self.rowcount = len(copied)

    def setinputsizes(self, sizes: list[Any] | None) -> None:
        self._sizes = list(sizes) if sizes is not None else None

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    def fetchmany(self, size: int = 1) -> list[Any]:
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    def fetchval(self) -> Any:
        row = self.fetchone()
        return None if row is None else row[0]

    def nextset(self) -> bool:
        return False

    def __iter__(self) -> Any:
        while self._rows:
            yield self._rows.pop(0)

    def close(self) -> None:
        pass

    def __enter__(self) -> RecordingCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecordingConnection:
    def __init__(self, recorder: Recorder, index: int, autocommit: bool) -> None:
        self.recorder = recorder
        self.index = index
        self.autocommit = autocommit
        self.closed = False
        self.timeout = 0

    def check_open(self) -> None:
        if self.closed:
            import pyodbc

            raise pyodbc.ProgrammingError("Attempt to use a closed connection.")

    def cursor(self) -> RecordingCursor:
        self.check_open()
        return RecordingCursor(self)

    def execute(self, sql: str, *params: Any) -> RecordingCursor:
        return self.cursor().execute(sql, *params)

    def commit(self) -> None:
        self.recorder.record(Call(self.index, "commit"))

    def rollback(self) -> None:
        self.recorder.record(Call(self.index, "rollback"))

    def close(self) -> None:
        if not self.closed:
            self.recorder.record(Call(self.index, "close"))
        self.closed = True

    def set_attr(self, attribute: int, value: Any) -> None:
        """An ODBC connection attribute (e.g. snapshot isolation), recorded as `set_attr` with (attribute, value)."""
        self.recorder.record(Call(self.index, "set_attr", params=(attribute, value)))

    def setdecoding(self, *args: Any, **kwargs: Any) -> None:
        pass

    def setencoding(self, *args: Any, **kwargs: Any) -> None:
        pass

    def add_output_converter(self, *args: Any) -> None:
        pass
