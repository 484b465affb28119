"""SQL Server connections over ODBC and error classification; the only module that imports pyodbc.

The default driver is Microsoft ODBC Driver 18: a registered one (`odbcinst -q -d`) when unixODBC
knows it, else the library the `mssql-python-odbc` wheel ships, named by its path (unixODBC loads a
driver from a path without any odbcinst.ini). FreeTDS is the alternative (`driver: FreeTDS`).
"""

from __future__ import annotations

import functools
import glob
import os
import re
from collections.abc import Mapping
from typing import Any

from dpone_drivers.ports import check_port
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError, DponeError, TransientError
from dpone_protocol.settings import Setting

DRIVER_18 = "ODBC Driver 18 for SQL Server"
FREETDS = "FreeTDS"
SQL_LOGIN = "SqlPassword"
# The driver's own words for Entra ID (Azure AD) sign-in, passed as its Authentication keyword.
ENTRA_MODES = (
    "ActiveDirectoryPassword",
    "ActiveDirectoryServicePrincipal",
    "ActiveDirectoryMsi",
    "ActiveDirectoryDefault",
    "ActiveDirectoryIntegrated",
)
ENCRYPT_MODES = ("yes", "no", "strict", "mandatory", "optional")

CONNECTION_SETTINGS: tuple[Setting, ...] = (
    Setting("host", "string", "Server host name or address (an instance as host\\instance).", default="localhost"),
    Setting("port", "integer", "Server port.", default=1433),
    Setting("database", "string", "Database name."),
    Setting(
        "user",
        "string",
        "Login name; for Entra ID: the user, or the client id of a service principal or a user-assigned "
        "managed identity.",
    ),
    Setting("password", "string", "Password (or a service principal's client secret).", secret=True),
    Setting(
        "authentication",
        "string",
        "SqlPassword (a SQL Server login), or an Entra ID mode of the ODBC driver: " + ", ".join(ENTRA_MODES) + ".",
        default=SQL_LOGIN,
        choices=(SQL_LOGIN, *ENTRA_MODES),
    ),
    Setting(
        "encrypt",
        "string",
        "Encrypt the connection: yes (the driver's default), strict (TDS 8), or no.",
        default="yes",
        choices=ENCRYPT_MODES,
    ),
    Setting(
        "trust_server_certificate",
        "boolean",
        "Accept the server's certificate without checking it (a self-signed certificate; not for production).",
        default=False,
    ),
    Setting(
        "driver",
        "string",
        f"ODBC driver: {DRIVER_18!r} (registered, or the one the mssql-python-odbc package ships), "
        f"{FREETDS!r}, another registered driver's name, or a driver library's path.",
        default=DRIVER_18,
    ),
    Setting(
        "odbc_connection_string",
        "string",
        "A full ODBC connection string instead of the fields above (DRIVER may be left out: the driver setting's).",
        secret=True,
    ),
    Setting("connect_timeout", "integer", "Seconds to wait for a connection.", default=30),
)
SECRET_KEYS = ("password", "odbc_connection_string")

# SQL Server error numbers by what the caller should do. Transient: deadlock victim, lock and
# resource limits, and Azure SQL's reconfiguration and throttling errors (retry documented).
_TRANSIENT_NUMBERS = {
    1205,  # deadlock victim
    1222,  # lock request timeout
    4060,  # database unavailable (also Azure failover)
    10053,
    10054,
    10060,  # transport-level errors
    10928,
    10929,  # resource limits
    40197,
    40501,
    40613,  # Azure SQL: service busy / reconfiguring / unavailable
    49918,
    49919,
    49920,
    8645,  # memory grant timeout
}
_PERMISSION_NUMBERS = {229, 230, 262, 297, 300, 15247, 1088, 3704, 15151}
_CONFIG_NUMBERS = {
    18456,  # login failed
    18452,  # untrusted domain login
    18486,  # account locked
    18488,  # must change password
    4064,  # cannot open default database
    911,  # database does not exist
    208,  # invalid object name
    207,  # invalid column name
    2760,  # schema does not exist
    15007,  # login does not exist
    102,  # syntax error: a name or setting produced SQL the server refuses
    156,
}
_DATA_NUMBERS = {
    8114,  # error converting data type
    8115,  # arithmetic overflow
    220,
    232,
    241,  # conversion from character string failed (date/time)
    242,  # out-of-range datetime
    245,
    248,
    2627,  # primary key violation
    2601,  # unique index violation
    515,  # NULL into NOT NULL
    547,  # constraint conflict
    8152,  # string or binary data would be truncated (old message)
    2628,  # ... truncated in table x, column y
    9455,
    13609,  # JSON text is not properly formatted
    8672,  # MERGE matched a target row more than once
    8169,  # conversion to uniqueidentifier failed
    8178,
}
_NUMBER_RE = re.compile(r"\((\d{2,6})\)(?=\s*(?:\(SQL\w+\)|$))")
_VENDOR_RE = re.compile(r"(?:\[[^\]]*\])+")
_BRACED_OK = re.compile(r"[^;{}=\s]*")


