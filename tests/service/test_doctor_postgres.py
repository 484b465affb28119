"""`dpone doctor` against real PostgreSQL servers, each failure provoked, and its hint.

Two servers: the session's (trust authentication, wal_level=logical), where roles without one
privilege or another are made per test; and one of this module's own with password (SCRAM)
authentication and wal_level=replica, for a wrong password and for LOG_BASED without logical
decoding. The doctor runs in-process (`dpone_runner.cli.run`) with JSON output, and as the installed
`dpone` for what a user sees: the text, the exit code, and no password anywhere.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from dpone.state.store import LockInfo, new_lock, open_store, utc_now
from dpone.targets.postgres import copy_rows
from dpone.targets.postgres import doctor as target_doctor
from dpone_runner import cli
from tests.service.conftest import PostgresServer, _as_postgres, _bin_dir, _free_port

pytestmark = pytest.mark.service

DPONE = str(Path(sys.executable).parent / "dpone")
SECRET = "Doc-Secret-pw-5531"  # the right password of the SCRAM server's user
WRONG = "Wrong-Secret-pw-9917"  # a wrong one: it must not show either
PASSWORD_SETTING = [{"name": "password", "kind": "password"}]
EXIT_CONFIG = 78


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- servers and databases ---------------------------------------------------------------------


@dataclass(frozen=True)
class ScramServer:
    """This module's server: passwords checked (SCRAM) over TCP, wal_level=replica."""

    port: int
    admin_password: str

    def admin(self, database: str = "postgres") -> psycopg.Connection[Any]:
        dsn = f"postgresql://postgres:{self.admin_password}@127.0.0.1:{self.port}/{database}"
        return psycopg.connect(dsn, autocommit=True)


@pytest.fixture(scope="module")
def scram_server() -> Iterator[ScramServer]:
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="dpone-pg-scram-"))
    data, sock, pwfile = root / "data", root / "sock", root / "pw"
    sock.mkdir()
    admin_password = uuid.uuid4().hex
    pwfile.write_text(admin_password + "\n")
    if os.geteuid() == 0:
        for path in (root, sock, pwfile):
            shutil.chown(path, "postgres")
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}"]
    initdb += ["--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C"]
    subprocess.run(_as_postgres(initdb), check=True, capture_output=True)
    port = _free_port()
    options = (
        f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={sock} "
        "-c wal_level=replica -c fsync=off -c full_page_writes=off"
    )
    pg_ctl = str(bin_dir / "pg_ctl")
    start = [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
    subprocess.run(_as_postgres(start), check=True, capture_output=True)
    try:
        server = ScramServer(port, admin_password)
        with server.admin() as conn:
            conn.execute(f"CREATE ROLE doctor_user LOGIN PASSWORD '{SECRET}'")
            conn.execute("CREATE DATABASE doctor OWNER doctor_user")
        with psycopg.connect(f"postgresql://doctor_user:{SECRET}@127.0.0.1:{port}/doctor", autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id integer PRIMARY KEY, name text)")
            conn.execute("INSERT INTO items VALUES (1, 'a'), (2, 'b')")
        yield server
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def scram_config(server: ScramServer, password: str = SECRET, **extra: Any) -> dict[str, Any]:
    config = {"host": "127.0.0.1", "port": server.port, "user": "doctor_user", "password": password}
    return {**config, "database": "doctor", **extra}


@dataclass
class Cluster:
    """A database of this module on the session server, and roles made for single tests."""

    server: PostgresServer
    database: str
    roles: list[str]

    def admin(self, database: str | None = None) -> psycopg.Connection[Any]:
        dsn = f"postgresql://postgres@{self.server.host}:{self.server.port}/{database or self.database}"
        return psycopg.connect(dsn, autocommit=True)

    def sql(self, *statements: str, database: str | None = None) -> None:
        with self.admin(database) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]

    def role(self, *grants: str) -> str:
        """A login role with only the privileges granted here ({role} in each GRANT names it)."""
        name = f"doc_{uuid.uuid4().hex[:10]}"
        self.roles.append(name)
        self.sql(f"CREATE ROLE {name} LOGIN", *(g.format(role=name) for g in grants))
        return name

    def config(self, user: str = "postgres", database: str | None = None, **extra: Any) -> dict[str, Any]:
        base = {"host": self.server.host, "port": self.server.port, "user": user, "password": ""}
        return {**base, "database": database or self.database, **extra}

    def slots(self, pattern: str) -> list[str]:
        with self.admin() as conn:
            rows = conn.execute("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE %s", (pattern,))
            return [r[0] for r in rows]


