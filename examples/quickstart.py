"""Quick start: `dpone run tap-csv target-duckdb` twice on examples/data/*.csv.

The project (meltano.yml at the repo root) declares the plugins; dpone saves the state the
target committed in .dpone/state.db. The second run starts from it and finds nothing new
(the row at each bookmark is re-read and merged on its key: counts stay the same).
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
DATABASE = WORK / "quickstart.duckdb"
DPONE = Path(sys.executable).parent / "dpone"


def run_pipeline() -> int:
    env = {**os.environ, "DPONE_LOG_LEVEL": "WARNING"}
    proc = subprocess.run(
        [str(DPONE), "run", "tap-csv", "target-duckdb", "--no-progress"],
        cwd=ROOT,
        env=env,
        check=False,
        stdout=subprocess.PIPE,
        text=True,
    )
    print("  " + proc.stdout.strip().replace("\n", "\n  "))
    return proc.returncode


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
    print("run 1: dpone run tap-csv target-duckdb (full load)")
    if run_pipeline():
        return 1
    first = counts()
    report()
    print("run 2: same pipeline; dpone passes the tap the state the target committed")
    if run_pipeline():
        return 1
    second = counts()
    for table, n in second.items():
        print(f"  {table}: {n} rows ({n - first.get(table, 0):+d} new)")
    print(f"done: data in {DATABASE.relative_to(ROOT)}; state: .venv/bin/dpone state get tap-csv-to-target-duckdb")
    return 0 if second == first else 1


if __name__ == "__main__":
    sys.exit(main())
