"""`dpone plan PIPELINE`: what a run would read, from where, and what it would change; changes nothing.

Where each part comes from: the streams and columns from the tap's catalog as a run builds it
(discovery, then the project's select and metadata); bookmarks, the saved state and the lock from
the state store; row estimates from the tap (`--ops estimate`: its source's statistics, no scan);
each target's load method from its config, else the default its `--about` declares; the schema
plans from each target's `--schema-plan`, exactly as `dpone schema-plan` gets them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from dpone.state.records import bookmarks_of, parse_bookmark
from dpone.state.store import StateStore
from dpone.targets.framework.schema_evolution import render_plan
from dpone_protocol.catalog import Catalog, CatalogEntry
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DponeError, ErrorKind
from dpone_protocol.ops import ESTIMATE
from dpone_runner import ops_client, schema_plan
from dpone_runner.processes import run_to_end
from dpone_runner.project import EXTRACTORS, LOADERS, Pipeline, Plugin, Project

ABOUT_TIMEOUT_SECONDS = 60.0
UPSERT, APPEND = "upsert", "append-only"  # dpone targets' load methods (targets/framework/capabilities.py)


@dataclass(slots=True)
class TargetStreamPlan:
    """One stream in one target: how it loads and what its table would go through."""

    target: str
    load_method: str | None  # None: unknown
    load_method_source: str  # where the method comes from, or why it is unknown
    schema_plan: dict[str, Any] | None = None  # the target's --schema-plan of this stream
    schema_note: str = ""  # why there is no schema plan


@dataclass(slots=True)
class StreamPlan:
    stream: str
    columns: list[str]
    key_properties: list[str]
    replication_method: str
    replication_key: str | None
    bookmark: Any  # as saved; None: no bookmark yet
    resumes: str  # what the bookmark means for the next run
    estimated_rows: int | None
    targets: list[TargetStreamPlan] = field(default_factory=list)


@dataclass(slots=True)
class PipelinePlan:
    pipeline: str
    tap: str
    targets: list[str]
    state: dict[str, Any]  # saved (bool), updated_at, starts_from (for people), currently_syncing
    lock: dict[str, Any] | None  # None: not locked
    estimates: str  # where the estimates come from, or why there are none
    estimated: bool  # the tap answered with estimates (a stream's None: its source has no statistics of it)
    streams: list[StreamPlan]
    # Plans of streams a filter renamed or split (no tap stream of that name), per target.
    other_schema_plans: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # A target that could not plan (unreachable, refused login): the run would fail the same way.
    failures: list[str] = field(default_factory=list)
    failure_kind: ErrorKind | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        found.pop("failure_kind")
        return found

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"


def _selected(catalog: Catalog, patterns: Sequence[str], tap: str) -> list[CatalogEntry]:
    entries = [
        e for e in catalog.selected() if not patterns or any(fnmatch.fnmatchcase(e.tap_stream_id, p) for p in patterns)
    ]
    if not entries:
        which = f" matching {', '.join(patterns)}" if patterns else ""
        raise ConfigError(f"{tap} has no selected stream{which}: check select in meltano.yml (or --stream)")
    return entries


def _state(store: StateStore, pipeline: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    stored = store.get(pipeline)
    if stored is None:
        return None, {"saved": False, "starts_from": "no saved state: a first run, every stream from the start"}
    info: dict[str, Any] = {
        "saved": True,
        "updated_at": stored.updated_at,
        "starts_from": f"the state saved at {stored.updated_at}",
    }
    syncing = stored.value.get("currently_syncing")
    if syncing:
        info["currently_syncing"] = syncing
    return stored.value, info


def _lock(store: StateStore, pipeline: str) -> dict[str, Any] | None:
    lock = store.get_lock(pipeline)
    if lock is None:
        return None
    return {**asdict(lock), "stale": lock.is_stale(), "describe": lock.describe()}


def _resumes(entry: CatalogEntry, bookmark: Any) -> str:
    if bookmark is None:
        return "no bookmark: the run reads this stream from the start"
    # describe() starts with the stream's name, which the plan shows already.
    return parse_bookmark(entry.tap_stream_id, bookmark).describe().split(": ", 1)[-1]


def _estimates(
    project: Project, tap: Plugin, entries: list[CatalogEntry], redactor: Redactor
) -> tuple[dict[str, int | None] | None, str]:
    catalog = Catalog(list(entries))
    try:
        answer = ops_client.ask(project, tap, {"op": ESTIMATE}, redactor, catalog=catalog)
    except DponeError as exc:
        return None, f"unknown: {tap.name} could not estimate ({exc})"
    if not answer.get("supported"):
        return None, f"unknown: {answer.get('reason') or f'{tap.name} cannot estimate rows'}"
    rows = answer.get("rows")
    found = {str(k): v for k, v in rows.items() if v is None or isinstance(v, int)} if isinstance(rows, dict) else {}
    return found, f"by {tap.name}, from the source's statistics (no scan: as fresh as they are)"


def _about(project: Project, target: Plugin, redactor: Redactor) -> dict[str, Any] | None:
    """The target's --about document; None when it has none (a connector that is not dpone's may not)."""
    argv = [target.command(project.root), "--about", "--format", "json"]
    try:
        found = orjson.loads(
            run_to_end(argv, f"{target.name} --about", ABOUT_TIMEOUT_SECONDS, redactor, cwd=project.root)
        )
    except (DponeError, orjson.JSONDecodeError):
        return None
    return found if isinstance(found, dict) else None


def _load_method(target: Plugin, about: Mapping[str, Any] | None) -> tuple[str | None, str]:
    configured = target.config.get("load_method")
    if configured:
        return str(configured), f"{target.name} config"
    settings = (about or {}).get("settings")
    properties = settings.get("properties") if isinstance(settings, Mapping) else None
    declared = properties.get("load_method") if isinstance(properties, Mapping) else None
    if isinstance(declared, Mapping) and declared.get("default"):
        return str(declared["default"]), f"{target.name} default"
    if about is None:
        return None, f"unknown: {target.name} does not answer --about"
    return None, f"unknown: {target.name} declares no load_method"


def _effective(
    method: str | None, source: str, keys: list[str], about: Mapping[str, Any] | None
) -> tuple[str | None, str]:
    """A dpone target (its --about lists load_methods) appends what has no key to merge on."""
    dpone_target = isinstance((about or {}).get("load_methods"), list)
    if method == UPSERT and dpone_target:
        if not keys:
            return APPEND, f"{source} is upsert; the stream has no key properties, so it appends"
        return UPSERT, f"{source}; merges on {', '.join(keys)}"
    return method, source


def _schema_plans(
    project: Project,
    tap: Plugin,
    targets: list[Plugin],
    catalog: Catalog,
    patterns: Sequence[str],
    redactor: Redactor,
    abouts: Mapping[str, Mapping[str, Any] | None],
    failures: list[tuple[ErrorKind, str]],
) -> dict[str, tuple[dict[str, dict[str, Any]], str]]:
    """target -> (stream -> its schema plan, why there is none); a target that failed to answer
    is added to `failures`."""
    schemas = schema_plan.schema_messages(project, tap.name, catalog, patterns)
    found: dict[str, tuple[dict[str, dict[str, Any]], str]] = {}
    for target in targets:
        about = abouts.get(target.name)
        if about is not None and not about.get("schema_evolution"):
            found[target.name] = ({}, f"no schema plan: {target.name} keeps no tables (nothing to create or change)")
            continue
        try:
            document = schema_plan.target_plan(project, target, schemas, redactor)
        except DponeError as exc:
            found[target.name] = ({}, f"no schema plan: {exc}")
            failures.append((exc.kind, str(exc)))
            continue
        found[target.name] = ({str(p["stream"]): p for p in document.get("plans") or []}, "")
    return found


def plan_pipeline(
    project: Project, store: StateStore, pipeline: Pipeline, patterns: Sequence[str], redactor: Redactor
) -> PipelinePlan:
    tap = project.plugin(pipeline.tap, EXTRACTORS)
    targets = [project.plugin(name, LOADERS) for name in pipeline.targets]
    for plugin in (tap, *targets):
        redactor.add_config(plugin.config, plugin.secret_keys)
    value, state_info = _state(store, pipeline.id)
    lock = _lock(store, pipeline.id)
    catalog = ops_client.selected_catalog(project, tap, redactor)
    entries = _selected(catalog, patterns, tap.name)
    estimates, estimates_note = _estimates(project, tap, entries, redactor)
    abouts = {t.name: _about(project, t, redactor) for t in targets}
    failures: list[tuple[ErrorKind, str]] = []
    plans = _schema_plans(project, tap, targets, Catalog(list(entries)), patterns, redactor, abouts, failures)
    bookmarks = bookmarks_of(value)
    streams = []
    for entry in entries:
        keys = entry.effective_key_properties()
        stream = StreamPlan(
            entry.tap_stream_id,
            entry.selected_properties(),
            keys,
            entry.effective_replication_method(),
            entry.effective_replication_key(),
            bookmarks.get(entry.tap_stream_id),
            _resumes(entry, bookmarks.get(entry.tap_stream_id)),
            (estimates or {}).get(entry.tap_stream_id),
        )
        for target in targets:
            method, source = _load_method(target, abouts[target.name])
            method, source = _effective(method, source, keys, abouts[target.name])
            by_stream, note = plans[target.name]
            found = by_stream.get(entry.tap_stream_id)
            if found is None and not note:
                note = "no schema plan: the project's filters rename or drop this stream"
            stream.targets.append(TargetStreamPlan(target.name, method, source, found, note))
        streams.append(stream)
    names = {s.stream for s in streams}
    others = {t: [p for s, p in plans[t][0].items() if s not in names] for t in plans}
    return PipelinePlan(
        pipeline.id,
        tap.name,
        [t.name for t in targets],
        state_info,
        lock,
        estimates_note,
        estimates is not None,
        streams,
        {t: found for t, found in others.items() if found},
        [message for _, message in failures],
        _gravest([kind for kind, _ in failures]),
    )


def _gravest(kinds: list[ErrorKind]) -> ErrorKind | None:
    """A setting to fix outranks a server to wait for: retrying would not help."""
    return ErrorKind.CONFIG if ErrorKind.CONFIG in kinds else (kinds[0] if kinds else None)


def _indent(text: str, prefix: str) -> str:
    return "".join(prefix + line for line in text.splitlines(True))


def render(plan: PipelinePlan) -> str:
    lines = [f"pipeline {plan.pipeline}: {plan.tap} -> {', '.join(plan.targets)}"]
    state = plan.state["starts_from"]
    if plan.state.get("currently_syncing"):
        state += f" (it stopped while syncing {plan.state['currently_syncing']})"
    lines.append(f"state: {state}")
    lines.append(f"lock: {plan.lock['describe'] if plan.lock else 'not locked'}")
    lines.append(f"row estimates: {plan.estimates}")
    out = "\n".join(lines) + "\n"
    for s in plan.streams:
        rows = f"{s.estimated_rows:,}" if s.estimated_rows is not None else "unknown"
        if s.estimated_rows is None and plan.estimated:
            rows += " (no statistics: a view, or a table never analyzed)"
        key = f" on {s.replication_key}" if s.replication_key else ""
        out += f"\nstream {s.stream}\n"
        out += f"  columns ({len(s.columns)}): {', '.join(s.columns)}\n"
        out += f"  key properties: {', '.join(s.key_properties) or 'none'}\n"
        out += f"  replication: {s.replication_method}{key}\n"
        out += f"  next run: {s.resumes}\n"
        out += f"  estimated rows: {rows}\n"
        for t in s.targets:
            method = t.load_method or "unknown"
            out += f"  {t.target}: load {method} ({t.load_method_source})\n"
            if t.schema_plan is not None:
                out += _indent(render_plan(t.schema_plan), "    ")
            else:
                out += f"    {t.schema_note}\n"
    for target, found in plan.other_schema_plans.items():
        out += f"\n{target}: plans of streams the filters made\n"
        out += "".join(_indent(render_plan(p), "  ") for p in found)
    return out
