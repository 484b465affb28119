"""docs/testing-a-connector.md shows target-duckdb's real fixture: the one the suite runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_documented_fixture_is_the_one_that_runs() -> None:
    doc = (ROOT / "docs" / "testing-a-connector.md").read_text()
    (shown,) = [b for b in re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL) if "class TestTargetDuckDB" in b]
    assert shown in (ROOT / "tests" / "contract" / "test_target_duckdb_suite.py").read_text()
