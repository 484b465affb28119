"""Every kind of error docs/protocol.md lists, provoked for real against each connector and the runner.

Each case runs an installed console script as a subprocess, as an operator or an orchestrator
would, and checks the exit code and the one stderr line (`<connector>: <kind> error: <message>`).
The servers are real: one small PostgreSQL with password authentication for the whole module, a
port with nothing listening for a refused connection, a name under `.invalid` that never resolves.
The last test checks that the table in docs/protocol.md says what dpone_protocol.errors does.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from dpone.state.sqlite_store import SqliteStore
from dpone.state.store import LockInfo, utc_now
from dpone_protocol import errors
from tests.service.conftest import _as_postgres, _bin_dir, _free_port

BIN = Path(sys.executable).parent
PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
SECRET = f"S3cret-{uuid.uuid4().hex[:8]}"  # the server's real password: must never be printed
WRONG = f"Wr0ng-{uuid.uuid4().hex[:8]}"
USAGE, DATA, FATAL, CUT, TRANSIENT, CONFIG, SIGINT_EXIT, SIGTERM_EXIT = 2, 65, 70, 74, 75, 78, 130, 143
PROPS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}
SCHEMA = {"type": "SCHEMA", "stream": "users", "schema": {"type": "object", "properties": PROPS}}
SCHEMA["key_properties"] = ["id"]


def message_lines(*messages: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(m) + b"\n" for m in messages)


GOOD_INPUT = message_lines(
    SCHEMA,
    {"type": "RECORD", "stream": "users", "record": {"id": 1, "name": "a"}},
    {"type": "STATE", "value": {"n": 1}},
)
NO_KEY_INPUT = message_lines(SCHEMA, {"type": "RECORD", "stream": "users", "record": {"name": "no id"}})
CUT_INPUT = GOOD_INPUT + b'{"type": "RECORD", "stream": "users", "rec'

SLOW_TAP = """\
import json, os, sys, time
out = sys.stdout
schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
print(json.dumps({"type": "SCHEMA", "stream": "ticks", "schema": schema, "key_properties": ["id"]}), flush=True)
for i in range(1, 100000):
    print(json.dumps({"type": "RECORD", "stream": "ticks", "record": {"id": i}}), flush=True)
    print(json.dumps({"type": "STATE", "value": {"upto": i}}), flush=True)
    if i == 3:
        open(os.environ.get("READY_FILE", "ready"), "w").close()
    time.sleep(0.02)
