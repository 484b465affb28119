"""`dpone connectors list` and `dpone connectors new tap|target NAME`.

`list` finds connectors through installed metadata only: dpone's own (and any distribution's) in the
`dpone.connectors` entry-point group are described in-process from their class, which imports no
driver; every other `tap-*` / `target-*` console script is asked `--about --format json` in a
subprocess, all at once, each bounded by a timeout.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

GROUP = "dpone.connectors"
KINDS = {"tap-": "tap", "target-": "target"}
DEFAULT_TIMEOUT = 5.0


@dataclass(slots=True)
class Connector:
    name: str
    kind: str
    distribution: str
    version: str
    source: str  # "entry point" (read in-process) or "--about" (asked in a subprocess)
    description: str = ""
    capabilities: list[str] | None = None  # None: unknown, and `unknown` says why
    load_methods: list[str] | None = None
    schema_evolution: list[str] | None = None
    unknown: str | None = None
    about: dict[str, Any] = field(default_factory=dict, repr=False)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("connectors", help="installed taps and targets; a new connector's skeleton")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every installed tap and target, dpone's and third-party ones")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long a third-party connector may take to answer --about (default {DEFAULT_TIMEOUT:g})",
    )
    new = actions.add_parser("new", help="write a working skeleton of a new tap or target into the checkout")
    new.add_argument("kind", choices=("tap", "target"))
    new.add_argument("name", help="the part after tap- / target-: lowercase letters, digits, - and _")
    new.add_argument("--root", metavar="DIR", help="the dpone checkout to write into (default: the one around .)")


def program(args: argparse.Namespace, out: IO[str]) -> int:
    if args.action == "new":
        from dpone_runner.scaffold import new_connector  # noqa: PLC0415 - only `new` renders templates

        written = new_connector(args.kind, args.name, Path(args.root) if args.root else None)
        out.write(f"wrote {args.kind}-{args.name}:\n")
        out.writelines(f"  {path}\n" for path in written.paths)
        out.write(written.next_steps)
        return 0
    connectors = list_connectors(args.timeout)
    if args.format == "json":
        import orjson  # noqa: PLC0415

        rows = [{k: v for k, v in asdict(c).items() if k != "about"} for c in connectors]
        out.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(render_table(connectors))
    return 0


def list_connectors(timeout: float = DEFAULT_TIMEOUT) -> list[Connector]:
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415
    from importlib.metadata import entry_points  # noqa: PLC0415

    found: dict[str, Connector] = {}
    for ep in entry_points(group=GROUP):
        if _kind(ep.name) and ep.name not in found:
            found[ep.name] = _from_entry_point(ep)
    scripts = [ep for ep in entry_points(group="console_scripts") if _kind(ep.name) and ep.name not in found]
    unique = list({ep.name: ep for ep in scripts}.values())  # the first distribution on sys.path wins, as pip's does
    if unique:
        with ThreadPoolExecutor(max_workers=min(8, len(unique))) as pool:
            for connector in pool.map(lambda ep: _from_about(ep, timeout), unique):
                found[connector.name] = connector
    return sorted(found.values(), key=lambda c: c.name)


def _kind(name: str) -> str | None:
    return next((kind for prefix, kind in KINDS.items() if name.startswith(prefix) and len(name) > len(prefix)), None)


def _dist(ep: EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    return (dist.name, dist.version) if dist is not None else ("unknown", "unknown")


def _from_entry_point(ep: EntryPoint) -> Connector:
    distribution, version = _dist(ep)
    connector = Connector(ep.name, _kind(ep.name) or "", distribution, version, "entry point")
    try:
        doc = _about_in_process(ep.load(), connector.kind)
    except Exception as exc:  # a broken plugin must not hide the others
        connector.unknown = f"{GROUP} entry point {ep.value}: {type(exc).__name__}: {exc}"
        return connector
    return _fill(connector, doc)


def _about_in_process(obj: Any, kind: str) -> dict[str, Any]:
    """The --about document of a Tap or Target class, or of a provider returning one."""
    import orjson  # noqa: PLC0415

    if kind == "tap" and isinstance(obj, type):
        from dpone.taps.framework.tap_cli import about as tap_about  # noqa: PLC0415

        return dict(orjson.loads(tap_about(obj, "json")))
    if kind == "target" and isinstance(obj, type):
        from dpone.targets.framework.target_cli import about as target_about  # noqa: PLC0415

        return dict(orjson.loads(target_about(obj, "json")))
    doc = obj()
    if not isinstance(doc, dict):
        raise TypeError(f"the about provider returned {type(doc).__name__}, not a JSON object")
    return doc


def _fill(connector: Connector, doc: dict[str, Any]) -> Connector:
    caps = doc.get("capabilities")
    if not isinstance(caps, list):
        connector.unknown = "its --about document has no capabilities list"
        return connector
    connector.capabilities = [str(c) for c in caps]
    connector.description = str(doc.get("description") or "")
    for key in ("load_methods", "schema_evolution"):
        if isinstance(doc.get(key), list):
            setattr(connector, key, [str(v) for v in doc[key]])
    connector.about = doc
    return connector


def _about_command(ep: EntryPoint) -> list[str]:
    """The console script beside this interpreter, else the same entry point run by it."""
    script = Path(sys.executable).parent / ep.name
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "--about", "--format", "json"]
    code = (
        "import sys; from importlib.metadata import entry_points; "
        f"(ep, *_) = entry_points(group='console_scripts', name={ep.name!r}); "
        f"sys.argv = [{ep.name!r}, '--about', '--format', 'json']; sys.exit(ep.load()())"
    )
    return [sys.executable, "-c", code]


def _from_about(ep: EntryPoint, timeout: float) -> Connector:
    import orjson  # noqa: PLC0415

    distribution, version = _dist(ep)
    connector = Connector(ep.name, _kind(ep.name) or "", distribution, version, "--about")
    answered = _ask(_about_command(ep), timeout)
    if isinstance(answered, str):
        connector.unknown = answered
        return connector
    try:
        doc = orjson.loads(answered)
    except orjson.JSONDecodeError:
        connector.unknown = "--about --format json printed no JSON"
        return connector
    if not isinstance(doc, dict):
        connector.unknown = "--about --format json printed no JSON object"
        return connector
    return _fill(connector, doc)


def _ask(command: Sequence[str], timeout: float) -> bytes | str:
    """stdout of a successful run, or why there is none."""
    # Its own session, so a timeout ends the children it started too (they would hold the pipes open).
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return f"no answer to --about within {timeout:g}s"
    if proc.returncode != 0:
        last = next((line for line in reversed(stderr.decode(errors="replace").splitlines()) if line.strip()), "")
        return f"--about exited {proc.returncode}" + (f": {last.strip()[:200]}" if last else "")
    return stdout


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    import signal  # noqa: PLC0415

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def render_table(connectors: Iterable[Connector]) -> str:
    rows = [("NAME", "KIND", "DISTRIBUTION", "VERSION", "CAPABILITIES")]
    for c in connectors:
        if c.capabilities is None:
            caps = f"unknown ({c.unknown})"
        else:
            caps = ", ".join(c.capabilities) or "-"
            if c.load_methods:
                caps += f"; load methods: {', '.join(c.load_methods)}"
        rows.append((c.name, c.kind, c.distribution, c.version, caps))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[4]]) + "\n" for row in rows
    )
