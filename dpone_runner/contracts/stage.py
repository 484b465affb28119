"""The pump's contract stage: checks RECORDs of contracted streams and decides what happens to them.

The pump hands over a contracted stream's RECORD line as bytes. The stage decodes it once with
orjson, runs the closures compiled for the stream, and answers True (forward the original
bytes) or False (the stage has taken the record: quarantined). Enforce mode raises instead.
Streams without a contract never reach the stage: their lines stay on the pump's peek-only path.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from dpone_protocol.errors import ConfigError, DataError, ProtocolError
from dpone_runner.contracts.quarantine import FileQuarantine, Quarantine, RunContext, TableQuarantine
from dpone_runner.contracts.rules import Checker, KeyTracker, Violation
from dpone_runner.contracts.spec import ENFORCE, FILE, QUARANTINE, WARN, ContractSet, StreamContract

log = logging.getLogger("dpone.contracts")
WARN_EXAMPLES = 10  # logged per stream and rule; the rest are only counted
Guard = Callable[[bytes, int], bool]


class ContractViolation(DataError):
    """A record broke a contract in enforce mode: names the stream, the line, the column and the rule."""

    def __init__(self, stream: str, line: int, violation: Violation) -> None:
        self.stream = stream
        self.line = line
        self.violation = violation
        super().__init__(
            f"line {line}, stream {stream!r}: contract broken: {violation.name}: {violation.describe()}"
            " (the state stays before this record; fix the source or set mode: quarantine)"
        )


@dataclass(slots=True)
class ContractReport:
    """What a stream's contract did in one run, for the run report."""

    mode: str
    quarantined: int = 0
    warned: int = 0
    violations: dict[str, int] = field(default_factory=dict)
    quarantine: str | None = None  # the file or stream the bad records went to, once one did
    stopped_at: int | None = None  # enforce: the line of the record that stopped the run


class _Stream:
    def __init__(self, name: str, contract: StreamContract, context: RunContext, emit: Callable[[bytes], None]):
        self.name = name
        self.contract = contract
        self.report = ContractReport(contract.mode)
        self.sink: Quarantine | None = None
        if contract.mode == QUARANTINE:
            if contract.quarantine == FILE:
                self.sink = FileQuarantine(contract.quarantine_path, context, name)
            else:
                self.sink = TableQuarantine(context, name, emit)
        self.tracker: KeyTracker | None = None
        self.checker = Checker(contract.columns, None)
        self._examples: collections.Counter[str] = collections.Counter()

    def on_schema(self, message: dict[str, Any], number: int) -> None:
        keys = self._keys(message, number)
        self.tracker = KeyTracker(keys) if keys else None
        self.checker = Checker(self.contract.columns, self.tracker)
        if self.sink is not None:
            self.sink.on_schema(message)
        schema = message.get("schema")
        properties = schema.get("properties") if isinstance(schema, dict) else None
        if isinstance(properties, dict):
            unknown = [c.name for c in self.contract.columns if c.name not in properties]
            if unknown:
                log.warning(
                    "contracts.%s: stream %r has no column %s in its SCHEMA (a typo?)",
                    self.contract.pattern,
                    self.name,
                    ", ".join(repr(u) for u in unknown),
                )
            self._warn_decimal_strings(properties)

    def _warn_decimal_strings(self, properties: dict[str, Any]) -> None:
        """`type: number` means a JSON number; an exact-decimal column comes as a string, so every
        value would break the rule. Said once, at SCHEMA time, instead of once per record."""
        for column in self.contract.columns:
            declared = properties.get(column.name)
            if column.type not in ("number", "integer") or not isinstance(declared, dict):
                continue
            types = declared.get("type")
            types = [types] if isinstance(types, str) else types if isinstance(types, list) else []
            if declared.get("format") == "singer.decimal" or (
                "string" in types and not {"number", "integer"} & set(types)
            ):
                log.warning(
                    "contracts.%s.columns.%s: type %s, but stream %r sends it as a string (%s); every value will "
                    "break the rule: use type: decimal",
                    self.contract.pattern,
                    column.name,
                    column.type,
                    self.name,
                    declared.get("format") or "no number format",
                )

    def _keys(self, message: dict[str, Any], number: int) -> Sequence[str]:
        wanted = self.contract.unique_key
        if wanted is False:
            return ()
        if wanted is True:
            keys = message.get("key_properties") or []
            if not keys:
                raise ConfigError(
                    f"contracts.{self.contract.pattern}.unique_key: stream {self.name!r} has no key_properties "
                    f"in its SCHEMA (line {number}); name the columns instead: unique_key: [id]"
                )
            return [str(k) for k in keys]
        return wanted

    def guard(self) -> Guard:
        """The per-line check for the pump's byte path, closed over this schema's compiled rules."""
        check = self.checker.check
        loads = orjson.loads
        decide = self.decide
        name = self.name

        def guard(line: bytes, number: int) -> bool:
            try:
                message = loads(line)
            except orjson.JSONDecodeError:
                raise ProtocolError("malformed JSON", line=number, stream=name) from None
            record = message.get("record")
            if type(record) is dict and check(record):
                return True
            return decide(message, line, number)

        return guard

    def check_message(self, message: dict[str, Any], line: bytes, number: int) -> bool:
        """The same check for a message the pump has already decoded (the filter path)."""
        record = message.get("record")
        if type(record) is dict and self.checker.check(record):
            return True
        return self.decide(message, line, number)

    def decide(self, message: dict[str, Any], line: bytes, number: int) -> bool:
        """A record failed the fast check: find out why, then enforce, quarantine or warn."""
        record = message.get("record")
        if not isinstance(record, dict):
            raise ProtocolError("RECORD message needs a 'record' object", line=number, stream=self.name)
        violations = self.checker.explain(record)
        if not violations:
            # The fast check is stricter than the rules in rare cases (see rules._column_check).
            if self.tracker is not None:
                self.tracker.add(record)
            return True
        counts = self.report.violations
        for v in violations:
            counts[v.name] = counts.get(v.name, 0) + 1
        mode = self.contract.mode
        if mode == ENFORCE:
            self.report.stopped_at = number  # counted, so the report says what stopped the run
            raise ContractViolation(self.name, number, violations[0])
        if mode == QUARANTINE and self.sink is not None:
            self.sink.put(line, message, violations, number)
            self.report.quarantined += 1
            self.report.quarantine = self.sink.location
            return False
        self.report.warned += 1
        for v in violations:
            self._examples[v.name] += 1
            if self._examples[v.name] <= WARN_EXAMPLES:
                log.warning("line %d, stream %r: contract warning: %s: %s", number, self.name, v.name, v.describe())
        if self.tracker is not None:
            self.tracker.add(record)  # it goes through, so a later copy of its key is a duplicate
        return True

    def checkpoint(self) -> None:
        if self.sink is not None:
            self.sink.checkpoint()
        if self.tracker is not None:
            self.tracker.reset()

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
        if self.contract.mode == WARN and self.report.warned:
            rules = ", ".join(f"{k} {n:,}" for k, n in sorted(self.report.violations.items()))
            log.warning(
                "stream %r: %d record(s) broke the contract and were loaded anyway (warn mode): %s",
                self.name,
                self.report.warned,
                rules,
            )


