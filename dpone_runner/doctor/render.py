"""`dpone doctor` output: text grouped per pipeline and connector, or a JSON list of the groups."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from dpone_protocol.ops import FAIL, OK, SKIP, WARN
from dpone_runner.doctor.groups import CheckGroup, tally

MARKS = {OK: "ok", WARN: "warn", FAIL: "FAIL", SKIP: "skip"}
_INDENT = "    "


def text(groups: Sequence[CheckGroup]) -> str:
    lines: list[str] = []
    pipeline: object = object()  # no pipeline yet: the first group opens a section
    for group in groups:
        if group.pipeline != pipeline:
            pipeline = group.pipeline
            if lines:
                lines.append("")
            lines.append(f"pipeline {pipeline}" if pipeline else "project")
        lines.append(f"  {group.connector}")
        width = max((len(check.name) for check in group.checks), default=0)
        for check in group.checks:
            mark = MARKS.get(check.status, check.status)
            lines.append(f"{_INDENT}{mark:<4}  {check.name:<{width}}  {check.detail}".rstrip())
            if check.hint and check.status in (FAIL, WARN):
                lines.append(f"{_INDENT}{'':<4}  {'':<{width}}  hint: {check.hint}")
    lines += ["", summary(groups)]
    return "\n".join(lines) + "\n"


def summary(groups: Sequence[CheckGroup]) -> str:
    counts = tally(groups)
    total = sum(counts.values())
    parts = [f"{counts[OK]} ok", f"{counts[WARN]} warning(s)", f"{counts[FAIL]} failed", f"{counts[SKIP]} skipped"]
    verdict = "something would fail: fix the FAIL lines" if counts[FAIL] else "nothing would fail"
    return f"{total} checks: {', '.join(parts)}; {verdict}"


def json_text(groups: Sequence[CheckGroup]) -> str:
    return orjson.dumps([g.to_dict() for g in groups], option=orjson.OPT_INDENT_2).decode() + "\n"
