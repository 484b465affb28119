"""docs/writing-a-connector.md shows the SQLite example connectors' files as they are: the ones their
tests run (tests/contract/test_example_*_sqlite_suite.py, tests/unit/test_sql_loader.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "path",
    [
        "target_sqlite/loader.py",
        "target_sqlite/target.py",
        "target_sqlite/cli.py",
        "tap_sqlite/dialect.py",
        "tap_sqlite/tap.py",
    ],
)
def test_the_documented_sqlite_connectors_are_the_ones_that_run(path: str) -> None:
    doc = (ROOT / "docs" / "writing-a-connector.md").read_text()
    source = (ROOT / "examples" / path).read_text()
    assert f"`examples/{path}`:\n\n```python\n{source}```" in doc