def pyodbc() -> Any:
    try:
        import pyodbc as driver  # noqa: PLC0415 - lazy: `--help` must not need the driver
    except ImportError as exc:
        if "libodbc" in str(exc):
            raise ConfigError(
                "SQL Server connectors need unixODBC's library (libodbc.so.2): apt-get install unixodbc"
            ) from None
        raise ConfigError("SQL Server connectors need pyodbc: pip install 'dpone[mssql]'") from None
    return driver


def _braced(value: str) -> str:
    """An ODBC connection-string value: plain when it can be, else in braces with `}` doubled."""
    return value if _BRACED_OK.fullmatch(value) else "{" + value.replace("}", "}}") + "}"


@functools.lru_cache(maxsize=8)
def bundled_driver_18() -> str | None:
    """The Driver 18 library of the mssql-python-odbc wheel for this system, when installed."""
    try:
        import mssql_python_odbc  # noqa: PLC0415
    except ImportError:
        return None
    family = "rhel" if os.path.exists("/etc/redhat-release") else "debian_ubuntu"
    pattern = os.path.join(mssql_python_odbc.get_libs_dir(), "linux", family, os.uname().machine, "lib")
    found = sorted(glob.glob(os.path.join(pattern, "libmsodbcsql-18*.so*")))
    return found[-1] if found else None


def resolve_driver(name: str) -> str:
    """The DRIVER value to send: a registered driver's name as is, else a library's path."""
    if os.sep in name:
        if not os.path.exists(name):
            raise ConfigError(f"setting 'driver': no ODBC driver library at {name}")
        return name
    registered = pyodbc().drivers()
    if name in registered:
        return name
    if name == DRIVER_18 and (path := bundled_driver_18()) is not None:
        return path
    if name == FREETDS:
        libs = glob.glob("/usr/lib/*/odbc/libtdsodbc.so") + glob.glob("/usr/lib*/libtdsodbc.so*")
        if libs:
            return sorted(libs)[0]
    hint = (
        "pip install 'dpone[mssql]' (it ships Microsoft ODBC Driver 18)"
        if name == DRIVER_18
        else "apt-get install tdsodbc"
        if name == FREETDS
        else "register it with odbcinst, or give the library's path"
    )
    known = ", ".join(registered) or "none"
    raise ConfigError(f"ODBC driver {name!r} is not installed (registered drivers: {known}); {hint}")


_DRIVER_KEY = re.compile(r"(?:^|;)\s*driver\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)", re.IGNORECASE)


def driver_of(config: Mapping[str, Any]) -> str:
    """The driver a config names: the connection string's DRIVER=, else the driver setting."""
    found = _DRIVER_KEY.search(str(config.get("odbc_connection_string") or ""))
    if found:
        return found.group(1).strip().removeprefix("{").removesuffix("}").replace("}}", "}")
    return str(config.get("driver") or DRIVER_18)


def is_freetds(config: Mapping[str, Any]) -> bool:
    driver = driver_of(config)
    return driver.lower() == FREETDS.lower() or "tdsodbc" in driver


def setting(config: Mapping[str, Any], key: str, default: int) -> int:
    """An integer setting; absent is the default, 0 or less is refused (not taken for the default)."""
    value = config.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"setting {key!r} must be a positive integer; got {value!r}")
    return value


