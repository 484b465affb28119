"""The schema registry client against the stand-in registry over real HTTP: ids, caching, and errors
typed by what to do about them, with no credential in any message."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from dpone_drivers.schema_registry import SchemaRegistry, subject_for
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError, TransientError
from tests.tools.fake_schema_registry import FakeSchemaRegistry


def _record(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "users", "namespace": "dpone", "fields": list(fields)}


ID: dict[str, Any] = {"name": "id", "type": ["null", "long"], "default": None}
NAME: dict[str, Any] = {"name": "name", "type": ["null", "string"], "default": None}


@pytest.fixture
def fake() -> Iterator[FakeSchemaRegistry]:
    with FakeSchemaRegistry() as registry:
        yield registry


@pytest.fixture
def client(fake: FakeSchemaRegistry) -> Iterator[SchemaRegistry]:
    registry = SchemaRegistry(fake.url, Redactor())
    yield registry
    registry.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_subject_names_follow_the_topic_name_strategy() -> None:
    assert subject_for("orders") == "orders-value"
    assert subject_for("orders", key=True) == "orders-key"


def test_importing_the_module_loads_neither_requests_nor_fastavro() -> None:
    code = (
        "import sys, dpone_drivers.schema_registry, dpone_drivers.avro; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('requests', 'fastavro')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_register_then_look_up_by_id_and_latest(fake: FakeSchemaRegistry, client: SchemaRegistry) -> None:
    schema = _record(ID)
    schema_id = client.register("users-value", schema)
    assert isinstance(schema_id, int)
    assert client.latest("users-value") == (schema_id, schema)
    fresh = SchemaRegistry(fake.url, Redactor())  # no cache: fetched over HTTP
    assert fresh.schema_by_id(schema_id) == schema
    assert fresh.latest("users-value") == (schema_id, schema)


def test_the_same_schema_is_registered_once_per_process(fake: FakeSchemaRegistry, client: SchemaRegistry) -> None:
    first = client.register("users-value", _record(ID, NAME))
    # Key order inside an object means nothing in Avro: the same schema, the same cache entry.
    reordered = _record(ID, {"default": None, "type": ["null", "string"], "name": "name"})
    assert client.register("users-value", reordered) == first
    assert [r for r in fake.requests if r[0] == "POST"] == [("POST", "/subjects/users-value/versions")]
    assert client.schema_by_id(first)["fields"][1]["name"] == "name"
    assert not [r for r in fake.requests if r[1].startswith("/schemas/ids/")]


def test_a_new_backward_compatible_version_gets_a_new_id(client: SchemaRegistry) -> None:
    first = client.register("users-value", _record(ID))
    second = client.register("users-value", _record(ID, NAME))
    assert second != first
    latest = client.latest("users-value")
    assert latest is not None and latest[0] == second


def test_subjects_with_odd_characters_are_quoted_in_the_path(fake: FakeSchemaRegistry, client: SchemaRegistry) -> None:
    client.register("team/a b-value", _record(ID))
    assert ("POST", "/subjects/team%2Fa%20b-value/versions") in fake.requests
    assert client.latest("team/a b-value") is not None


def test_latest_of_an_unknown_subject_is_none(client: SchemaRegistry) -> None:
    assert client.latest("nothing-value") is None


def test_an_unknown_schema_id_is_a_config_error(client: SchemaRegistry) -> None:
    with pytest.raises(ConfigError, match=r"not found: Schema 999 not found"):
        client.schema_by_id(999)


def test_an_incompatible_schema_is_a_data_error_that_says_why(client: SchemaRegistry) -> None:
    client.register("users-value", _record(ID))
    changed = _record({"name": "id", "type": ["null", "string"], "default": None})
    with pytest.raises(DataError) as caught:
        client.register("users-value", changed)
    message = str(caught.value)
    assert "schema for subject 'users-value' is incompatible with the registry's earlier version" in message
    assert "(compatibility level BACKWARD)" in message
    assert "Schema being registered is incompatible with an earlier schema" in message
    assert "changed its type" in message


def test_a_new_field_without_default_is_incompatible(client: SchemaRegistry) -> None:
    client.register("users-value", _record(ID))
    with pytest.raises(DataError, match="no default"):
        client.register("users-value", _record(ID, {"name": "age", "type": "long"}))


def test_an_invalid_schema_is_a_data_error(client: SchemaRegistry) -> None:
    with pytest.raises(DataError, match=r"refused the schema for subject 'x-value' as invalid: Invalid schema"):
        client.register("x-value", {"type": "record", "name": "r", "fields": [{"name": "a", "type": "nosuch"}]})


def test_a_wrong_login_is_a_config_error_without_the_password() -> None:
    with FakeSchemaRegistry(username="etl", password="right-secret") as fake:
        wrong = SchemaRegistry(fake.url, Redactor(), username="etl", password="wrong-secret")
        with pytest.raises(ConfigError) as caught:
            wrong.register("users-value", _record(ID))
        message = str(caught.value)
        assert "authentication refused (HTTP 401)" in message
        assert "schema_registry_username/password" in message
        assert "secret" not in message
        right = SchemaRegistry(fake.url, Redactor(), username="etl", password="right-secret")
        assert right.register("users-value", _record(ID)) == 1


def test_credentials_in_the_url_are_used_and_never_shown() -> None:
    with FakeSchemaRegistry(username="etl", password="p@ss:word") as fake:
        host = fake.url.removeprefix("http://")
        client = SchemaRegistry(f"http://etl:p%40ss%3Aword@{host}/", Redactor())
        assert client.url == fake.url
        assert client.register("users-value", _record(ID)) == 1
        wrong = SchemaRegistry(f"http://etl:not-the-password@{host}", Redactor())
        assert wrong.url == fake.url
        with pytest.raises(ConfigError) as caught:
            wrong.latest("users-value")
        assert "not-the-password" not in str(caught.value)
        assert fake.url in str(caught.value)


def test_the_password_is_masked_wherever_it_appears(fake: FakeSchemaRegistry) -> None:
    redactor = Redactor()
    SchemaRegistry(fake.url, redactor, username="etl", password="hunter2-secret")
    assert redactor("echo hunter2-secret") == "echo ***"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_failing_registry_is_transient(fake: FakeSchemaRegistry, client: SchemaRegistry, status: int) -> None:
    fake.fail_next(status)
    with pytest.raises(TransientError, match=rf"HTTP {status}: injected failure"):
        client.register("users-value", _record(ID))
    assert client.register("users-value", _record(ID)) == 1  # the next try succeeds


def test_connection_refused_is_transient() -> None:
    url = f"http://user:pw-in-url@127.0.0.1:{_free_port()}"
    client = SchemaRegistry(url, Redactor(), timeout=5)
    with pytest.raises(TransientError) as caught:
        client.latest("users-value")
    message = str(caught.value)
    assert "cannot connect" in message and "refused" in message.lower()
    assert "pw-in-url" not in message and "user:" not in message


def test_a_registry_that_never_answers_times_out_as_transient() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        client = SchemaRegistry(f"http://127.0.0.1:{silent.getsockname()[1]}", Redactor(), timeout=0.3)
        with pytest.raises(TransientError, match=r"no answer within 0.3s"):
            client.schema_by_id(1)


@pytest.mark.parametrize("url", ["localhost:8081", "ftp://host", "http://"])
def test_a_url_that_is_not_http_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="must look like"):
        SchemaRegistry(url, Redactor())


def test_something_that_is_not_a_registry_is_a_config_error(fake: FakeSchemaRegistry) -> None:
    client = SchemaRegistry(fake.url + "/not/here", Redactor())
    with pytest.raises(ConfigError, match="not found"):
        client.latest("users-value")


def test_the_settings_win_over_credentials_in_the_url() -> None:
    with FakeSchemaRegistry(username="etl", password="right-secret") as fake:
        host = fake.url.removeprefix("http://")
        client = SchemaRegistry(f"http://old:stale-secret@{host}", Redactor(), username="etl", password="right-secret")
        assert client.register("users-value", _record(ID)) == 1
