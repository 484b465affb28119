"""tap-rest against every auth kind of the fake API (tests/tools/rest_api.py), over real HTTP.

Each kind reads every page with the right credential and stops at once with a config error (exit 78)
with a wrong one: the message names the status, the URL and what the API said, never the secret.
OAuth2: one token for a whole run, renewed before it expires, refreshed once on a 401 (a second 401
stops), token endpoint failures named by its URL, transient ones retried. No secret, nor any access
token the endpoint issued, shows on stdout or stderr, even at DEBUG level with tracebacks on.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import logging
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import Run, write_config
from tests.kit.kit import process_command, process_env
from tests.tools.rest_api import FakeApi, sample_rows
from tests.tools.rest_tap import ROUTES, RestRunner, route_stream, slow_client

SCHEMA = {
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "updated_at": {"type": "string", "format": "date-time"},
    }
}
FAST = {"timeout": 2, "backoff_seconds": 0.01, "backoff_max_seconds": 0.05}

BEARER = "bearer-0f9c2e7d1a5b"
USERNAME = "reader"
PASSWORD = "pa55-w0rd-7c1e3f"
API_KEY = "ak-4e8b1d2c9f7a"
CLIENT_ID = "client-dpone"
CLIENT_SECRET = "cl1ent-s3cret-9d8e"
REFRESH_TOKEN = "refr3sh-t0ken-4b5a"
AUDIENCE = "https://api.example.test"

_collections = itertools.count(1)


def stream(collection: str, kind: str = "page", **extra: Any) -> dict[str, Any]:
    return route_stream(collection, kind, schema=SCHEMA, primary_keys=["id"], **extra)


@dataclass(frozen=True)
class AuthCase:
    """One auth kind: what the fake requires, the tap's right config, what makes it wrong, its secrets."""

    id: str
    kind: str  # FakeApi.require kind
    wants: dict[str, Any]
    config: dict[str, Any]
    wrong: dict[str, Any] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()


OAUTH2_BODY = {
    "auth_method": "oauth2",
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
}
AUTH_CASES = (
    AuthCase("none", "none", {}, {}),
    AuthCase(
        "bearer",
        "bearer",
        {"token": BEARER},
        {"auth_method": "bearer", "bearer_token": BEARER},
        {"bearer_token": "wrong-bearer-5a6b7c"},
        (BEARER,),
    ),
    AuthCase(
        "basic",
        "basic",
        {"username": USERNAME, "password": PASSWORD},
        {"auth_method": "basic", "username": USERNAME, "password": PASSWORD},
        {"password": "wrong-pa55-8d9e0f"},
        (PASSWORD, base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()),
    ),
    AuthCase(
        "api_key_header",
        "api_key_header",
        {"name": "X-Custom-Key", "value": API_KEY},
        {"auth_method": "api_key", "api_key_name": "X-Custom-Key", "api_key": API_KEY},
        {"api_key": "wrong-key-1a2b3c"},
        (API_KEY,),
    ),
    AuthCase(
        "api_key_query",
        "api_key_query",
        {"name": "key", "value": API_KEY},
        {"auth_method": "api_key", "api_key_location": "query", "api_key_name": "key", "api_key": API_KEY},
        {"api_key": "wrong-key-1a2b3c"},
        (API_KEY,),
    ),
    AuthCase(
        "oauth2_client_credentials_body",
        "oauth2",
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        OAUTH2_BODY,
        {"client_secret": "wrong-s3cret-2c3d4e"},
        (CLIENT_SECRET,),
    ),
    AuthCase(
        "oauth2_client_credentials_basic",
        "oauth2",
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "client_auth": "basic"},
        {**OAUTH2_BODY, "oauth2_client_auth": "basic"},
        {"client_secret": "wrong-s3cret-2c3d4e"},
        (CLIENT_SECRET, base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()),
    ),
    AuthCase(
        "oauth2_refresh_token",
        "oauth2",
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN},
        {
            **OAUTH2_BODY,
            "oauth2_grant_type": "refresh_token",
            "refresh_token": REFRESH_TOKEN,
            "oauth2_scope": "read:items",
            "oauth2_params": {"audience": AUDIENCE},
        },
        {"refresh_token": "wrong-refr3sh-6f7a8b"},
        (CLIENT_SECRET, REFRESH_TOKEN),
    ),
)
CASES = {case.id: case for case in AUTH_CASES}
OAUTH2_CASES = [case for case in AUTH_CASES if case.kind == "oauth2"]