def connection_string(config: Mapping[str, Any], application: str) -> str:
    """The ODBC connection string for `config`; it holds the password: never log it (redact)."""
    driver_name = driver_of(config)
    timeout = setting(config, "connect_timeout", 30)
    if config.get("odbc_connection_string"):
        text = str(config["odbc_connection_string"]).strip().rstrip(";")
        # The string's own DRIVER= is resolved like the setting: Driver 18 from the wheel when
        # unixODBC does not know it (the form the Azure portal gives names it).
        text = _DRIVER_KEY.sub("", text).strip(";")
        return f"DRIVER={_braced(resolve_driver(driver_name))};{text}"
    port = config.get("port")
    port = 1433 if port is None else port
    check_port(port, "setting 'port'")
    host = str(config.get("host") or "localhost")
    mode = str(config.get("authentication") or SQL_LOGIN)
    parts: dict[str, str] = {"DRIVER": resolve_driver(driver_name)}
    if is_freetds(config):
        if mode != SQL_LOGIN:
            raise ConfigError(f"authentication {mode} needs Microsoft ODBC Driver 18; FreeTDS signs in with SQL logins")
        parts |= {"SERVER": host, "PORT": str(int(port)), "TDS_Version": "7.4", "ClientCharset": "UTF-8"}
        encrypt = str(config.get("encrypt") or "yes")
        parts["Encryption"] = "off" if encrypt in ("no", "optional") else "require"
    else:
        # A named instance is found by the browser service: no port then.
        parts["SERVER"] = host if "\\" in host else f"tcp:{host},{int(port)}"
        parts["Encrypt"] = str(config.get("encrypt") or "yes")
        parts["TrustServerCertificate"] = "yes" if config.get("trust_server_certificate") else "no"
        parts["APP"] = application
        parts["LoginTimeout"] = str(timeout)
        if mode != SQL_LOGIN:
            parts["Authentication"] = mode
    if config.get("database"):
        parts["DATABASE"] = str(config["database"])
    if config.get("user"):
        parts["UID"] = str(config["user"])
    if config.get("password"):
        parts["PWD"] = str(config["password"])
    return ";".join(f"{key}={_braced(value)}" for key, value in parts.items())


def connect(config: Mapping[str, Any], redactor: Redactor, application: str, *, autocommit: bool = True) -> Any:
    """A connection; errors are typed and redacted."""
    driver = pyodbc()
    text = connection_string(config, application)
    secret = re.search(r"(?:^|;)\s*pwd\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)", text, re.IGNORECASE)
    if secret:
        redactor.add([secret.group(1).strip("{}").replace("}}", "}")])
    timeout = setting(config, "connect_timeout", 30)
    where = "" if config.get("odbc_connection_string") else f" at {config.get('host') or 'localhost'}"
    try:
        conn = driver.connect(text, autocommit=autocommit, timeout=timeout)
    except driver.Error as exc:
        raise classify(exc, redactor, f"connecting to SQL Server{where}") from None
    if is_freetds(config):
        # FreeTDS hands narrow text over as UTF-8 (ClientCharset); wide text is UTF-16 as usual.
        conn.setdecoding(driver.SQL_CHAR, encoding="utf-8")
        conn.setencoding(encoding="utf-8")
    return conn


def error_number(exc: Exception) -> int | None:
    """SQL Server's error number in a driver message: `... (2627) (SQLExecDirectW)`."""
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    numbers = _NUMBER_RE.findall(text)
    return int(numbers[0]) if numbers else None


def sqlstate(exc: Exception) -> str:
    return str(exc.args[0]) if exc.args and isinstance(exc.args[0], str) and len(exc.args[0]) == 5 else ""


def message_of(exc: Exception, redactor: Redactor) -> str:
    """The server's words, without the driver's [vendor][driver] prefixes and call names."""
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    text = _VENDOR_RE.sub("", text)
    text = re.sub(r"\s*\((?:SQL\w+)\)", "", text)
    return redactor(" ".join(text.split()))


def classify(exc: Exception, redactor: Redactor, doing: str) -> DponeError:
    """A driver error as the kind of error the caller should act on, secrets removed."""
    driver = pyodbc()
    number = error_number(exc)
    state = sqlstate(exc)
    message = f"{doing}: {message_of(exc, redactor)}"
    if number in _PERMISSION_NUMBERS:
        return ConfigError(f"{message} ({privilege_hint(number)})")
    if number in _TRANSIENT_NUMBERS or state in ("40001", "HYT00", "HYT01") or state.startswith("08"):
        return TransientError(message)
    if number in _CONFIG_NUMBERS or state in ("28000", "IM002", "IM003", "42S02", "42S22", "3D000"):
        return ConfigError(message)
    if "can't open lib" in message.lower():  # unixODBC could not load the driver library
        return ConfigError(f"{message} (the ODBC driver named is not installed or not loadable)")
    if "did not supply an error" in message:
        # An ODBC call that failed without diagnostics: an interrupted or dropped call, not the data.
        return TransientError(message)
    if number in _DATA_NUMBERS or state.startswith(("22", "23")):
        return DataError(message)
    if isinstance(exc, (driver.OperationalError, driver.InterfaceError)):
        return TransientError(message)
    if isinstance(exc, driver.ProgrammingError):
        return ConfigError(message)
    return DataError(message)


def privilege_hint(number: int | None) -> str:
    if number == 262:
        return "GRANT CREATE TABLE TO the user, and ALTER ON SCHEMA::<schema>"
    if number in (229, 230):
        return "GRANT the permission the statement names ON the object or its schema to the user"
    if number in (15247, 15151):
        return "the user needs ALTER on the object"
    return "the user needs the permission the statement names"


def driver_errors() -> tuple[type[Exception], ...]:
    return (pyodbc().Error,)
