"""target-jsonl runs the shared target suite (tests/kit/target_suite.py): a file target, so the
scenarios of typed tables (merge, deletes, versions, schema drift, bad values) skip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.targets.jsonl.target import JsonlTarget
from tests.kit.kit import TargetKit
from tests.kit.target_suite import TargetSuite


class TestTargetJsonl(TargetSuite):
    @pytest.fixture
    def target_kit(self, tmp_path: Path) -> TargetKit:
        out = tmp_path / "out"

        def read_table(name: str) -> list[dict[str, Any]] | None:
            path = out / f"{name}.jsonl"
            if not path.exists():
                return None
            # A line cut by a killed run is not a row; the next run cuts it before appending.
            return [orjson.loads(line) for line in path.read_bytes().splitlines(keepends=True) if line.endswith(b"\n")]

        def tables() -> set[str]:
            # Any other file (a `.partial` of an overwrite) counts: nothing may be left behind.
            if not out.exists():
                return set()
            return {p.name.removesuffix(".jsonl") for p in out.iterdir()}

        return TargetKit(
            target=JsonlTarget,
            config={"destination_path": str(out)},
            read_table=read_table,
            tables=tables,
            workdir=tmp_path,
            has_tables=False,
            table_for=lambda stream: stream.replace("/", "_"),
        )