# --- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api() -> Iterator[FakeApi]:
    with FakeApi() as fake:
        yield fake


@pytest.fixture
def fake(api: FakeApi) -> Iterator[FakeApi]:
    """The module's API with no credentials asked and an empty log. Each test reads collections of
    its own (`collection()`), so a fault a test leaves behind never meets another test's requests."""
    api.require("none")
    api.clear_log()
    yield api
    api.require("none")


def collection(api: FakeApi, rows: int = 9) -> str:
    name = f"items{next(_collections)}"
    api.put(name, sample_rows(rows))
    return name


@pytest.fixture
def tap(tmp_path: Path) -> Callable[..., Run]:
    """Runs tap-rest in-process with a config (and a state=): the exit code, stdout, stderr, messages."""
    return RestRunner(tmp_path).run


def config_for(api: FakeApi, case: AuthCase, streams: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"api_url": api.url, "streams": streams, **FAST, **case.config, **extra}
    if case.kind == "oauth2":
        config["oauth2_token_url"] = f"{api.url}/oauth/token"
    return config


def require(api: FakeApi, case: AuthCase, **more: Any) -> None:
    api.require(case.kind, **case.wants, **more)


def ids(run: Run) -> list[Any]:
    return [m["record"]["id"] for m in run.of_type("RECORD")]


def error_line(run: Run) -> str:
    lines = run.stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    return lines[-1]


def data_requests(api: FakeApi) -> list[Any]:
    return [r for r in api.requests if not r.path.startswith("/oauth/")]


def issued_tokens(api: FakeApi) -> set[str]:
    """Every access token the token endpoint issued that a request carried."""
    tokens = set()
    for r in data_requests(api):
        scheme, _, token = r.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            tokens.add(token)
    return tokens