"""


# -- the lab: servers, files and a project, shared by every case -----------------------------------


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    password: str

    def config(self, **changes: Any) -> dict[str, Any]:
        base = {"host": self.host, "port": self.port, "user": "postgres", "password": self.password}
        return {**base, "database": "postgres", "connect_timeout": 5, **changes}

    def dsn(self, password: str | None = None, database: str = "postgres", port: Any = None) -> str:
        return f"postgresql://postgres:{password or self.password}@{self.host}:{port or self.port}/{database}"


@pytest.fixture(scope="module")
def pg() -> Iterator[Server]:
    """A small server of its own: the shared test server trusts everyone, so it has no wrong password."""
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="dpone-pgexit-"))
    (root / "pw").write_text(SECRET + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(root / "pw", "postgres")
    data = root / "data"
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-A", "scram-sha-256", f"--pwfile={root / 'pw'}"]
    initdb += ["-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"]
    subprocess.run(_as_postgres(initdb), check=True, capture_output=True)
    port = _free_port()
    options = f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} -c fsync=off"
    start = [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
    subprocess.run(_as_postgres(start), check=True, capture_output=True)
    try:
        yield Server("127.0.0.1", port, SECRET)
    finally:
        stop = [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]
        subprocess.run(_as_postgres(stop), check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


class Lab:
    def __init__(self, root: Path, pg: Server) -> None:
        self.root = root
        self.pg = pg
        self.refused_port = _free_port()  # nothing listens there
        (root / "users.csv").write_text("id,name\n1,a\n2,b\n")
        (root / "short.csv").write_text("id,name\n1,a\n2\n")
        (root / "slow_tap.py").write_text(SLOW_TAP)
        self.state_db = root / "state.db"
        self.held: list[Any] = []  # connections kept open for the lab's life
        self._write_project()
        store = SqliteStore(self.state_db)
        try:
            store.put("p-streams", {"bookmarks": {"a": {"upto": 1}, "b": {"upto": 2}}})
        finally:
            store.close()

    def config(self, value: dict[str, Any]) -> str:
        path = self.root / f"config-{uuid.uuid4().hex[:8]}.json"
        path.write_bytes(orjson.dumps(value))
        return str(path)

    def csv_config(self, path: str = "users.csv") -> dict[str, Any]:
        return {"base_path": str(self.root), "files": [{"entity": "users", "path": path, "keys": ["id"]}]}

    def script(self, name: str, text: str) -> str:
        path = self.root / name
        path.write_text(text)
        path.chmod(0o755)
        return str(path)

    def _write_project(self) -> None:
        slow = self.script("tap-slow", f'#!/bin/sh\nexec "{sys.executable}" "{self.root / "slow_tap.py"}"\n')
        dies = self.script("tap-dies", "#!/bin/sh\necho 'segfault in the driver' >&2\nkill -9 $$\n")
        pg = self.pg
        extractors = [
            {"name": "tap-csv", "executable": "tap-csv", "config": self.csv_config()},
            {"name": "tap-csv-short", "executable": "tap-csv", "config": self.csv_config("short.csv")},
            # "state" only: no discovery to run first
            {"name": "tap-slow", "executable": slow, "capabilities": ["state"]},
            {"name": "tap-dies", "executable": dies, "capabilities": ["state"]},
            {
                "name": "tap-postgres-refused",
                "executable": "tap-postgres",
                "config": pg.config(port=self.refused_port),
            },
        ]
        loaders = [
            {"name": "target-jsonl", "executable": "target-jsonl", "config": {"destination_path": str(self.root)}},
            {
                "name": "target-postgres-refused",
                "executable": "target-postgres",
                "config": pg.config(port=self.refused_port),
            },
            {"name": "target-postgres-wrong", "executable": "target-postgres", "config": pg.config(password=WRONG)},
        ]
        project = {"version": 1, "plugins": {"extractors": extractors, "loaders": loaders}}
        (self.root / "meltano.yml").write_bytes(orjson.dumps(project, option=orjson.OPT_INDENT_2))

    def run_argv(self, tap: str, target: str) -> list[str]:
        return ["dpone", "run", tap, target, "--project", str(self.root), "--no-progress", *self.backend()]

    def backend(self) -> list[str]:
        return ["--state-backend", f"sqlite:///{self.state_db}"]


@pytest.fixture(scope="module")
def lab(pg: Server, tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return Lab(tmp_path_factory.mktemp("exit-codes"), pg)


def environment(lab: Lab) -> dict[str, str]:
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, "PATH": path, "DPONE_LOG_LEVEL": "WARNING", "READY_FILE": str(lab.root / "ready")}


def launch(lab: Lab, argv: list[str], stdin: bytes = b"", timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    command = [str(BIN / argv[0]), *argv[1:]] if not os.path.isabs(argv[0]) else argv
    return subprocess.run(
        command, input=stdin, capture_output=True, env=environment(lab), cwd=lab.root, timeout=timeout, check=False
    )


def error_line(who: str, proc: subprocess.CompletedProcess[bytes] | subprocess.Popen[bytes], err: str) -> str:
    """The one line the program wrote about why it stopped (argparse names the subcommand too)."""
    ours = [line for line in err.splitlines() if re.match(rf"{re.escape(who)}( [a-z-]+)?: ", line)]
    assert len(ours) == 1, f"exit {proc.returncode}, stderr:\n{err}"
    return ours[0]


# -- the table -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    argv: list[str]
    code: int
    says: str  # a piece of the message
    stdin: bytes = b""
    unprivileged: bool = False  # run without root's power to write anywhere

    @property
    def who(self) -> str:
        return self.argv[0]


def _target(
    name: str, config: dict[str, Any] | str, code: int, says: str, stdin: bytes = GOOD_INPUT
) -> Callable[[Lab], Case]:
    def build(lab: Lab) -> Case:
        path = config if isinstance(config, str) else lab.config(config)
        return Case([name, "--config", path], code, says, stdin)

    return build


def _pg_target(code: int, says: str, stdin: bytes = GOOD_INPUT, **changes: Any) -> Callable[[Lab], Case]:
    def build(lab: Lab) -> Case:
        config = lab.pg.config(**{k: (lab.refused_port if v == "refused" else v) for k, v in changes.items()})
        return Case(["target-postgres", "--config", lab.config(config)], code, says, stdin)

    return build


def _pg_tap(code: int, says: str, **changes: Any) -> Callable[[Lab], Case]:
    def build(lab: Lab) -> Case:
        config = lab.pg.config(**{k: (lab.refused_port if v == "refused" else v) for k, v in changes.items()})
        if "dsn" in changes:
            config = {"dsn": changes["dsn"].replace("PORT", str(lab.pg.port)).replace("PASSWORD", lab.pg.password)}
        return Case(["tap-postgres", "--config", lab.config(config), "--discover"], code, says)

    return build


def _read_only_dir(lab: Lab) -> str:
    path = lab.root / f"ro-{uuid.uuid4().hex[:6]}"
    path.mkdir()
    path.chmod(0o555)
    return str(path)


def _read_only_duckdb(lab: Lab) -> Case:
    folder = lab.root / f"ro-db-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    duckdb.connect(str(folder / "w.duckdb")).close()
    folder.chmod(0o555)  # the file is writable, its write-ahead log cannot be created
    config = lab.config({"filepath": str(folder / "w.duckdb")})
    return Case(["target-duckdb", "--config", config], CONFIG, "permission denied", GOOD_INPUT, unprivileged=True)


def _full_disk_jsonl(lab: Lab) -> Case:
    folder = lab.root / f"full-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    (folder / "users.jsonl").symlink_to("/dev/full")  # every write fails with ENOSPC
    config = lab.config({"destination_path": str(folder)})
    return Case(["target-jsonl", "--config", config], TRANSIENT, "disk full", GOOD_INPUT)


def _state(*argv: str, code: int, says: str, stdin: bytes = b"", backend: str = "") -> Callable[[Lab], Case]:
    """`backend` may name the lab's server: {port}, {refused} and {password} are filled in."""

    def build(lab: Lab) -> Case:
        filled = backend.format(port=lab.pg.port, refused=lab.refused_port, password=lab.pg.password)
        where = ["--state-backend", filled] if backend else lab.backend()
        return Case(["dpone", "state", *argv, *where], code, says, stdin)

    return build


