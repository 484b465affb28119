"""tap-rest's config checks: every mistake is a config error (exit 78) found before the first
request, and one message lists every problem, so a config is fixed in one round. Also what `--about`
shows, and that `--help` and importing the tap load no HTTP or JSONPath library.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.taps.framework.tap_cli import run as run_tap_cli
from dpone.taps.rest.tap import RestTap
from tests.conftest import Run
from tests.kit.kit import process_env
from tests.tools.rest_api import FakeApi, sample_rows
from tests.tools.rest_tap import FAST_FAILURE as FAST
from tests.tools.rest_tap import RestRunner

Stream = dict[str, Any]

DECLARED = {"properties": {"id": {"type": "integer"}, "name": {"type": ["null", "string"]}}}


@pytest.fixture(scope="module")
def api() -> Iterator[FakeApi]:
    with FakeApi() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_api(api: FakeApi) -> None:
    api.reset()
    api.put("items", sample_rows(5))


@dataclass
class Tap(RestRunner):
    api: FakeApi | None = None

    def config(self, **settings: Any) -> dict[str, Any]:
        """A good config ("items", its schema declared: no request is needed to discover it) with
        `settings` over it; a setting given as None is left out."""
        assert self.api is not None
        base = {"api_url": self.api.url, **FAST, "streams": [items()]}
        return {k: v for k, v in {**base, **settings}.items() if v is not None}

    def run(self, *args: str, catalog: Any = None, **settings: Any) -> Run:  # type: ignore[override]
        return super().run(self.config(**settings), *args, catalog=catalog)


@pytest.fixture
def tap(api: FakeApi, tmp_path: Path) -> Tap:
    return Tap(tmp_path, api=api)


def items(**extra: Any) -> Stream:
    return {"name": "items", "path": "/plain/items", "primary_keys": ["id"], "schema": DECLARED, **extra}


def config_error(result: Run) -> str:
    """The one error line of a run that stopped on a config error."""
    assert result.rc == 78, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("tap-rest:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("tap-rest: config error: "), errors[0]
    return errors[0]


CURSOR = {"type": "cursor", "cursor_path": "$.meta.next_cursor"}

# name -> (settings over the good config, what the message must say)
PROBLEMS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "no_streams": ({"streams": []}, ("streams", "at least one stream")),
    "streams_missing": ({"streams": None}, ("streams",)),
    "streams_not_a_list": ({"streams": {"name": "items"}}, ("streams",)),
    "stream_not_an_object": ({"streams": ["items"]}, ("streams[0]",)),
    "stream_without_name": ({"streams": [{"path": "/plain/items"}]}, ("streams[0]", "name")),
    "stream_without_path": ({"streams": [{"name": "items"}]}, ("'items'", "path")),
    "unknown_stream_key": ({"streams": [items(record_path="$.data")]}, ("'items'", "'record_path'", "records_path")),
    "unknown_pagination_type": (
        {"streams": [items(pagination={"type": "pages"})]},
        ("'items'", "'pages'", "page, offset, cursor"),
    ),
    "unknown_default_pagination_type": ({"pagination": {"type": "pages"}}, ("pagination", "'pages'")),
    "pagination_not_an_object": ({"streams": [items(pagination="page")]}, ("'items'", "pagination")),
    "missing_cursor_path": ({"streams": [items(pagination={"type": "cursor"})]}, ("'items'", "cursor_path")),
    "missing_next_url_path": ({"streams": [items(pagination={"type": "next_url"})]}, ("'items'", "next_url_path")),
    "offset_without_limit": ({"streams": [items(pagination={"type": "offset"})]}, ("'items'", "limit")),
    "negative_page_size": (
        {"streams": [items(pagination={"type": "page", "page_size": -1})]},
        ("'items'", "page_size", "-1"),
    ),
    "unknown_pagination_key": (
        {"streams": [items(pagination={"type": "page", "page_sise": 3})]},
        ("'items'", "'page_sise'", "page_size"),
    ),
    "placeholder_without_parent": ({"streams": [items(path="/users/{id}/orders")]}, ("'items'", "placeholder")),
    "placeholder_not_a_field": (
        {"streams": [items(), items(name="orders", path="/users/{ id }/orders", parent="items")]},
        ("'orders'", "{ id }"),
    ),
    "parent_not_a_stream": (
        {"streams": [items(name="orders", path="/users/{id}/orders", parent="users")]},
        ("'orders'", "'users'", "not a stream"),
    ),
    "parent_loop": (
        {
            "streams": [
                items(name="a", path="/a/{id}", parent="b"),
                items(name="b", path="/b/{id}", parent="a"),
            ]
        },
        ("'a'", "'b'", "loop"),
    ),
    "own_parent": ({"streams": [items(path="/items/{id}", parent="items")]}, ("'items'", "loop")),
    "parent_keys_without_parent": ({"streams": [items(parent_keys={"user_id": "id"})]}, ("'items'", "parent_keys")),
    "duplicate_names": ({"streams": [items(), items(path="/plain/other")]}, ("'items'", "more than once")),
    "replication_param_without_key": (
        {"streams": [items(replication_param="updated_since")]},
        ("'items'", "replication_param", "replication_key"),
    ),
    "schema_not_an_object": ({"streams": [items(schema=5)]}, ("'items'", "schema")),
    "schema_without_properties": ({"streams": [items(schema={"type": "object"})]}, ("'items'", "properties")),
    "schema_file_missing": ({"streams": [items(schema="/nonexistent/items.json")]}, ("/nonexistent/items.json",)),
    "method_not_get_or_post": ({"streams": [items(method="PUT")]}, ("'items'", "method", "'PUT'")),
    "primary_keys_not_a_list": ({"streams": [items(primary_keys="id")]}, ("'items'", "primary_keys")),
    "concurrency_zero": ({"concurrency": 0}, ("concurrency",)),
    "stream_concurrency_zero": ({"streams": [items(concurrency=0)]}, ("'items'", "concurrency")),
    "api_url_missing": ({"api_url": None}, ("api_url",)),
    "api_url_not_http": ({"api_url": "ftp://example.com"}, ("api_url", "ftp://example.com")),
    "api_url_without_scheme": ({"api_url": "example.com/v1"}, ("api_url",)),
    "records_path_not_jsonpath": ({"streams": [items(records_path="data[*]")]}, ("'items'", "records_path")),
    "records_path_invalid": ({"streams": [items(records_path="$.data[?(@.x ==]")]}, ("records_path", "$.data[?")),
    "cursor_path_invalid": (
        {"streams": [items(pagination={**CURSOR, "cursor_path": "$.meta["})]},
        ("cursor_path", "$.meta["),
    ),
    "next_url_path_invalid": (
        {"streams": [items(pagination={"type": "next_url", "next_url_path": "$..[?("})]},
        ("next_url_path",),
    ),
    "setting_of_the_wrong_kind": ({"verify_ssl": "no"}, ("verify_ssl", "boolean")),
    "unknown_auth_method": ({"auth_method": "digest"}, ("auth_method", "bearer", "oauth2")),
}


def problem_cases() -> list[Any]:
    return [
        pytest.param(mode, problem, id=f"{mode}-{problem}") for mode in ("sync", "discover") for problem in PROBLEMS
    ]


class TestEachProblem:
    @pytest.mark.parametrize(("mode", "problem"), problem_cases())
    def test_is_a_config_error_that_names_it(self, tap: Tap, api: FakeApi, mode: str, problem: str) -> None:
        settings, says = PROBLEMS[problem]
        result = tap.run(*(["--discover"] if mode == "discover" else []), **settings)
        error = config_error(result)
        for text in says:
            assert text in error, f"{text!r} not in: {error}"
        assert result.stdout == b""
        assert api.requests == []

    @pytest.mark.parametrize("problem", ["cursor_path_invalid", "next_url_path_invalid"])
    def test_an_invalid_pagination_jsonpath_stops_before_any_request(
        self, tap: Tap, api: FakeApi, problem: str
    ) -> None:
        settings, _ = PROBLEMS[problem]
        # A declared schema: discovery asks nothing of the API, and must still refuse the config.
        discovered = tap.run("--discover", **settings)
        synced = tap.run(**settings)
        assert (discovered.rc, synced.rc) == (78, 78)
        assert synced.stdout == b""
        assert api.requests == []


def test_every_stream_problem_is_in_one_message(tap: Tap) -> None:
    streams = [
        {"path": "/nameless"},
        {"name": "pathless"},
        items(name="typo", record_path="$.data"),
        items(name="paged", pagination={"type": "pages"}),
        items(name="cursor", pagination={"type": "cursor"}),
        items(name="negative", pagination={"type": "page", "page_size": -1}),
        items(name="orphan", path="/orphan/{id}"),
        items(name="lost", path="/lost/{id}", parent="nobody"),
        items(name="loop_a", path="/a/{id}", parent="loop_b"),
        items(name="loop_b", path="/b/{id}", parent="loop_a"),
        items(name="twice"),
        items(name="twice"),
        items(name="param", replication_param="since"),
        items(name="bad_schema", schema=[1]),
        items(name="no_file", schema="/nonexistent/schema.json"),
    ]
    error = config_error(tap.run(streams=streams))
    for says in (
        "streams[0]",
        "'pathless'",
        "'record_path'",
        "'pages'",
        "cursor_path",
        "page_size",
        "'orphan'",
        "'nobody'",
        "'loop_a'",
        "'loop_b'",
        "'twice'",
        "'param'",
        "'bad_schema'",
        "/nonexistent/schema.json",
    ):
        assert says in error, f"{says!r} not in: {error}"


def test_every_problem_of_any_kind_is_in_one_message(tap: Tap, api: FakeApi) -> None:
    streams = [
        {"name": "pathless"},
        items(name="bad_path", records_path="$.data[?(@.x ==]"),
        items(name="bad_cursor", pagination={"type": "cursor", "cursor_path": "$.meta["}),
    ]
    result = tap.run(streams=streams, api_url="ftp://example.com", auth_method="basic", username="me")
    error = config_error(result)
    for says in ("'pathless'", "records_path", "cursor_path", "api_url", "password"):
        assert says in error, f"{says!r} not in: {error}"


# auth_method -> settings given, the settings the message must name as missing
AUTH_GAPS: list[Any] = [
    pytest.param("bearer", {}, ["bearer_token"], id="bearer"),
    pytest.param("basic", {"username": "me"}, ["password"], id="basic_without_password"),
    pytest.param("basic", {"password": "pw-secret"}, ["username"], id="basic_without_username"),
    pytest.param("api_key", {"api_key_location": "query"}, ["api_key"], id="api_key"),
    pytest.param(
        "oauth2", {"client_id": "app", "client_secret": "cs-secret"}, ["oauth2_token_url"], id="oauth2_without_url"
    ),
    pytest.param(
        "oauth2",
        {"oauth2_token_url": "http://127.0.0.1:9/oauth/token", "client_secret": "cs-secret"},
        ["client_id"],
        id="oauth2_without_client_id",
    ),
    pytest.param(
        "oauth2",
        {"oauth2_token_url": "http://127.0.0.1:9/oauth/token", "client_id": "app"},
        ["client_secret"],
        id="oauth2_client_credentials_without_secret",
    ),
    pytest.param(
        "oauth2",
        {
            "oauth2_token_url": "http://127.0.0.1:9/oauth/token",
            "client_id": "app",
            "oauth2_grant_type": "refresh_token",
        },
        ["refresh_token"],
        id="oauth2_refresh_without_token",
    ),
]


class TestAuthSettings:
    @pytest.mark.parametrize(("method", "given", "missing"), AUTH_GAPS)
    def test_a_missing_auth_setting_is_a_config_error_before_any_request(
        self, tap: Tap, api: FakeApi, method: str, given: dict[str, Any], missing: list[str]
    ) -> None:
        discovered = tap.run("--discover", auth_method=method, streams=[items(schema=None)], **given)
        config_error(discovered)
        synced = tap.run(auth_method=method, **given)
        config_error(synced)
        assert api.requests == []
        assert api.token_requests == []

    @pytest.mark.parametrize(("method", "given", "missing"), AUTH_GAPS)
    def test_the_message_names_the_method_and_every_missing_setting(
        self, tap: Tap, method: str, given: dict[str, Any], missing: list[str]
    ) -> None:
        error = config_error(tap.run(auth_method=method, **given))
        assert f"'{method}'" in error, error
        for name in missing:
            assert name in error, error
        assert "***" not in error, error

    @pytest.mark.parametrize(("method", "given", "missing"), AUTH_GAPS[:2])
    def test_a_missing_auth_setting_stops_before_any_output(
        self, tap: Tap, method: str, given: dict[str, Any], missing: list[str]
    ) -> None:
        assert tap.run("--discover", auth_method=method, **given).rc == 78
        synced = tap.run(auth_method=method, **given)
        assert synced.rc == 78
        assert synced.stdout == b""

    def test_an_explicit_auth_method_none_leaves_other_messages_readable(self, tap: Tap) -> None:
        error = config_error(tap.run(auth_method="none", streams=[items(pagination={"type": "pages"})]))
        assert "one of none, page" in error, error


@pytest.mark.parametrize(
    "setting",
    [
        {"timeout": -1},
        {"max_retries": -1},
        {"backoff_seconds": -1},
        {"backoff_max_seconds": -1},
        {"max_retry_after_seconds": -1},
        {"max_requests_per_second": -5},
        {"schema_sample_pages": -1},
    ],
    ids=lambda s: next(iter(s)) + "=" + str(next(iter(s.values()))),
)
def test_a_number_setting_out_of_range_is_a_config_error(tap: Tap, setting: dict[str, Any]) -> None:
    error = config_error(tap.run(**setting))
    assert next(iter(setting)) in error


@pytest.mark.parametrize(
    "stream",
    [
        items(schema={"type": "array", "properties": {"id": {"type": "integer"}}}),
        items(primary_keys=["uuid"]),
        items(replication_key="updated_at"),
    ],
    ids=["type_array", "primary_key_not_declared", "replication_key_not_declared"],
)
def test_a_declared_schema_that_cannot_describe_the_stream_is_a_config_error(tap: Tap, stream: Stream) -> None:
    config_error(tap.run("--discover", streams=[stream]))


def test_a_schema_file_that_is_not_json_is_a_config_error(tap: Tap, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"properties": {')
    error = config_error(tap.run("--discover", streams=[items(schema=str(path))]))
    assert str(path) in error


def test_a_catalog_selecting_an_unknown_stream_is_a_config_error(tap: Tap, api: FakeApi) -> None:
    discovered = tap.run("--discover")
    assert discovered.rc == 0, discovered.stderr
    catalog = orjson.loads(discovered.stdout)
    ghost = json.loads(json.dumps(catalog["streams"][0]).replace('"items"', '"ghost"'))
    catalog["streams"].append(ghost)
    error = config_error(tap.run(catalog=catalog))
    assert "'ghost'" in error and "items" in error
    assert api.requests == []


def test_an_unknown_top_level_setting_is_warned_about(tap: Tap) -> None:
    result = tap.run("--discover", bearer_tokn="abc-secret-value")
    assert result.rc == 0, result.stderr
    assert "bearer_tokn" in result.stderr and "WARNING" in result.stderr


# --- what the tap tells about itself -----------------------------------------------------------------

# Every setting the user-facing spec of tap-rest documents, and which of them are secrets.
DOCUMENTED = (
    "api_url",
    "streams",
    "headers",
    "params",
    "pagination",
    "auth_method",
    "bearer_token",
    "username",
    "password",
    "api_key",
    "api_key_name",
    "api_key_location",
    "oauth2_token_url",
    "oauth2_grant_type",
    "client_id",
    "client_secret",
    "refresh_token",
    "oauth2_scope",
    "oauth2_client_auth",
    "oauth2_params",
    "timeout",
    "max_retries",
    "backoff_seconds",
    "backoff_max_seconds",
    "max_retry_after_seconds",
    "max_requests_per_second",
    "concurrency",
    "schema_sample_pages",
    "verify_ssl",
    "start_date",
    "state_every_rows",
    "batch_config",
    "stream_maps",
)
SECRETS = {"bearer_token", "password", "api_key", "client_secret", "refresh_token"}


def about(fmt: str) -> str:
    out, err = io.BytesIO(), io.StringIO()
    assert run_tap_cli(RestTap, ["--about", "--format", fmt], stdout=out, stderr=err) == 0, err.getvalue()
    return out.getvalue().decode()


def test_about_lists_every_setting_with_its_secrets_marked() -> None:
    doc = json.loads(about("json"))
    assert doc["name"] == "tap-rest"
    properties = doc["settings"]["properties"]
    assert [name for name in DOCUMENTED if name not in properties] == []
    assert {name for name, p in properties.items() if p.get("secret")} == SECRETS
    assert set(doc["settings"]["required"]) == {"api_url", "streams"}
    assert properties["auth_method"]["enum"] == ["none", "bearer", "basic", "api_key", "oauth2"]
    markdown = about("markdown")
    for name in DOCUMENTED:
        assert f"| {name} |" in markdown, name


def test_about_markdown_rows_have_four_cells() -> None:
    rows = [line for line in about("markdown").splitlines() if line.startswith("| ") and "---" not in line]
    assert rows
    for row in rows:
        cells = [cell for cell in row.replace("\\|", "").split("|")[1:-1]]
        assert len(cells) == 4, row


LOADED = "import sys; print(','.join(m for m in ('requests', 'tenacity', 'jsonpath') if m in sys.modules))"


@pytest.mark.parametrize(
    "program",
    [
        "import dpone.taps.rest.tap",
        "import dpone.taps.rest.cli",
        "import sys\nsys.argv = ['tap-rest', '--help']\nfrom dpone.taps.rest.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass",
        "import sys\nsys.argv = ['tap-rest', '--about']\nfrom dpone.taps.rest.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass",
    ],
    ids=["import_tap", "import_cli", "help", "about"],
)
def test_no_http_or_jsonpath_library_is_imported_before_a_request(program: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"{program}\n{LOADED}"], capture_output=True, env=process_env(), timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines()[-1] == "", done.stdout.decode()
