"""Config files, ${ENV} expansion, and redaction of secrets in text, logs and printed config."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dpone_protocol.config import (
    MASK,
    RedactingFilter,
    Redactor,
    expand_env,
    install_redaction,
    is_secret_name,
    load_config,
    load_json_file,
    redact_config,
)
from dpone_protocol.errors import ConfigError


def _write(tmp_path: Path, name: str, content: Any) -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


# -- loading and ${ENV} expansion ----------------------------------------------------------


def test_load_config_merges_files_later_wins(tmp_path: Path) -> None:
    base = _write(tmp_path, "base.json", {"host": "localhost", "port": 5432, "schema": "public"})
    override = _write(tmp_path, "override.json", {"port": 6543, "user": "etl"})
    assert load_config([base, str(override)], environ={}) == {
        "host": "localhost",
        "port": 6543,
        "schema": "public",
        "user": "etl",
    }


def test_load_config_expands_env_in_nested_values(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "c.json",
        {
            "password": "${DB_PASSWORD}",
            "dsn": "postgresql://${DB_USER:-etl}:${DB_PASSWORD}@${DB_HOST:-localhost}:5432/db",
            "streams": [{"name": "${STREAM}"}, "${MISSING_WITH_EMPTY:-}"],
            "port": 5432,
            "flag": True,
        },
    )
    env = {"DB_PASSWORD": "s3cret", "DB_HOST": "db.internal", "STREAM": "orders"}
    assert load_config([path], environ=env) == {
        "password": "s3cret",
        "dsn": "postgresql://etl:s3cret@db.internal:5432/db",
        "streams": [{"name": "orders"}, ""],
        "port": 5432,
        "flag": True,
    }


def test_empty_variable_takes_the_default_like_the_shell() -> None:
    assert expand_env("${A:-fallback}", {"A": ""}) == "fallback"
    assert expand_env("${A}", {"A": ""}) == ""
    assert expand_env("${A:-fallback}", {}) == "fallback"


def test_expansion_is_single_pass_and_leaves_other_dollars_alone() -> None:
    env = {"A": "${B}", "B": "no"}
    assert expand_env("$A ${A} $$ ${not-a-var} ${A", env) == "$A ${B} $$ ${not-a-var} ${A"


def test_expand_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DPONE_TEST_EXPAND", "from-os")
    assert expand_env({"k": "${DPONE_TEST_EXPAND}"}) == {"k": "from-os"}


def test_missing_variable_names_the_variable_and_the_setting(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.json", {"auth": {"password": "${DB_PASSWORD}"}})
    with pytest.raises(ConfigError, match=r"^auth\.password: environment variable DB_PASSWORD is not set$"):
        load_config([path], environ={})


def test_missing_variable_in_a_plain_string() -> None:
    with pytest.raises(ConfigError, match=r"^config: environment variable NOPE is not set$"):
        expand_env("${NOPE}", {})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match=f"^{re.escape(f'config file not found: {missing}')}$"):
        load_config([missing], environ={})


def test_unreadable_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^cannot read catalog file"):
        load_json_file(tmp_path, what="catalog")


def test_invalid_json_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.json", '{"host": "x",}')
    with pytest.raises(ConfigError, match=f"^{re.escape(f'config file {path} is not valid JSON: ')}"):
        load_config([path], environ={})


def test_config_must_be_an_object(tmp_path: Path) -> None:
    path = _write(tmp_path, "list.json", [1, 2])
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        load_config([path], environ={})


def test_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    assert load_config([_write(tmp_path, "empty.json", "  \n")], environ={}) == {}
    assert load_config([], environ={}) == {}


# -- secret names and the Redactor --------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "db_password",
        "PASSWORD",
        "passwd",
        "client_secret",
        "token",
        "access_token",
        "api_key",
        "apiKey",
        "api-key",
        "private_key",
        "credentials",
        "credential",
        "auth",
        "dsn",
        "sasl_password",
        "sasl.jaas.config",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["host", "port", "user", "username", "database", "schema", "start_date", "sasl_mechanism", "sasl_username"]
)
def test_non_secret_names(name: str) -> None:
    assert not is_secret_name(name)


def test_redactor_masks_known_secrets_longest_first() -> None:
    redactor = Redactor(["hunter22", "hunter22-extended", "ab"])
    text = redactor("a=hunter22-extended b=hunter22 c=ab")
    assert text == f"a={MASK} b={MASK} c=ab"  # values under 4 characters are not masked on their own


def test_redactor_add_config_finds_secret_named_keys() -> None:
    redactor = Redactor()
    redactor.add_config(
        {
            "host": "db.example.com",
            "password": "pa55word",
            "api_key": "key-1234567",
            "nested": {"auth": {"token": "tok-abcdef"}, "list": [{"client_secret": "cs-998877"}]},
            "custom": "declared-secret",
            "port": 5432,
            "user": "etl_user",
        },
        secret_keys=["custom"],
    )
    text = redactor(
        "connect db.example.com as etl_user with pa55word, key-1234567, tok-abcdef, cs-998877, declared-secret"
    )
    assert text == f"connect db.example.com as etl_user with {MASK}, {MASK}, {MASK}, {MASK}, {MASK}"


def test_a_declared_setting_is_a_secret_only_when_declared_so() -> None:
    # `auth_method` names no secret: its value must stay readable; nested keys still go by their name.
    redactor = Redactor()
    redactor.add_config(
        {"auth_method": "bearer", "bearer_token": "tok-123456", "headers": {"Authorization": "Bearer hdr-98765"}},
        secret_keys=["bearer_token"],
        known_keys=["auth_method", "bearer_token", "headers"],
    )
    assert redactor("auth_method bearer: tok-123456, Bearer hdr-98765") == f"auth_method bearer: {MASK}, {MASK}"


def test_a_secret_is_masked_as_a_url_query_carries_it_too() -> None:
    redactor = Redactor(["k3y+With/Slash=="])
    assert redactor("GET /x?key=k3y%2BWith%2FSlash%3D%3D and ?key=k3y%2BWith%2FSlash%3D%3D") == (
        f"GET /x?key={MASK} and ?key={MASK}"
    )


def test_redactor_add_config_learns_the_password_inside_a_secret_dsn() -> None:
    redactor = Redactor()
    redactor.add_config({"dsn": "postgresql://etl:dsn-pass-123@h/db"})
    assert redactor("the password dsn-pass-123 leaked alone") == f"the password {MASK} leaked alone"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        (
            "error at postgresql://etl:s3cr3t@db:5432/x?sslmode=require",
            "error at postgresql://etl:***@db:5432/x?sslmode=require",
        ),
        ("mssql+pyodbc://sa:Passw0rd!@server/db", "mssql+pyodbc://sa:***@server/db"),
        ("kafka://:onlypass@broker:9092", "kafka://:***@broker:9092"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("https://example.com/path", "https://example.com/path"),
    ],
)
def test_redactor_masks_passwords_in_urls(text: str, expected: str) -> None:
    assert Redactor()(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host=h port=5432 password=s3cret dbname=x", "host=h port=5432 password=*** dbname=x"),
        ("host=h password = 's3 cr et' user=u", "host=h password = *** user=u"),
        ("Server=h;Database=d;UID=sa;PWD=Passw0rd;", "Server=h;Database=d;UID=sa;PWD=***;"),
        ("Password=abc123;Host=h", "Password=***;Host=h"),
        ("passwd=xyz", "passwd=***"),
    ],
)
def test_redactor_masks_passwords_in_key_value_dsns(text: str, expected: str) -> None:
    assert Redactor()(text) == expected


def test_redactor_masks_braced_odbc_passwords() -> None:
    assert Redactor()("Server=h;UID=sa;PWD={pa;ss=w0rd};Database=d") == "Server=h;UID=sa;PWD=***;Database=d"


def test_redactor_masks_url_passwords_containing_at_signs() -> None:
    assert Redactor()("postgresql://sa:P@ssw0rd@server/db") == "postgresql://sa:***@server/db"


# -- logging ---------------------------------------------------------------------------------------


@pytest.fixture
def captured_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    logger = logging.getLogger("dpone.tests.protocol_config")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger, buffer
    logger.removeHandler(handler)


def test_redacting_filter_scrubs_message_args_and_exception(
    captured_logger: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = captured_logger
    redactor = Redactor(["tok-abcdef123"])
    install_redaction(redactor, logger)
    logger.info("using token %s for %s", "tok-abcdef123", "postgresql://etl:dbpass99@h/db")
    try:
        raise RuntimeError("auth failed for tok-abcdef123 with password=dbpass99")
    except RuntimeError:
        logger.exception("request failed")
    output = buffer.getvalue()
    assert "tok-abcdef123" not in output
    assert "dbpass99" not in output
    assert f"INFO using token {MASK} for postgresql://etl:{MASK}@h/db\n" in output
    assert "ERROR request failed\nTraceback (most recent call last):" in output
    assert f"RuntimeError: auth failed for {MASK} with password={MASK}" in output


def test_install_redaction_is_idempotent(captured_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = captured_logger
    install_redaction(Redactor(), logger)
    install_redaction(Redactor(), logger)
    (handler,) = logger.handlers
    assert handler.stream is buffer  # type: ignore[attr-defined]
    assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1


def test_secrets_added_after_installation_are_masked(captured_logger: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = captured_logger
    redactor = Redactor()
    install_redaction(redactor, logger)
    redactor.add_config({"api_key": "late-secret-42"})
    logger.warning("calling with late-secret-42")
    assert buffer.getvalue() == f"WARNING calling with {MASK}\n"


def test_redacting_filter_on_a_bare_record() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %s and %d", ("sekrit-value", 3), None)
    assert RedactingFilter(Redactor(["sekrit-value"])).filter(record) is True
    assert record.getMessage() == f"value {MASK} and 3"
    assert record.args is None


# -- redact_config -----------------------------------------------------------------------------------


def test_redact_config_masks_secret_settings() -> None:
    config = {
        "host": "h",
        "port": 5432,
        "password": "pa55word",
        "auth": {"user": "u", "api_key": "k"},
        "custom": "declared",
        "token": None,
    }
    redacted = redact_config(config, secret_keys=["custom"])
    assert redacted == {
        "host": "h",
        "port": 5432,
        "password": MASK,
        "auth": {"user": "u", "api_key": MASK},
        "custom": MASK,
        "token": None,
    }
    assert config["password"] == "pa55word"  # a copy


def test_redact_config_masks_secrets_inside_lists() -> None:
    redacted = redact_config({"brokers": [{"host": "a", "sasl_password": "pw-in-list"}]})
    assert redacted == {"brokers": [{"host": "a", "sasl_password": MASK}]}


def test_redact_config_masks_url_passwords_in_any_setting() -> None:
    redacted = redact_config({"sqlalchemy_url": "postgresql://etl:pa55word@h/db"})
    assert redacted == {"sqlalchemy_url": f"postgresql://etl:{MASK}@h/db"}
