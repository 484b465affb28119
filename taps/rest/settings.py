"""tap-rest's settings: the API, its auth, politeness, and the streams (checked in spec.py)."""

from __future__ import annotations

from dpone.taps.rest.auth import AUTH_METHODS
from dpone_protocol.settings import Setting

SETTINGS: tuple[Setting, ...] = (
    Setting("api_url", "string", "Base URL of the API, e.g. https://api.example.com/v1.", required=True),
    Setting(
        "streams",
        "array",
        'One object per endpoint: {"name": "users", "path": "/users", "records_path": "$.data[*]", '
        '"primary_keys": ["id"], "replication_key": "updated_at", "replication_param": "updated_since", '
        '"pagination": {...}, "schema": {...} or a file path, "parent": ..., "parent_keys": {...}}; see docs.',
        required=True,
    ),
    Setting("headers", "object", "HTTP headers sent with every request."),
    Setting("params", "object", "Query parameters sent with every request."),
    Setting(
        "pagination",
        "object",
        'Default pagination of every stream: {"type": "none" | "page" | "offset" | "cursor" | "link_header" | '
        '"next_url", ...}; see docs.',
    ),
    Setting("auth_method", "string", "How requests authenticate.", default="none", choices=AUTH_METHODS),
    Setting("bearer_token", "string", "auth_method bearer: the token (Authorization: Bearer ...).", secret=True),
    Setting("username", "string", "auth_method basic: the user name."),
    Setting("password", "string", "auth_method basic: the password.", secret=True),
    Setting("api_key", "string", "auth_method api_key: the key.", secret=True),
    Setting("api_key_name", "string", "auth_method api_key: the header or query parameter name.", default="X-API-Key"),
    Setting(
        "api_key_location",
        "string",
        "auth_method api_key: send the key as a header or a query parameter.",
        default="header",
        choices=("header", "query"),
    ),
    Setting("oauth2_token_url", "string", "auth_method oauth2: the token endpoint."),
    Setting(
        "oauth2_grant_type",
        "string",
        "auth_method oauth2: client_credentials, or refresh_token (with refresh_token).",
        default="client_credentials",
        choices=("client_credentials", "refresh_token"),
    ),
    Setting("client_id", "string", "auth_method oauth2: the client id."),
    Setting("client_secret", "string", "auth_method oauth2: the client secret.", secret=True),
    Setting(
        "refresh_token", "string", "auth_method oauth2 with the refresh_token grant: the refresh token.", secret=True
    ),
    Setting("oauth2_scope", "string", "auth_method oauth2: the scope to ask for."),
    Setting(
        "oauth2_client_auth",
        "string",
        "auth_method oauth2: send client_id and client_secret as form fields (body) or an HTTP basic header (basic).",
        default="body",
        choices=("body", "basic"),
    ),
    Setting("oauth2_params", "object", 'auth_method oauth2: extra token request fields, e.g. {"audience": "..."}.'),
    Setting("timeout", "number", "Seconds to wait to connect, and for each part of an answer.", default=60),
    Setting("max_retries", "integer", "Retries of a request answered 429, 408 or 5xx, timed out or cut.", default=5),
    Setting("backoff_seconds", "number", "First wait before a retry; it doubles each time, with jitter.", default=1),
    Setting("backoff_max_seconds", "number", "Longest wait between retries.", default=60),
    Setting(
        "max_retry_after_seconds",
        "number",
        "An answer whose Retry-After asks for a longer wait stops the run (exit 75) instead of waiting.",
        default=300,
    ),
    Setting("max_requests_per_second", "number", "Request rate limit for the whole tap (none when unset)."),
    Setting(
        "concurrency",
        "integer",
        "Pages fetched at once for page and offset pagination (records still come out in order).",
        default=1,
    ),
    Setting(
        "schema_sample_pages", "integer", "Pages read to infer a stream's schema when it declares none.", default=5
    ),
    Setting("verify_ssl", "boolean", "Check the API's TLS certificate.", default=True),
    Setting(
        "trusted_hosts",
        "array",
        "Hosts besides api_url's that next links may lead to with the credentials and configured headers: "
        '"files.example.com" (api_url\'s scheme and default port), "files.example.com:8443" or '
        '"https://files.example.com"; others get neither, and a redirect to another host always drops them.',
    ),
)
