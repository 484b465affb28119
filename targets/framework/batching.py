"""Batches bounded by rows, bytes and age, so memory stays bounded whatever the stream size."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_rows: int = 50_000
    max_bytes: int = 32 * 1024 * 1024  # of input JSON; decoded rows take a few times more
    max_age_seconds: float = 60.0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BatchPolicy:
        return cls(
            int(config.get("batch_size_rows") or 50_000),
            int(config.get("batch_size_bytes") or 32 * 1024 * 1024),
            float(config.get("batch_max_age_seconds") or 60.0),
        )


@dataclass(slots=True)
class Batch:
    """Records of one stream waiting to be committed, in arrival order."""

    records: list[dict[str, Any]] = field(default_factory=list)
    size_bytes: int = 0
    first_at: float = 0.0

    def __len__(self) -> int:
        return len(self.records)

    def is_full(self, policy: BatchPolicy) -> bool:
        return len(self.records) >= policy.max_rows or self.size_bytes >= policy.max_bytes

    def age(self) -> float:
        return time.monotonic() - self.first_at if self.records else 0.0
