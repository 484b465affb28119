"""The capability matrix: every connector's cells, each judged by the evidence found for it."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from dpone_runner.certify.declared import BENCHMARK, Declared, columns
from dpone_runner.certify.evidence import (
    NOT_APPLICABLE,
    Figures,
    TestRecord,
    Verdict,
    judge,
    judge_benchmark,
)


@dataclass(slots=True)
class Row:
    name: str
    kind: str
    declared: list[str]
    cells: dict[str, Verdict]  # every column of its kind, n/a included
    unknown: str | None = None

    def count(self, status: str) -> int:
        return sum(self.cells[c].status == status for c in self.declared)


@dataclass(slots=True)
class Matrix:
    evidence: str  # where the test records were read, as shown
    bench: str  # where the benchmark figures were read, as shown
    records: int
    newest: str | None
    columns: dict[str, list[str]]  # kind -> cells, in matrix order
    rows: list[Row] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return [kind for kind in ("target", "tap") if any(r.kind == kind for r in self.rows)]


def build(
    declared: list[Declared],
    tests: list[TestRecord],
    benchmarks: dict[str, list[Figures]],
    evidence: str,
    bench: str,
) -> Matrix:
    by_cell: dict[tuple[str, str], list[TestRecord]] = defaultdict(list)
    for test in tests:
        by_cell[(test.connector, test.cell)].append(test)
    kinds = {"tap": columns("tap", declared), "target": columns("target", declared)}
    newest = max((t.date for t in tests), default=None)
    matrix = Matrix(evidence, bench, len(tests), newest, kinds)
    for connector in declared:
        cells: dict[str, Verdict] = {}
        for cell in kinds[connector.kind]:
            says = cell in connector.cells
            if cell == BENCHMARK:
                cells[cell] = judge_benchmark(says, benchmarks.get(connector.name, []))
            else:
                cells[cell] = judge(says, by_cell.get((connector.name, cell), []))
        matrix.rows.append(Row(connector.name, connector.kind, connector.cells, cells, connector.unknown))
    return matrix


def not_proven(matrix: Matrix) -> list[tuple[str, str, Verdict]]:
    """Every declared cell that is failed or unproven: (connector, cell, verdict)."""
    return [
        (row.name, cell, row.cells[cell])
        for row in matrix.rows
        for cell in row.declared
        if row.cells[cell].status not in ("proven", NOT_APPLICABLE)
    ]


def shown(path: Path, root: Path) -> str:
    """A path as the output shows it: relative to the checkout when inside it, so a page is the same anywhere."""
    resolved = path.resolve()
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(path)