@contextlib.contextmanager
def when(condition: Callable[[], bool], action: Callable[[], None]) -> Iterator[threading.Event]:
    """Runs `action` once, as soon as `condition` holds (polled every millisecond) while the block runs;
    the event yielded tells whether it ran."""
    done, stop = threading.Event(), threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if condition():
                action()
                done.set()
                return
            stop.wait(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield done
    finally:
        stop.set()
        watcher.join()


def per_page(size: int) -> dict[str, Any]:
    return {"type": "page", "page_size_param": "per_page", "page_size": size}


def assert_no_secret(text: str, secrets: set[str]) -> None:
    shown = sorted(s for s in secrets if s and s in text)
    assert not shown, f"secrets shown: {shown}\n{text}"


# --- the right credential reads everything; a wrong one stops -------------------------------------


class TestEachAuthKind:
    @pytest.mark.parametrize("kind", list(ROUTES))
    @pytest.mark.parametrize("case", AUTH_CASES, ids=lambda c: c.id)
    def test_the_right_credential_reads_every_page(
        self, fake: FakeApi, tap: Callable[..., Run], case: AuthCase, kind: str
    ) -> None:
        name = collection(fake)
        require(fake, case)
        run = tap(config_for(fake, case, [stream(name, kind)]))
        assert run.rc == 0, run.stderr
        assert ids(run) == list(range(1, 10))
        assert all(r.status == 200 for r in fake.requests), [(r.target, r.status) for r in fake.requests]
        assert_no_secret(run.stderr + run.stdout.decode(), set(case.secrets) | issued_tokens(fake))
        if case.kind == "oauth2":
            assert len(fake.token_requests) == 1, "one token for the whole run"
        if case.id == "api_key_query":
            # The key travels in the query of every request, a followed link's too (once).
            assert all(r.target.count(f"key={API_KEY}") == 1 for r in fake.requests), [r.target for r in fake.requests]

    @pytest.mark.parametrize("case", [c for c in AUTH_CASES if c.kind not in ("none", "oauth2")], ids=lambda c: c.id)
    def test_a_wrong_credential_stops_at_once_naming_status_url_and_body(
        self, fake: FakeApi, tap: Callable[..., Run], case: AuthCase
    ) -> None:
        name = collection(fake)
        require(fake, case)
        run = tap(config_for(fake, case, [stream(name)], **case.wrong))
        assert run.rc == 78, run.stderr
        line = error_line(run)
        assert line.startswith("tap-rest: config error: "), line
        assert "401" in line
        assert f"{fake.url}/page/{name}?page=1" in line
        assert "unauthorized" in line  # what the API said
        assert ids(run) == []
        assert len(fake.requests) == 1, "a refused credential is not retried"
        assert_no_secret(run.stderr + run.stdout.decode(), {*case.wrong.values(), *case.secrets})

    def test_no_credential_where_the_api_wants_one_stops_with_401(self, fake: FakeApi, tap: Callable[..., Run]) -> None:
        name = collection(fake)
        fake.require("bearer", token=BEARER)
        run = tap(config_for(fake, CASES["none"], [stream(name)]))
        assert run.rc == 78, run.stderr
        line = error_line(run)
        assert "401" in line and f"/page/{name}" in line and "unauthorized" in line, line
        assert len(fake.requests) == 1


# --- OAuth2 ---------------------------------------------------------------------------------------


class TestOAuth2Tokens:
    @pytest.mark.parametrize("case", OAUTH2_CASES, ids=lambda c: c.id)
    def test_one_token_request_for_a_whole_multi_page_run(
        self, fake: FakeApi, tap: Callable[..., Run], case: AuthCase
    ) -> None:
        name = collection(fake, rows=19)
        require(fake, case)
        run = tap(config_for(fake, case, [stream(name)]))
        assert run.rc == 0, run.stderr
        assert ids(run) == list(range(1, 20))
        assert len(data_requests(fake)) == 10
        assert len(fake.token_requests) == 1
        assert len(issued_tokens(fake)) == 1

    def test_one_token_request_when_the_first_pages_are_fetched_at_once(
        self, fake: FakeApi, tap: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A client slow to build (say, a proxy lookup) makes the race the concurrent first pages run
        # into every time, instead of now and then.
        slow_client(monkeypatch)
        case = CASES["oauth2_client_credentials_body"]
        name = collection(fake, rows=19)
        require(fake, case)
        run = tap(config_for(fake, case, [stream(name)], concurrency=3))
        assert run.rc == 0, run.stderr
        assert ids(run) == list(range(1, 20))
        assert len(fake.token_requests) == 1

    @pytest.mark.parametrize("case", OAUTH2_CASES, ids=lambda c: c.id)
    def test_the_token_request_carries_grant_client_auth_scope_and_extra_params(
        self, fake: FakeApi, tap: Callable[..., Run], case: AuthCase
    ) -> None:
        name = collection(fake)
        require(fake, case)
        assert tap(config_for(fake, case, [stream(name)])).rc == 0
        (form,) = fake.token_requests
        (request,) = [r for r in fake.requests if r.path == "/oauth/token"]
        assert request.method == "POST"
        assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
        grant = case.config.get("oauth2_grant_type", "client_credentials")
        assert form["grant_type"] == grant
        if case.config.get("oauth2_client_auth") == "basic":
            assert "client_secret" not in form
            assert (
                request.headers["authorization"]
                == "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            )
        else:
            assert (form["client_id"], form["client_secret"]) == (CLIENT_ID, CLIENT_SECRET)
        if grant == "refresh_token":
            assert form["refresh_token"] == REFRESH_TOKEN
            assert form["scope"] == "read:items"
            assert form["audience"] == AUDIENCE

    @pytest.mark.parametrize(
        "case", [CASES["oauth2_client_credentials_basic"], CASES["oauth2_refresh_token"]], ids=lambda c: c.id
    )
    def test_a_token_about_to_expire_is_renewed_before_any_request_is_refused(
        self, fake: FakeApi, tap: Callable[..., Run], case: AuthCase
    ) -> None:
        name = collection(fake, rows=23)  # 12 pages of 2 at 10 requests a second: past the token's 1 s
        require(fake, case, expires_in=1)
        run = tap(config_for(fake, case, [stream(name)], max_requests_per_second=10))
        assert run.rc == 0, run.stderr
        assert ids(run) == list(range(1, 24))
        assert fake.requests[-1].time - fake.requests[0].time > 1.05, "the run outlived the first token"
        assert [r.target for r in fake.requests if r.status == 401] == []
        assert len(fake.token_requests) >= 2
        assert len(issued_tokens(fake)) == len(fake.token_requests)

    @pytest.mark.parametrize("case", OAUTH2_CASES, ids=lambda c: c.id)
    def test_a_token_revoked_mid_run_is_refreshed_once_and_the_run_completes(
        self, fake: FakeApi, tap: Callable[..., Run], case: AuthCase
    ) -> None:
        name = collection(fake, rows=9)
        require(fake, case)
        config = config_for(fake, case, [stream(name, pagination=per_page(1))], max_requests_per_second=20)
        # Paced 50 ms apart, the revocation lands between page 3 (or page 4) and the next request.
        with when(lambda: fake.hits(f"/page/{name}?page=3&") > 0, fake.revoke_tokens) as revoked:
            run = tap(config)
        assert revoked.is_set()
        assert run.rc == 0, run.stderr
        assert ids(run) == list(range(1, 10))
        refused = [r.target for r in fake.requests if r.status == 401]
        assert len(refused) == 1, refused
        assert len(fake.token_requests) == 2, "exactly one refresh"
        assert len(issued_tokens(fake)) == 2
        # The refused page was asked again, with the new token, and answered.
        again = [r for r in fake.requests if r.target == refused[0]]
        assert [r.status for r in again] == [401, 200]
        assert again[0].headers["authorization"] != again[1].headers["authorization"]

    def test_a_revocation_with_pages_in_flight_is_one_refresh(self, fake: FakeApi, tap: Callable[..., Run]) -> None:
        case = CASES["oauth2_refresh_token"]
        name = collection(fake, rows=9)
        require(fake, case)
        # Pages 4, 5 and 6 are held on the server together; the tokens are revoked while they wait.
        for page in (4, 5, 6):
            fake.fault(f"/page/{name}?page={page}&", "slow", seconds=0.2)
        in_flight = [f"/page/{name}?page={page}&" for page in (4, 5, 6)]
        with when(lambda: all(fake.hits(t) for t in in_flight), fake.revoke_tokens) as revoked:
            run = tap(config_for(fake, case, [stream(name, pagination=per_page(1))], concurrency=3))
        assert revoked.is_set()
        assert run.rc == 0, run.stderr
        assert ids(run) == list(range(1, 10))
        assert len([r for r in fake.requests if r.status == 401]) == 3
        assert len(fake.token_requests) == 2, "one refresh for the one revocation"

    @pytest.mark.parametrize("case", OAUTH2_CASES, ids=lambda c: c.id)
    def test_a_token_refused_again_after_the_refresh_stops_at_the_second_401(
        self, fake: FakeApi, tap: Callable[..., Run], case: AuthCase
    ) -> None:
        name = collection(fake)
        require(fake, case, expires_in=0)  # every token the endpoint issues is refused at once
        run = tap(config_for(fake, case, [stream(name)]))
        assert run.rc == 78, run.stderr
        line = error_line(run)
        assert line.startswith("tap-rest: config error: ") and "401" in line, line
        assert f"{fake.url}/page/{name}?page=1" in line and "unauthorized" in line, line
        assert [r.status for r in data_requests(fake)] == [401, 401]
        assert len(fake.token_requests) == 2
        assert_no_secret(run.stderr, set(case.secrets) | issued_tokens(fake))

    @pytest.mark.parametrize(
        ("case", "wrong", "status", "error"),
        [
            (CASES["oauth2_client_credentials_body"], {"client_secret": "wrong-s3cret-2c3d4e"}, 401, "invalid_client"),
            (CASES["oauth2_client_credentials_basic"], {"client_secret": "wrong-s3cret-2c3d4e"}, 401, "invalid_client"),
            (CASES["oauth2_refresh_token"], {"client_id": "someone-else"}, 401, "invalid_client"),
            (CASES["oauth2_refresh_token"], {"refresh_token": "wrong-refr3sh-6f7a8b"}, 400, "invalid_grant"),
        ],
        ids=["body-secret", "basic-secret", "refresh-client", "refresh-grant"],
    )
    def test_the_token_endpoint_refusing_stops_at_once_with_its_answer(
        self, fake: FakeApi, tap: Callable[..., Run], case: AuthCase, wrong: dict[str, str], status: int, error: str
    ) -> None:
        name = collection(fake)
        require(fake, case)
        run = tap(config_for(fake, case, [stream(name)], **wrong))
        assert run.rc == 78, run.stderr
        line = error_line(run)
        assert line.startswith("tap-rest: config error: OAuth2 token request"), line
        assert f"{fake.url}/oauth/token" in line and str(status) in line and error in line, line
        assert "oauth2_scope" in line and "***" not in line, "the settings to check, by name"
        assert data_requests(fake) == []
        assert len(fake.token_requests) == 1, "a refused token request is not retried"
        assert_no_secret(run.stderr + run.stdout.decode(), {*wrong.values(), *case.secrets} - {"someone-else"})

    def test_a_token_url_that_is_not_one_stops_with_a_config_error(
        self, fake: FakeApi, tap: Callable[..., Run]
    ) -> None:
        case = CASES["oauth2_client_credentials_body"]
        name = collection(fake)
        require(fake, case)
        run = tap(config_for(fake, case, [stream(name)]) | {"oauth2_token_url": f"{fake.url}/oauth/tokens"})
        assert run.rc == 78, run.stderr
        line = error_line(run)
        assert line.startswith("tap-rest: config error: OAuth2 token request") and "401" in line, line
        assert f"{fake.url}/oauth/tokens" in line, line
        assert data_requests(fake) == []

    @pytest.mark.parametrize(
        ("kind", "options"),
        [("status", {"status": 503}), ("status", {"status": 429, "retry_after": 0}), ("drop", {})],
        ids=["503", "429", "drop"],
    )
    @pytest.mark.parametrize("case", OAUTH2_CASES, ids=lambda c: c.id)
    def test_a_token_endpoint_failing_for_a_moment_is_retried(
        self, fake: FakeApi, tap: Callable[..., Run], case: AuthCase, kind: str, options: dict[str, Any]
    ) -> None:
        name = collection(fake)
        require(fake, case)
        fake.fault("/oauth/token", kind, **options)
        run = tap(config_for(fake, case, [stream(name)]))
        assert run.rc == 0, run.stderr
        assert ids(run) == list(range(1, 10))
        assert fake.hits("/oauth/token") == 2
        assert len(fake.token_requests) == 1  # the faulted one never reached the endpoint
        assert "OAuth2 token" in run.stderr  # the retry was said

    def test_a_token_endpoint_down_for_good_is_a_transient_error(self, fake: FakeApi, tap: Callable[..., Run]) -> None:
        case = CASES["oauth2_client_credentials_body"]
        name = collection(fake)
        require(fake, case)
        fake.fault("/oauth/token", "status", times=3, status=503)
        run = tap(config_for(fake, case, [stream(name)], max_retries=2))
        assert run.rc == 75, run.stderr
        line = error_line(run)
        assert line.startswith(f"tap-rest: transient error: POST {fake.url}/oauth/token (OAuth2 token)"), line
        assert "503" in line and "3 attempts" in line, line
        assert fake.hits("/oauth/token") == 3
        assert data_requests(fake) == []


# --- no secret anywhere -----------------------------------------------------------------------------


def _secret_scenario(api: FakeApi, case: AuthCase) -> tuple[dict[str, Any], Callable[[], bool], Callable[[], None]]:
    """A run that says a lot: a retried 503 (a warning with the URL), for OAuth2 a token revoked and
    refreshed, then a 404 that stops it (the URL and the body in the error). A query API key is read
    through Link headers, whose URLs carry it. Returns the config and the revocation hook."""
    name = collection(api, rows=9)
    require(api, case)
    if case.id == "api_key_query":
        pages = [f"/link/{name}?per_page=1&key={API_KEY}&page={n}" for n in range(1, 6)]
        streams = [stream(name, "link_header", params={"per_page": 1})]
    else:
        pages = [f"/page/{name}?page={n}&per_page=1" for n in range(1, 6)]
        streams = [stream(name, pagination=per_page(1))]
    api.fault(pages[1], "status", status=503)
    api.fault(pages[4], "status", status=404, body=f"no page here for {name}")
    config = config_for(api, case, streams, max_requests_per_second=20)
    revoke = api.revoke_tokens if case.kind == "oauth2" else lambda: None
    return config, lambda: api.hits(pages[2]) > 0, revoke


def _check_secret_run(api: FakeApi, case: AuthCase, rc: int, stdout: bytes, stderr: str) -> None:
    assert rc == 78, stderr
    assert "DEBUG" in stderr, "DEBUG logging was on"
    assert "Traceback" in stderr, "DPONE_DEBUG shows the traceback"
    assert "retry 1 of" in stderr, "the 503 was retried with a warning"
    assert "404" in stderr.strip().splitlines()[-1]
    tokens = issued_tokens(api)
    if case.kind == "oauth2":
        assert len(tokens) == 2, "a token was issued, revoked and replaced"
    assert_no_secret(stderr + stdout.decode(), set(case.secrets) | tokens)
    if case.id == "api_key_query":
        assert stderr.count("&key=***&page=") >= 3, "the URLs in the warning and the error, the key masked"


@pytest.fixture
def urllib3_debug() -> Iterator[None]:
    """urllib3's own DEBUG lines (the requests it sends) reach the handlers, as in a process of its own:
    another library imported by an earlier test (clickhouse-connect) quiets that logger for good."""
    logger = logging.getLogger("urllib3")
    level = logger.level
    logger.setLevel(logging.NOTSET)
    yield
    logger.setLevel(level)


@pytest.mark.usefixtures("urllib3_debug")
class TestNoSecretShows:
    @pytest.mark.parametrize("case", [c for c in AUTH_CASES if c.kind != "none"], ids=lambda c: c.id)
    def test_in_process_at_debug_level_with_tracebacks(
        self, fake: FakeApi, tap: Callable[..., Run], case: AuthCase, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DPONE_LOG_LEVEL", "DEBUG")
        monkeypatch.setenv("DPONE_DEBUG", "1")
        config, third_page, revoke = _secret_scenario(fake, case)
        with when(third_page, revoke):
            run = tap(config)
        _check_secret_run(fake, case, run.rc, run.stdout, run.stderr)

    @pytest.mark.parametrize(
        "case", [CASES["api_key_query"], CASES["oauth2_refresh_token"], CASES["basic"]], ids=lambda c: c.id
    )
    def test_in_a_real_process_at_debug_level_with_tracebacks(
        self, fake: FakeApi, case: AuthCase, tmp_path: Path
    ) -> None:
        config, third_page, revoke = _secret_scenario(fake, case)
        command = [*process_command("dpone.taps.rest.cli"), "--config", write_config(tmp_path, config)]
        with when(third_page, revoke):
            done = subprocess.run(
                command,
                capture_output=True,
                env=process_env(DPONE_LOG_LEVEL="DEBUG", DPONE_DEBUG="1"),
                timeout=60,
                check=False,
            )
        _check_secret_run(fake, case, done.returncode, done.stdout, done.stderr.decode())

    def test_a_query_api_key_urls_escape_is_masked_at_debug_level(
        self, fake: FakeApi, tap: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DPONE_LOG_LEVEL", "DEBUG")
        key = "k3y+With/Slash=="  # base64-looking keys are common
        name = collection(fake)
        fake.require("api_key_query", name="key", value=key)
        case = CASES["api_key_query"]
        run = tap(config_for(fake, case, [stream(name, "link_header")], api_key=key))
        assert run.rc == 0, run.stderr
        assert ids(run) == list(range(1, 10))
        assert "urllib3" in run.stderr
        escaped = key.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        assert_no_secret(run.stderr + run.stdout.decode(), {key, escaped})


class TestMessagesShowWhatIsNotSecret:
    """Settings that only name things (a URL, a method, a parameter name) stay readable in messages,
    though their names look like secrets' (oauth2_token_url, auth_method, api_key_name)."""

    def test_a_masked_query_key_keeps_its_name(self, fake: FakeApi, tap: Callable[..., Run]) -> None:
        name = collection(fake)
        fake.require("api_key_query", name="api_key", value=API_KEY)
        fake.fault(f"/link/{name}?per_page=2&api_key={API_KEY}&page=2", "status", status=404)
        case = CASES["api_key_query"]
        run = tap(config_for(fake, case, [stream(name, "link_header")], api_key_name="api_key"))
        assert run.rc == 78, run.stderr
        assert f"/link/{name}?per_page=2&api_key=***&page=2" in error_line(run), error_line(run)


class TestOtherHosts:
    """Credentials and configured headers go to api_url's host (and trusted_hosts) only: a next link or
    a redirect to another host gets none of them."""

    HEADER = {"X-Tenant-Token": "tenant-7f3e9a1b"}

    @pytest.fixture
    def elsewhere(self) -> Iterator[FakeApi]:
        with FakeApi() as other:
            other.put("more", [{"id": 9, "name": "n9"}])
            yield other

    @pytest.mark.parametrize("case", [c for c in AUTH_CASES if c.kind != "none"], ids=lambda c: c.id)
    @pytest.mark.parametrize("via", ["next_url", "redirect"])
    def test_another_host_gets_no_secret(
        self, fake: FakeApi, elsewhere: FakeApi, tap: Callable[..., Run], case: AuthCase, via: str
    ) -> None:
        name = collection(fake, rows=1)
        require(fake, case)
        other = f"{elsewhere.url}/plain/more"
        if via == "next_url":
            body = {"data": [{"id": 1, "name": "n1"}], "next": other}
            fake.fault(f"/plain/{name}", "status", status=200, body=body)
            elsewhere.fault("/plain/more", "status", status=200, body={"data": [{"id": 9, "name": "n9"}], "next": None})
            streams = [
                stream(name, "none", records_path="$.data", pagination={"type": "next_url", "next_url_path": "$.next"})
            ]
        else:
            fake.fault(f"/plain/{name}", "status", status=302, headers={"Location": other}, body="moved")
            streams = [stream(name, "none")]
        run = tap(config_for(fake, case, streams, headers=self.HEADER))
        assert run.rc == 0, run.stderr
        assert 9 in ids(run)
        (sent,) = elsewhere.requests
        shown = orjson.dumps({"target": sent.target, "headers": sent.headers}).decode()
        assert_no_secret(shown, {*case.secrets, *issued_tokens(fake), self.HEADER["X-Tenant-Token"]})
        assert "authorization" not in sent.headers and "x-tenant-token" not in sent.headers, shown
        if via == "next_url":
            assert "which is not api_url's host" in run.stderr

    def test_a_trusted_host_gets_them(self, fake: FakeApi, elsewhere: FakeApi, tap: Callable[..., Run]) -> None:
        name = collection(fake, rows=1)
        case = CASES["bearer"]
        require(fake, case)
        fake.fault(
            f"/plain/{name}", "status", status=200, body={"data": [{"id": 1}], "next": f"{elsewhere.url}/plain/more"}
        )
        elsewhere.fault("/plain/more", "status", status=200, body={"data": [{"id": 9}], "next": None})
        pagination = {"type": "next_url", "next_url_path": "$.next"}
        streams = [stream(name, "none", records_path="$.data", pagination=pagination)]
        host_port = elsewhere.url.removeprefix("http://")
        run = tap(config_for(fake, case, streams, trusted_hosts=[host_port]))
        assert run.rc == 0, run.stderr
        (sent,) = elsewhere.requests
        assert sent.headers["authorization"] == f"Bearer {BEARER}"

    @pytest.mark.parametrize("entry", ["127.0.0.1", "https://127.0.0.1", "localhost:1"])
    def test_an_entry_trusts_its_host_on_its_port_and_scheme_only(
        self, fake: FakeApi, elsewhere: FakeApi, tap: Callable[..., Run], entry: str
    ) -> None:
        name = collection(fake, rows=1)
        case = CASES["bearer"]
        require(fake, case)
        body = {"data": [{"id": 1}], "next": f"{elsewhere.url}/plain/more"}
        fake.fault(f"/plain/{name}", "status", status=200, body=body)
        elsewhere.fault("/plain/more", "status", status=200, body={"data": [{"id": 9}], "next": None})
        pagination = {"type": "next_url", "next_url_path": "$.next"}
        streams = [stream(name, "none", records_path="$.data", pagination=pagination)]
        run = tap(config_for(fake, case, streams, trusted_hosts=[entry]))
        assert run.rc == 0, run.stderr
        (sent,) = elsewhere.requests
        assert "authorization" not in sent.headers

    @pytest.mark.parametrize("entries", [[5], ["https://x.example/path"], "x.example"])
    def test_an_entry_that_cannot_name_a_host_is_refused(
        self, fake: FakeApi, tap: Callable[..., Run], entries: Any
    ) -> None:
        run = tap(config_for(fake, CASES["none"], [stream("x")], trusted_hosts=entries))
        assert run.rc == 78
        assert "trusted_hosts" in run.stderr
