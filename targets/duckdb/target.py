"""target-duckdb: the embedded analytics database, loaded staging-first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from dpone.targets.duckdb.loader import DuckDBLoader
from dpone.targets.duckdb.type_map import DEFAULT_NUMBERS, NUMBER_MODES, ROUNDED_NUMBERS, decimal_shape, duckdb_type
from dpone.targets.framework.loader import LOADER_SETTINGS, Loader
from dpone.targets.framework.loader_sink import LoaderSink
from dpone.targets.framework.loader_target import LoaderTarget
from dpone.targets.framework.sink import FLOAT_EXACT_DIGITS
from dpone_protocol.json_schema import ColumnType, Logical
from dpone_protocol.messages import SchemaMessage
from dpone_protocol.ops import Check
from dpone_protocol.settings import Setting


def _allows_number(prop: Any) -> bool:
    """True when a property's schema lets a JSON number through (an integer too: one beyond 64
    bits becomes a decimal column, and a fraction sent to it must not be rounded on the way)."""
    if not isinstance(prop, dict):
        return False
    declared = prop.get("type", [])
    kinds = {declared} if isinstance(declared, str) else set(declared) if isinstance(declared, list) else set()
    if kinds & {"number", "integer"}:
        return True
    return any(_allows_number(alt) for alt in prop.get("anyOf") or prop.get("oneOf") or [])


def _floats_may_change(column: ColumnType, numbers: str) -> bool:
    """True when a column's JSON numbers, decoded as floats, may no longer be what was sent by the
    time the loader checks them: any number bound for text, for a DECIMAL wider than a float's 15
    digits, or for a DOUBLE that takes only what it gives back. A declared float is a float."""
    if column.bits:
        return False
    duck_type = duckdb_type(column, numbers)
    if duck_type in ("DOUBLE", "FLOAT"):
        return numbers != ROUNDED_NUMBERS
    declared = decimal_shape(duck_type)
    return declared is None or declared[0] > FLOAT_EXACT_DIGITS


class DuckDBSink(LoaderSink):
    """A LoaderSink whose records carry their input line, so a value the loader stops on is named by it."""

    carry_lines = True

    def set_schema(self, message: SchemaMessage) -> None:
        super().set_schema(message)
        # A float would already have rounded a number bound for any column but a float one, or for a
        # DOUBLE that must take only what it gives back: such a stream is decoded exactly (a string
        # column of a ["string", "number"] union included). A declared float needs no check.
        numbers = str(self.config.get("unbounded_numbers") or DEFAULT_NUMBERS)
        exact_json = bool(self.config.get("exact_json_numbers", True))
        properties = self.schema.get("properties", {})
        self.exact_numbers = any(
            exact_json
            if column.logical in (Logical.OBJECT, Logical.ARRAY, Logical.JSON)
            else _allows_number(properties.get(name)) and _floats_may_change(column, numbers)
            for name, column in self.columns.items()
        )


class DuckDBTarget(LoaderTarget):
    name = "target-duckdb"
    description = "Loads streams into a DuckDB file: staging table, then append, merge on key, or replace."
    drivers: ClassVar[dict[str, str]] = {"duckdb": "duckdb"}
    settings: ClassVar[tuple[Setting, ...]] = LOADER_SETTINGS + (
        Setting("filepath", "string", "DuckDB database file.", default="dpone.duckdb"),
        Setting("default_target_schema", "string", "Schema the tables are created in.", default="main"),
        Setting("staging_dir", "string", "Directory for temporary bulk-load files (default: system temp)."),
        Setting(
            "unbounded_numbers",
            "string",
            "Numbers without a precision DuckDB's DECIMAL can declare (JSON numbers the schema does not declare "
            "a float, decimals without precision or wider than 38 digits): double stores the values a double "
            "gives back exactly and stops the load on any other; varchar keeps the number's text, every digit, "
            "NaN and Infinity; decimal makes DECIMAL(38,s) and stops on a value it cannot hold; double_rounded "
            "rounds to a double (lossy).",
            default=DEFAULT_NUMBERS,
            choices=NUMBER_MODES,
        ),
    )

    sink_class = DuckDBSink

    def make_loader(self) -> Loader:
        return DuckDBLoader(self.config, read_only=self.read_only)

    def reconcile(self, request: Mapping[str, Any], catalog: Any) -> dict[str, Any]:
        from dpone.targets.duckdb.reconcile import reconcile  # noqa: PLC0415 - only `--ops` asks

        return reconcile(self, request)

    def doctor(self, catalog: Any) -> list[Check]:
        from dpone.targets.duckdb import doctor  # noqa: PLC0415 - only `--ops` asks

        return doctor.checks(self.config)