@pytest.fixture(scope="module")
def cluster(postgres_server: PostgresServer) -> Iterator[Cluster]:
    found = Cluster(postgres_server, f"doctor_{uuid.uuid4().hex[:10]}", [])
    found.sql(f"CREATE DATABASE {found.database}", database="postgres")
    found.sql(
        "CREATE TABLE items (id integer PRIMARY KEY, name text)",
        "CREATE TABLE nokey (id integer, name text)",
        "CREATE SCHEMA hidden",
        "CREATE TABLE hidden.secrets (id integer PRIMARY KEY)",
        "CREATE SCHEMA loads",
    )
    try:
        yield found
    finally:
        found.sql(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'doc%'",
            f"DROP DATABASE IF EXISTS {found.database} WITH (FORCE)",
            *(f"DROP ROLE IF EXISTS {role}" for role in found.roles),
            database="postgres",
        )


# -- a project and the doctor's answer ---------------------------------------------------------


@dataclass
class Answer:
    rc: int
    out: str
    err: str

    @property
    def groups(self) -> list[dict[str, Any]]:
        found = orjson.loads(self.out)
        assert isinstance(found, list)
        return found

    def checks(self, connector: str) -> dict[str, dict[str, str]]:
        """The checks of the first group of `connector`, by name."""
        group = next(g for g in self.groups if g["connector"] == connector)
        return {c["name"]: c for c in group["checks"]}

    def check(self, connector: str, name: str) -> dict[str, str]:
        return self.checks(connector)[name]

    def statuses(self) -> set[str]:
        return {c["status"] for g in self.groups for c in g["checks"]}


