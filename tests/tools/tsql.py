"""Every T-SQL statement the SQL Server connectors send, checked with sqlglot's T-SQL parser.

A statement passes when it parses without error, holds no generic `Command` node (what sqlglot
makes of text it cannot parse, with only a warning), and its round trip is stable: the text
sqlglot generates from it parses back to the same text.

sqlglot's T-SQL grammar lacks one construct the tap needs, `CHANGETABLE(CHANGES <table>, <version>)`
(Change Tracking's only interface); the dialect below adds that one function and nothing else.
"""

from __future__ import annotations

from typing import Any, ClassVar

import sqlglot
from sqlglot import exp
from sqlglot.dialects.tsql import TSQL
from sqlglot.tokens import TokenType


class ChangeTable(exp.Expression, exp.Func):
    arg_types: ClassVar[dict[str, bool]] = {"kind": True, "this": True, "expressions": True}


def _parse_changetable(parser: Any) -> ChangeTable:
    kind = parser._parse_var(any_token=True)
    table = parser._parse_table_parts()
    parser._match(TokenType.COMMA)
    return ChangeTable(kind=kind, this=table, expressions=parser._parse_csv(parser._parse_bitwise))


class TSQLChangeTracking(TSQL):
    class Parser(TSQL.Parser):
        FUNCTION_PARSERS = {**TSQL.Parser.FUNCTION_PARSERS, "CHANGETABLE": _parse_changetable}

    class Generator(TSQL.Generator):
        TRANSFORMS = {
            **TSQL.Generator.TRANSFORMS,
            ChangeTable: lambda self, e: (
                f"CHANGETABLE({e.args['kind'].name} {self.sql(e, 'this')}, {self.expressions(e, flat=True)})"
            ),
        }


DIALECT = TSQLChangeTracking


class TsqlProblem(AssertionError):
    pass


def parse(sql: str) -> list[exp.Expression]:
    try:
        trees = [t for t in sqlglot.parse(sql, read=DIALECT, error_level=sqlglot.ErrorLevel.RAISE) if t is not None]
    except sqlglot.errors.ParseError as exc:
        raise TsqlProblem(f"T-SQL parse error: {exc}\n{sql}") from None
    commands = [n for tree in trees for n in tree.walk() if isinstance(n, exp.Command)]
    if commands:
        raise TsqlProblem(f"sqlglot could only keep it as a Command ({commands[0].sql(DIALECT)!r}):\n{sql}")
    return trees


def check(sql: str) -> list[exp.Expression]:
    """Parse `sql` as T-SQL, refusing an error, a Command node or an unstable round trip; the trees."""
    trees = parse(sql)
    once = ";\n".join(t.sql(DIALECT) for t in trees)
    twice = ";\n".join(t.sql(DIALECT) for t in parse(once))
    if once != twice:
        raise TsqlProblem(f"round trip not stable:\n{once}\n!=\n{twice}\nfrom:\n{sql}")
    return trees
