"""target-postgres with its COPY row encoder (`copyrows/*.c`) and without it load the same rows.

The same input, written to be awkward (every column type, numbers past a float's digits,
escapes and unicode, NULs under each policy, keys repeated within a batch of an upsert, batches
of a few rows), is loaded once through the extension and once with DPONE_PURE_PYTHON=1, where
psycopg formats every row. The two tables must hold the same rows.
"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import orjson
import pytest

from dpone.targets.framework.encoded_rows import NOT_HANDLED
from dpone.targets.postgres import copy_rows
from dpone.targets.postgres.loader import LOAD_TIME_COLUMNS
from dpone.targets.postgres.target import PostgresTarget
from tests.conftest import lines, record, schema, state
from tests.service.test_target_postgres import TYPE_PROPS, Pg

pytestmark = pytest.mark.service

# Numbers into numeric and jsonb columns: decoded without rounding (Decimal), an "exact" stream.
# The all-types round trip's columns, with arrays of any item (the input mixes them).
EXACT_PROPS = {**TYPE_PROPS, "arr": {"type": ["array", "null"]}}
# No numeric or jsonb column: decoded with floats, as most streams are.
FLOAT_PROPS = {
    "id": {"type": "integer"},
    "f": {"type": ["number", "null"]},
    "g": {"type": ["number", "null"]},
    "flag": {"type": ["boolean", "null"]},
    "txt": {"type": ["string", "null"]},
}
NASTY = "quote ' \" back\\slash \\N \\t tab\there\nnew\r\nline \b\f\x01\x7f 😀 中文 ünï € \u2028 \ufffd"
Raw = orjson.Fragment  # a number written exactly as given


def fragments(value: Any) -> bool:
    if isinstance(value, dict):
        return any(fragments(v) for v in value.values())
    if isinstance(value, list):
        return any(fragments(v) for v in value)
    return isinstance(value, orjson.Fragment)


def tricky_record(rng: random.Random, i: int, nul: bool) -> dict[str, Any]:
    pick = rng.choice
    rec: dict[str, Any] = {
        "id": rng.randrange(15),  # repeats within a batch: the last one must win
        "big": pick([0, -1, 2**63 - 1, -(2**63), rng.randint(-(10**12), 10**12), None, Raw(b"-0")]),
        "f": pick([1.5e-7, -0.0, 0.1, 3, 1e300, rng.uniform(-1e6, 1e6), None, Raw(b"1.50"), Raw(b"1E+2")])
        if i % 9
        # (not 1e-400: decoded exactly, it is refused by float8 on both paths)
        else pick([Raw(b"123456789012345678901234567890"), Raw(b"-0"), Raw(b"2.5e-308"), Raw(b"4.9e-324")]),
        "dec": pick(["123456789012345678901234567890.123456789", "-0.000000000000000001", "1E+5", "0", None]),
        "amount": pick(
            [Raw(b"12345678901234567890.123456789012345678"), Raw(b"1.50"), Raw(b"-0"), Raw(b"1e-400"), 1.5, 7, None]
        ),
        "huge": pick([Raw(b"123456789012345678901234567890"), Raw(b"-98765432109876543210987654321"), 42, None]),
        "flag": pick([True, False, None]),
        "ts": pick(["2024-02-29T23:59:59.123456+05:30", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00", None]),
        "d": pick(["2024-02-29", "1970-01-01", None]),
        "t": pick(["12:34:56", "23:59:59.999999", None]),
        "u": pick([str(uuid.UUID(int=rng.getrandbits(128))), None]),
        "obj": pick(
            [
                {"k": [1, {"x": None}], "s": NASTY, "b": False},
                {"n": Raw(b"1.50"), "big": Raw(b"123456789012345678901234567890"), "neg": Raw(b"-0.0")},
                {"\\u0000": "a literal backslash-u0000, no NUL", "tab\tkey": [], "é": {"": None}},
                {},
                None,
            ]
        ),
        "arr": pick([[3, 2, 1], [], ["a\tb", None, True, 1.25], [[[]]], None]),
        "code": pick(["ABC-123", "", "é\t\\\n", "😀" * 5, None]),
        "txt": pick([NASTY, "", "\\", "plain", "\\u0000 is not a NUL", None]),
        "not_in_schema": pick([{"deep": [1, 2]}, "x", None]),
    }
    if i % 6 == 0:
        rec["_sdc_deleted_at"] = "2024-05-01T10:00:00+00:00"
    if i % 11 == 0:
        # The envelope's values win over the record's, on both paths.
        rec["_sdc_extracted_at"] = "1999-01-01T00:00:00Z"
        rec["_sdc_table_version"] = 999
    if nul:
        where = pick(["txt", "code", "obj", "arr"])
        rec[where] = {"txt": "a\x00b", "code": "\x00", "obj": {"k\x00": "x\x00y"}, "arr": ["\x00", "ok"]}[where]
    return rec


def float_record(rng: random.Random, i: int, nul: bool) -> dict[str, Any]:
    numbers = [1.5e-7, -0.0, 0.1, 3, 1e300, 2.5e-308, None, Raw(b"1.50"), Raw(b"1E+2"), Raw(b"-0"), Raw(b"1e-400")]
    return {
        "id": rng.randrange(10),
        "f": rng.choice(numbers),
        "g": rng.choice([*numbers, Raw(b"123456789012345678901234567890"), Raw(b"-0.0"), Raw(b"4.9e-324")]),
        "flag": rng.choice([True, False, None]),
        "txt": "a\x00b" if nul else rng.choice([NASTY, "", None]),
    }


def tricky_input(prefix: str, policy: str) -> bytes:
    """150 records of two streams, in the same order and spelling whatever the prefix of their
    names; a NUL now and then (with the fail policy only late, so earlier batches commit first)."""
    rng = random.Random(20240501)
    out = [orjson.dumps(schema(f"{prefix}_exact", EXACT_PROPS)), orjson.dumps(schema(f"{prefix}_float", FLOAT_PROPS))]
    for i in range(150):
        nul = (i % 13 == 5) if policy != "fail" else i == 120
        extra: dict[str, Any] = {}
        if i % 4:
            extra["time_extracted"] = rng.choice(["2024-06-01T00:00:00+00:00", "2024-06-02T12:30:00Z"])
        if i % 5:
            extra["version"] = rng.choice([1, 2, 1717200000000])
        if i % 5 == 3:
            message = record(f"{prefix}_float", float_record(rng, i, nul), **extra)
        else:
            message = record(f"{prefix}_exact", tricky_record(rng, i, nul), **extra)
        style = i % 3
        if style == 0 or fragments(message):
            out.append(orjson.dumps(message))
        elif style == 1:  # singer-python: spaces after separators, \u escapes for all but ASCII
            out.append(json.dumps(message).encode())
        else:
            out.append(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode())
        if i % 25 == 24:
            out.append(orjson.dumps(state({"at": i})))
    return b"\n".join(out) + b"\n"


class CountingRouter:
    """The loader's router, counting the lines it took and declined."""

    def __init__(self, router: Any) -> None:
        self.router, self.taken, self.declined = router, 0, 0

    def register(self, stream: str, encoder: Any) -> None:
        self.router.register(stream, encoder)

    def unregister(self, stream: str) -> None:
        self.router.unregister(stream)

    def feed(self, line: bytes) -> int:
        added = int(self.router.feed(line))
        if added == NOT_HANDLED:
            self.declined += 1
        else:
            self.taken += 1
        return added


