"""The bcp bulk path: a batch written as a character-format file and loaded by the bcp tool.

Microsoft's `bcp` (mssql-tools18) reads UTF-16 (`-w`); FreeTDS's `freebcp` reads UTF-8 (`-c`,
its client charset set in a private freetds.conf). Fields end with 0x1F and rows with 0x1E, an
empty field is NULL and a lone NUL character is the empty string (bcp's own convention); a
batch holding one of those three characters in a value cannot be written so, and goes through
the parameter arrays instead.

bcp takes the password on its command line (neither tool reads it from anywhere else), where
other users of the machine can see it in the process list: the docs say so, and the setting is
off by default.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dpone_drivers.mssql import SQL_LOGIN, is_freetds
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError, TransientError

log = logging.getLogger(__name__)
FIELD_END = "\x1f"
ROW_END = "\x1e"
EMPTY = "\x00"
_RESERVED = (FIELD_END, ROW_END, EMPTY)
_TRANSIENT_SIGNS = ("tcp provider", "timeout", "connection", "deadlock", "unable to connect")
_CONFIG_SIGNS = ("login failed", "cannot open database", "permission", "invalid object name")


def field(value: Any) -> str | None:
    """A value as bcp's character format writes it; None when the format cannot hold it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str):
        if value == "":
            return EMPTY
        return None if any(c in value for c in _RESERVED) else value
    if isinstance(value, bytes):
        return value.hex() if value else EMPTY  # character format reads binary as hex digits
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)  # int, date


def data_file(rows: Sequence[Sequence[Any]]) -> str | None:
    """The whole file's text, or None when some value cannot be written in character format."""
    lines = []
    for row in rows:
        fields = [field(v) for v in row]
        if None in fields:
            return None
        lines.append(FIELD_END.join(fields))  # type: ignore[arg-type]
        lines.append(ROW_END)
    return "".join(lines)


@dataclass
class BcpTool:
    path: str
    freetds: bool
    config: Mapping[str, Any]
    redactor: Redactor

    @classmethod
    def find(cls, config: Mapping[str, Any], redactor: Redactor) -> BcpTool:
        if str(config.get("authentication") or SQL_LOGIN) != SQL_LOGIN or config.get("odbc_connection_string"):
            raise ConfigError(
                "bulk_method bcp needs host, port, user and password settings with a SQL Server login "
                "(not odbc_connection_string or Entra ID)"
            )
        wanted = config.get("bcp_path")
        # The FreeTDS driver goes with FreeTDS's own tool; Microsoft's bcp reads none of its settings.
        tools = ("freebcp", "bcp") if is_freetds(config) else ("bcp", "freebcp")
        path = str(wanted) if wanted else next((found for t in tools if (found := shutil.which(t))), None)
        if path is None or not os.access(path, os.X_OK):
            raise ConfigError(
                "bulk_method bcp: no bcp tool found (install mssql-tools18's bcp, or FreeTDS's freebcp: "
                "apt-get install freetds-bin; or set bcp_path)"
            )
        # The arguments follow the tool that runs, whichever driver the connection uses.
        return cls(path, os.path.basename(path).startswith("freebcp"), config, redactor)

    def command(self, table: str, path: str) -> list[str]:
        """The bcp command line (it holds the password: never log it unredacted)."""
        c = self.config
        host, port = str(c.get("host") or "localhost"), int(c.get("port") or 1433)
        login = ["-U", str(c.get("user") or ""), "-P", str(c.get("password") or "")]
        database = ["-D" if self.freetds else "-d", str(c["database"])] if c.get("database") else []
        if self.freetds:
            args = [self.path, table, "in", path, "-S", "dpone", *login, "-c", "-t", FIELD_END, "-r", ROW_END]
            return [*args, "-b", "100000", "-h", "TABLOCK", *database]
        server = host if "\\" in host else f"tcp:{host},{port}"  # a named instance is found by name
        args = [self.path, table, "in", path, "-S", server, *login, "-w", "-t", FIELD_END]
        args += ["-r", ROW_END, "-b", "100000", "-h", "TABLOCK", *database]
        # bcp 18 encrypts by default (mandatory); -Y says otherwise, as the encrypt setting does.
        encrypt = str(c.get("encrypt") or "yes")
        if encrypt in ("strict", "no", "optional"):
            args.append({"strict": "-Ys", "no": "-Yo", "optional": "-Yo"}[encrypt])
        if c.get("trust_server_certificate"):
            args.append("-u")
        return args

    def load(self, table: str, names: list[str], rows: Sequence[Sequence[Any]], stream: str) -> bool:
        """Load `rows` into `table` (a ##temp the tool's own session can see); False when they
        cannot be written in character format (the caller binds them instead)."""
        text = data_file(rows)
        if text is None:
            log.info("stream %s: a value holds a bcp terminator; this batch goes through parameter arrays", stream)
            return False
        with tempfile.TemporaryDirectory(prefix="dpone-bcp-") as folder:
            path = os.path.join(folder, "batch.dat")
            with open(path, "wb") as fh:
                fh.write(text.encode("utf-8" if self.freetds else "utf-16-le"))
            env = {**os.environ, **self._freetds_env(folder)} if self.freetds else None
            result = subprocess.run(  # a fixed tool and arguments, no shell
                self.command(table.replace("[", "").replace("]", ""), path),
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
        if result.returncode != 0 or "error" in result.stdout.lower():
            raise self._error(result.stdout + result.stderr, stream)
        return True

    def _freetds_env(self, folder: str) -> dict[str, str]:
        """A private freetds.conf naming the server `dpone`: freebcp takes no host:port or charset flags."""
        c = self.config
        encrypt = str(c.get("encrypt") or "yes")
        conf = os.path.join(folder, "freetds.conf")
        with open(conf, "w", encoding="utf-8") as fh:
            fh.write(
                "[dpone]\n"
                f"\thost = {c.get('host') or 'localhost'}\n\tport = {int(c.get('port') or 1433)}\n"
                "\ttds version = 7.4\n\tclient charset = UTF-8\n"
                f"\tencryption = {'off' if encrypt in ('no', 'optional') else 'require'}\n"
            )
        return {"FREETDSCONF": conf}

    def _error(self, output: str, stream: str) -> Exception:
        text = self.redactor(" ".join(output.split()))[-2000:]
        message = f"stream {stream!r}: bcp failed: {text or 'no output'}"
        lowered = text.lower()
        if any(sign in lowered for sign in _CONFIG_SIGNS):
            return ConfigError(message)
        if any(sign in lowered for sign in _TRANSIENT_SIGNS):
            return TransientError(message)
        return DataError(message)
