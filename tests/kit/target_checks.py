"""What the shared target scenarios assert with: input builders, table readers and the one-error-line check."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import Run, record
from tests.kit.kit import Row, TargetKit

PROPS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}
# Metadata that differs between two runs of the same input by design.
RUN_STAMPS = ("_sdc_received_at", "_sdc_batched_at")
NC = "__dpone__nc__"
SDK_STREAMS = Path(str(__import__("singer_sdk").__file__)).parent / "testing" / "target_test_streams"
DELETED_AT = "2024-05-01T00:00:00+00:00"


# -- helpers ----------------------------------------------------------------------------------------------


def people(*pairs: tuple[int, str | None], stream: str = "people", **extra: Any) -> list[dict[str, Any]]:
    return [record(stream, {"id": i, "name": n}, **extra) for i, n in pairs]


def ok(result: Run) -> Run:
    assert result.rc == 0, result.stderr
    return result


def error_line(kit: TargetKit, result: Run, kind: str, rc: int, scenario: str | None = None) -> str:
    """The run failed with `rc` and wrote exactly one error line of this kind, the last one; a connector's
    own `says` for the scenario must be in it too."""
    assert result.rc == rc, result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith(f"{kit.name}:")]
    assert len(ours) == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == ours[0], result.stderr
    assert ours[0].startswith(f"{kit.name}: {kind} error: "), ours[0]
    for text in kit.says.get(scenario or "", ()):
        assert text in ours[0], (text, ours[0])
    return ours[0]


def table(kit: TargetKit, stream: str) -> list[Row]:
    rows = kit.rows(stream)
    assert rows is not None, f"no table for stream {stream!r}: {kit.tables()}"
    return rows


def pick(rows: Iterable[Row], *columns: str) -> list[tuple[Any, ...]]:
    """The columns of each row, sorted: the order a table gives rows back in is no promise."""
    return sorted((tuple(r.get(c) for c in columns) for r in rows), key=sort_key)


def sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is not None, str(v) if not isinstance(v, int | float) else v) for v in row)


def live(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if r.get("_sdc_deleted_at") is None]


def instant(value: Any) -> dt.datetime | None:
    """A timestamp as an aware UTC datetime, whether the destination gives a datetime or text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime), value
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def number(value: Any) -> decimal.Decimal | None:
    return None if value is None else decimal.Decimal(str(value))


def without_stamps(rows: Iterable[Row]) -> list[bytes]:
    """Rows as comparable, sortable bytes, minus the metadata every run stamps anew."""
    kept = [{k: v for k, v in r.items() if k not in RUN_STAMPS} for r in rows]
    return sorted(orjson.dumps(r, default=str, option=orjson.OPT_SORT_KEYS) for r in kept)


def evolution(policy: str, on_type_change: str | None = None) -> dict[str, Any]:
    spec = {"policy": policy}
    if on_type_change:
        spec["on_type_change"] = on_type_change
    return {"schema_evolution": spec}


def need(condition: bool, why: str) -> None:
    if not condition:
        pytest.skip(why)


def applies(kit: TargetKit, scenario: str) -> None:
    """Skip a scenario the connector says cannot apply to its destination, with its reason."""
    if scenario in kit.lacks:
        pytest.skip(f"{kit.name}: {kit.lacks[scenario]}")
