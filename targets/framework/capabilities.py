"""What a target can do, as data the framework, the runner and the planner read."""

from __future__ import annotations

from dataclasses import dataclass

APPEND = "append-only"
UPSERT = "upsert"
OVERWRITE = "overwrite"


@dataclass(frozen=True, slots=True)
class TargetCapabilities:
    load_methods: tuple[str, ...] = (APPEND,)
    merge: bool = False  # upsert on key properties
    replace_swap: bool = False  # full refresh into a shadow table, then an atomic swap
    hard_delete: bool = False
    soft_delete: bool = False
    activate_version: bool = False
    schema_evolution: tuple[str, ...] = ()  # e.g. ("add_column", "widen")
    batch_formats: tuple[str, ...] = ("jsonl",)
    max_batch_rows: int = 1_000_000

    def singer_capabilities(self) -> tuple[str, ...]:
        """The Meltano `capabilities` list this target advertises."""
        caps = ["about"]
        if self.activate_version:
            caps.append("activate-version")
        if self.soft_delete or self.hard_delete:
            caps.append("hard-delete")
        caps.append("batch")
        return tuple(caps)
