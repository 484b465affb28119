"""A minimal TDS 7.4 server on loopback that real ODBC drivers log in to, for tests.

No SQL Server runs on these machines; msodbcsql18 and FreeTDS do. This server answers PRELOGIN with
"encryption not supported" (so no TLS), accepts any LOGIN7, and decodes every request a driver sends:
SQL batches, RPCs (several in one request, as parameter arrays are sent), transaction-manager requests
and attentions. Each becomes an event; RPC parameters are decoded to exact Python values with their
TYPE_INFO (tests/tools/tds_wire.py), which is how a test proves what the driver really bound.

The server runs in a child process: pyodbc holds the GIL in some driver calls that wait for the server
(SQLDescribeParam, which fast_executemany always calls), so a server thread in the test's own process
would deadlock. Events and settings cross over a pipe, so a responder must be picklable: a `Script`
of rules, or a module-level function.

    with TdsServer() as server:
        server.responder = Script().on("SELECT 1", ResultSet([("n", "int")], [(1,)]))
        conn = pyodbc.connect(server.connection_string(), timeout=5)
        ...
        server.events, server.rpc_params("INSERT")

The responder sees each SQL batch's text and each RPC's statement (sp_executesql, sp_prepexec,
sp_execute of a prepared handle) and returns results (ResultSet, SqlError, RowCount) or None for the
default: a batch answers DONE without a count, an RPC DONEPROC counting `rpc_rowcount` rows. Built in:
pyodbc's connect-time sp_datatype_info_100 calls and sp_describe_undeclared_parameters (from
`param_types`, the declared types of the statement's @P1.. markers; nvarchar(4000) by default).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pickle
import re
import select
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from tests.tools import tds_wire as w
from tests.tools.tds_wire import Param, RpcCall, TypeInfo

log = logging.getLogger(__name__)
T = TypeVar("T")
MSODBC18 = "ODBC Driver 18 for SQL Server"
FREETDS = "FreeTDS"
FREETDS_LIB = "/usr/lib/x86_64-linux-gnu/odbc/libtdsodbc.so"
ROOT = Path(__file__).resolve().parents[2]


def driver_libraries() -> dict[str, str]:
    """{driver name: shared library} of msodbcsql18 (from the mssql-python-odbc wheel) and FreeTDS, where installed."""
    libraries = {}
    with contextlib.suppress(ImportError):
        import mssql_python_odbc

        pattern = "linux/debian_ubuntu/x86_64/lib/libmsodbcsql-18*.so*"
        if libs := sorted(glob.glob(os.path.join(mssql_python_odbc.get_libs_dir(), pattern))):
            libraries[MSODBC18] = libs[0]
    if os.path.exists(FREETDS_LIB):
        libraries[FREETDS] = FREETDS_LIB
    return libraries


def odbc_ini_dir(path: str | os.PathLike[str]) -> str:
    """Write an odbcinst.ini naming the installed drivers (`driver_libraries`) in `path`, and return it.

    Set ODBCSYSINI to it before unixODBC first reads its configuration in the process (any pyodbc connect
    or pyodbc.drivers()): later changes are not seen. Where that is too late, connect by library path
    (`connection_string(..., by_path=True)`), which needs no odbcinst.ini at all.
    """
    Path(path).mkdir(parents=True, exist_ok=True)
    text = "".join(
        f"[{name}]\nDescription={name}\nDriver={lib}\nUsageCount=1\n\n" for name, lib in driver_libraries().items()
    )
    (Path(path) / "odbcinst.ini").write_text(text)
    return str(path)


# -- what a responder returns ------------------------------------------------------------------------------


@dataclass
class ResultSet:
    """Columns as (name, declared type): int, bigint, smallint, tinyint, bit, float, real, date, uniqueidentifier,
    nvarchar/varchar/varbinary[(n|max)], decimal(p,s), time/datetime2/datetimeoffset[(s)]; rows as sequences."""

    columns: Sequence[tuple[str, str]]
    rows: Sequence[Sequence[Any]] = ()


@dataclass
class SqlError:
    """Sent as an ERROR token: the driver raises with this number and message (the SQLSTATE is the driver's)."""

    number: int
    message: str
    state: int = 1
    severity: int = 16


@dataclass
class RowCount:
    count: int


Result = ResultSet | SqlError | RowCount
Responder = Callable[[str], "list[Result] | None"]
ParamTypes = Sequence[str] | Callable[[str], Sequence[str] | None]


@dataclass
class Script:
    """A picklable responder: the first rule whose pattern matches answers. A str pattern matches the whole
    statement (stripped, case-insensitive); a compiled regex is searched for."""

    rules: list[tuple[str | re.Pattern[str], list[Result]]] = field(default_factory=list)

    def on(self, pattern: str | re.Pattern[str], *results: Result) -> Script:
        self.rules.append((pattern, list(results)))
        return self

    def __call__(self, sql: str) -> list[Result] | None:
        for pattern, results in self.rules:
            if pattern.search(sql) if isinstance(pattern, re.Pattern) else pattern.lower() == sql.strip().lower():
                return results
        return None


# -- events ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    conn: int
    user: str
    database: str
    app_name: str
    host_name: str
    server_name: str
    library: str
    language: str
    password_sent: bool  # the password itself is not decoded
    tds_version: int
    packet_size: int
    features: tuple[int, ...]  # FeatureExt ids the client offered (none is acknowledged)
    encryption: int | None  # the client's PRELOGIN ENCRYPTION byte


@dataclass(frozen=True)
class SqlBatch:
    conn: int
    text: str


@dataclass(frozen=True)
class Rpc:
    conn: int
    proc: str  # a name, or the well-known name of a ProcID (sp_executesql, sp_prepexec, ...)
    proc_id: int | None
    params: tuple[Param, ...]
    option_flags: int = 0
    batch_index: int = 0  # position within its request (parameter arrays come as several RPCs in one)
    statement: str = ""  # sp_executesql's/sp_prepare's/sp_prepexec's text, or the prepared one sp_execute runs
    separator: int | None = None  # the batch flag before it in its request: 0xFF BatchFlag, 0xFE NoExecFlag

    @property
    def values(self) -> tuple[Any, ...]:
        return tuple(p.value for p in self.params)

    def bound(self) -> tuple[Param, ...]:
        """The statement's parameters, without sp_executesql's/sp_prepexec's/sp_execute's own."""
        return self.params[{"sp_executesql": 2, "sp_prepexec": 3, "sp_execute": 1, "sp_prepare": 4}.get(self.proc, 0) :]


@dataclass(frozen=True)
class Transaction:
    conn: int
    kind: str  # begin, commit, rollback, save; "implicit begin" when a statement opened one
    name: str = ""
    via: str = "tm"  # "tm": a transaction-manager request; "sql": a batch's text
    begin_new: bool = False  # a commit/rollback that opens the next transaction at once (fBeginXact)


@dataclass(frozen=True)
class Attention:
    conn: int


Event = Login | SqlBatch | Rpc | Transaction | Attention

# -- the test's side -----------------------------------------------------------------------------------------


class TdsServer:
    """The test's handle on the server process: settings go to it, events and errors come back on demand.

    `timeout`: a connection with no request for that long is closed (and an error recorded).
    """

    def __init__(
        self,
        responder: Responder | None = None,
        param_types: ParamTypes | None = None,
        rpc_rowcount: int = 1,
        timeout: float = 30.0,
    ) -> None:
        self.port = 0
        self.timeout = timeout
        self._settings: dict[str, Any] = {
            "responder": responder,
            "param_types": param_types,
            "rpc_rowcount": rpc_rowcount,
        }
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def start(self) -> TdsServer:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        code = "from tests.tools.tds_server import serve_child; serve_child()"
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, env=env
        )
        try:
            self.port = self._call("start", self.timeout, self._settings)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(Exception):
            self._call("stop")
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe:
                pipe.close()
        self._proc = None

    def __enter__(self) -> TdsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _set(self, name: str, value: Any) -> None:
        self._settings[name] = value
        if self._proc is not None:
            self._call("set", name, value)

    @property
    def responder(self) -> Responder | None:
        """Called with each batch's text and each executed RPC statement; sent to the server process (picklable)."""
        return self._settings["responder"]  # type: ignore[no-any-return]

    @responder.setter
    def responder(self, value: Responder | None) -> None:
        self._set("responder", value)

    @property
    def param_types(self) -> ParamTypes | None:
        """Declared types sp_describe_undeclared_parameters reports: a list for every statement, or a function
        of the statement (picklable). Unset: nvarchar(4000) for each @Pn marker."""
        return self._settings["param_types"]  # type: ignore[no-any-return]

    @param_types.setter
    def param_types(self, value: ParamTypes | None) -> None:
        self._set("param_types", value)

    @property
    def rpc_rowcount(self) -> int:
        """The row count each statement-executing RPC answers with (DONEPROC), when the responder gives none."""
        return int(self._settings["rpc_rowcount"])

    @rpc_rowcount.setter
    def rpc_rowcount(self, value: int) -> None:
        self._set("rpc_rowcount", value)

    def connection_string(self, driver: str = MSODBC18, database: str = "db", by_path: bool = False) -> str:
        """A connection string for msodbcsql18 or FreeTDS; `by_path` names the driver by its library file."""
        name = driver_libraries()[driver] if by_path else driver
        if driver == FREETDS:
            return (
                f"DRIVER={{{name}}};SERVER=127.0.0.1;Port={self.port};DATABASE={database};UID=u;PWD=p;"
                "TDS_Version=7.4;ClientCharset=UTF-8"
            )
        return (
            f"DRIVER={{{name}}};SERVER=127.0.0.1,{self.port};DATABASE={database};UID=u;PWD=p;"
            "Encrypt=no;TrustServerCertificate=yes"
        )

    @property
    def events(self) -> list[Event]:
        """Every request so far, in order (all of a call's requests are in once the driver call returned)."""
        events: list[Event] = self._call("events")
        return events

    @property
    def errors(self) -> list[str]:
        """Requests the server could not decode or answer (each also logged, and answered with an ERROR)."""
        errors: list[str] = self._call("errors")
        return errors

    def clear(self) -> None:
        self._call("clear")

    def of_type(self, kind: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, kind)]

    def rpc_rows(self, contains: str = "") -> list[tuple[Param, ...]]:
        """Bound parameter rows of statement-executing RPCs (sp_executesql, sp_prepexec, sp_execute), in order;
        `contains` keeps those whose statement contains it."""
        executes = ("sp_executesql", "sp_prepexec", "sp_execute")
        return [rpc.bound() for rpc in self.of_type(Rpc) if rpc.proc in executes and contains in rpc.statement]

    def rpc_params(self, contains: str = "") -> list[tuple[Any, ...]]:
        return [tuple(p.value for p in row) for row in self.rpc_rows(contains)]

    def _call(self, *command: Any) -> Any:
        if self._proc is None or self._proc.stdin is None or self._proc.stdout is None:
            raise RuntimeError("the TDS server is not running")
        try:
            frame = pickle.dumps(command)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            hint = "not picklable: use a Script or a module-level function"
            raise TypeError(f"{command[0]} {command[1:]!r} cannot reach the server process ({hint}): {exc}") from exc
        with self._lock:
            self._proc.stdin.write(struct.pack(">I", len(frame)) + frame)
            self._proc.stdin.flush()
            reply = _read_frame(self._proc.stdout, deadline=time.monotonic() + 30)
        if reply is None:
            raise RuntimeError(f"the TDS server process exited (code {self._proc.poll()})")
        status, value = pickle.loads(reply)
        if status != "ok":
            raise RuntimeError(f"the TDS server failed {command[0]}: {value}")
        return value


