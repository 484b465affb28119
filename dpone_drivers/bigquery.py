"""BigQuery clients, credentials and error classification; the only module that imports google.cloud.

Credentials, in this order: `credentials_json` (a service account key's JSON text, e.g. from an
environment variable through `${VAR}` in the config), `credentials_path` (a key file), else
Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's login, or the metadata
server on Google Cloud). `api_endpoint` points the client at another endpoint (a private one, or a
local emulator, which needs no credentials).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dpone_protocol.config import Redactor, register_secret
from dpone_protocol.errors import ConfigError, DataError, DponeError, TransientError
from dpone_protocol.settings import Setting

CONNECTION_SETTINGS: tuple[Setting, ...] = (
    Setting("project", "string", "Google Cloud project that runs the jobs (and holds the dataset).", required=True),
    Setting("dataset", "string", "Dataset of the tables.", required=True),
    Setting("location", "string", "Location of the dataset and the jobs, e.g. US, EU, europe-west1."),
    Setting(
        "credentials_path",
        "string",
        "Service account key file. Without it or credentials_json: Application Default Credentials.",
    ),
    Setting(
        "credentials_json",
        "string",
        "Service account key as JSON text, e.g. ${GOOGLE_CREDENTIALS_JSON} from an environment variable.",
        secret=True,
    ),
    Setting("api_endpoint", "string", "Another BigQuery API endpoint (a private endpoint, or a local emulator)."),
)

# Reasons BigQuery gives (errors[].reason) by what the caller should do.
# https://cloud.google.com/bigquery/docs/error-messages
_TRANSIENT_REASONS = frozenset(
    {"backendError", "internalError", "rateLimitExceeded", "jobRateLimitExceeded", "jobBackendError", "timeout"}
)
_CONFIG_REASONS = frozenset(
    {"accessDenied", "notFound", "billingNotEnabled", "billingTierLimitExceeded", "duplicate", "responseTooLarge"}
)
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def driver() -> Any:
    """The google.cloud.bigquery module, or a ConfigError saying how to install it."""
    try:
        from google.cloud import bigquery  # noqa: PLC0415 - lazy: `--help` must not need the driver
    except ImportError:
        raise ConfigError("BigQuery connectors need google-cloud-bigquery: pip install 'dpone[bigquery]'") from None
    return bigquery


def _credentials(config: Mapping[str, Any]) -> Any:
    if config.get("api_endpoint") and not (config.get("credentials_json") or config.get("credentials_path")):
        from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415

        # An emulator, or a proxy that authenticates by itself.
        return AnonymousCredentials()  # type: ignore[no-untyped-call]
    from google.oauth2 import service_account  # noqa: PLC0415

    raw = config.get("credentials_json")
    if raw:
        try:
            info = json.loads(raw) if isinstance(raw, str) else dict(raw)
        except ValueError:
            raise ConfigError("setting 'credentials_json' is not JSON (a service account key file's text)") from None
        if not isinstance(info, dict):
            raise ConfigError("setting 'credentials_json' is not a service account key (a JSON object)")
        if info.get("private_key"):
            register_secret(str(info["private_key"]))
        try:
            return service_account.Credentials.from_service_account_info(info)  # type: ignore[no-untyped-call]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"setting 'credentials_json' is not a service account key: {exc}") from None
    path = config.get("credentials_path")
    if path:
        try:
            return service_account.Credentials.from_service_account_file(str(path))  # type: ignore[no-untyped-call]
        except FileNotFoundError:
            raise ConfigError(f"setting 'credentials_path': no such file {path!r}") from None
        except (ValueError, KeyError, OSError) as exc:
            raise ConfigError(f"setting 'credentials_path' ({path}) is not a service account key: {exc}") from None
    return None  # Application Default Credentials, found by the client


def client(config: Mapping[str, Any], redactor: Redactor) -> Any:
    """A BigQuery client for the settings; raises ConfigError when no credentials can be found."""
    bigquery = driver()
    options = None
    if config.get("api_endpoint"):
        from google.api_core.client_options import ClientOptions  # noqa: PLC0415

        options = ClientOptions(api_endpoint=str(config["api_endpoint"]))
    try:
        made = bigquery.Client(
            project=str(config["project"]),
            credentials=_credentials(config),
            location=config.get("location") or None,
            client_options=options,
        )
    except DponeError:
        raise
    except Exception as exc:  # google.auth's DefaultCredentialsError, and the like
        raise classify(exc, redactor, "connecting to BigQuery") from None
    _probe(made, config, redactor)
    return BoundedClient(made)


# How long the client retries one API call (5xx, rate limits, dropped connections) before the error
# reaches the caller: its own default is 10 minutes, silent. Past it, a batch is retried whole
# (max_retries) by the target framework, with a log line each time.
API_DEADLINE_SECONDS = 120.0
_BOUNDED = frozenset(
    {
        "query", "copy_table", "load_table_from_uri", "get_table", "create_table", "update_table",
        "delete_table", "get_dataset", "create_dataset", "get_job", "list_rows", "list_tables",
    }
)  # fmt: skip


def api_retry() -> Any:
    """The retry of one API call (or one job's wait), bounded by API_DEADLINE_SECONDS."""
    from google.api_core.retry import Retry  # noqa: PLC0415
    from google.cloud.bigquery.retry import DEFAULT_RETRY  # noqa: PLC0415

    return DEFAULT_RETRY.with_deadline(API_DEADLINE_SECONDS) if isinstance(DEFAULT_RETRY, Retry) else None


class BoundedClient:
    """A google-cloud-bigquery client whose calls retry for API_DEADLINE_SECONDS at most."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._retry = api_retry()

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client, name)
        if name not in _BOUNDED or self._retry is None:
            return found
        retry = self._retry

        def bounded(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("retry", retry)
            return found(*args, **kwargs)

        return bounded


# The first call's bound: the client's own retries would wait up to 10 minutes for an endpoint
# (or a token server) that does not answer, before any error is seen.
PROBE_DEADLINE_SECONDS = 60.0
PROBE_TIMEOUT_SECONDS = 20.0


def _probe(made: Any, config: Mapping[str, Any], redactor: Redactor) -> None:
    """One call with a short deadline (the dataset, which may not exist yet): an endpoint that does not
    answer, or credentials the token server refuses, fail now and as what they are."""
    from google.api_core.exceptions import NotFound  # noqa: PLC0415
    from google.api_core.retry import Retry  # noqa: PLC0415

    doing = f"reaching BigQuery (project {config['project']})"
    try:
        made.get_dataset(
            f"{config['project']}.{config.get('dataset') or '_dpone_probe'}",
            retry=Retry(deadline=PROBE_DEADLINE_SECONDS),
            timeout=PROBE_TIMEOUT_SECONDS,
        )
    except NotFound:
        return  # reachable and authenticated: whether the dataset must exist is the caller's to say
    except Exception as exc:
        raise classify(exc, redactor, doing) from None


def storage_read_client(config: Mapping[str, Any], bq_client: Any) -> Any | None:
    """A Storage Read API client sharing `bq_client`'s credentials, or None without the package."""
    try:
        from google.cloud import bigquery_storage  # noqa: PLC0415
    except ImportError:
        return None
    return bigquery_storage.BigQueryReadClient(credentials=bq_client._credentials)  # type: ignore[no-untyped-call]


def first_error(exc: BaseException) -> dict[str, Any]:
    """The first of an API error's `errors` (reason, location, message), or {}."""
    errors = getattr(exc, "errors", None) or []
    return dict(errors[0]) if errors and isinstance(errors[0], Mapping) else {}


def describe_job_error(job: Any, redactor: Redactor) -> str:
    """`job <id>: <reason> at <location>: <message>` for a job that failed."""
    result = dict(getattr(job, "error_result", None) or {})
    where = f" at {result['location']}" if result.get("location") else ""
    message = " ".join(str(result.get("message", "")).split())
    return redactor(f"job {job.job_id}: {result.get('reason', 'error')}{where}: {message}")


def classify(exc: BaseException, redactor: Redactor, doing: str) -> DponeError:
    """An API, auth or transport error as the kind of error the caller should act on, secrets removed."""
    if isinstance(exc, DponeError):
        return exc
    if isinstance(exc, ImportError):
        return ConfigError(f"{doing}: {exc}")
    first = first_error(exc)
    reason = str(first.get("reason") or "")
    where = f" at {first['location']}" if first.get("location") else ""
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    message = redactor(f"{doing}: {reason + where + ': ' if reason else ''}{text}")
    status = getattr(exc, "code", None)
    name = type(exc).__name__
    if reason in _TRANSIENT_REASONS or status in _TRANSIENT_STATUS:
        return TransientError(message)
    if reason in _CONFIG_REASONS or status in (401, 403, 404, 409):
        return ConfigError(message)
    if name == "RetryError":
        # The client's retries ran out of time: say what the last try met (refused, timed out...).
        cause = getattr(exc, "cause", None)
        last = " ".join(str(cause).split())[:300] if cause is not None else ""
        return TransientError(redactor(f"{message}; last error: {type(cause).__name__}: {last}") if last else message)
    if name in ("DefaultCredentialsError", "RefreshError", "TransportError"):
        # No credentials found, or a key the token server refused: the user fixes the settings.
        return ConfigError(message) if name != "TransportError" else TransientError(message)
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)) or name in ("ConnectionError", "Timeout"):
        return TransientError(message)
    if status == 400 or reason in ("invalid", "invalidQuery"):
        return DataError(message)
    return DataError(message)
