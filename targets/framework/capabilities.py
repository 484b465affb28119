"""What a target can do, as data the framework, the runner and the planner read."""

from __future__ import annotations

from dataclasses import dataclass

APPEND = "append-only"
UPSERT = "upsert"
OVERWRITE = "overwrite"


@dataclass(frozen=True, slots=True)
class TargetCapabilities:
    # Merge on key is UPSERT here, replace by swap is OVERWRITE: one field says both.
    load_methods: tuple[str, ...] = (APPEND,)
    hard_delete: bool = False  # with `hard_delete: true`, rows with _sdc_deleted_at are removed
    soft_delete: bool = False  # otherwise they are kept, their _sdc_deleted_at set
    activate_version: bool = False
    schema_evolution: tuple[str, ...] = ()  # e.g. ("add_column", "widen")

    def singer_capabilities(self) -> tuple[str, ...]:
        """The Meltano `capabilities` list this target advertises."""
        caps = ["about"]
        if self.activate_version:
            caps.append("activate-version")
        if self.soft_delete or self.hard_delete:
            caps.append("hard-delete")
        caps.append("batch")
        return tuple(caps)


# What every staging-first database target can do, and the settings that drive it.
DATABASE_CAPABILITIES = TargetCapabilities(
    load_methods=(APPEND, UPSERT, OVERWRITE),
    hard_delete=True,
    soft_delete=True,
    activate_version=True,
    schema_evolution=("add_column", "widen"),
)