def _readable(stream: IO[bytes], deadline: float) -> bool:
    """True once `stream` has data, False past the deadline. poll, not select: in a long test run the
    pipe's descriptor can be above select's limit of 1024."""
    poller = select.poll()
    poller.register(stream.fileno(), select.POLLIN)
    return bool(poller.poll(max(0.0, deadline - time.monotonic()) * 1000))


def _read_frame(stream: IO[bytes], deadline: float | None = None) -> bytes | None:
    """A length-prefixed frame from a pipe; None at end of file; TimeoutError past the deadline."""
    data = b""
    need = 4
    for part in ("head", "body"):
        while len(data) < need:
            if deadline is not None and not _readable(stream, deadline):
                raise TimeoutError("the TDS server process did not answer")
            chunk = os.read(stream.fileno(), need - len(data))
            if not chunk:
                return None
            data += chunk
        if part == "head":
            need = 4 + struct.unpack(">I", data)[0]
    return data[4:]


def serve_child() -> None:
    """The server process: commands from stdin, answers on stdout, until "stop" or stdin closes."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    server: _Server | None = None
    while (frame := _read_frame(inp)) is not None:
        command, *args = pickle.loads(frame)
        value: Any = None
        try:
            if command == "start":
                server = _Server(args[0], **args[1])
                value = server.start()
            elif server is None:
                raise RuntimeError("not started")
            elif command == "set":
                with server.lock:
                    setattr(server, args[0], args[1])
            elif command in ("events", "errors"):
                with server.lock:
                    value = list(getattr(server, command))
            elif command == "clear":
                with server.lock:
                    server.events.clear()
                    server.errors.clear()
            reply = pickle.dumps(("ok", value))
        except Exception:
            reply = pickle.dumps(("error", traceback.format_exc()))
        out.write(struct.pack(">I", len(reply)) + reply)
        out.flush()
        if command == "stop":
            break
    if server:
        server.stop()


# -- the server process's side -------------------------------------------------------------------------------


@dataclass
class _Conn:
    id: int
    sock: socket.socket
    packet_size: int = 4096
    encryption: int | None = None
    transaction: int = 0  # the descriptor of the open transaction; 0: none
    implicit: bool = False
    prepared: dict[int, str] = field(default_factory=dict)


_DATATYPE_INFO = re.compile(r"^\s*(?:exec(?:ute)?\s+)?(?:\[?sys\]?\.)?\[?sp_datatype_info(?:_100)?\]?\s+(-?\d+)", re.I)
_SET_IMPLICIT = re.compile(r"\bset\s+implicit_transactions\s+(on|off)\b", re.IGNORECASE)
_SQL_END = re.compile(r"\b(commit|rollback)(\s+(tran|transaction|work))?\b", re.IGNORECASE)


class _Server:
    def __init__(
        self,
        timeout: float,
        responder: Responder | None,
        param_types: ParamTypes | None,
        rpc_rowcount: int,
    ) -> None:
        self.timeout, self.rpc_rowcount = timeout, rpc_rowcount
        self.responder, self.param_types = responder, param_types
        self.events: list[Event] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._conns: dict[int, _Conn] = {}
        self._counter = 0
        self._stopping = False

    def start(self) -> int:
        threading.Thread(target=self._accept_loop, daemon=True, name="tds-accept").start()
        return int(self._listener.getsockname()[1])

    def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self.lock:
            socks = [c.sock for c in self._conns.values()]
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _next(self) -> int:
        with self.lock:
            self._counter += 1
            return self._counter

    def _record(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)

    def _error(self, text: str) -> None:
        log.error("%s", text)
        with self.lock:
            self.errors.append(text)

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                break
            sock.settimeout(self.timeout)
            conn = _Conn(self._next(), sock)
            with self.lock:
                self._conns[conn.id] = conn
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name=f"tds-conn-{conn.id}").start()

    def _serve(self, conn: _Conn) -> None:
        try:
            while message := w.read_message(conn.sock):
                ptype, payload = message
                try:
                    reply = self._dispatch(conn, ptype, payload)
                except Exception as exc:
                    self._error(f"conn {conn.id}: request type {ptype} failed: {traceback.format_exc()}")
                    reply = w.message(50000, f"tds_server could not handle the request: {exc}") + w.done(w.DONE_ERROR)
                conn.sock.sendall(w.packets(w.PT_TABULAR, reply, conn.packet_size))
        except TimeoutError:
            self._error(f"conn {conn.id}: no request for {self.timeout} s; closed")
        except OSError as exc:
            if not self._stopping:
                self._error(f"conn {conn.id}: {exc!r}")
        finally:
            conn.sock.close()
            with self.lock:
                self._conns.pop(conn.id, None)

    def _dispatch(self, conn: _Conn, ptype: int, payload: bytes) -> bytes:
        if ptype == w.PT_PRELOGIN:
            return self._prelogin(conn, payload)
        if ptype == w.PT_LOGIN7:
            return self._login(conn, payload)
        if ptype == w.PT_ATTENTION:
            self._record(Attention(conn.id))
            return w.done(w.DONE_ATTN)
        r = w.Reader(payload)
        w.skip_all_headers(r)
        if ptype == w.PT_SQL_BATCH:
            return self._batch(conn, w.utf16(payload[r.pos :]))
        if ptype == w.PT_RPC:
            return self._rpc(conn, w.decode_rpc(r))
        if ptype == w.PT_TRANSACTION:
            return self._transaction(conn, r)
        raise ValueError(f"unsupported packet type {ptype}")

    def _prelogin(self, conn: _Conn, payload: bytes) -> bytes:
        encryption = w.decode_prelogin(payload).get(1)
        conn.encryption = encryption[0] if encryption else None
        return w.prelogin_response()

    def _login(self, conn: _Conn, payload: bytes) -> bytes:
        login = w.decode_login7(payload)
        conn.packet_size = login["packet_size"] if 512 <= login["packet_size"] <= 32767 else 4096
        login["database"] = login["database"] or "master"
        self._record(Login(conn.id, encryption=conn.encryption, **login))
        return w.login_response(login["database"], conn.packet_size, bool(login["features"]))

    def _results(self, results: list[Result], in_proc: bool) -> bytes:
        out, token = b"", w.TOKEN_DONEINPROC if in_proc else w.TOKEN_DONE
        for n, result in enumerate(results):
            more = w.DONE_MORE if in_proc or n < len(results) - 1 else 0
            if isinstance(result, ResultSet):
                columns = [(name, w.type_from_declaration(decl)) for name, decl in result.columns]
                types = [ti for _, ti in columns]
                out += w.colmetadata(columns) + b"".join(w.row(types, values) for values in result.rows)
                out += w.done(more | w.DONE_COUNT, len(result.rows), token, 0xC1)
            elif isinstance(result, SqlError):
                out += w.message(result.number, result.message, result.state, result.severity)
                out += w.done(more | w.DONE_ERROR, 0, token)
            else:
                out += w.done(more | w.DONE_COUNT, result.count, token)
        return out

    def _respond(self, sql: str) -> list[Result] | None:
        return self.responder(sql) if self.responder else None

    def _describe(self, sql: str) -> ResultSet:
        types = self.param_types(sql) if callable(self.param_types) else self.param_types
        types = types or ["nvarchar(4000)"] * len(set(re.findall(r"@P(\d+)\b", sql)))
        return ResultSet(w.DESCRIBE_COLUMNS, [w.describe_parameter(n + 1, decl) for n, decl in enumerate(types)])

    def _implicit_begin(self, conn: _Conn, sql: str) -> bytes:
        """With IMPLICIT_TRANSACTIONS ON, a statement other than SET opens a transaction, as SQL Server's does."""
        if not conn.implicit or conn.transaction or re.match(r"\s*(set|if\s+@@trancount)\b", sql, re.I):
            return b""
        self._record(Transaction(conn.id, "implicit begin", via="sql"))
        return self._begin(conn)

    def _begin(self, conn: _Conn) -> bytes:
        conn.transaction = self._next()
        return w.envchange(8, b"\x08" + struct.pack("<Q", conn.transaction), b"\x00")

    def _end(self, conn: _Conn, kind: str) -> bytes:
        if not conn.transaction:
            return b""
        old, conn.transaction = conn.transaction, 0
        return w.envchange(9 if kind == "commit" else 10, b"\x00", b"\x08" + struct.pack("<Q", old))

    def _batch(self, conn: _Conn, sql: str) -> bytes:
        self._record(SqlBatch(conn.id, sql))
        if m := _SET_IMPLICIT.search(sql):
            conn.implicit = m.group(1).lower() == "on"
        out = self._implicit_begin(conn, sql)
        if (m := _SQL_END.search(sql)) and not re.match(r"\s*(insert|update|delete|select)\b", sql, re.I):
            self._record(Transaction(conn.id, m.group(1).lower(), via="sql"))
            out += self._end(conn, m.group(1).lower())
        results = self._respond(sql)
        if results is None and (m := _DATATYPE_INFO.match(sql)):
            results = [ResultSet(w.DATATYPE_INFO_COLUMNS, w.DATATYPE_INFO_ROWS.get(int(m.group(1)), []))]
        status = w.DONE_INXACT if conn.transaction else 0
        return out + (self._results(results, in_proc=False) if results else w.done(status))

    def _rpc(self, conn: _Conn, calls: list[RpcCall]) -> bytes:
        out = b""
        for index, call in enumerate(calls):
            values = [p.value for p in call.params]
            proc = call.proc.lower().rsplit(".", 1)[-1]
            handle: int | None = None
            statement = ""
            if proc in ("sp_executesql", "sp_describe_undeclared_parameters") and values:
                statement = str(values[0])
            elif proc in ("sp_prepare", "sp_prepexec") and len(values) >= 3:
                statement, handle = str(values[2]), self._next()
                conn.prepared[handle] = statement
            elif proc == "sp_execute" and values:
                statement = conn.prepared.get(values[0], "")
            elif proc == "sp_unprepare" and values:
                conn.prepared.pop(values[0], None)
            rpc = Rpc(
                conn.id, call.proc, call.proc_id, call.params, call.option_flags, index, statement, call.separator
            )
            self._record(rpc)
            for n, p in enumerate(call.params):
                if isinstance(p.value, w.Undecodable):
                    self._error(
                        f"conn {conn.id}: {call.proc} parameter {n} ({p.type_name} {p.raw!r}): {p.value.reason}"
                    )
            executes = proc in ("sp_executesql", "sp_prepexec", "sp_execute")
            results: list[Result] | None = None
            if executes:
                out += self._implicit_begin(conn, statement)
                results = self._respond(statement)
            elif proc == "sp_describe_undeclared_parameters":
                results = [self._describe(statement)]
            elif proc in ("sp_datatype_info_100", "sp_datatype_info") and values:
                results = [ResultSet(w.DATATYPE_INFO_COLUMNS, w.DATATYPE_INFO_ROWS.get(int(values[0]), []))]
            if results:
                out += self._results(results, in_proc=True)
            if handle is not None:
                out += w.returnstatus(0) + w.returnvalue(0, call.params[0].name, TypeInfo(0x26, 4), handle)
            counted = executes and not results
            status = (w.DONE_MORE if index < len(calls) - 1 else 0) | (w.DONE_COUNT if counted else 0)
            status |= w.DONE_INXACT if conn.transaction else 0
            out += w.done(status, self.rpc_rowcount if counted else 0, w.TOKEN_DONEPROC)
        return out

    def _transaction(self, conn: _Conn, r: w.Reader) -> bytes:
        request = r.unpack("H")
        kinds = {5: "begin", 7: "commit", 8: "rollback", 9: "save"}
        if request not in kinds:
            raise ValueError(f"unsupported transaction manager request {request}")
        kind, name, begin_new = kinds[request], "", False
        if kind == "begin":
            r.u8()  # isolation level
        if not r.at_end():
            name = r.b_varchar()
        if kind in ("commit", "rollback") and not r.at_end():
            begin_new = bool(r.u8())  # fBeginXact: a new transaction opens at once (then isolation, name)
        self._record(Transaction(conn.id, kind, name, "tm", begin_new))
        out = b""
        if kind == "begin":
            out = self._begin(conn)
        elif kind in ("commit", "rollback"):
            out = self._end(conn, kind) + (self._begin(conn) if begin_new else b"")
        return out + w.done(w.DONE_INXACT if conn.transaction else 0)
