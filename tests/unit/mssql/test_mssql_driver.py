"""dpone_drivers.mssql: connection strings, driver resolution and error kinds, without a server."""

from __future__ import annotations

import types
from typing import Any

import pytest

from dpone_drivers import mssql
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError, TransientError
from tests.tools.recording_odbc import odbc_error


@pytest.fixture
def unregistered(monkeypatch: pytest.MonkeyPatch) -> None:
    """unixODBC knows no driver: Driver 18 comes from the mssql-python-odbc wheel, by its path."""
    import pyodbc

    fake = types.SimpleNamespace(**{n: getattr(pyodbc, n) for n in dir(pyodbc) if not n.startswith("__")})
    fake.drivers = lambda: []
    monkeypatch.setattr(mssql, "pyodbc", lambda: fake)


def test_fields_make_a_driver_18_string_with_braced_values(unregistered: None) -> None:
    text = mssql.connection_string({"host": "db", "user": "u", "password": "p;w}d", "database": "x y"}, "app")
    parts = text.split(";", 1)
    assert parts[0].startswith("DRIVER=/") and "libmsodbcsql-18" in parts[0]
    assert parts[1] == (
        "SERVER=tcp:db,1433;Encrypt=yes;TrustServerCertificate=no;APP=app;LoginTimeout=30;DATABASE={x y};UID=u;"
        "PWD={p;w}}d}"
    )


@pytest.mark.parametrize(
    "given",
    [
        "Driver={ODBC Driver 18 for SQL Server};Server=tcp:db,1433;UID=u;PWD=p",
        "Server=tcp:db,1433;UID=u;PWD=p",
        "Server=tcp:db,1433;driver = ODBC Driver 18 for SQL Server;UID=u;PWD=p",
    ],
)
def test_a_connection_strings_driver_18_is_found_in_the_wheel_too(unregistered: None, given: str) -> None:
    # The form the Azure portal gives names the driver; unixODBC may not know it by that name.
    text = mssql.connection_string({"odbc_connection_string": given}, "app")
    assert text.startswith("DRIVER=/") and text.count("DRIVER=") + text.count("driver") == 1
    assert "Server=tcp:db,1433" in text and "PWD=p" in text


def test_freetds_is_recognized_in_a_connection_string() -> None:
    assert mssql.is_freetds({"odbc_connection_string": "DRIVER={FreeTDS};Server=db"})
    assert mssql.is_freetds({"driver": "FreeTDS"})
    assert not mssql.is_freetds({"odbc_connection_string": "Server=db"})


def test_an_unknown_driver_says_what_is_installed(unregistered: None) -> None:
    with pytest.raises(ConfigError, match="ODBC driver 'Acme SQL' is not installed"):
        mssql.connection_string({"driver": "Acme SQL"}, "app")


@pytest.mark.parametrize(
    ("error", "kind", "says"),
    [
        (odbc_error("28000", "Login failed for user 'u'.", 18456, "InterfaceError"), ConfigError, "Login failed"),
        (odbc_error("42000", "CREATE TABLE permission denied in database 'dw'.", 262), ConfigError, "GRANT CREATE"),
        (odbc_error("40001", "Transaction (Process ID 51) was deadlocked", 1205), TransientError, "deadlocked"),
        (odbc_error("HYT00", "Login timeout expired", 0, "OperationalError"), TransientError, "Login timeout"),
        (odbc_error("23000", "Violation of PRIMARY KEY constraint", 2627, "IntegrityError"), DataError, "PRIMARY KEY"),
        (odbc_error("22003", "Arithmetic overflow error", 8115, "DataError"), DataError, "overflow"),
        (
            odbc_error("01000", "[unixODBC][Driver Manager]Can't open lib 'x' : file not found", 0, "Error"),
            ConfigError,
            "not installed or not loadable",
        ),
        (odbc_error("HY000", "The driver did not supply an error!", 0, "Error"), TransientError, "did not supply"),
    ],
)
def test_errors_are_typed_by_what_to_do(error: Exception, kind: type[Exception], says: str) -> None:
    typed = mssql.classify(error, Redactor(), "loading")
    assert isinstance(typed, kind) and says in str(typed)
    assert "[Microsoft]" not in str(typed) and "(SQLExecDirectW)" not in str(typed)


def test_a_password_in_a_driver_message_is_redacted() -> None:
    redactor = Redactor(["s3cr3t-pw"])
    typed: Any = mssql.classify(odbc_error("28000", "Login failed; PWD=s3cr3t-pw", 18456), redactor, "connecting")
    assert "s3cr3t-pw" not in str(typed)
