"""Kafka benchmark: target-kafka against `kcat -P`, tap-kafka against `kcat -C -e`, on one broker.

    python bench/kafka.py [--rows 1000000] [--repeat 3] [--statistic best|median] [--wait-quiet 120]
    python bench/kafka.py --partitions 256 --target-setting linger_ms=50 --tap-setting fetch_queue_mb=32
    python bench/kafka.py --kcat-property compression.type=lz4      # kcat with a librdkafka property (-X)
    python bench/kafka.py --profile                                   # then where our time goes (py-spy)

The broker is librdkafka's mock cluster (tests/tools/kafka_mock.py) on loopback, a fresh one per
round. It keeps at most 5 MB (and 100,000 batches) per partition and silently drops the oldest
messages past that, so each topic gets enough partitions for the data (--partitions, default:
twice the uncompressed bytes over 5 MB, in multiples of 8), and after each round every topic's
watermarks are checked: low offsets all 0 and end offsets adding up to --rows, or the run stops.

One round, every tool a fresh process timed from start to exit (wall seconds, CPU of its process
tree, peak RSS from GNU time; the broker's CPU meanwhile from /proc):

- produce, ``dpone target-kafka``: the installed command, ``--config`` (bootstrap_servers, topic,
  then any --target-setting), stdin the replay file of the standard stream (bench/records.py:
  SCHEMA, N RECORDs, a STATE every 10,000). Its last echoed STATE must be the input's last.
- produce, ``kcat -P``: the same records (the same value bytes) from a file of ``key<TAB>value``
  lines, ``-K<TAB>`` so each message has target-kafka's key ``{"id":N}``, and ``-H`` the headers
  target-kafka sent (read back from an untimed warm-up run). kcat's own defaults otherwise
  (librdkafka's: no compression, no idempotence, linger 5 ms), plus any --kcat-property.
- consume, ``dpone tap-kafka``: the installed command, topics = [the topic target-kafka wrote],
  (schema inferred from a sample, as by default), then any --tap-setting; stdout to /dev/null.
- consume, ``kcat -C -e -q -o beginning`` of the same topic; stdout to /dev/null.

Before its timed run each consumer runs once untimed with its output counted: exactly N records
and the sum of their ids (kcat: N lines). The two tools of a side run back to back (their order
swapped every round), each after a wait for the machine to go quiet (--wait-quiet). Goals (issue
#16): dpone at least 70% of kcat's messages per second both ways, peak RSS under 150 MB.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script (python bench/kafka.py): make the repo root importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from bench import evidence
from bench.host import commit, load_average
from bench.measure import MB, Finished, machine_busy, run_measured, wait_for_quiet
from bench.paths import BIN, WORK_DIR, shown, tail
from bench.records import DEFAULT_SEED, STREAM, iter_records
from bench.runner_overhead import input_file
from bench.tap_clickhouse import Tool, check, timed
from tests.tools.kafka_mock import MockKafka

GOAL_SHARE = 0.70  # dpone's messages/s at least this share of kcat's, both ways
GOAL_RSS_MB = 150.0
KCAT = Path("/usr/bin/kcat")
LOGS = WORK_DIR / "kafka-logs"
MOCK_PARTITION_BYTES = 5 * 1024 * 1024  # what the mock keeps per partition (rdkafka_mock.c)
RECORD_OVERHEAD = 25  # bytes a Kafka record adds to its key, value and headers (varints, attributes)
WARM_UP_ROWS = 1000

PRODUCE, CONSUME = "produce", "consume"
TARGET, KCAT_P = "dpone target-kafka", "kcat -P"
TAP, KCAT_C = "dpone tap-kafka", "kcat -C -e"


# -- inputs -------------------------------------------------------------------------------------------
def kcat_input(rows: int, seed: int) -> Path:
    """The records as kcat -P lines, `{"id":N}<TAB>value`: target-kafka's keys and value bytes."""
    path = WORK_DIR / f"records-{rows}-seed{seed}.kafka.tsv"
    if path.exists():
        print(f"reusing {shown(path)}")
        return path
    print(f"writing the same {rows:,} records as key<TAB>value lines into {shown(path)} ...", flush=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    dumps = orjson.dumps
    try:
        with tmp.open("wb", buffering=1 << 20) as out:
            for record in iter_records(rows, seed):
                out.write(b'{"id":%d}\t%b\n' % (record["id"], dumps(record)))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def partitions_for(rows: int, message_bytes: float) -> int:
    """Partitions enough for the mock to keep every message: twice the bytes over 5 MB (skew, batch
    headers), rounded up to a multiple of 8."""
    need = 2 * rows * message_bytes / MOCK_PARTITION_BYTES
    return max(8, 8 * math.ceil(need / 8))


# -- the broker's side --------------------------------------------------------------------------------
def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process, all its threads (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def topic_offsets(bootstrap: str, topic: str, partitions: int) -> list[tuple[int, int]]:
    """(low, high) watermarks of every partition."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-kafka-check"})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15) for p in range(partitions)]
    finally:
        consumer.close()


def check_topic(bootstrap: str, topic: str, partitions: int, rows: int, tool: str) -> None:
    """Every message is still on the broker: the mock drops a full partition's oldest silently,
    which moves its low watermark; the end offsets alone would not show it."""
    marks = topic_offsets(bootstrap, topic, partitions)
    dropped = sum(low for low, _ in marks)
    kept = sum(high - low for low, high in marks)
    if dropped or kept != rows:
        raise SystemExit(
            f"error: {tool} left {kept:,} messages in topic {topic} ({dropped:,} dropped by the mock broker, "
            f"end offsets add up to {sum(h for _, h in marks):,}); expected {rows:,}: use more --partitions"
        )


def first_message(bootstrap: str, topic: str) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """Key, value and headers of the first message of partition 0 (the warm-up topic has one)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-kafka-check"})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for message in consumer.consume(1, 1.0):
                if message.error() is None:
                    return message.key(), message.value(), list(message.headers() or [])
        raise SystemExit(f"error: no message in topic {topic} after the warm-up")
    finally:
        consumer.close()


# -- runs ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    cpu: float
    rss_kb: int
    broker_cpu: float
    other_cpus: float  # what the rest of the machine used meanwhile, in CPUs: the noise


class Round:
    """One fresh broker with the round's topics: target-kafka's and kcat's."""

    def __init__(self, bench: Bench, number: int) -> None:
        self.bench = bench
        self.number = number
        self.broker = MockKafka.start()
        self.ours = f"bench-dpone-{number}"
        self.theirs = f"bench-kcat-{number}"
        for topic in (self.ours, self.theirs):
            self.broker.create_topic(topic, bench.partitions)

    def measured(self, argv: list[str], run: Callable[[], Finished], err: Path | None = None) -> Run:
        pid = self.broker.process.pid
        before, broker_before = machine_busy(), process_cpu(pid)
        done = run()
        broker = process_cpu(pid) - broker_before
        busy = machine_busy() - before
        if done.returncode != 0:
            said = f"; stderr ends with:\n{tail(err)}" if err else ""
            raise SystemExit(f"error: {' '.join(argv[:2])} failed ({done.returncode}){said}")
        rss_kb = done.max_rss_kb if done.rss_kb is None else done.rss_kb
        return Run(done.seconds, done.cpu, rss_kb, broker, max(busy - done.cpu - broker, 0.0) / done.seconds)

    def produce(self, tool: str) -> Run:
        bench = self.bench
        if tool == TARGET:
            argv = [str(BIN / "target-kafka"), "--config", str(bench.target_config(self.broker, self.ours))]
            source, topic = bench.singer, self.ours
        else:
            argv = bench.kcat_produce(self.broker.bootstrap, self.theirs)
            source, topic = bench.tsv, self.theirs
        slug = "target-kafka" if tool == TARGET else "kcat-produce"
        out, err = LOGS / f"{slug}.stdout", LOGS / f"{slug}.stderr"
        with source.open("rb") as src, out.open("wb") as fo, err.open("wb") as fe:
            done = self.measured(argv, lambda: run_measured(argv, src, fo, fe), err)
        if tool == TARGET:
            bench.check_final_state(out, err)
        check_topic(self.broker.bootstrap, topic, bench.partitions, bench.rows, tool)
        return done

    def consume(self, tool: str) -> Run:
        bench = self.bench
        if tool == TAP:
            argv = [str(BIN / "tap-kafka"), "--config", str(bench.tap_config(self.broker, self.ours))]
            consumer = Tool(TAP, argv, "singer")
        else:
            argv = [str(KCAT), "-C", "-e", "-q", "-b", self.broker.bootstrap, "-t", self.ours, "-o", "beginning"]
            consumer = Tool(KCAT_C, [*argv, *bench.kcat_properties], "json")
        started = time.perf_counter()
        check(consumer, LOGS, bench.rows)  # untimed: N records, the right ids
        print(f"  checked: {tool} wrote {bench.rows:,} records, ids add up ({time.perf_counter() - started:.1f}s)")
        wait_for_quiet(bench.wait_quiet)
        return self.measured(consumer.argv, lambda: timed(consumer, LOGS))

    def close(self) -> None:
        self.broker.close()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.rows = args.rows
        self.wait_quiet = args.wait_quiet
        self.singer = input_file(args.rows, args.seed, say_reused=True)
        self.tsv = kcat_input(args.rows, args.seed)
        self.target_settings: dict[str, Any] = dict(args.target_setting)
        self.tap_settings: dict[str, Any] = dict(args.tap_setting)
        self.kcat_properties = [arg for prop in args.kcat_property for arg in ("-X", prop)]
        self.headers: list[str] = []  # kcat -P's -H arguments: target-kafka's headers (warm_up)
        self.partitions = args.partitions or 0
        LOGS.mkdir(parents=True, exist_ok=True)

    def target_config(self, broker: MockKafka, topic: str) -> Path:
        path = LOGS / "target-kafka.json"
        path.write_bytes(orjson.dumps(broker.config(topic=topic, **self.target_settings), option=orjson.OPT_INDENT_2))
        return path

    def tap_config(self, broker: MockKafka, topic: str) -> Path:
        path = LOGS / "tap-kafka.json"
        path.write_bytes(orjson.dumps(broker.config(topics=[topic], **self.tap_settings), option=orjson.OPT_INDENT_2))
        return path

    def kcat_produce(self, bootstrap: str, topic: str) -> list[str]:
        return [str(KCAT), "-P", "-b", bootstrap, "-t", topic, "-K", "\t", *self.headers, *self.kcat_properties]

    def check_final_state(self, out: Path, err: Path) -> None:
        """target-kafka echoed the input's last STATE: every message acknowledged."""
        lines = out.read_bytes().splitlines()
        last = orjson.loads(lines[-1]) if lines else {}
        if last.get("bookmarks", {}).get(STREAM, {}).get("replication_key_value") != self.rows:
            raise SystemExit(f"error: target-kafka's last STATE is {lines[-1:]!r}; stderr ends with:\n{tail(err)}")

    def warm_up(self, broker: MockKafka) -> None:
        """Untimed: both inputs into the page cache, one small target-kafka run (imports compiled);
        the headers and key it sends, which kcat -P sends too; the partition count if not given."""
        for path in (self.singer, self.tsv):
            with path.open("rb") as fh:
                while fh.read(1 << 24):
                    pass
        topic = "bench-warm-up"
        broker.create_topic(topic, 1)
        config = self.target_config(broker, topic)
        with input_file(WARM_UP_ROWS, DEFAULT_SEED).open("rb") as src, (LOGS / "warm-up.stderr").open("wb") as fe:
            done = subprocess.run(
                [str(BIN / "target-kafka"), "--config", str(config)],
                stdin=src,
                stdout=subprocess.DEVNULL,
                stderr=fe,
                check=False,
            )
        if done.returncode != 0:
            raise SystemExit(
                f"error: target-kafka's warm-up failed; stderr ends with:\n{tail(LOGS / 'warm-up.stderr')}"
            )
        key, value, headers = first_message(broker.bootstrap, topic)
        if key != b'{"id":%d}' % orjson.loads(value)["id"]:
            print(f'  note: target-kafka\'s key is {key!r}; kcat -P sends {{"id":N}} keys')
        self.headers = [arg for name, raw in headers for arg in ("-H", f"{name}={raw.decode()}")]
        if not self.partitions:
            size = self.tsv.stat().st_size / self.rows + sum(len(n) + len(v) for n, v in headers) + RECORD_OVERHEAD
            self.partitions = partitions_for(self.rows, size)
            print(f"  {size:.0f} bytes a message uncompressed: {self.partitions} partitions a topic")


# -- the comparison -----------------------------------------------------------------------------------
def compare(args: argparse.Namespace) -> dict[str, list[Run]]:
    bench = Bench(args)
    results: dict[str, list[Run]] = {tool: [] for tool in (TARGET, KCAT_P, TAP, KCAT_C)}
    print("warm-up: reading both inputs once, one untimed target-kafka run ...", flush=True)
    broker = MockKafka.start()
    try:
        bench.warm_up(broker)
    finally:
        broker.close()
    describe(bench)
    for number in range(1, args.repeat + 1):
        this = Round(bench, number)
        try:
            swap = number % 2 == 0  # interleaved, order swapped every round: noise hits both tools alike
            for side, pair, step in ((PRODUCE, (TARGET, KCAT_P), this.produce), (CONSUME, (TAP, KCAT_C), this.consume)):
                for tool in reversed(pair) if swap else pair:
                    if side == PRODUCE:
                        wait_for_quiet(args.wait_quiet)
                    done = step(tool)
                    results[tool].append(done)
                    print(
                        f"  run {number}: {side} {tool:<20} {done.seconds:6.2f}s  CPU {done.cpu:5.2f}s  broker CPU "
                        f"{done.broker_cpu:5.2f}s  peak RSS {done.rss_kb / MB:4.0f} MB  (other processes: "
                        f"{done.other_cpus:.2f} CPUs)",
                        flush=True,
                    )
        finally:
            this.close()
    return results


def describe(bench: Bench) -> None:
    import confluent_kafka

    kcat = subprocess.run([str(KCAT), "-V"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"Version (\S+) .*(librdkafka \S+)", kcat)
    kcat_version = f"{found[1]} ({found[2]})" if found else "?"
    print(
        f"Python {platform.python_version()}, confluent-kafka {version('confluent-kafka')} (librdkafka "
        f"{confluent_kafka.libversion()[0]}), kcat {kcat_version}, {os.cpu_count()} CPUs, "
        f"{platform.system()} {platform.machine()}, dpone at {commit()}, load {load_average()}"
    )
    print(f"broker: librdkafka's mock cluster, one per round; topics of {bench.partitions} partitions")
    print(f"target-kafka settings: {bench.target_settings or 'defaults'}; tap-kafka settings: "
          f"{bench.tap_settings or 'defaults'}; kcat: {' '.join(bench.kcat_properties) or 'defaults'}")  # fmt: skip
    print(f"kcat -P headers (target-kafka's): {' '.join(bench.headers[1::2])}")
    print(f"logs and configs in {shown(LOGS)}")


def pick(runs: list[Run], how: str) -> Run:
    if how == "best":
        return min(runs, key=lambda r: r.seconds)
    return sorted(runs, key=lambda r: r.seconds)[(len(runs) - 1) // 2]  # a real run: the lower median


def report(rows: int, how: str, results: dict[str, list[Run]]) -> list[str]:
    """Print the table and the goal lines; return the goal lines."""
    repeat = len(results[TARGET])
    which = f"{how} of {repeat}" if repeat > 1 else "one run"
    print(f"\n{rows:,} messages each way, wall time ({which}; CPU and broker CPU of that run; peak RSS the largest):\n")
    print("| side | tool | runs (s) | seconds | messages/s | CPU s | broker CPU s | peak RSS MB | dpone / kcat msg/s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    goals: list[str] = []
    for side, ours, theirs in ((PRODUCE, TARGET, KCAT_P), (CONSUME, TAP, KCAT_C)):
        mine, kcat = pick(results[ours], how), pick(results[theirs], how)
        share = kcat.seconds / mine.seconds  # messages/s over messages/s, the same N
        for tool in (ours, theirs):
            runs = results[tool]
            run = pick(runs, how)
            rss = max(r.rss_kb for r in runs) / MB
            ratio = f"{share:.0%}" if tool == ours else "100%"
            times = ", ".join(f"{r.seconds:.2f}" for r in runs)
            print(
                f"| {side} | {tool} | {times} | {run.seconds:.2f} | {rows / run.seconds:,.0f} | {run.cpu:.2f} | "
                f"{run.broker_cpu:.2f} | {rss:.0f} | {ratio} |"
            )
        rss = max(r.rss_kb for r in results[ours]) / MB
        goals.append(
            f"{side}: {ours} >= {GOAL_SHARE:.0%} of {theirs}'s messages/s: {share:.0%} -> "
            f"{'PASS' if share >= GOAL_SHARE else 'MISS'}"
        )
        goals.append(
            f"{side}: {ours} peak RSS < {GOAL_RSS_MB:g} MB: {rss:.0f} MB -> {'PASS' if rss < GOAL_RSS_MB else 'MISS'}"
        )
    print()
    for line in goals:
        print("goal: " + line)
    for connector, side, tools in (("target-kafka", PRODUCE, (TARGET, KCAT_P)), ("tap-kafka", CONSUME, (TAP, KCAT_C))):
        figures = {f"{tool} s": pick(results[tool], how).seconds for tool in tools}
        mine = "; ".join(g for g in goals if g.startswith(side))
        evidence.record(
            connector, f"{side} against kcat", {"messages": rows, "statistic": how, **figures, "goals": mine}
        )
    return goals


def setting(text: str) -> tuple[str, Any]:
    """KEY=VALUE, the value as JSON when it parses (50, true, {"fetch.max.bytes": 1048576}), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    try:
        return key, orjson.loads(value)
    except orjson.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/kafka.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="messages each way (default 1000000)")
    parser.add_argument("--partitions", type=int, help="partitions per topic (default: from the data size)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds, a fresh broker each (default 1)")
    parser.add_argument("--statistic", choices=("best", "median"), default="best", help="of the rounds (default best)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--target-setting", type=setting, action="append", default=[], metavar="KEY=VALUE", help="target-kafka setting"
    )
    parser.add_argument(
        "--tap-setting", type=setting, action="append", default=[], metavar="KEY=VALUE", help="tap-kafka setting"
    )
    parser.add_argument(
        "--kcat-property", action="append", default=[], metavar="KEY=VALUE", help="librdkafka property for kcat (-X)"
    )
    parser.add_argument("--profile", action="store_true", help="then py-spy both dpone tools (bench/kafka_profile.py)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=120,
        metavar="SECONDS",
        help="before each timed run, wait up to this long for other processes to use under 0.2 CPUs (default 120)",
    )
    args = parser.parse_args(argv)
    if args.rows < WARM_UP_ROWS or args.repeat < 1 or (args.partitions is not None and args.partitions < 1):
        parser.error(f"--rows must be >= {WARM_UP_ROWS}, --repeat and --partitions >= 1")
    if not KCAT.exists():
        parser.error(f"no {KCAT}: apt-get install kcat")

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    results = compare(args)
    report(args.rows, args.statistic, results)
    if args.profile:
        from bench.kafka_profile import profile

        profile(args)
    print(f"load at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