def test_the_extension_is_built_and_used_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    # CI builds the extension: a silent fall back to the pure-Python path would hide a broken build.
    monkeypatch.delenv(copy_rows.PURE_PYTHON_ENV, raising=False)
    assert copy_rows.available()
    monkeypatch.setenv(copy_rows.PURE_PYTHON_ENV, "0")
    assert copy_rows.available()
    monkeypatch.setenv(copy_rows.PURE_PYTHON_ENV, "1")
    assert not copy_rows.available()


@pytest.mark.parametrize("policy", ["strip", "replace", "fail"])
def test_the_encoder_and_the_pure_python_path_load_the_same_rows(
    run_target: Any, pg: Pg, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    config = pg.config(batch_size_rows=7, nul_character_policy=policy)
    monkeypatch.delenv(copy_rows.PURE_PYTHON_ENV, raising=False)
    routers: list[CountingRouter] = []
    make_router = copy_rows.make_router

    def counting_router() -> Any:
        routers.append(CountingRouter(make_router()))
        return routers[-1]

    monkeypatch.setattr(copy_rows, "make_router", counting_router)
    fast = run_target(PostgresTarget, config, tricky_input("fast", policy))
    monkeypatch.setenv(copy_rows.PURE_PYTHON_ENV, "1")
    pure = run_target(PostgresTarget, config, tricky_input("pure", policy))

    assert (fast.rc, fast.states) == (pure.rc, pure.states), (fast.stderr, pure.stderr)
    # Most lines took the encoder's way, the rest (NULs, -0 and 1e-400 as floats...) the decoded one.
    (router,) = routers
    assert router.taken > 50 and router.declined > 5, (router.taken, router.declined)
    if policy == "fail":
        assert fast.rc == 65 and "NUL" in fast.stderr and "NUL" in pure.stderr
    else:
        assert fast.rc == 0, fast.stderr
        assert fast.states[-1] == {"at": 149}

    assert pg.column_types("fast_exact")["amount"] == "numeric"
    for table in ("exact", "float"):
        fast_table, pure_table = f"fast_{table}", f"pure_{table}"
        types = pg.column_types(fast_table)
        assert types == pg.column_types(pure_table)
        columns = ", ".join(f'"{c}"' for c in sorted(types) if c not in LOAD_TIME_COLUMNS)
        count = "SELECT count(*) FROM {}"
        assert pg.scalar(count.format(fast_table)) == pg.scalar(count.format(pure_table)) > 5
        for a, b in ((fast_table, pure_table), (pure_table, fast_table)):
            assert pg.rows(f"SELECT {columns} FROM {a} EXCEPT SELECT {columns} FROM {b}") == []
    # Numbers past a double's digits arrived whole both ways.
    assert pg.scalar("SELECT count(*) FROM fast_exact WHERE huge::text = '123456789012345678901234567890'") > 0
    # -0 came as the integer 0: no negative zero in a float column.
    assert pg.scalar("SELECT count(*) FROM fast_float WHERE f::text = '-0' OR g::text = '-0'") == pg.scalar(
        "SELECT count(*) FROM pure_float WHERE f::text = '-0' OR g::text = '-0'"
    )


@pytest.mark.parametrize("pure", [False, True], ids=["encoder", "pure-python"])
def test_one_key_in_two_spellings_within_a_batch_keeps_the_later_row(
    run_target: Any, pg: Pg, monkeypatch: pytest.MonkeyPatch, pure: bool
) -> None:
    # 10 and 10.0 are one numeric key to the server. The encoder keeps literals as they came and
    # compares keys by their text, so the batch reaches MERGE with the key twice; the loader then
    # keeps the later row in staging and merges again.
    if pure:
        monkeypatch.setenv(copy_rows.PURE_PYTHON_ENV, "1")
    else:
        monkeypatch.delenv(copy_rows.PURE_PYTHON_ENV, raising=False)
    props = {"k": {"type": "number"}, "v": {"type": ["string", "null"]}}
    first = (schema("nums", props, keys=["k"]), record("nums", {"k": 10, "v": "old"}))
    assert run_target(PostgresTarget, pg.config(), lines(*first)).rc == 0
    data = lines(
        schema("nums", props, keys=["k"]),
        record("nums", {"k": 10, "v": "a"}),
        record("nums", {"k": 10.0, "v": "b"}),  # written as 10.0
        record("nums", {"k": 11, "v": "c"}),
        state({"done": True}),
    )
    result = run_target(PostgresTarget, pg.config(), data)
    assert result.rc == 0, result.stderr
    assert result.states == [{"done": True}]
    assert pg.rows("SELECT k::text, v FROM nums ORDER BY k") == [("10", "b"), ("11", "c")]
