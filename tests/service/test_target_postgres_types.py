"""target-postgres and JSON numbers: a `number` without a float format is exact (numeric), on the
encoder and the decoded path; `number_type: double precision` chooses floats; a number declared a
float (tap-postgres's real and double precision) is a float; a bigint column whose stream starts
sending numbers widens to numeric; a double precision column made by an earlier version is kept.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from dpone.targets.postgres.target import PostgresTarget
from tests.conftest import lines, record, schema, state
from tests.service.test_target_postgres import Pg, error_line, ok

pytestmark = pytest.mark.service

Raw = orjson.Fragment  # a number written exactly as given
NUMBER = {"type": ["number", "null"]}
# (as written in the RECORD, as numeric prints it)
EXACT = [
    (b"123456789012.123456", "123456789012.123456"),  # numeric(18,6): 18 digits
    (b"-999999999999.999999", "-999999999999.999999"),
    (b"123456789012345678901234567890", "123456789012345678901234567890"),  # 30 integer digits
    (b"1e-10", "0.0000000001"),
    (b"0.1", "0.1"),
    (b"2.50", "2.50"),
    (b"-0", "0"),
    (b"12345678901234567.5", "12345678901234567.5"),
]


def numbers(stream: str, props: dict[str, Any], values: list[bytes], first_id: int = 1) -> bytes:
    return lines(
        schema(stream, {"id": {"type": "integer"}, **props}),
        *(record(stream, {"id": first_id + i, "v": Raw(v)}) for i, v in enumerate(values)),
        state({"done": stream}),
    )


def test_a_plain_number_lands_exact_in_numeric(run_target: Any, pg: Pg, path: str) -> None:
    data = numbers("n", {"v": NUMBER}, [written for written, _ in EXACT])
    assert ok(run_target(PostgresTarget, pg.config(), data)).states == [{"done": "n"}]
    assert pg.column_types("n")["v"] == "numeric"
    assert pg.rows("SELECT v::text FROM n ORDER BY id") == [(text,) for _, text in EXACT]


def test_number_type_double_precision_chooses_floats(run_target: Any, pg: Pg, path: str) -> None:
    data = numbers("n", {"v": NUMBER}, [b"0.1", b"123456789012.123456", b"1e-10"])
    ok(run_target(PostgresTarget, pg.config(number_type="double precision"), data))
    assert pg.column_types("n")["v"] == "double precision"
    assert pg.rows("SELECT v FROM n ORDER BY id") == [(0.1,), (123456789012.12346,), (1e-10,)]


@pytest.mark.parametrize(
    "hint",
    [{"x-sql-datatype": "double precision"}, {"x-sql-datatype": "real"}, {"format": "double"}],
    ids=["double", "real", "format"],
)
def test_a_number_declared_a_float_lands_as_double_precision(run_target: Any, pg: Pg, hint: dict[str, str]) -> None:
    ok(run_target(PostgresTarget, pg.config(), numbers("f", {"v": {**NUMBER, **hint}}, [b"0.1", b"-2.5e300"])))
    assert pg.column_types("f")["v"] == "double precision"
    assert pg.rows("SELECT v FROM f ORDER BY id") == [(0.1,), (-2.5e300,)]


def test_number_type_is_checked_before_anything_is_created(run_target: Any, pg: Pg) -> None:
    result = run_target(PostgresTarget, pg.config(number_type="float"), numbers("n", {"v": NUMBER}, [b"1"]))
    assert "number_type" in error_line(result, "config", 78)
    assert pg.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (pg.schema,)) == 0


def test_a_bigint_column_widens_to_numeric_when_numbers_arrive(run_target: Any, pg: Pg, path: str) -> None:
    config = pg.config(add_record_metadata=False)
    integer = {"type": ["integer", "null"]}
    ok(run_target(PostgresTarget, config, numbers("w", {"v": integer}, [b"9223372036854775807", b"-5"])))
    assert pg.column_types("w")["v"] == "bigint"
    # A tap that inferred integer, then saw 1.5: the next run (and a change within one run) widens.
    ok(run_target(PostgresTarget, config, numbers("w", {"v": NUMBER}, [b"1.5"], first_id=3)))
    assert pg.column_types("w")["v"] == "numeric"
    mid_run = numbers("m", {"v": integer}, [b"-9223372036854775808"]) + numbers("m", {"v": NUMBER}, [b"0.25"], 2)
    ok(run_target(PostgresTarget, config, mid_run))
    assert pg.column_types("m")["v"] == "numeric"
    assert pg.rows("SELECT id, v::text FROM w ORDER BY id") == [(1, "9223372036854775807"), (2, "-5"), (3, "1.5")]
    assert pg.rows("SELECT id, v::text FROM m ORDER BY id") == [(1, "-9223372036854775808"), (2, "0.25")]


def test_a_double_precision_column_keeps_taking_plain_numbers(run_target: Any, pg: Pg, path: str) -> None:
    # What earlier versions made of every plain number.
    ok(run_target(PostgresTarget, pg.config(number_type="double precision"), numbers("d", {"v": NUMBER}, [b"0.5"])))
    assert pg.column_types("d")["v"] == "double precision"
    strict = {"policy": "strict"}  # not even a change the strict policy would stop on
    result = ok(
        run_target(PostgresTarget, pg.config(schema_evolution=strict), numbers("d", {"v": NUMBER}, [b"1.5"], 2))
    )
    assert "stays double precision" in result.stderr
    assert pg.column_types("d")["v"] == "double precision"
    assert pg.rows("SELECT id, v FROM d ORDER BY id") == [(1, 0.5), (2, 1.5)]


def test_a_numeric_column_takes_numbers_declared_floats(run_target: Any, pg: Pg) -> None:
    ok(run_target(PostgresTarget, pg.config(), numbers("x", {"v": NUMBER}, [b"0.125"])))
    double = {**NUMBER, "x-sql-datatype": "double precision"}
    ok(run_target(PostgresTarget, pg.config(), numbers("x", {"v": double}, [b"1.5e-7"], 2)))
    assert pg.column_types("x")["v"] == "numeric"
    assert pg.rows("SELECT v::text FROM x ORDER BY id") == [("0.125",), ("0.00000015",)]
