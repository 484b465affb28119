"""Running a benchmarked process, and what it and the rest of the machine spent meanwhile.

run_measured() runs a command to completion under GNU time: wall seconds, CPU of its process tree,
peak RSS. The other functions read /proc: the CPU the whole machine has been busy, the CPU of the
backends a PostgreSQL server has reaped, and a wait for the machine to go quiet before a timed run.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.paths import REPO, WORK_DIR
from bench.pg_server import PgServer

GNU_TIME = Path("/usr/bin/time")
MB = 1024  # GNU time's %M and wait4's ru_maxrss are in KiB


@dataclass(frozen=True, slots=True)
class Finished:
    seconds: float
    returncode: int
    cpu: float  # user + system of the process tree (wait4)
    max_rss_kb: int  # wait4's ru_maxrss: also counts this process, whose memory the child shares until exec
    rss_kb: int | None  # GNU time's %M: the tool's peak RSS, or its largest child's; None without GNU time


def run_measured(
    argv: Sequence[str], stdin: Any, stdout: Any, stderr: Any, env: dict[str, str] | None = None
) -> Finished:
    """Run to completion from the repository root; wall seconds, CPU and peak RSS (KiB).

    The RSS comes from GNU time (``-f %M``): wait4's ru_maxrss of a child started straight from this
    process would also count this (bigger) Python process, whose memory the child briefly shares
    between fork and exec.
    """
    rss_file = WORK_DIR / f".rss-{os.getpid()}"
    timed = GNU_TIME.exists()
    wrapped = [str(GNU_TIME), "-f", "%M", "-o", str(rss_file), *argv] if timed else list(argv)
    start = time.perf_counter()
    proc = subprocess.Popen(wrapped, stdin=stdin, stdout=stdout, stderr=stderr, env=env, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss_kb = None
    if timed:
        text = rss_file.read_text() if rss_file.exists() else ""
        rss_file.unlink(missing_ok=True)
        numbers = [line for line in text.splitlines() if line.strip().isdigit()]
        rss_kb = int(numbers[-1]) if numbers else 0
    return Finished(seconds, proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, rss_kb)


def postmaster_children_cpu(server: PgServer) -> float:
    """CPU seconds of every child the postmaster has reaped (cutime + cstime of /proc/<pid>/stat)."""
    pid = (server.data_dir / "postmaster.pid").read_text().split("\n", 1)[0].strip()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of stat(5)); cutime and cstime are fields 16 and 17.
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat: all but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(limit: float, cores: float = 0.2, window: float = 3.0) -> float:
    """Wait (up to `limit` seconds) until other processes use under `cores` CPUs; return what they used."""
    deadline = time.monotonic() + limit
    said = False
    while True:
        before = machine_busy()
        time.sleep(window)
        busy = (machine_busy() - before) / window
        if busy < cores or time.monotonic() >= deadline:
            if said or busy >= cores:
                print(f"  (other processes use {busy:.2f} CPUs; going on)", flush=True)
            return busy
        if not said:
            print(f"  waiting for the machine to quiet down (other processes use {busy:.2f} CPUs) ...", flush=True)
            said = True
        time.sleep(10)
