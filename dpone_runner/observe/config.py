"""Observers from dpone.yml's `metrics:` and `lineage:` sections.

Keys are checked (an unknown one is a config error naming it), ${VAR}s expanded as in plugin
configs, relative paths made the project's, and secrets (header values, API keys, a password in
a URL) registered for redaction before anything could print them. Each observer module imports
its library only when a run starts.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from dpone_protocol.config import expand_env, register_secret
from dpone_protocol.errors import ConfigError

if TYPE_CHECKING:
    from dpone_runner.observe import Observer
    from dpone_runner.project import Project

DEFAULT_TIMEOUT_SECONDS = 5.0
METRICS_KEYS = ("prometheus_textfile_dir", "pushgateway_url", "otlp_endpoint", "otlp_headers", "timeout_seconds")
LINEAGE_KEYS = ("namespace", "file", "url", "endpoint", "api_key", "timeout_seconds")
EXTRA = "pip install 'dpone[observe]'"


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    textfile_dir: Path | None = None
    pushgateway_url: str | None = None
    otlp_endpoint: str | None = None  # the full /v1/metrics URL
    otlp_headers: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS


@dataclass(frozen=True, slots=True)
class LineageSettings:
    namespace: str
    file: Path | None = None
    url: str | None = None
    endpoint: str = "api/v1/lineage"
    api_key: str | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS


def build_observers(project: Project) -> list[Observer]:
    observers: list[Observer] = []
    if project.metrics:
        metrics = metrics_settings(project.metrics, project.root, project.env)
        if metrics.textfile_dir or metrics.pushgateway_url:
            _need("prometheus_client", "metrics: prometheus_textfile_dir and pushgateway_url")
            from dpone_runner.observe.prometheus import PrometheusObserver  # noqa: PLC0415

            observers.append(PrometheusObserver(metrics))
        if metrics.otlp_endpoint:
            _need("opentelemetry.sdk", "metrics: otlp_endpoint")
            _need("opentelemetry.exporter.otlp.proto.http", "metrics: otlp_endpoint")
            from dpone_runner.observe.otlp import OtlpObserver  # noqa: PLC0415

            observers.append(OtlpObserver(metrics))
    if project.lineage:
        lineage = lineage_settings(project.lineage, project.root, project.env, project.env_label)
        _need("openlineage.client", "lineage")
        from dpone_runner.observe.lineage import LineageObserver  # noqa: PLC0415

        observers.append(LineageObserver(lineage, project))
    return observers


def metrics_settings(raw: Mapping[str, Any], root: Path, environ: Mapping[str, str]) -> MetricsSettings:
    section = _section(raw, "metrics", METRICS_KEYS, environ)
    if not any(section.get(k) for k in ("prometheus_textfile_dir", "pushgateway_url", "otlp_endpoint")):
        raise ConfigError(
            "dpone.yml: metrics needs at least one of prometheus_textfile_dir, pushgateway_url, otlp_endpoint"
        )
    headers = section.get("otlp_headers") or {}
    if not isinstance(headers, Mapping) or not all(isinstance(v, (str, int)) for v in headers.values()):
        raise ConfigError("dpone.yml: metrics.otlp_headers is a mapping of header name to value")
    headers = {str(k): str(v) for k, v in headers.items()}
    for value in headers.values():
        register_secret(value)
    if headers and not section.get("otlp_endpoint"):
        raise ConfigError("dpone.yml: metrics.otlp_headers needs metrics.otlp_endpoint")
    otlp = _url(section, "metrics.otlp_endpoint")
    if otlp is not None and not urlsplit(otlp).path.rstrip("/").endswith("/v1/metrics"):
        otlp = otlp.rstrip("/") + "/v1/metrics"
    textfile = _text(section, "metrics.prometheus_textfile_dir")
    return MetricsSettings(
        textfile_dir=_path(textfile, root) if textfile else None,
        pushgateway_url=_url(section, "metrics.pushgateway_url"),
        otlp_endpoint=otlp,
        otlp_headers=headers,
        timeout_seconds=_timeout(section, "metrics"),
    )


def lineage_settings(raw: Mapping[str, Any], root: Path, environ: Mapping[str, str], env: str) -> LineageSettings:
    section = _section(raw, "lineage", LINEAGE_KEYS, environ)
    file, url = _text(section, "lineage.file"), _url(section, "lineage.url")
    if not file and not url:
        raise ConfigError("dpone.yml: lineage needs a file (JSON lines) or a url (an OpenLineage HTTP endpoint)")
    api_key = _text(section, "lineage.api_key")
    if api_key:
        register_secret(api_key)
        if not url:
            raise ConfigError("dpone.yml: lineage.api_key needs lineage.url")
    namespace = _text(section, "lineage.namespace") or (f"dpone-{env}" if env else "dpone")
    return LineageSettings(
        namespace=namespace,
        file=_path(file, root) if file else None,
        url=url,
        endpoint=_text(section, "lineage.endpoint") or "api/v1/lineage",
        api_key=api_key or None,
        timeout_seconds=_timeout(section, "lineage"),
    )


def _section(raw: Mapping[str, Any], name: str, keys: tuple[str, ...], environ: Mapping[str, str]) -> dict[str, Any]:
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise ConfigError(f"dpone.yml: {name} has unknown key(s) {', '.join(unknown)} (known: {', '.join(keys)})")
    expanded: dict[str, Any] = expand_env(dict(raw), environ, where=f"dpone.yml: {name}")
    return expanded


def _text(section: Mapping[str, Any], where: str) -> str:
    value = section.get(where.rpartition(".")[2])
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"dpone.yml: {where} must be a string, not {value!r}")
    return value.strip()


def _url(section: Mapping[str, Any], where: str) -> str | None:
    text = _text(section, where)
    if not text:
        return None
    # Everything before the authority's last @ is user:password, however it is written: a raw # or /
    # in it would end the authority early and leave part of the password in the host.
    _, sep, rest = text.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    password = userinfo.partition(":")[2]
    for secret in (userinfo, password, unquote(password)) if sep and at and password else ():
        register_secret(secret)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or (at and "@" in (parts.hostname or "")):
        shown = text.replace(password, "***") if password else text
        raise ConfigError(f"dpone.yml: {where} must be an http:// or https:// URL, not {shown!r}")
    if at and _bad_userinfo(userinfo):
        raise ConfigError(
            f"dpone.yml: {where}: percent-encode the user and password in the URL (# as %23, / as %2F, @ as %40)"
        )
    return text


def _bad_userinfo(userinfo: str) -> bool:
    """A raw # or ? in user:password ends the URL's authority early; so does a / after the colon."""
    return any(c in userinfo for c in "#?") or ("/" in userinfo and ":" in userinfo.split("/", maxsplit=1)[0])


def _timeout(section: Mapping[str, Any], name: str) -> float:
    value = section.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"dpone.yml: {name}.timeout_seconds must be a number of seconds above 0, not {value!r}")
    return float(value)


def _path(text: str, root: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else root / path


def _need(module: str, what: str) -> None:
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise ConfigError(f"dpone.yml: {what} needs the {module.partition('.')[0]} package: {EXTRA}")
