"""A group of checks (one connector of one pipeline, or the project) and what they add up to."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dpone_protocol.errors import EXIT_CODES, EXIT_OK, ErrorKind
from dpone_protocol.ops import FAIL, OK, SKIP, WARN, Check

STATUSES = (OK, WARN, FAIL, SKIP)
RUNNER = "dpone"  # the connector name of the runner's own checks


@dataclass(slots=True)
class CheckGroup:
    pipeline: str | None  # None: the project's own checks (this machine, the state store)
    connector: str
    checks: list[Check] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "connector": self.connector, "checks": [c.to_dict() for c in self.checks]}


def check_from(value: Any) -> Check:
    """A check as a connector printed it; anything malformed is shown as a failure, not dropped."""
    if not isinstance(value, Mapping) or value.get("status") not in STATUSES:
        return Check("answer", FAIL, f"the connector sent a malformed check: {value!r}", "report it to its authors")
    return Check(
        str(value.get("name") or "check"),
        str(value["status"]),
        str(value.get("detail") or ""),
        str(value.get("hint") or ""),
    )


def tally(groups: Iterable[CheckGroup]) -> Counter[str]:
    return Counter(check.status for group in groups for check in group.checks)


def exit_code(groups: Iterable[CheckGroup]) -> int:
    """The one rule: 0 when no check failed (warnings and skips allowed), else 78 (EX_CONFIG): every
    failure the doctor finds is something to fix before a run, even one a retry might outlast."""
    return EXIT_CODES[ErrorKind.CONFIG] if tally(groups)[FAIL] else EXIT_OK
