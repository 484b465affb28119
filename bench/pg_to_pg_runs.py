"""bench/pg_to_pg.py's runs: each tool's processes started, joined by pipes and measured one by one.

Each process runs under GNU time (its peak RSS) and is reaped with wait4 (its user + system CPU); a
runner's own peak RSS is its VmHWM, read from /proc while it runs. The server's CPU is the
postmaster's reaped children's, read before and after.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.measure import GNU_TIME, machine_busy, postmaster_children_cpu, wait_for_quiet
from bench.paths import REPO, tail
from bench.pg_server import PgServer

TIME_FORMAT = "%U %S %M"  # GNU time: user s, system s, peak RSS KiB


# -- what a run measured -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Use:
    """What one process spent: user + system CPU seconds, peak RSS."""

    cpu: float
    rss_kb: int


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    processes: dict[str, Use]
    server_cpu: float  # the backends that served the run
    other_cpu: float  # the rest of the machine meanwhile: noise

    @property
    def cpu(self) -> float:
        return sum(u.cpu for u in self.processes.values()) + self.server_cpu


@dataclass(frozen=True, slots=True)
class Stage:
    """One process of a tool: its name in the tables and its command."""

    process: str
    argv: list[str]


@dataclass(slots=True)
class Tool:
    name: str
    stages: list[Stage]  # joined by pipes, the last one's stdout to /dev/null or a log
    floor: str | None  # the tool this one's time is held against
    prepare: Callable[[], None]  # untimed, before each run
    verify: Callable[[dict[str, Path]], None]  # untimed, after each run: given each stage's stderr file
    loads: bool = True  # writes into the destination (its stdout is a log; else it goes to /dev/null)
    runner: bool = False  # the one stage is `dpone run`, whose tap and target time themselves
    runs: list[Run] = field(default_factory=list)

    @property
    def best(self) -> Run:
        return min(self.runs, key=lambda r: r.seconds)

    def peak_rss_kb(self, process: str) -> int:
        return max(r.processes[process].rss_kb for r in self.runs if process in r.processes)


class _HighWater(threading.Thread):
    """A running process's peak RSS (VmHWM), read from /proc until it exits."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.status = Path(f"/proc/{pid}/status")
        self.kb = 0
        self.start()

    def run(self) -> None:
        while True:
            try:
                found = re.search(r"^VmHWM:\s+(\d+) kB", self.status.read_text(), re.MULTILINE)
            except OSError:
                return  # reaped
            if found is None:
                return  # a zombie has no memory left to read
            self.kb = max(self.kb, int(found.group(1)))
            time.sleep(0.02)


def _gnu_time(path: Path) -> Use:
    """GNU time's -o file: the last line holds the format's three numbers."""
    lines = [line for line in path.read_text().splitlines() if re.fullmatch(r"[\d.]+ [\d.]+ \d+", line)]
    if not lines:
        raise SystemExit(f"error: no GNU time figures in {path}")
    user, system, rss = lines[-1].split()
    return Use(float(user) + float(system), int(rss))


def file_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40]


# -- running a tool --------------------------------------------------------------------------------
class Runner:
    """Runs tools against one server, each process measured alone, the server and the machine around it."""

    def __init__(self, server: PgServer, logs: Path, wait_quiet: float) -> None:
        self.server = server
        self.logs = logs
        self.wait_quiet = wait_quiet
        self.children = logs / "children"  # GNU time files of the processes `dpone run` starts
        self.children.mkdir(parents=True, exist_ok=True)

    def run(self, tool: Tool, *, quiet_first: bool = True, attach: Callable[[int], None] | None = None) -> Run:
        """One run, checked; `attach` is called with the pid of each process as it starts (py-spy)."""
        tool.prepare()
        for old in self.children.iterdir():
            old.unlink()
        if quiet_first:
            wait_for_quiet(self.wait_quiet)
        slug = file_slug(tool.name)
        stderr = {s.process: self.logs / f"{slug}-{file_slug(s.process)}.stderr" for s in tool.stages}
        timings = {s.process: self.logs / f"{slug}-{file_slug(s.process)}.time" for s in tool.stages}
        last_out = self.logs / f"{slug}.stdout" if tool.loads else Path(os.devnull)
        procs: list[subprocess.Popen[bytes]] = []
        high_water: _HighWater | None = None
        server_before, machine_before = postmaster_children_cpu(self.server), machine_busy()
        start = time.perf_counter()
        with ExitStack() as files:
            stdin: Any = subprocess.DEVNULL
            for n, stage in enumerate(tool.stages):
                last = n == len(tool.stages) - 1
                out = files.enter_context(last_out.open("wb")) if last else subprocess.PIPE
                err = files.enter_context(stderr[stage.process].open("wb"))
                argv = stage.argv
                if not tool.runner:
                    argv = [str(GNU_TIME), "-f", TIME_FORMAT, "-o", str(timings[stage.process]), *argv]
                proc = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=err, cwd=REPO)
                if tool.runner:
                    high_water = _HighWater(proc.pid)
                if attach is not None:
                    attach(proc.pid)
                if stdin is not subprocess.DEVNULL:
                    stdin.close()  # the next process holds the read end now
                stdin = proc.stdout
                procs.append(proc)
            trees: dict[str, float] = {}
            for proc, stage in zip(procs, tool.stages, strict=True):
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                trees[stage.process] = usage.ru_utime + usage.ru_stime
        seconds = time.perf_counter() - start
        machine = machine_busy() - machine_before
        time.sleep(0.3)  # let the postmaster reap the backends
        server_cpu = postmaster_children_cpu(self.server) - server_before
        failed = [(s.process, p.returncode) for p, s in zip(procs, tool.stages, strict=True) if p.returncode]
        if failed:  # every one: the first to fail may only have lost its reader
            raise SystemExit(
                "\n".join(f"error: {tool.name}: {name} failed ({code}):\n{tail(stderr[name])}" for name, code in failed)
            )
        if tool.runner:
            assert high_water is not None
            high_water.join()
            processes = self._runner_processes(tool.stages[0].process, trees[tool.stages[0].process], high_water.kb)
        else:
            processes = {s.process: Use(trees[s.process], _gnu_time(timings[s.process]).rss_kb) for s in tool.stages}
        other = max(0.0, machine - sum(trees.values()) - server_cpu)
        tool.verify(stderr)
        return Run(seconds, processes, server_cpu, other)

    def _runner_processes(self, name: str, tree_cpu: float, rss_kb: int) -> dict[str, Use]:
        """The runner and each connector it started (wrappers name their files <process>-<kind>-<pid>.time)."""
        found: dict[str, Use] = {}
        for path in sorted(self.children.glob("*.time")):
            process, kind, _ = path.name.rsplit("-", 2)
            label = process if kind == "run" else f"{process} --{kind}"
            use = _gnu_time(path)
            before = found.get(label, Use(0.0, 0))
            found[label] = Use(before.cpu + use.cpu, max(before.rss_kb, use.rss_kb))
        own = max(0.0, tree_cpu - sum(u.cpu for u in found.values()))
        return {name: Use(own, rss_kb), **found}
