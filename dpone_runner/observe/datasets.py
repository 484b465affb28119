"""Where a stream lives, named as OpenLineage names datasets: a namespace for the system, a name in it.

    postgres://host:5432      database.schema.table        (tap-postgres, target-postgres)
    sqlserver://host:1433     database.schema.table        (tap-mssql, target-mssql)
    clickhouse://host:8123    database.table               (tap-clickhouse, target-clickhouse)
    bigquery                  project.dataset.table        (tap-bigquery, target-bigquery)
    kafka://broker:9092       topic                        (tap-kafka, target-kafka)
    file                      /absolute/path               (tap-csv files, target-jsonl files)
    duckdb:///abs/db.duckdb   schema.table                 (target-duckdb)
    https://api.example.com   /path of the stream          (tap-rest)
    dpone://<plugin name>     stream                       (anything else)

Only addressing settings are read (host, port, database, project, dataset, paths, topics), each by
name: a namespace never carries a user, a password or a token, whatever else a config holds. A
DSN is read for its host, port and database alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_KV = re.compile(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")
_FAMILIES = ("postgres", "mssql", "clickhouse", "bigquery", "kafka", "csv", "jsonl", "duckdb", "rest")
_DEFAULT_PORTS = {"postgres": 5432, "mssql": 1433}
_SCHEMES = {"postgres": "postgres", "mssql": "sqlserver", "clickhouse": "clickhouse"}


@dataclass(frozen=True, slots=True)
class Address:
    namespace: str
    name: str


def family(executable: str, plugin_name: str) -> str | None:
    """The connector family from the executable's name (a plugin may be renamed, not its program)."""
    for candidate in (Path(executable).name, plugin_name):
        for prefix in ("tap-", "target-"):
            if candidate.startswith(prefix) and candidate[len(prefix) :] in _FAMILIES:
                return candidate[len(prefix) :]
    return None


