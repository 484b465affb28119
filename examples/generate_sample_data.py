"""Regenerates examples/data/*.csv (deterministic). The CSVs are committed; run only to change them."""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

HERE = Path(__file__).parent / "data"
CITIES = ["Lisbon", "Berlin", "Austin", "Osaka", "Nairobi", "Lima", "Oslo", "Pune", "Perth", "Quebec"]
FIRST = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jun", "Kofi", "Lea"]
LAST = ["Silva", "Muller", "Smith", "Sato", "Otieno", "Rojas", "Hansen", "Patel", "Brown", "Roy"]
STATUSES = ["placed", "shipped", "delivered", "returned"]


def main() -> None:
    rng = random.Random(42)
    HERE.mkdir(parents=True, exist_ok=True)
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    with (HERE / "customers.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "first_name", "last_name", "email", "city", "signed_up_on", "is_active", "updated_at"])
        for i in range(1, 1001):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            signed = (start + dt.timedelta(days=rng.randint(0, 300))).date()
            updated = start + dt.timedelta(minutes=i * 7)
            w.writerow(
                [
                    i,
                    first,
                    last,
                    f"{first}.{last}{i}@example.com".lower(),
                    rng.choice(CITIES),
                    signed.isoformat(),
                    rng.random() > 0.1,
                    updated.isoformat(),
                ]
            )
    with (HERE / "orders.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["order_id", "customer_id", "status", "amount", "quantity", "ordered_at"])
        for i in range(1, 4001):
            ordered = start + dt.timedelta(minutes=i * 3)
            w.writerow(
                [
                    i,
                    rng.randint(1, 1000),
                    rng.choice(STATUSES),
                    f"{rng.uniform(5, 500):.2f}",
                    rng.randint(1, 9),
                    ordered.isoformat(),
                ]
            )


if __name__ == "__main__":
    main()
