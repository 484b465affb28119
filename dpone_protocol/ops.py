"""Operations a runner asks of a connector beside moving data: doctor checks, row estimates,
reconcile counts and replay plans.

A connector is asked with `--ops REQUEST.json` (with its usual `--config`, and `--catalog` /
`--state` when the operation needs them) and answers with one JSON object on stdout. The request
is `{"op": NAME, ...}`; the answer is `{"op": NAME, "supported": true, ...}`, or
`{"op": NAME, "supported": false, "reason": ...}` when the connector has no such operation, so the
runner can say "not available for this connector" instead of failing. Errors (a refused login, a
missing table) are raised as usual and become the connector's exit code.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from dpone_protocol.errors import ConfigError, DponeError, ErrorKind

OPS_FLAG = "--ops"
DOCTOR = "doctor"
ESTIMATE = "estimate"
RECONCILE = "reconcile"
REPLAY_PLAN = "replay_plan"
PARTITION_PLAN = "partition_plan"
RANGE_LEDGER = "range_ledger"
OPERATIONS = (DOCTOR, ESTIMATE, RECONCILE, REPLAY_PLAN, PARTITION_PLAN, RANGE_LEDGER)

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
# What a failed probe most likely needs, by the kind of error it raised.
HINTS = {
    ErrorKind.CONFIG: "fix the setting the message names (host, database, user, password, permissions)",
    ErrorKind.TRANSIENT: "check that the server is up and reachable from this machine (host, port, firewall)",
    ErrorKind.DATA: "the source or destination holds something unexpected: see the message",
    ErrorKind.FATAL: "unexpected: run the connector with --log-level debug and report the message",
}


class Unsupported(DponeError):
    """This connector has no such operation (answered as `supported: false`, not as a failure)."""

    kind = ErrorKind.CONFIG


@dataclass(slots=True)
class Check:
    """One doctor check: what was checked, how it went, and what to do when it did not go well."""

    name: str
    status: str  # ok | warn | fail | skip
    detail: str = ""
    hint: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @property
    def failed(self) -> bool:
        return self.status == FAIL


def probe(name: str, action: Callable[[], object], ok_detail: str = "") -> Check:
    """Run one probe; a DponeError becomes a failed check with a hint by its kind."""
    try:
        action()
    except DponeError as exc:
        return Check(name, FAIL, str(exc), HINTS[exc.kind])
    return Check(name, OK, ok_detail)


def driver_checks(drivers: Mapping[str, str]) -> list[Check]:
    """`{module: extra}`: is each driver module importable (without importing it)?"""
    checks = []
    for module, extra in drivers.items():
        found = importlib.util.find_spec(module) is not None
        checks.append(
            Check(f"driver {module}", OK, "installed")
            if found
            else Check(f"driver {module}", FAIL, "not installed", f"pip install 'dpone[{extra}]'")
        )
    return checks


def tool_check(program: str, hint: str) -> Check:
    path = shutil.which(program)
    return Check(f"program {program}", OK, path) if path else Check(f"program {program}", FAIL, "not on PATH", hint)


def parse_request(value: Any, source: str) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("op") not in OPERATIONS:
        raise ConfigError(f"{source}: an --ops request is a JSON object with op one of {', '.join(OPERATIONS)}")
    return value


def answer(op: str, body: Mapping[str, Any] | None = None, reason: str = "") -> dict[str, Any]:
    if body is None:
        return {"op": op, "supported": False, "reason": reason}
    return {"op": op, "supported": True, **body}


def checks_body(checks: Iterable[Check]) -> dict[str, Any]:
    return {"checks": [c.to_dict() for c in checks]}


class Operable:
    """The `--ops` hooks of a connector (Tap and Target inherit them); each connector overrides
    what it can answer. Everything not overridden answers `supported: false`."""

    name: ClassVar[str] = ""
    # Driver modules the connector needs, each with the dpone extra that installs it.
    drivers: ClassVar[Mapping[str, str]] = {}
    # Takes part in partitioned loads: a tap plans and reads key ranges, a target commits each range
    # whole with a range ledger (dpone_protocol/key_ranges.py; `dpone certify` shows the cell).
    partitioned_loads: ClassVar[bool] = False

    def check(self) -> None:
        raise NotImplementedError

    def doctor(self, catalog: Any) -> list[Check]:
        """Checks with a fix hint each, for what this config and (a tap's) selected catalog ask.
        The default runs `check` (connect, read or write a probe)."""
        return [probe("connect", self.check)]

    def estimate_rows(self, catalog: Any) -> dict[str, int | None]:
        """Rows per selected stream, as the source's statistics tell (None: unknown), without a scan."""
        raise Unsupported(f"{self.name} cannot estimate rows")

    def reconcile(self, request: Mapping[str, Any], catalog: Any) -> dict[str, Any]:
        """Counts (and checksums) per key range, computed by the database; see dpone_runner/reconcile."""
        raise Unsupported(f"{self.name} cannot count rows for reconcile")

    def replay_plan(self, request: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        """What rewinding `state` to `request['to']` would re-deliver, or a refusal; changes nothing."""
        raise Unsupported(f"{self.name} has no position to rewind")

    def plan_partitions(self, request: Mapping[str, Any], catalog: Any) -> dict[str, Any]:
        """Key ranges of `request['stream']` by `request['by']` (dpone_protocol/key_ranges.py), and the
        bookmark the stream takes once every range is loaded."""
        raise Unsupported(f"{self.name} cannot split a stream into key ranges")

    def range_ledger(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Whether the range `request['token']` is committed in the destination (a target's range ledger)."""
        raise Unsupported(f"{self.name} cannot load a key range in one transaction (it keeps no range ledger)")

    def operate(self, request: Mapping[str, Any], catalog: Any, state: Mapping[str, Any]) -> dict[str, Any]:
        op = request["op"]
        try:
            if op == DOCTOR:
                return answer(op, checks_body([*driver_checks(self.drivers), *self.doctor(catalog)]))
            if op == ESTIMATE:
                return answer(op, {"rows": self.estimate_rows(catalog)})
            if op == RECONCILE:
                return answer(op, self.reconcile(request, catalog))
            if op == PARTITION_PLAN:
                return answer(op, self.plan_partitions(request, catalog))
            if op == RANGE_LEDGER:
                return answer(op, self.range_ledger(request))
            return answer(op, self.replay_plan(request, state))
        except Unsupported as exc:
            return answer(op, None, str(exc))
