"""Quick start: load examples/data/*.csv into DuckDB with tap-csv | target-duckdb, twice.

The second run starts from the state the target committed in the first, so it finds
nothing new (the row at each bookmark is re-read and merged: counts stay the same).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".dpone"
STATE = WORK / "quickstart-state.json"
DATABASE = WORK / "quickstart.duckdb"
BIN = Path(sys.executable).parent


def run_pipeline() -> int:
    """tap-csv | target-duckdb; saves the last STATE the target echoed (committed)."""
    tap_cmd = [str(BIN / "tap-csv"), "--config", "examples/tap-csv.json"]
    if STATE.exists():
        tap_cmd += ["--state", str(STATE)]
    target_cmd = [str(BIN / "target-duckdb"), "--config", "examples/target-duckdb.json"]
    env = {**os.environ, "DPONE_LOG_LEVEL": "WARNING"}
    tap = subprocess.Popen(tap_cmd, cwd=ROOT, stdout=subprocess.PIPE, env=env)
    target = subprocess.run(target_cmd, cwd=ROOT, stdin=tap.stdout, capture_output=True, env=env, check=False)
    assert tap.stdout is not None
    tap.stdout.close()
    tap_rc = tap.wait()
    sys.stderr.write(target.stderr.decode())
    if tap_rc or target.returncode:
        print(f"pipeline failed: tap exit {tap_rc}, target exit {target.returncode}")
        return 1
    states = [line for line in target.stdout.splitlines() if line.strip()]
    if states:
        STATE.write_bytes(states[-1] + b"\n")
    return 0


def counts() -> dict[str, int]:
    with duckdb.connect(str(DATABASE), read_only=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}  # type: ignore[index]


def report() -> None:
    with duckdb.connect(str(DATABASE), read_only=True) as conn:
        rows = conn.execute(
            "SELECT c.city, count(DISTINCT c.id) AS customers, count(o.order_id) AS orders, "
            "round(sum(o.amount), 2) AS revenue FROM customers c LEFT JOIN orders o ON o.customer_id = c.id "
            "GROUP BY c.city ORDER BY revenue DESC LIMIT 5"
        ).fetchall()
    print("  top cities by revenue (customers JOIN orders):")
    for city, customers, orders, revenue in rows:
        print(f"    {city:<10} {customers:>4} customers {orders:>5} orders {revenue:>12,.2f}")


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    print("run 1: tap-csv | target-duckdb (full load)")
    if run_pipeline():
        return 1
    first = counts()
    for table, n in first.items():
        print(f"  {table}: {n} rows")
    report()
    print(f"  committed state saved to {STATE.relative_to(ROOT)}")
    print("run 2: same pipeline, starting from the saved state")
    if run_pipeline():
        return 1
    second = counts()
    for table, n in second.items():
        print(f"  {table}: {n} rows ({n - first.get(table, 0):+d} new)")
    print(f"done: data in {DATABASE.relative_to(ROOT)}")
    return 0 if second == first else 1


if __name__ == "__main__":
    sys.exit(main())
