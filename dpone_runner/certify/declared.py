"""What each connector says it can do, as the cells of its capability matrix.

The connectors are those of the `dpone.connectors` entry-point group (what `dpone connectors list`
reads in-process); each class's own data gives its cells: a target's `TargetCapabilities` (load
methods, deletes, ACTIVATE_VERSION, schema evolution), a tap's `capabilities` and
`replication_methods`. Every dpone connector also speaks the Airbyte protocol (the frameworks' CLIs
do), reads or writes BATCH messages when it says `batch`, promises that its types carry every
value, and may have benchmark figures. A cell a connector does not declare is not applicable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GROUP = "dpone.connectors"
BENCHMARK = "benchmark"

# Every cell, in the order a matrix shows them, with its label. Replication methods come from the
# taps and are added in this order, others after them.
REPLICATION_ORDER = ("FULL_TABLE", "INCREMENTAL", "XMIN", "ROWVERSION", "CHANGE_TRACKING", "LOG_BASED")
TARGET_CELLS: dict[str, str] = {
    "load_method:append-only": "append-only",
    "load_method:upsert": "upsert",
    "load_method:overwrite": "overwrite",
    "delete:hard": "hard delete",
    "delete:soft": "soft delete",
    "activate_version": "ACTIVATE_VERSION",
    "batch": "BATCH (reads)",
    "airbyte": "Airbyte (write)",
    "schema_evolution:strict": "evolution: strict",
    "schema_evolution:additive": "evolution: additive",
    "schema_evolution:widening": "evolution: widening",
    "schema_evolution:new_column": "on_type_change: new_column",
    "schema_evolution:cast": "on_type_change: cast",
    "types": "types round trip",
    "partitions": "partitioned loads",
    BENCHMARK: "benchmark figures",
}
TAP_CELLS: dict[str, str] = {
    "catalog": "discovery & selection",
    **{f"replication_method:{m}": m for m in REPLICATION_ORDER},
    "activate_version": "ACTIVATE_VERSION",
    "batch": "BATCH (writes)",
    "airbyte": "Airbyte (read)",
    "types": "types round trip",
    "partitions": "partitioned loads",
    BENCHMARK: "benchmark figures",
}


@dataclass(slots=True)
class Declared:
    """One connector and the cells it declares, in matrix order."""

    name: str
    kind: str  # tap | target
    cells: list[str] = field(default_factory=list)
    unknown: str | None = None  # why its class could not be read, when it could not


def label(kind: str, cell: str) -> str:
    table = TAP_CELLS if kind == "tap" else TARGET_CELLS
    return table.get(cell, cell)


def columns(kind: str, connectors: list[Declared]) -> list[str]:
    """The cells a matrix of this kind shows: the known ones any connector declares, then the others."""
    known = TAP_CELLS if kind == "tap" else TARGET_CELLS
    declared = {cell for c in connectors if c.kind == kind for cell in c.cells}
    return [cell for cell in known if cell in declared] + sorted(declared - set(known))


def load_declared() -> list[Declared]:
    from importlib.metadata import entry_points  # noqa: PLC0415

    found: dict[str, Declared] = {}
    for ep in entry_points(group=GROUP):
        kind = "tap" if ep.name.startswith("tap-") else "target" if ep.name.startswith("target-") else ""
        if not kind or ep.name in found:
            continue
        try:
            found[ep.name] = declared_of(ep.name, kind, ep.load())
        except Exception as exc:  # a broken plugin must not hide the others
            found[ep.name] = Declared(ep.name, kind, unknown=f"{GROUP} entry point {ep.value}: {exc}")
    return sorted(found.values(), key=lambda d: (d.kind, d.name))


def declared_of(name: str, kind: str, obj: Any) -> Declared:
    from dpone.taps.framework.tap import Tap  # noqa: PLC0415 - neither imports a driver
    from dpone.targets.framework.target import Target  # noqa: PLC0415

    if kind == "target" and isinstance(obj, type) and issubclass(obj, Target):
        return Declared(name, kind, _order(TARGET_CELLS, target_cells(obj)))
    if kind == "tap" and isinstance(obj, type) and issubclass(obj, Tap):
        return Declared(name, kind, _order(TAP_CELLS, tap_cells(obj)))
    return Declared(
        name, kind, unknown=f"{type(obj).__name__} is not a dpone {kind} class: its capabilities are unknown"
    )


def target_cells(cls: Any) -> set[str]:
    caps = cls.capabilities
    cells = {f"load_method:{m}" for m in caps.load_methods} | {"airbyte", "types", BENCHMARK}
    flags = {
        "delete:hard": caps.hard_delete,
        "delete:soft": caps.soft_delete,
        "activate_version": caps.activate_version,
    }
    cells |= {cell for cell, on in flags.items() if on}
    if cls.partitioned_loads:
        cells.add("partitions")
    if "batch" in caps.singer_capabilities():
        cells.add("batch")
    evolution = set(caps.schema_evolution)
    if evolution:
        # strict needs no change at all; a stream may route a changed type or cast it wherever the
        # planner runs; additive and widening add columns (widening also widens what the target can).
        cells |= {"schema_evolution:strict", "schema_evolution:new_column", "schema_evolution:cast"}
        if "add_column" in evolution:
            cells |= {"schema_evolution:additive", "schema_evolution:widening"}
    return cells


def tap_cells(cls: Any) -> set[str]:
    caps = set(cls.capabilities)
    cells = {f"replication_method:{m}" for m in getattr(cls, "replication_methods", ())}
    cells |= {"airbyte", "types", BENCHMARK}
    if "discover" in caps:
        cells.add("catalog")
    if "activate-version" in caps:
        cells.add("activate_version")
    if "batch" in caps:
        cells.add("batch")
    if cls.partitioned_loads:
        cells.add("partitions")
    return cells


def _order(known: dict[str, str], cells: set[str]) -> list[str]:
    return [c for c in known if c in cells] + sorted(cells - set(known))
