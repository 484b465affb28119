"""The matrix as text (a terminal), JSON (a program) and Markdown (docs/certification.md)."""

from __future__ import annotations

import html
from typing import Any

import orjson

from dpone_runner.certify.declared import label
from dpone_runner.certify.evidence import FAILED, NOT_APPLICABLE, PROVEN, UNPROVEN, Figures, Verdict
from dpone_runner.certify.matrix import Matrix, Row

KIND_TITLES = {"target": "Targets", "tap": "Taps"}
COMMAND = "dpone certify --format markdown > docs/certification.md"


# -- text -----------------------------------------------------------------------------------------------


def text(matrix: Matrix, one: bool) -> str:
    lines = [_source_line(matrix), ""]
    if one:
        for row in matrix.rows:
            lines += _connector_text(row)
        return "\n".join(lines) + "\n"
    for kind in matrix.kinds():
        lines += _grid(matrix, kind, _short_status)
        lines.append("")
    lines += _totals(matrix)
    lines.append("`dpone certify CONNECTOR` shows the evidence behind each cell of one connector.")
    return "\n".join(lines) + "\n"


def _source_line(matrix: Matrix) -> str:
    newest = f", newest {matrix.newest}" if matrix.newest else ""
    return f"evidence: {matrix.records} test records in {matrix.evidence}{newest}; benchmark figures in {matrix.bench}"


def _short_status(verdict: Verdict) -> str:
    if verdict.status == PROVEN:
        return f"proven ({verdict.passed})" if verdict.passed else PROVEN
    return {FAILED: "FAILED", UNPROVEN: UNPROVEN, NOT_APPLICABLE: "-"}[verdict.status]


def _grid(matrix: Matrix, kind: str, cell_text: Any) -> list[str]:
    """Cells down, connectors across: seven connectors fit a terminal better than fifteen cells."""
    rows = [r for r in matrix.rows if r.kind == kind]
    header = [KIND_TITLES[kind].upper(), *(r.name.removeprefix(f"{kind}-") for r in rows)]
    body = [[label(kind, cell), *(cell_text(r.cells[cell]) for r in rows)] for cell in matrix.columns[kind]]
    table = [header, *body]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    return ["  ".join(value.ljust(w) for value, w in zip(line, widths, strict=True)).rstrip() for line in table]


def _totals(matrix: Matrix) -> list[str]:
    declared = sum(len(r.declared) for r in matrix.rows)
    counts = {s: sum(r.count(s) for r in matrix.rows) for s in (PROVEN, FAILED, UNPROVEN)}
    line = f"{declared} declared cells: {counts[PROVEN]} proven, {counts[FAILED]} failed, {counts[UNPROVEN]} unproven"
    unknown = [f"{r.name}: {r.unknown}" for r in matrix.rows if r.unknown]
    return [line, *(f"unknown capabilities: {u}" for u in unknown)]


def _connector_text(row: Row) -> list[str]:
    declared = len(row.declared)
    lines = [
        f"{row.name} ({row.kind}): {row.count(PROVEN)} of {declared} declared cells proven, "
        f"{row.count(FAILED)} failed, {row.count(UNPROVEN)} unproven"
    ]
    if row.unknown:
        lines.append(f"  capabilities unknown: {row.unknown}")
    width = max((len(label(row.kind, c)) for c in row.cells), default=0)
    for cell, verdict in row.cells.items():
        if verdict.status == NOT_APPLICABLE:
            continue
        details = _details(verdict)
        lines.append(f"  {label(row.kind, cell).ljust(width)}  {verdict.status.ljust(8)}  {details[0]}")
        lines += [f"  {''.ljust(width)}  {''.ljust(8)}  {more}" for more in details[1:]]
    lacking = [label(row.kind, c) for c, v in row.cells.items() if v.status == NOT_APPLICABLE]
    if lacking:
        lines.append(f"  not declared (n/a): {', '.join(lacking)}")
    lines.append("")
    return lines


def _details(verdict: Verdict) -> list[str]:
    if verdict.figures:
        return [_figures_line(f) for f in verdict.figures]
    if verdict.status == PROVEN:
        also = f", {verdict.skipped} skipped" if verdict.skipped else ""
        return [f"{verdict.passed} test{'s' * (verdict.passed != 1)} passed{also}, last run {verdict.last}"]
    return verdict.reasons or [""]