def _locked_duckdb(lab: Lab) -> Case:
    path = str(lab.root / "held.duckdb")
    lab.held.append(duckdb.connect(path))  # DuckDB lets one process write a file at a time
    config = lab.config({"filepath": path})
    return Case(["target-duckdb", "--config", config], TRANSIENT, "locked by another process", GOOD_INPUT)


CASES: dict[str, Callable[[Lab], Case]] = {
    # tap-csv
    "tap-csv usage": lambda lab: Case(["tap-csv", "--bogus"], USAGE, "unrecognized arguments"),
    "tap-csv config: no --config": lambda lab: Case(["tap-csv"], CONFIG, "--config FILE is required"),
    "tap-csv config: no file matches": lambda lab: Case(
        ["tap-csv", "--config", lab.config(lab.csv_config("nothing*.csv"))], CONFIG, "no file matches"
    ),
    "tap-csv data: short row": lambda lab: Case(
        ["tap-csv", "--config", lab.config(lab.csv_config("short.csv"))], DATA, "expected 2 fields, found 1"
    ),
    # tap-postgres
    "tap-postgres usage": lambda lab: Case(["tap-postgres", "--bogus"], USAGE, "unrecognized arguments"),
    "tap-postgres config: wrong password": _pg_tap(CONFIG, "password authentication failed", password=WRONG),
    "tap-postgres config: no such database": _pg_tap(CONFIG, 'database "nosuch" does not exist', database="nosuch"),
    "tap-postgres config: port -5": _pg_tap(CONFIG, "setting 'port': the port must be a number", port=-5),
    "tap-postgres config: port 99999": _pg_tap(CONFIG, "from 1 to 65535, got '99999'", port=99999),
    "tap-postgres config: port notaport": _pg_tap(CONFIG, "setting 'port' must be integer", port="notaport"),
    "tap-postgres config: dsn port": _pg_tap(
        CONFIG, "setting 'dsn': the port must be", dsn="postgresql://postgres:PASSWORD@127.0.0.1:notaport/postgres"
    ),
    "tap-postgres transient: refused": _pg_tap(TRANSIENT, "Connection refused", port="refused"),
    "tap-postgres transient: dns": _pg_tap(TRANSIENT, "nosuchhost.invalid", host="nosuchhost.invalid"),
    # target-jsonl
    "target-jsonl usage": lambda lab: Case(["target-jsonl", "--bogus"], USAGE, "unrecognized arguments"),
    "target-jsonl config: load_method": _target("target-jsonl", {"load_method": "upsert"}, CONFIG, "load_method"),
    "target-jsonl config: read-only directory": lambda lab: Case(
        ["target-jsonl", "--config", lab.config({"destination_path": _read_only_dir(lab)})],
        CONFIG,
        "permission denied",
        GOOD_INPUT,
        unprivileged=True,
    ),
    "target-jsonl transient: disk full": _full_disk_jsonl,
    "target-jsonl data: malformed line": lambda lab: Case(
        ["target-jsonl", "--config", lab.config({"destination_path": str(lab.root / "jsonl-bad")})],
        DATA,
        "line 2: malformed JSON",
        message_lines(SCHEMA) + b"INFO starting sync\n",
    ),
    "target-jsonl input cut": _target("target-jsonl", {}, CUT, "line 4: the input ended inside a line", CUT_INPUT),
    # target-duckdb
    "target-duckdb usage": lambda lab: Case(["target-duckdb", "--bogus"], USAGE, "unrecognized arguments"),
    "target-duckdb config: load_method": _target("target-duckdb", {"load_method": "merge"}, CONFIG, "load_method"),
    "target-duckdb config: read-only directory": _read_only_duckdb,
    "target-duckdb transient: locked": _locked_duckdb,
    "target-duckdb data: no key": lambda lab: Case(
        ["target-duckdb", "--config", lab.config({"filepath": str(lab.root / "data.duckdb")})],
        DATA,
        "record has no value for key property 'id'",
        NO_KEY_INPUT,
    ),
    "target-duckdb input cut": lambda lab: Case(
        ["target-duckdb", "--config", lab.config({"filepath": str(lab.root / "cut.duckdb")})],
        CUT,
        "the input ended inside a line",
        CUT_INPUT,
    ),
    # target-postgres
    "target-postgres usage": lambda lab: Case(["target-postgres", "--bogus"], USAGE, "unrecognized arguments"),
    "target-postgres config: wrong password": _pg_target(CONFIG, "password authentication failed", password=WRONG),
    "target-postgres config: port 99999": _pg_target(CONFIG, "setting 'port': the port must be", port=99999),
    "target-postgres transient: refused": _pg_target(TRANSIENT, "Connection refused", port="refused"),
    "target-postgres transient: dns": _pg_target(TRANSIENT, "nosuchhost.invalid", host="nosuchhost.invalid"),
    "target-postgres data: no key": _pg_target(DATA, "record has no value for key property 'id'", NO_KEY_INPUT),
    "target-postgres input cut": _pg_target(CUT, "the input ended inside a line", CUT_INPUT),
    # dpone run
    "dpone usage": lambda lab: Case(["dpone", "run"], USAGE, "the following arguments are required"),
    "dpone run config: unknown tap": lambda lab: Case(lab.run_argv("tap-nosuch", "target-jsonl"), CONFIG, "tap-nosuch"),
    "dpone run data: the tap's": lambda lab: Case(
        lab.run_argv("tap-csv-short", "target-jsonl"), DATA, "tap-csv-short failed (exit 65)"
    ),
    "dpone run config: the target's": lambda lab: Case(
        lab.run_argv("tap-csv", "target-postgres-wrong"), CONFIG, "password authentication failed"
    ),
    "dpone run transient: the target's": lambda lab: Case(
        lab.run_argv("tap-csv", "target-postgres-refused"), TRANSIENT, "Connection refused"
    ),
    "dpone run transient: the tap's discovery": lambda lab: Case(
        lab.run_argv("tap-postgres-refused", "target-jsonl"), TRANSIENT, "tap-postgres-refused --discover failed"
    ),
    "dpone run fatal: a connector killed": lambda lab: Case(
        lab.run_argv("tap-dies", "target-jsonl"), FATAL, "killed by signal 9"
    ),
    # dpone state
    "dpone state usage": lambda lab: Case(["dpone", "state", "bogus"], USAGE, "invalid choice"),
    "dpone state config: no state": _state("get", "nosuch-pipeline", code=CONFIG, says="no saved state"),
    "dpone state config: invalid JSON": _state(
        "set", "p-json", "-", code=CONFIG, says="not valid JSON: unexpected end of data: line 1", stdin=b'{"a": '
    ),
    "dpone state config: no such stream": _state(
        "get", "p-streams", "--stream", "nosuch", code=CONFIG, says="has no stream 'nosuch' (streams: a, b)"
    ),
    "dpone state config: store password": _state(
        "list",
        code=CONFIG,
        says="password authentication failed",
        backend=f"postgresql://postgres:{WRONG}@127.0.0.1:{{port}}/postgres",
    ),
    "dpone state config: store database": _state(
        "list",
        code=CONFIG,
        says='database "nosuch" does not exist',
        backend="postgresql://postgres:{password}@127.0.0.1:{port}/nosuch",
    ),
    "dpone state config: store port": _state(
        "list", code=CONFIG, says="the port must be a number", backend="postgresql://postgres@127.0.0.1:99999/postgres"
    ),
    "dpone state transient: store refused": _state(
        "list", code=TRANSIENT, says="Connection refused", backend="postgresql://postgres@127.0.0.1:{refused}/postgres"
    ),
}


