"""Crash soak: the randomized crash trials of tests/crash/test_runner_crashes.py, by the hundred.

    python bench/crash_soak.py [--trials 500] [--seed 1] [--chain 5] [--runner-kills 0.2]

A trial is one `dpone run` of tap-csv into the fault target (the real target-duckdb plus a
SIGKILL mid-batch, after a commit before its echo, or half-way through writing the echo) or,
for a share of the trials, a run whose runner is SIGKILLed after a random delay (alone or
with its connectors). After each crash it checks that every row the saved bookmark covers
is in DuckDB, that no row is there twice, and that the bookmark never went back; after a
chain of crashes a clean re-run must leave every source row exactly once. Chains alternate
between tap-csv as shipped and tap-csv with its streams declared sorted (a bookmark that
advances with every STATE). Prints a summary; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import collections
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (python bench/crash_soak.py): make the repo root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.crash.test_runner_crashes import TAPS, Lab, Trial, start_lab


def soak(trials: int, seed: int, chain: int, runner_share: float) -> int:
    rng = random.Random(seed)
    done: list[Trial] = []
    failures: list[str] = []
    chains = 0
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="dpone-crash-soak-"))
    try:
        while len(done) < trials:
            lab_dir = root / f"lab-{chains}"
            lab: Lab = start_lab(lab_dir, rng, TAPS[chains % 2])
            for _ in range(min(chain, trials - len(done))):
                trial = lab.runner_kill_trial(rng) if rng.random() < runner_share else lab.crash_trial(rng)
                done.append(trial)
                for problem in trial.violations:
                    failures.append(f"chain {chains} ({lab.tap}) {trial.kind} {trial.settings}: {problem}")
                mark = "x" if trial.violations else "."
                print(mark, end="" if len(done) % 50 else f" {len(done)}\n", flush=True)
            for problem in lab.finish():
                failures.append(f"chain {chains} ({lab.tap}) clean re-run: {problem}")
            chains += 1
            shutil.rmtree(lab_dir, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    elapsed = time.monotonic() - started
    print()
    crashed = collections.Counter(t.kind for t in done if t.crashed)
    missed = sum(1 for t in done if not t.crashed)
    print(f"trials: {len(done)} in {chains} chains, {elapsed:.1f}s ({elapsed / max(len(done), 1):.2f}s per trial,")
    print(f"        clean re-runs and checks included; a trial's own run took {mean_seconds(done):.2f}s on average)")
    print("crashes by point:")
    for kind, n in sorted(crashed.items()):
        print(f"  {kind:<26} {n:>5}")
    if missed:
        print(f"  (runs that ended before the kill: {missed})")
    print(f"violations: {len(failures)}")
    for failure in failures[:20]:
        print(f"  {failure}")
    return 1 if failures else 0


def mean_seconds(trials: list[Trial]) -> float:
    return sum(t.seconds for t in trials) / max(len(trials), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/crash_soak.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=500, help="crash trials in all (default 500)")
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice (default 1)")
    parser.add_argument("--chain", type=int, default=5, help="crashed runs before each clean re-run (default 5)")
    parser.add_argument(
        "--runner-kills", type=float, default=0.2, help="share of trials that kill the runner (default 0.2)"
    )
    args = parser.parse_args(argv)
    return soak(args.trials, args.seed, max(args.chain, 1), args.runner_kills)


if __name__ == "__main__":
    sys.exit(main())