class ContractStage:
    def __init__(self, contracts: ContractSet, context: RunContext) -> None:
        self.contracts = contracts
        self.context = context
        self.guards: dict[bytes, Guard] = {}  # by the stream name's bytes, for the pump's byte path
        self._streams: dict[str, _Stream] = {}
        self._emit: Callable[[bytes], None] = _no_emit

    def attach(self, emit: Callable[[bytes], None]) -> None:
        """The pump's output: table-mode quarantine rows are written into it, in order."""
        self._emit = emit

    def on_schema(self, message: dict[str, Any], number: int) -> None:
        name = message.get("stream")
        if not isinstance(name, str):
            return  # the pump and the targets report a malformed SCHEMA
        stream = self._streams.get(name)
        if stream is None:
            contract = self.contracts.for_stream(name)
            if contract is None:
                return
            stream = self._streams[name] = _Stream(name, contract, self.context, self._emit)
        stream.on_schema(message, number)
        self.guards[name.encode()] = stream.guard()

    def check_line(self, stream: str, line: bytes, number: int) -> bool:
        """A RECORD line the pump's byte path did not take (unusual key order, escapes in the name)."""
        guard = self.guards.get(stream.encode())
        return True if guard is None else guard(line, number)

    def check_message(self, stream: str, message: dict[str, Any], line: bytes, number: int) -> bool:
        found = self._streams.get(stream)
        return True if found is None else found.check_message(message, line, number)

    def on_state(self) -> None:
        """Before a STATE goes out: quarantined rows become durable, and a new uniqueness batch starts."""
        for stream in self._streams.values():
            stream.checkpoint()

    def close(self) -> None:
        for stream in self._streams.values():
            stream.close()

    def dropped(self) -> dict[str, int]:
        """Records counted in but not forwarded: quarantined ones, and the one an enforce contract stopped at."""
        found = {name: s.report.quarantined + (s.report.stopped_at is not None) for name, s in self._streams.items()}
        return {name: n for name, n in found.items() if n}

    def reports(self) -> dict[str, ContractReport]:
        return {name: s.report for name, s in sorted(self._streams.items())}


def _no_emit(line: bytes) -> None:
    raise RuntimeError("contract stage used before ContractStage.attach()")
