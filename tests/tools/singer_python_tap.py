"""A tiny tap written with singer-python, the original Singer library, as third-party taps are.

Runs in the singer-python tool venv (`.venv-tools/singer-python/bin/python singer_python_tap.py
--config CONFIG [--state STATE]`). Two streams: `people` (keyed, incremental on updated_at, with
a nested object, an array and nulls) and `events` (no key). Config: {"rows": N}.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import singer  # type: ignore[import-not-found]
from singer import utils  # type: ignore[import-not-found]

PEOPLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["null", "string"]},
        "score": {"type": ["null", "number"]},
        "active": {"type": ["null", "boolean"]},
        "address": {
            "type": ["null", "object"],
            "properties": {"city": {"type": ["null", "string"]}, "zip": {"type": ["null", "string"]}},
        },
        "tags": {"type": ["null", "array"], "items": {"type": "string"}},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
EVENTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"kind": {"type": "string"}, "at": {"type": "string", "format": "date-time"}},
}
BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def person(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "name": None if i % 3 == 0 else f"person {i}",
        "score": None if i % 4 == 0 else i * 1.5,
        "active": i % 2 == 0,
        "address": {"city": f"city {i % 2}", "zip": f"{10000 + i}"},
        "tags": [f"t{i}", "all"],
        "updated_at": utils.strftime(BASE + dt.timedelta(hours=i)),
    }


def main() -> None:
    args = utils.parse_args([])
    rows = int(args.config.get("rows", 5))
    state: dict[str, Any] = args.state or {}
    start = singer.get_bookmark(state, "people", "updated_at")

    singer.write_schema("people", PEOPLE_SCHEMA, ["id"], bookmark_properties=["updated_at"])
    people = [p for p in map(person, range(1, rows + 1)) if start is None or p["updated_at"] > start]
    singer.write_records("people", people)
    if people:
        state = singer.write_bookmark(state, "people", "updated_at", people[-1]["updated_at"])
    singer.write_state(state)

    singer.write_schema("events", EVENTS_SCHEMA, [])
    singer.write_records("events", [{"kind": "synced", "at": utils.strftime(BASE)}])
    singer.write_state(state)


if __name__ == "__main__":
    main()