def _figures_line(figures: Figures) -> str:
    values = "; ".join(f"{k}: {_value(v)}" for k, v in figures.figures.items())
    return f"{figures.name} ({figures.date}, {_machine(figures.machine)}): {values}"


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _machine(machine: dict[str, Any]) -> str:
    parts = [f"{machine['cpus']} CPUs" if machine.get("cpus") else "", str(machine.get("cpu") or "")]
    parts += [f"Python {machine['python']}" if machine.get("python") else "", str(machine.get("commit") or "")]
    return ", ".join(p for p in parts if p) or "machine unknown"


# -- JSON -----------------------------------------------------------------------------------------------


def as_json(matrix: Matrix) -> str:
    doc = {
        "evidence": matrix.evidence,
        "benchmarks": matrix.bench,
        "test_records": matrix.records,
        "newest": matrix.newest,
        "connectors": [_row_json(r) for r in matrix.rows],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"


def _row_json(row: Row) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind,
        "unknown": row.unknown,
        "declared": row.declared,
        "summary": {s: row.count(s) for s in (PROVEN, FAILED, UNPROVEN)},
        "cells": [_cell_json(row.kind, cell, v) for cell, v in row.cells.items()],
    }


def _cell_json(kind: str, cell: str, verdict: Verdict) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "cell": cell,
        "label": label(kind, cell),
        "status": verdict.status,
        "tests": {"passed": verdict.passed, "failed": verdict.failed, "skipped": verdict.skipped},
        "last": verdict.last,
        "reasons": verdict.reasons,
        "evidence": [
            {"nodeid": t.nodeid, "outcome": t.outcome, "date": t.date, **({"reason": t.reason} if t.reason else {})}
            for t in verdict.tests
        ],
    }
    if verdict.figures:
        doc["figures"] = [
            {"name": f.name, "date": f.date, "machine": f.machine, "figures": f.figures} for f in verdict.figures
        ]
    return doc


# -- Markdown -------------------------------------------------------------------------------------------


def markdown(matrix: Matrix) -> str:
    lines = [
        "# Connector certification",
        "",
        "What each connector declares it can do, and the evidence behind every cell: the shared test suites'",
        "results and the benchmark figures. Generated, not written: after `make test` (which records test",
        "evidence in build/evidence), run",
        "",
        f"    {COMMAND}",
        "",
        "A cell is **proven** when tests that prove it passed (their count in brackets) and none failed, **FAILED**",
        "when one failed, **unproven** when it is declared but no test proved it (none ran, or each was skipped:",
        "a live suite without its server), and `-` when the connector does not declare it. The benchmark cell is",
        "proven by figures a benchmark script in bench/ recorded in bench/results/.",
        "",
        _source_line(matrix) + ".",
        "",
    ]
    for kind in matrix.kinds():
        rows = [r for r in matrix.rows if r.kind == kind]
        lines += [f"## {KIND_TITLES[kind]}", ""]
        lines.append("| capability | " + " | ".join(r.name for r in rows) + " |")
        lines.append("|---|" + "---|" * len(rows))
        for cell in matrix.columns[kind]:
            values = [_md_status(r.cells[cell]) for r in rows]
            lines.append(f"| {label(kind, cell)} | " + " | ".join(values) + " |")
        lines.append("")
    lines += _totals(matrix)
    lines.append("")
    for row in matrix.rows:
        lines += _connector_markdown(row)
    return "\n".join(lines).rstrip() + "\n"


def _md_status(verdict: Verdict) -> str:
    if verdict.status == PROVEN:
        return f"**proven** ({verdict.passed})" if verdict.passed else "**proven**"
    return {FAILED: "**FAILED**", UNPROVEN: UNPROVEN}.get(verdict.status, "-")


def _connector_markdown(row: Row) -> list[str]:
    lines = [
        f"### {row.name}",
        "",
        f"{row.count(PROVEN)} of {len(row.declared)} declared cells proven, {row.count(FAILED)} failed, "
        f"{row.count(UNPROVEN)} unproven.",
        "",
    ]
    if row.unknown:
        lines += [f"Capabilities unknown: {row.unknown}", ""]
    for cell, verdict in row.cells.items():
        if verdict.status == NOT_APPLICABLE:
            continue
        # Failure and skip texts are the tests' own words: markup in them must show as text.
        details = html.escape("; ".join(_details(verdict)), quote=False).replace("*", "\\*").replace("`", "\\`")
        lines.append(f"- {label(row.kind, cell)}: **{verdict.status}**" + (f": {details}" if details else ""))
    lacking = [label(row.kind, c) for c, v in row.cells.items() if v.status == NOT_APPLICABLE]
    if lacking:
        lines.append(f"- not declared: {', '.join(lacking)}")
    lines.append("")
    return lines