class Addressing:
    """The datasets of one connector: what its streams read (a tap) or where they land (a target)."""

    def __init__(self, plugin_name: str, executable: str, config: Mapping[str, Any], root: Path) -> None:
        self.plugin_name = plugin_name
        self.family = family(executable, plugin_name)
        self.config = config
        self.root = root  # connectors run in the project directory: relative paths are its

    def source(self, stream: str) -> Address:
        found = _guarded(self._source, stream)
        return found or self.generic(stream)

    def destination(self, stream: str) -> Address:
        found = _guarded(self._destination, stream)
        return found or self.generic(stream)

    def generic(self, stream: str) -> Address:
        return Address(f"dpone://{self.plugin_name}", stream)

    # -- taps ----------------------------------------------------------------------
    def _source(self, stream: str) -> Address | None:
        kind, config = self.family, self.config
        if kind in ("postgres", "mssql"):
            schema, _, table = stream.partition("-")
            return self._sql(f"{schema}.{table}" if table else stream)
        if kind == "clickhouse":
            database, _, table = stream.partition("-")
            return self._sql(f"{database}.{table}" if table else stream, with_database=False)
        if kind == "bigquery":
            dataset, _, table = stream.partition("-")
            project = _text(config.get("project"))
            if not project:
                return None
            return Address("bigquery", f"{project}.{dataset}.{table}" if table else f"{project}.{stream}")
        if kind == "kafka":
            topics = {
                _text(s.get("stream")) or _text(s.get("topic")): _text(s.get("topic"))
                for s in _dicts(config, "streams")
            }
            return self._kafka(topics.get(stream) or stream)
        if kind == "csv":
            for entry in _dicts(config, "files"):
                if entry.get("entity") == stream and _text(entry.get("path")):
                    base = self._path(_text(config.get("base_path")) or ".")
                    return Address("file", str(base / _text(entry.get("path"))))
            return None
        if kind == "rest":
            origin = _origin(_text(config.get("api_url")))
            if origin is None:
                return None
            paths = {_text(s.get("name")): _text(s.get("path")) for s in _dicts(config, "streams")}
            return Address(origin, paths.get(stream) or stream)
        return None

    # -- targets -------------------------------------------------------------------
    def _destination(self, stream: str) -> Address | None:
        kind, config = self.family, self.config
        if kind in ("postgres", "mssql", "clickhouse", "bigquery", "duckdb"):
            from dpone.targets.framework.loader import table_name  # noqa: PLC0415 - the targets' own naming

            table = table_name(stream, config.get("table_name_map"))
            if kind == "bigquery":
                project, dataset = _text(config.get("project")), _text(config.get("dataset"))
                return Address("bigquery", f"{project}.{dataset}.{table}") if project and dataset else None
            if kind == "duckdb":
                schema = _text(config.get("default_target_schema")) or "main"
                database = self._path(_text(config.get("filepath")) or "dpone.duckdb")
                return Address(f"duckdb://{database}", f"{schema}.{table}")
            if kind == "clickhouse":
                return self._sql(table, with_database=True)
            schema = _text(config.get("default_target_schema")) or ("public" if kind == "postgres" else "dbo")
            return self._sql(f"{schema}.{table}")
        if kind == "kafka":
            topics = config.get("topic_map")
            if isinstance(topics, Mapping) and _text(topics.get(stream)):
                return self._kafka(_text(topics[stream]))
            template = _text(config.get("topic")) or "{stream}"
            return self._kafka(template.replace("{stream}", re.sub(r"[^a-zA-Z0-9._-]", "_", stream)))
        if kind == "jsonl":
            root = self._path(_text(config.get("destination_path")) or "output")
            return Address("file", str(root / f"{stream.replace('/', '_')}.jsonl"))
        return None

    # -- shared ----------------------------------------------------------------------
    def _sql(self, name: str, *, with_database: bool = True) -> Address | None:
        """`scheme://host:port` and `database.name` from host/port/database, or from a DSN's."""
        kind = self.family or ""
        host, port, database = self._server()
        if not host:
            return None
        if kind == "clickhouse":
            secure = self.config.get("secure") is True
            port = port or (8443 if secure else 8123)
            database = database or "default"
        else:
            port = port or _DEFAULT_PORTS.get(kind)
        prefix = f"{database}." if with_database and database else ""
        return Address(f"{_SCHEMES[kind]}://{host}:{port}", f"{prefix}{name}")

    def _server(self) -> tuple[str, int | None, str]:
        config = self.config
        host, port = _text(config.get("host")), _port(config.get("port"))
        database = _text(config.get("database")) or _text(config.get("dbname"))
        dsn = _text(config.get("dsn")) or _text(config.get("odbc_connection_string"))
        if dsn and not host:
            host, port, database = _from_dsn(dsn, port, database)
        return host, port, database

    def _kafka(self, topic: str) -> Address | None:
        # The first bootstrap server; an entry may carry a listener name (PLAINTEXT://host:port).
        first = _text(self.config.get("bootstrap_servers")).split(",")[0].strip().rpartition("://")[2]
        if not first:
            return None
        return Address(f"kafka://{first if ':' in first else first + ':9092'}", topic)

    def _path(self, text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else (self.root / path)


def _guarded(fn: Any, stream: str) -> Address | None:
    """A config of an unexpected shape names no dataset rather than failing the report."""
    try:
        found: Address | None = fn(stream)
    except (TypeError, ValueError, AttributeError):
        return None
    return found


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _port(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.strip().isdigit() else None


def _dicts(config: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = config.get(key)
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _origin(url: str) -> str | None:
    """scheme://host[:port] of a URL, without the user and password it may hold."""
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return None
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _from_dsn(dsn: str, port: int | None, database: str) -> tuple[str, int | None, str]:
    """Host, port and database of a URL DSN or a key=value one (libpq, ODBC); nothing else of it."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        path = parts.path.strip("/")
        return parts.hostname or "", parts.port or port, path or database
    pairs = {k.lower(): v.strip("'") for k, v in _KV.findall(dsn.replace(";", " "))}
    server = pairs.get("host") or pairs.get("server") or ""
    server = server.removeprefix("tcp:")
    if "," in server:  # SQL Server's host,port
        server, _, given = server.partition(",")
        port = _port(given) or port
    return server, _port(pairs.get("port")) or port, pairs.get("dbname") or pairs.get("database") or database