@dataclass
class Project:
    root: Path

    def write(
        self,
        tap: dict[str, Any],
        target: dict[str, Any],
        *,
        tap_name: str = "tap-postgres",
        target_name: str = "target-postgres",
    ) -> None:
        """One pipeline, `main`: tap into target (plugin entries as in meltano.yml, name given)."""
        tap = {"name": tap_name, "settings": PASSWORD_SETTING, **tap}
        target = {"name": target_name, "settings": PASSWORD_SETTING, **target}
        project = {"plugins": {"extractors": [tap], "loaders": [target]}}
        (self.root / "meltano.yml").write_bytes(orjson.dumps(project))
        pipelines = {"main": {"tap": tap["name"], "targets": [target["name"]]}}
        (self.root / "dpone.yml").write_bytes(orjson.dumps({"pipelines": pipelines}))

    def doctor(self, *args: str) -> Answer:
        out, err = io.StringIO(), io.StringIO()
        rc = cli.run(["doctor", "--project", str(self.root), "--format", "json", *args], stdout=out, stderr=err)
        answer = Answer(rc, out.getvalue(), err.getvalue())
        assert SECRET not in answer.out + answer.err
        assert WRONG not in answer.out + answer.err
        return answer

    def installed(self, *args: str) -> Answer:
        env = {**os.environ, "DPONE_LOG_LEVEL": "WARNING"}
        argv = [DPONE, "doctor", "--project", str(self.root), *args]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
        return Answer(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def jsonl_target(tmp_path: Path) -> dict[str, Any]:
    return {"name": "target-jsonl", "config": {"destination_path": str(tmp_path / "out")}}


def csv_tap(tmp_path: Path, keys: bool = True) -> dict[str, Any]:
    (tmp_path / "rows.csv").write_text("id,name\n1,a\n")
    entry: dict[str, Any] = {"entity": "rows", "path": "rows.csv"}
    if keys:
        entry["keys"] = ["id"]
    return {"name": "tap-csv", "config": {"base_path": str(tmp_path), "files": [entry]}}


def log_based(*streams: str) -> dict[str, Any]:
    return {stream: {"replication-method": "LOG_BASED"} for stream in streams}


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- connecting: the three ways it fails, on each side -------------------------------------------

Fault = Callable[[ScramServer], dict[str, Any]]
FAULTS: dict[str, tuple[Fault, str, str]] = {
    # fault: (config, the finding the detail opens with, a phrase of its hint)
    "wrong password": (lambda s: scram_config(s, WRONG), "authentication failed", "pg_hba.conf"),
    "unreachable port": (
        lambda s: {**scram_config(s), "port": unused_port(), "connect_timeout": 5},
        "host unreachable",
        "no firewall blocks the port",
    ),
    "missing database": (lambda s: scram_config(s, database="nowhere"), "database does not exist", "CREATE DATABASE"),
}


class TestConnect:
    @pytest.mark.parametrize("fault", sorted(FAULTS))
    def test_tap(self, fault: str, scram_server: ScramServer, project: Project, tmp_path: Path) -> None:
        config, finding, hint = FAULTS[fault]
        project.write({"config": config(scram_server)}, jsonl_target(tmp_path), target_name="target-jsonl")
        answer = project.doctor()
        assert answer.rc == EXIT_CONFIG, answer.err
        connect = answer.check("tap-postgres", "connect")
        assert connect["status"] == "fail"
        assert connect["detail"].startswith(f"{finding}: ")
        assert hint in connect["hint"]
        # Discovery needs the connection too: it fails, and says so, and the tap's checks still ran.
        assert answer.check("tap-postgres", "discover")["status"] == "fail"
        assert answer.check("tap-postgres", "driver psycopg")["status"] == "ok"

    @pytest.mark.parametrize("fault", sorted(FAULTS))
    def test_target(self, fault: str, scram_server: ScramServer, project: Project, tmp_path: Path) -> None:
        config, finding, hint = FAULTS[fault]
        project.write(csv_tap(tmp_path), {"config": config(scram_server)}, tap_name="tap-csv")
        answer = project.doctor()
        assert answer.rc == EXIT_CONFIG, answer.err
        connect = answer.check("target-postgres", "connect")
        assert (connect["status"], connect["detail"].split(": ")[0]) == ("fail", finding)
        assert hint in connect["hint"]
        assert answer.check("tap-csv", "discover")["status"] == "ok"

    def test_the_installed_command_shows_the_hint_and_never_the_password(
        self, scram_server: ScramServer, project: Project, tmp_path: Path
    ) -> None:
        project.write({"config": scram_config(scram_server, WRONG)}, jsonl_target(tmp_path), target_name="target-jsonl")
        answer = project.installed()
        assert answer.rc == EXIT_CONFIG
        assert WRONG not in answer.out + answer.err
        lines = answer.out.splitlines()
        failed = next(i for i, line in enumerate(lines) if line.split()[:2] == ["FAIL", "connect"])
        assert "authentication failed" in lines[failed]
        assert "hint: check user and password" in lines[failed + 1]
        assert answer.out.rstrip().endswith("something would fail: fix the FAIL lines")


# -- the tap: SELECT on the selected tables ---------------------------------------------------------


class TestTapPrivileges:
    def test_a_table_without_select(self, cluster: Cluster, project: Project, tmp_path: Path) -> None:
        role = cluster.role()
        tap = {"config": cluster.config(role, include=["public.items"])}
        project.write(tap, jsonl_target(tmp_path), target_name="target-jsonl")
        answer = project.doctor()
        assert answer.rc == EXIT_CONFIG
        check = answer.check("tap-postgres", "SELECT on tables")
        assert check["status"] == "fail"
        assert check["detail"] == f'user {role} lacks SELECT on "public"."items"'
        assert check["hint"] == f'GRANT SELECT ON "public"."items" TO "{role}"'

    def test_a_schema_without_usage(self, cluster: Cluster, project: Project, tmp_path: Path) -> None:
        role = cluster.role("GRANT SELECT ON hidden.secrets TO {role}")
        tap = {"config": cluster.config(role, include=["hidden.*"])}
        project.write(tap, jsonl_target(tmp_path), target_name="target-jsonl")
        check = project.doctor().check("tap-postgres", "SELECT on tables")
        assert check["status"] == "fail"
        assert check["hint"] == f'GRANT USAGE ON SCHEMA "hidden" TO "{role}"'

    def test_granted(self, cluster: Cluster, project: Project, tmp_path: Path) -> None:
        role = cluster.role("GRANT SELECT ON items, nokey TO {role}")
        tap = {"config": cluster.config(role, include=["public.*"])}
        project.write(tap, jsonl_target(tmp_path), target_name="target-jsonl")
        answer = project.doctor()
        assert answer.rc == 0, answer.out
        assert answer.check("tap-postgres", "SELECT on tables")["detail"] == f"2 selected table(s) readable by {role}"


# -- the tap: what LOG_BASED streams need -------------------------------------------------------------


class TestLogBased:
    def write(self, project: Project, tmp_path: Path, config: dict[str, Any], *streams: str) -> Answer:
        tap = {"config": config, "metadata": log_based(*streams)}
        project.write(tap, jsonl_target(tmp_path), target_name="target-jsonl")
        return project.doctor()

    def test_wal_level_not_logical(self, scram_server: ScramServer, project: Project, tmp_path: Path) -> None:
        answer = self.write(project, tmp_path, scram_config(scram_server), "public-items")
        assert answer.rc == EXIT_CONFIG
        checks = answer.checks("tap-postgres")
        assert checks["wal_level"]["status"] == "fail"
        assert checks["wal_level"]["detail"] == "wal_level is 'replica'; LOG_BASED streams need 'logical'"
        assert checks["wal_level"]["hint"] == "ALTER SYSTEM SET wal_level = logical; then restart the server"
        assert checks["replication slot"]["status"] == "skip"

    def test_a_role_without_replication(self, cluster: Cluster, project: Project, tmp_path: Path) -> None:
        role = cluster.role("GRANT SELECT ON items TO {role}")
        config = cluster.config(role, include=["public.items"], replication_slot=f"doc_{role}")
        answer = self.write(project, tmp_path, config, "public-items")
        assert answer.rc == EXIT_CONFIG
        check = answer.check("tap-postgres", "replication privilege")
        assert (check["status"], check["hint"]) == ("fail", f'ALTER ROLE "{role}" REPLICATION')
        assert answer.check("tap-postgres", "wal_level")["status"] == "ok"
        # wal2json cannot be tried without REPLICATION: the slot line claims only what it saw.
        slot = answer.check("tap-postgres", "replication slot")
        assert (slot["status"], slot["detail"][-11:]) == ("ok", "slots free)")

    def test_a_slot_to_create_is_tried_and_left_as_it_was(
        self, cluster: Cluster, project: Project, tmp_path: Path
    ) -> None:
        slot = f"doc_{uuid.uuid4().hex[:8]}"
        config = cluster.config(include=["public.items"], replication_slot=slot)
        answer = self.write(project, tmp_path, config, "public-items")
        assert answer.rc == 0, answer.out
        check = answer.check("tap-postgres", "replication slot")
        assert check["status"] == "ok"
        assert check["detail"].startswith(f"slot {slot} will be created on the first run (")
        assert check["detail"].endswith("slots free; wal2json loads)")
        assert cluster.slots(slot) == [] and cluster.slots("dpone_doctor%") == []

    def test_a_missing_slot_that_may_not_be_created(self, cluster: Cluster, project: Project, tmp_path: Path) -> None:
        config = cluster.config(include=["public.items"], replication_slot="doc_absent", create_replication_slot=False)
        check = self.write(project, tmp_path, config, "public-items").check("tap-postgres", "replication slot")
        assert check["status"] == "fail"
        assert "pg_create_logical_replication_slot('doc_absent', 'wal2json')" in check["hint"]

    def test_an_existing_slot(self, cluster: Cluster, project: Project, tmp_path: Path) -> None:
        slot = f"doc_{uuid.uuid4().hex[:8]}"
        cluster.sql(f"SELECT pg_create_logical_replication_slot('{slot}', 'wal2json')")
        config = cluster.config(include=["public.items"], replication_slot=slot)
        check = self.write(project, tmp_path, config, "public-items").check("tap-postgres", "replication slot")
        assert check == {
            "name": "replication slot",
            "status": "ok",
            "detail": f"slot {slot} exists (wal2json, this database)",
            "hint": "",
        }

    def test_a_slot_of_another_database(self, cluster: Cluster, project: Project, tmp_path: Path) -> None:
        slot = f"doc_{uuid.uuid4().hex[:8]}"
        cluster.sql(f"SELECT pg_create_logical_replication_slot('{slot}', 'wal2json')", database="postgres")
        config = cluster.config(include=["public.items"], replication_slot=slot)
        check = self.write(project, tmp_path, config, "public-items").check("tap-postgres", "replication slot")
        assert check["status"] == "fail"
        assert "belongs to database 'postgres'" in check["detail"]

    def test_a_table_without_primary_key(self, cluster: Cluster, project: Project, tmp_path: Path) -> None:
        config = cluster.config(replication_slot=f"doc_{uuid.uuid4().hex[:8]}")
        answer = self.write(project, tmp_path, config, "public-nokey")
        check = answer.check("tap-postgres", "LOG_BASED keys")
        assert check["status"] == "fail"
        assert check["detail"] == "no primary key on public-nokey: changes cannot be applied by key"
        assert "FULL_TABLE or INCREMENTAL" in check["hint"]


# -- the target: privileges a load uses, and its encoder ---------------------------------------------


class TestTargetPrivileges:
    def doctor(self, project: Project, tmp_path: Path, config: dict[str, Any]) -> Answer:
        project.write(csv_tap(tmp_path), {"config": config}, tap_name="tap-csv")
        return project.doctor()

    def test_a_schema_to_create_without_create_on_the_database(
        self, cluster: Cluster, project: Project, tmp_path: Path
    ) -> None:
        role = cluster.role()
        answer = self.doctor(project, tmp_path, cluster.config(role, default_target_schema="fresh"))
        assert answer.rc == EXIT_CONFIG
        check = answer.check("target-postgres", "schema privileges")
        assert check["status"] == "fail"
        assert (
            check["detail"]
            == f"schema fresh does not exist and user {role} lacks CREATE on database {cluster.database}"
        )
        assert check["hint"].startswith(f'GRANT CREATE ON DATABASE "{cluster.database}" TO "{role}"; or create the')

    def test_a_schema_to_create_with_create_on_the_database(
        self, cluster: Cluster, project: Project, tmp_path: Path
    ) -> None:
        role = cluster.role(f"GRANT CREATE ON DATABASE {cluster.database} TO {{role}}")
        answer = self.doctor(project, tmp_path, cluster.config(role, default_target_schema="fresh"))
        assert answer.check("target-postgres", "schema privileges")["status"] == "ok"
        assert answer.rc == 0, answer.out

    @pytest.mark.parametrize(("grant", "lacking"), [("USAGE", "CREATE"), ("", "USAGE, CREATE")])
    def test_an_existing_schema_without_create(
        self, grant: str, lacking: str, cluster: Cluster, project: Project, tmp_path: Path
    ) -> None:
        role = cluster.role(*([f"GRANT {grant} ON SCHEMA loads TO {{role}}"] if grant else []))
        answer = self.doctor(project, tmp_path, cluster.config(role, default_target_schema="loads"))
        check = answer.check("target-postgres", "schema privileges")
        assert check["status"] == "fail"
        assert check["hint"] == f'GRANT {lacking} ON SCHEMA "loads" TO "{role}"'

    def test_no_temporary_tables(self, cluster: Cluster, project: Project, tmp_path: Path) -> None:
        database = f"doctor_notemp_{uuid.uuid4().hex[:6]}"
        cluster.sql(f"CREATE DATABASE {database}", database="postgres")
        try:
            cluster.sql(f"REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC", database="postgres")
            role = cluster.role()
            cluster.sql(f"GRANT USAGE, CREATE ON SCHEMA public TO {role}", database=database)
            answer = self.doctor(project, tmp_path, cluster.config(role, database=database))
            check = answer.check("target-postgres", "staging (TEMPORARY)")
            assert check["status"] == "fail"
            assert check["hint"] == f'GRANT TEMPORARY ON DATABASE "{database}" TO "{role}"'
            assert answer.check("target-postgres", "schema privileges")["status"] == "ok"
        finally:
            cluster.sql(f"DROP DATABASE {database} WITH (FORCE)", database="postgres")

    def test_the_encoder_switched_off(
        self, cluster: Cluster, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(copy_rows.PURE_PYTHON_ENV, "1")
        check = self.doctor(project, tmp_path, cluster.config()).check("target-postgres", "COPY encoder")
        assert check["status"] == "ok"
        assert check["detail"].startswith(f"off ({copy_rows.PURE_PYTHON_ENV} is set)")

    def test_the_encoder_not_built(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv(copy_rows.PURE_PYTHON_ENV, raising=False)
        monkeypatch.setattr(copy_rows, "_module", lambda: None)
        check = target_doctor.encoder_check()
        assert check.status == "warn"
        assert "was not built" in check.detail
        assert "C compiler" in check.hint and "make dev" in check.hint


# -- keys for the streams a target merges ---------------------------------------------------------


class TestUpsertKeys:
    def doctor(self, project: Project, cluster: Cluster, target: dict[str, Any], **tap: Any) -> Answer:
        tap_entry = {"config": cluster.config(include=["public.nokey", "public.items"]), **tap}
        project.write(tap_entry, {"config": cluster.config(**target)})
        return project.doctor()

    def test_upsert_asked_for_a_stream_without_key(self, cluster: Cluster, project: Project) -> None:
        answer = self.doctor(project, cluster, {"load_method": "upsert"})
        assert answer.rc == EXIT_CONFIG
        check = answer.check("target-postgres", "keys for upsert")
        assert check["status"] == "fail"
        assert check["detail"] == (
            "load_method is upsert, but public-nokey has no key properties: appended on every run, never merged"
        )
        assert "table-key-properties" in check["hint"] and "append-only" in check["hint"]

    def test_upsert_by_default_warns(self, cluster: Cluster, project: Project) -> None:
        answer = self.doctor(project, cluster, {})
        assert answer.rc == 0, answer.out
        check = answer.check("target-postgres", "keys for upsert")
        assert check["status"] == "warn"
        assert "(the target's default)" in check["detail"]

    def test_keys_given_in_the_project_metadata(self, cluster: Cluster, project: Project) -> None:
        answer = self.doctor(
            project, cluster, {"load_method": "upsert"}, metadata={"public-nokey": {"table-key-properties": ["id"]}}
        )
        assert answer.rc == 0, answer.out
        assert answer.check("target-postgres", "keys for upsert")["status"] == "ok"

    def test_append_only_needs_no_key(self, cluster: Cluster, project: Project) -> None:
        answer = self.doctor(project, cluster, {"load_method": "append-only"})
        assert answer.rc == 0, answer.out
        assert "keys for upsert" not in answer.checks("target-postgres")


# -- the state store and the pipeline's lock ------------------------------------------------------


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


class TestStateStore:
    @pytest.fixture(params=["sqlite", "postgresql"])
    def backend(self, request: pytest.FixtureRequest, cluster: Cluster, tmp_path: Path) -> str:
        if request.param == "sqlite":
            return f"sqlite:///{tmp_path / 'state.db'}"
        schema = f"doc_state_{uuid.uuid4().hex[:8]}"
        return f"postgresql://postgres@{cluster.server.host}:{cluster.server.port}/{cluster.database}?schema={schema}"

    def write(self, project: Project, tmp_path: Path) -> None:
        project.write(csv_tap(tmp_path), jsonl_target(tmp_path), tap_name="tap-csv", target_name="target-jsonl")

    @pytest.mark.parametrize("holder", ["live", "stale"])
    def test_a_locked_pipeline(self, holder: str, backend: str, project: Project, tmp_path: Path) -> None:
        self.write(project, tmp_path)
        store = open_store(backend)
        try:
            lock = new_lock("main", "run-1")
            if holder == "stale":
                lock = LockInfo("main", "run-1", dead_pid(), socket.gethostname(), utc_now())
            store.acquire_lock(lock)
        finally:
            store.close()
        answer = project.doctor("--state-backend", backend)
        assert answer.rc == EXIT_CONFIG
        assert answer.check("dpone", "state store")["status"] == "ok"
        check = next(c for g in answer.groups if g["pipeline"] == "main" for c in g["checks"] if c["name"] == "lock")
        assert check["status"] == "fail"
        assert "locked by run run-1" in check["detail"]
        if holder == "stale":
            assert check["detail"].startswith("stale: ")
            assert check["hint"] == "the holder is gone: break the lock with `dpone state unlock main`"
        else:
            assert check["detail"].endswith(": a run holds it, and a run now would stop at once")
            assert (
                check["hint"]
                == "wait for that run to end; only once its holder is surely gone, `dpone state unlock main`"
            )

    def test_an_unreachable_state_store(self, project: Project, tmp_path: Path) -> None:
        self.write(project, tmp_path)
        backend = f"postgresql://postgres:{SECRET}@127.0.0.1:{unused_port()}/postgres"
        answer = project.doctor("--state-backend", backend)
        assert answer.rc == EXIT_CONFIG
        check = answer.check("dpone", "state store")
        assert check["status"] == "fail"
        assert "reachable" in check["hint"] or "server is up" in check["hint"]
        pipeline = next(g for g in answer.groups if g["pipeline"] == "main" and g["connector"] == "dpone")
        assert [(c["name"], c["status"]) for c in pipeline["checks"]] == [("state", "skip")]


# -- nothing wrong --------------------------------------------------------------------------------------


class TestAllGreen:
    def test_log_based_into_postgres(self, cluster: Cluster, project: Project) -> None:
        slot = f"doc_{uuid.uuid4().hex[:8]}"
        tap = {"config": cluster.config(include=["public.items"], replication_slot=slot)}
        project.write({**tap, "metadata": log_based("public-items")}, {"config": cluster.config(load_method="upsert")})
        answer = project.doctor()
        assert answer.rc == 0, answer.out
        assert answer.statuses() == {"ok"}
        assert [(g["pipeline"], g["connector"]) for g in answer.groups] == [
            (None, "dpone"),
            ("main", "dpone"),
            ("main", "tap-postgres"),
            ("main", "target-postgres"),
        ]
        assert list(answer.checks("tap-postgres")) == [
            "executable",
            "discover",
            "driver psycopg",
            "connect",
            "clock",
            "SELECT on tables",
            "wal_level",
            "replication privilege",
            "replication slot",
            "LOG_BASED keys",
        ]
        assert list(answer.checks("target-postgres")) == [
            "executable",
            "driver psycopg",
            "connect",
            "clock",
            "schema privileges",
            "staging (TEMPORARY)",
            "COPY encoder",
            "keys for upsert",
        ]

    def test_the_installed_command_with_a_password(self, scram_server: ScramServer, project: Project) -> None:
        config = scram_config(scram_server)
        project.write({"config": config}, {"config": {**config, "default_target_schema": "public"}})
        backend = f"postgresql://doctor_user:{SECRET}@127.0.0.1:{scram_server.port}/doctor?schema=dpone_state"
        answer = project.installed("main", "--state-backend", backend)
        assert answer.rc == 0, answer.out + answer.err
        assert SECRET not in answer.out + answer.err
        assert "state store          postgresql://doctor_user:***@127.0.0.1" in answer.out
        assert answer.out.rstrip().endswith("0 failed, 0 skipped; nothing would fail")
        listed = project.installed("main", "--state-backend", backend, "--format", "json")
        assert listed.rc == 0
        assert SECRET not in listed.out + listed.err
        assert {c["status"] for g in orjson.loads(listed.out) for c in g["checks"]} == {"ok"}