def unprivileged(argv: list[str]) -> list[str]:
    """argv run without the power to write where permissions say no (root ignores them)."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop the power to write anywhere")
    drop = [setpriv, "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"]
    return [*drop, str(BIN / argv[0]), *argv[1:]]


@pytest.mark.service
@pytest.mark.parametrize("case_id", list(CASES))
def test_exit_code_and_message(lab: Lab, case_id: str) -> None:
    case = CASES[case_id](lab)
    argv = unprivileged(case.argv) if case.unprivileged else case.argv
    proc = launch(lab, argv, case.stdin)
    err = proc.stderr.decode()
    assert proc.returncode == case.code, f"{case_id}: exit {proc.returncode}, stderr:\n{err}"
    line = error_line(case.who, proc, err)
    if case.code == USAGE:
        assert re.match(rf"{re.escape(case.who)}( [a-z]+)?: error: ", line), line  # argparse's, after the usage
    else:
        kind = errors.kind_for_exit(case.code)
        assert kind is not None
        assert re.fullmatch(rf"{re.escape(case.who)}: {kind.value} error: \S.*", line), line
    assert case.says in line, line
    assert SECRET not in err and WRONG not in err, err


# -- signals: not errors of any kind, so no "<kind> error" wording ------------------------------------


def _started_run(lab: Lab, pipeline: str) -> subprocess.Popen[bytes]:
    ready = lab.root / "ready"
    ready.unlink(missing_ok=True)
    argv = [*lab.run_argv("tap-slow", "target-jsonl"), "--pipeline-id", pipeline]
    proc = subprocess.Popen(
        [str(BIN / "dpone"), *argv[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(lab),
        cwd=lab.root,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():  # the tap has sent a few records and states
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1].decode()
        time.sleep(0.02)
    return proc


@pytest.mark.service
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, SIGINT_EXIT), (signal.SIGTERM, SIGTERM_EXIT)])
def test_dpone_run_stopped_by_a_signal_says_interrupted(lab: Lab, sig: signal.Signals, code: int) -> None:
    proc = _started_run(lab, f"signal-{sig.name}")
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1].decode()
    assert proc.returncode == code, err
    line = error_line("dpone", proc, err)
    assert line == f"dpone: interrupted by {sig.name}; committed state saved", line
    assert "error" not in line


@pytest.mark.service
def test_connector_stopped_by_ctrl_c_says_interrupted(lab: Lab) -> None:
    config = lab.config({"destination_path": str(lab.root / "sigint")})
    proc = subprocess.Popen(
        [str(BIN / "target-jsonl"), "--config", config],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(lab),
        # As from a terminal: a suite started in the background (`make test &`) has SIGINT ignored,
        # and a process inherits that, so Python would never see the Ctrl-C.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(message_lines(SCHEMA, {"type": "STATE", "value": {"n": 0}}))
    proc.stdin.flush()
    assert proc.stdout.readline() == b'{"n":0}\n'  # it is reading: its handlers are in place
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == SIGINT_EXIT, err
    assert error_line("target-jsonl", proc, err.decode()) == "target-jsonl: interrupted"


# -- a held lock: another run will finish (retry later); a dead one's lock needs an operator ----------


@pytest.mark.service
@pytest.mark.parametrize(("alive", "code"), [(True, TRANSIENT), (False, CONFIG)])
def test_held_lock(lab: Lab, alive: bool, code: int) -> None:
    pipeline = f"locked-{alive}"
    if alive:
        pid = os.getpid()
    else:
        gone = subprocess.Popen(["true"])
        gone.wait()
        pid = gone.pid
    store = SqliteStore(lab.state_db)
    try:
        store.acquire_lock(LockInfo(pipeline, "holder000001", pid, socket.gethostname(), utc_now()))
    finally:
        store.close()
    proc = launch(lab, [*lab.run_argv("tap-csv", "target-jsonl"), "--pipeline-id", pipeline])
    err = proc.stderr.decode()
    assert proc.returncode == code, err
    kind = "transient" if alive else "config"
    line = error_line("dpone", proc, err)
    assert line.startswith(f"dpone: {kind} error: pipeline '{pipeline}' is locked by run holder000001"), line
    assert ("stale" in line) is not alive
    assert f"dpone state unlock {pipeline}" in line


# -- a full disk under DuckDB (no portable way to fill one for real) -----------------------------------


FULL_DISK = 'Failed to commit: Could not write file "w.duckdb.wal": No space left on device'


class _FullDisk:
    def execute(self, *args: Any) -> Any:
        raise duckdb.TransactionException(FULL_DISK)

    def close(self) -> None:
        pass


def test_duckdb_disk_full_is_transient_and_other_errors_pass_through() -> None:
    from dpone.targets.duckdb.connector import Connection

    conn = Connection(_FullDisk(), "w.duckdb", (duckdb.IOException, duckdb.TransactionException))
    with pytest.raises(errors.TransientError, match=r"DuckDB file w\.duckdb: disk full \(.*No space left on device"):
        conn.execute("COMMIT")
    real = Connection(duckdb.connect(":memory:"), ":memory:", (duckdb.IOException, duckdb.TransactionException))
    with pytest.raises(duckdb.TransactionException, match="no transaction is active"):
        real.execute("ROLLBACK")  # an error with no errno of a kind is the driver's, unchanged
    assert real.execute("SELECT 41 + 1").fetchone() == (42,)
    real.close()


# -- the documented table is the code's ---------------------------------------------------------------


def documented_codes() -> dict[int, str]:
    """Exit code -> kind, from the table under "Errors and exit codes" in docs/protocol.md."""
    text = PROTOCOL_DOC.read_text()
    section = text.split("## Errors and exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*([a-z ]*?)\s*\|", section, re.MULTILINE)
    assert rows, "no exit-code table in docs/protocol.md"
    return {int(code): kind.strip() for code, kind in rows}


def test_docs_exit_code_table_is_the_codes_in_dpone_protocol_errors() -> None:
    expected = {code: kind.value for kind, code in errors.EXIT_CODES.items()}
    expected |= {
        errors.EXIT_OK: "",
        errors.EXIT_USAGE: "usage",
        errors.EXIT_INTERRUPTED: "interrupted",
        128 + signal.SIGTERM: "interrupted",
    }
    assert documented_codes() == expected
