"""The PostgreSQL store's DSN handling, and that importing it loads no driver (no server needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dpone.state.postgres_store import _redactor, split_schema


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://u:pw@h:5432/db", ("postgresql://u:pw@h:5432/db", None)),
        ("postgresql://u@h/db?schema=dpone", ("postgresql://u@h/db", "dpone")),
        (
            "postgresql://u@h/db?sslmode=require&schema=st&application_name=x",
            ("postgresql://u@h/db?sslmode=require&application_name=x", "st"),
        ),
        ("postgresql://u@h/db?schema=", ("postgresql://u@h/db", None)),
        ("host=h dbname=db schema=dpone user=u", ("host=h dbname=db user=u", "dpone")),
        ("host=h dbname=db", ("host=h dbname=db", None)),
    ],
)
def test_split_schema(dsn: str, expected: tuple[str, str | None]):
    assert split_schema(dsn) == expected


def test_redactor_masks_the_dsn_password_even_decoded():
    redact = _redactor("postgresql://u:p%40ss-word@h/db")
    assert redact("failed for p@ss-word and p%40ss-word") == "failed for *** and ***"
    assert "s3cr" not in _redactor("postgresql://u:s3cr@h/db")("postgresql://u:s3cr@h/db")


def test_importing_the_postgres_store_loads_no_driver():
    code = "import sys, dpone.state.postgres_store, dpone.state.store; print('psycopg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
