"""What the runner checks itself: this machine's clock and time zone, free disk for its own files
and a tap's local BATCH files, the state store and a pipeline's lock, and key properties for the
streams a target would merge."""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dpone.state.store import StateStore, open_store
from dpone.targets.framework.capabilities import UPSERT
from dpone_protocol.catalog import Catalog
from dpone_protocol.config import Redactor
from dpone_protocol.disk_space import free_space_check, writable_check
from dpone_protocol.errors import ConfigError, DponeError
from dpone_protocol.object_store import is_remote, local_path
from dpone_protocol.ops import FAIL, HINTS, OK, SKIP, WARN, Check

RUN_FILES = ".dpone"  # the project's run files and default state store
_ZONEINFO = "zoneinfo/"


def zone_name(environ: Mapping[str, str] | None = None) -> str:
    """The IANA name of this machine's time zone, as the C library finds it: TZ, else /etc/localtime."""
    env = os.environ if environ is None else environ
    if env.get("TZ"):
        return env["TZ"].removeprefix(":")
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return ""
    return target.split(_ZONEINFO, 1)[1] if _ZONEINFO in target else ""


def clock_check(now: dt.datetime | None = None, environ: Mapping[str, str] | None = None) -> Check:
    """The local time zone and UTC offset, so a report's times can be read; a TZ the C library does
    not know is a warning, since it silently falls back to UTC."""
    local = (now or dt.datetime.now(dt.UTC)).astimezone()
    minutes = int((local.utcoffset() or dt.timedelta(0)).total_seconds() // 60)
    offset = f"UTC{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    zone = zone_name(environ)
    utc = f"{local.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
    detail = f"{utc}; time zone {zone or 'unnamed'} ({local.tzname()}, {offset})"
    if zone and not zone.startswith("/"):
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return Check("clock", WARN, f"{detail}: {zone!r} is no known time zone", "set TZ to an IANA name, e.g. UTC")
    return Check("clock", OK, detail)


def run_files_check(root: Path) -> Check:
    return free_space_check(f"free disk ({RUN_FILES}/)", root / RUN_FILES)


def open_state_store(uri: str, redactor: Redactor) -> tuple[Check, StateStore | None]:
    shown = redactor(uri)
    try:
        store = open_store(uri)
    except DponeError as exc:
        return Check("state store", FAIL, redactor(f"{shown}: {exc}"), HINTS[exc.kind]), None
    except OSError as exc:
        hint = "give the user running dpone access to that path, or set state_backend in dpone.yml"
        return Check("state store", FAIL, f"{shown}: {exc.strerror or exc}", hint), None
    return Check("state store", OK, shown), store


def state_checks(store: StateStore | None, pipeline_id: str, redactor: Redactor) -> list[Check]:
    """The pipeline's saved state (read as a run would), and whether another run holds its lock."""
    if store is None:
        return [Check("state", SKIP, "the state store could not be opened (see above)")]
    try:
        saved = store.get(pipeline_id)
        lock = store.get_lock(pipeline_id)
    except DponeError as exc:
        return [Check("state", FAIL, redactor(str(exc)), HINTS[exc.kind])]
    found = [
        Check("state", OK, f"saved {saved.updated_at}" if saved else "none saved yet: the first run reads everything")
    ]
    unlock = f"dpone state unlock {pipeline_id}"
    if lock is None:
        found.append(Check("lock", OK, "not locked"))
    elif lock.is_stale():
        found.append(
            Check("lock", FAIL, f"stale: {lock.describe()}", f"the holder is gone: break the lock with `{unlock}`")
        )
    else:
        found.append(
            Check(
                "lock",
                FAIL,
                f"{lock.describe()}: a run holds it, and a run now would stop at once",
                f"wait for that run to end; only once its holder is surely gone, `{unlock}`",
            )
        )
    return found


def batch_checks(project_root: Path, tap_config: Mapping[str, Any]) -> list[Check]:
    """A tap writing BATCH files to a local folder: can it write there, and is there room."""
    batch = tap_config.get("batch_config")
    storage = batch.get("storage") if isinstance(batch, Mapping) else None
    root = str(storage.get("root") or "") if isinstance(storage, Mapping) else ""
    if not root or is_remote(root):
        return []
    try:
        path = local_path(root)
    except ConfigError as exc:
        return [
            Check("BATCH folder", FAIL, str(exc), "set batch_config.storage.root to a folder, s3://, gs:// or az://")
        ]
    path = path if path.is_absolute() else project_root / path  # the tap runs in the project directory
    return [writable_check("BATCH folder", path), free_space_check("free disk (BATCH)", path)]


def upsert_keys_check(method: str | None, explicit: bool, catalog: Catalog | None) -> Check | None:
    """A target that merges on key, fed a stream without key properties, appends that stream
    instead: rows repeat on every run. Named in the config, that contradicts what was asked (a
    failure); only the target's default, it is worth a warning."""
    name = "keys for upsert"
    if method != UPSERT:
        return None
    if catalog is None:
        return Check(name, SKIP, "the tap's streams are not known (see its discover check)")
    selected = catalog.selected()
    keyless = [entry.name for entry in selected if not entry.effective_key_properties()]
    if not keyless:
        return Check(name, OK, f"all {len(selected)} selected stream(s) have key properties")
    asked = "load_method is upsert" if explicit else "load_method is upsert (the target's default)"
    return Check(
        name,
        FAIL if explicit else WARN,
        f"{asked}, but {', '.join(keyless)} {'has' if len(keyless) == 1 else 'have'} no key properties: "
        "appended on every run, never merged",
        "set table-key-properties for the stream under the tap's metadata in meltano.yml, "
        "or set load_method: append-only",
    )
