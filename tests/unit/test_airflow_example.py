"""The Airflow DAG example (examples/airflow/dpone_partitions_dag.py) parses and uses the partitions API.

Airflow is not installed here (it needs its metadata database): the file is read as a syntax tree.
"""

from __future__ import annotations

import ast
from pathlib import Path

from dpone_runner.partitions import api

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "airflow" / "dpone_partitions_dag.py"


def tree() -> ast.Module:
    return ast.parse(EXAMPLE.read_text(), filename=str(EXAMPLE))


def names_used(module: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            found.update(alias.name for alias in node.names)
    return found


def test_it_compiles():
    compile(EXAMPLE.read_text(), str(EXAMPLE), "exec")


def test_it_calls_the_partitions_api_that_exists():
    used = names_used(tree())
    for name in ("range_keys", "run_range", "finalize"):
        assert name in used
        assert callable(getattr(api, name))


def test_the_ranges_are_mapped_tasks_with_retries():
    module = tree()
    expands = [n for n in ast.walk(module) if isinstance(n, ast.Attribute) and n.attr == "expand"]
    assert len(expands) == 1
    assert ".expand(key=" in EXAMPLE.read_text()
    # The mapped task: @task(retries=N, ...) on load_range.
    (load_range,) = [n for n in ast.walk(module) if isinstance(n, ast.FunctionDef) and n.name == "load_range"]
    (decorator,) = load_range.decorator_list
    assert isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Name) and decorator.func.id == "task"
    retries = {k.arg: k.value for k in decorator.keywords}["retries"]
    assert isinstance(retries, ast.Constant) and retries.value >= 1


def test_it_imports_dpone_only_inside_tasks():
    """The scheduler parses DAG files often; only workers need dpone."""
    top = [n for n in tree().body if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = {n.module for n in top if isinstance(n, ast.ImportFrom)} | {
        a.name for n in top if isinstance(n, ast.Import) for a in n.names
    }
    assert not {m for m in modules if m and m.split(".")[0] in ("dpone", "dpone_runner", "dpone_protocol")}
