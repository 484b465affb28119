"""Data contracts: per-stream rules from dpone.yml, enforced by the runner in the pump.

spec.py reads the settings, predicates.py and rules.py compile them into closures,
quarantine.py holds the sinks for bad records, stage.py is what the pump calls, replay.py
loads a fixed quarantine file. See docs/contracts.md.
"""

from dpone_runner.contracts.quarantine import RunContext
from dpone_runner.contracts.spec import ContractSet, StreamContract, parse_contracts
from dpone_runner.contracts.stage import ContractReport, ContractStage, ContractViolation

__all__ = [
    "ContractReport",
    "ContractSet",
    "ContractStage",
    "ContractViolation",
    "RunContext",
    "StreamContract",
    "parse_contracts",
]
