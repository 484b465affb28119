"""`dpone state replay-plan PIPELINE --to VALUE`: what rewinding a CDC or Kafka state would re-deliver.

The pipeline's committed state goes to its tap (`--ops replay_plan`, dpone_protocol/replay.py),
which knows its source: it answers per stream with the span that would be read again, or a
refusal when the source can no longer serve it (a slot already past the LSN, messages deleted by
retention). A refusal exits 65 and changes nothing. `--apply` takes the pipeline's lock first, so
no run moves the state underneath, asks again on the state it now holds, and only then writes
the new bookmarks, merged into that state.
"""

from __future__ import annotations

import argparse
import uuid
from typing import IO, TYPE_CHECKING, Any

from dpone_protocol.config import Redactor

if TYPE_CHECKING:
    from dpone.state.store import StateStore
    from dpone_runner.project import Pipeline, Project

EXIT_REFUSED = 65


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "replay-plan",
        parents=[common],
        help="what rewinding a CDC or Kafka state would re-deliver; --apply sets it",
        description="Rewind LOG_BASED (PostgreSQL LSN) or Kafka (offsets) streams of a pipeline's committed state: "
        "shows what the next run would read again, or refuses (exit 65) when the source can no longer serve it.",
    )
    parser.add_argument("pipeline", metavar="PIPELINE", help="a pipeline of dpone.yml, or TAP-to-TARGET")
    parser.add_argument(
        "--to",
        required=True,
        metavar="VALUE",
        help="an LSN (0/16B3748) for PostgreSQL; an offset, earliest, or an ISO 8601 time for Kafka",
    )
    parser.add_argument("--stream", metavar="STREAM", help="only this stream (default: every stream it applies to)")
    parser.add_argument("--apply", action="store_true", help="set the state to the plan (never when refused)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def _ask(
    project: Project,
    store: StateStore,
    pipeline: Pipeline,
    args: argparse.Namespace,
    redactor: Redactor,
    count: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The committed state and the tap's plan for it."""
    from dpone.state.records import bookmarks_of  # noqa: PLC0415
    from dpone_protocol.errors import ConfigError, FatalError  # noqa: PLC0415
    from dpone_protocol.ops import REPLAY_PLAN  # noqa: PLC0415
    from dpone_protocol.replay import streams_of  # noqa: PLC0415
    from dpone_runner import ops_client  # noqa: PLC0415
    from dpone_runner.project import EXTRACTORS  # noqa: PLC0415

    tap = project.plugin(pipeline.tap, EXTRACTORS)
    stored = store.get(pipeline.id)
    if stored is None or not bookmarks_of(stored.value):
        raise ConfigError(
            f"pipeline {pipeline.id!r} has no committed bookmarks: there is nothing to rewind (its next run reads "
            "every stream from the start)"
        )
    request: dict[str, Any] = {"op": REPLAY_PLAN, "to": args.to, "count_changes": count}
    if args.stream:
        request["stream"] = args.stream
    answer = ops_client.ask(project, tap, request, redactor, state=stored.value)
    if not answer.get("supported"):
        raise ConfigError(f"cannot plan a rewind of pipeline {pipeline.id!r}: {answer.get('reason')}")
    try:
        return stored.value, streams_of(answer)
    except ValueError as exc:
        raise FatalError(f"{tap.name}: {exc}") from None


def _hint(text: str, pipeline: str) -> str:
    from dpone_protocol.replay import PIPELINE  # noqa: PLC0415

    return text.replace(f" {PIPELINE} ", f" {pipeline} ")


def render(pipeline: str, to: str, streams: list[dict[str, Any]], unchanged: list[str], applied: bool) -> str:
    lines = [f"pipeline {pipeline}: rewind to {to}"]
    for s in streams:
        lines.append(f"  {s['stream']}: committed {_position(s['committed'])}")
        if s["refused"]:
            lines.append(f"    REFUSED: {s['refusal']}")
            if s.get("hint"):
                lines.append(f"    instead: {_hint(s['hint'], pipeline)}")
        else:
            lines.append(f"    {s.get('summary') or 'planned'}")
    if unchanged:
        lines.append(f"  other streams keep their bookmarks: {', '.join(unchanged)}")
    if any(s["refused"] for s in streams):
        lines.append("nothing was changed")
    elif applied:
        lines.append("state set: the next run starts from")
        lines += [f"  {s['stream']}: {_position(s['rewind_to'])}" for s in streams]
    else:
        lines.append(f"nothing was changed; to set it: dpone state replay-plan {pipeline} --to {to} --apply")
    return "\n".join(lines) + "\n"


def _position(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"partition {p} offset {o}" for p, o in value.items()) or "none"
    return str(value)


def program(args: argparse.Namespace, out: IO[str], redactor: Redactor) -> int:
    import orjson  # noqa: PLC0415

    from dpone.state.merge import merge_state  # noqa: PLC0415
    from dpone.state.records import bookmarks_of  # noqa: PLC0415
    from dpone.state.store import new_lock, open_store  # noqa: PLC0415
    from dpone_protocol.errors import DataError  # noqa: PLC0415
    from dpone_runner.project import load_project, state_backend_uri  # noqa: PLC0415

    project = load_project(args.project)
    pipeline = project.pipeline(args.pipeline)
    store = open_store(state_backend_uri(project.root, args.state_backend, project.state_backend))
    owner = f"replay-plan-{uuid.uuid4().hex[:12]}"
    locked = False
    try:
        if args.apply:
            store.acquire_lock(new_lock(pipeline.id, owner))  # LockedError while a run holds it
            locked = True
        # Peeking at a source (a replication slot) while a run reads it would get in the run's way.
        running = not locked and store.get_lock(pipeline.id) is not None
        value, streams = _ask(project, store, pipeline, args, redactor, count=not running)
        refused = [s["stream"] for s in streams if s["refused"]]
        asked = {s["stream"] for s in streams}
        unchanged = sorted(name for name in bookmarks_of(value) if name not in asked)
        applied = False
        if args.apply and not refused:
            bookmarks = {s["stream"]: s["bookmark"] for s in streams}
            store.put(pipeline.id, merge_state(value, {"bookmarks": bookmarks}))
            applied = True
    finally:
        try:
            if locked:
                store.release_lock(pipeline.id, owner)
        finally:
            store.close()
    if args.format == "json":
        document = {"pipeline": pipeline.id, "to": args.to, "refused": bool(refused), "applied": applied}
        document["streams"] = [{**s, "hint": _hint(s.get("hint") or "", pipeline.id)} for s in streams]
        document["unchanged"] = unchanged
        out.write(redactor(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()) + "\n")
    else:
        out.write(redactor(render(pipeline.id, args.to, streams, unchanged, applied)))
    out.flush()
    if refused:
        raise DataError(f"the rewind of {', '.join(refused)} is refused (see above); nothing was changed")
    return 0
