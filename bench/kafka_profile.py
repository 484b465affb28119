"""Where target-kafka's and tap-kafka's time goes: each run once under py-spy (bench/kafka.py --profile).

On a fresh broker, target-kafka loads the replay file into a topic, then tap-kafka reads it back,
both with the settings of the benchmark run; py-spy samples every thread, waits included. A sample
counts for the first category its stack matches. Calls into C (librdkafka, orjson) are no frames
of their own: a sample whose innermost frame is on the line that calls ``consume(`` is counted as
that call, by the text of the source line.
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
from pathlib import Path

from bench.kafka import LOGS, Bench, check_topic
from bench.paths import BIN, REPO, tail
from bench.pyspy import SAMPLE_RATE, Categories, ensure_py_spy, print_samples, record_argv, sort_samples
from tests.tools.kafka_mock import MockKafka


@functools.lru_cache(maxsize=4096)
def _source_line(path: str, line: int) -> str:
    for base in (REPO, REPO / "dpone"):
        candidate = base / path
        if candidate.is_file():
            lines = candidate.read_text().splitlines()
            return lines[line - 1] if 0 < line <= len(lines) else ""
    return ""


def _leaf_calls(stack: str, text: str) -> bool:
    """The innermost frame is on a line whose source contains `text` (a call into C)."""
    leaf = stack.rsplit(";", 1)[-1]
    where = leaf[leaf.rfind("(") + 1 : -1]  # "taps/kafka/stream.py:141"
    path, _, line = where.rpartition(":")
    return line.isdigit() and text in _source_line(path, int(line))


TARGET_CATEGORIES: Categories = (
    (
        "waiting for acknowledgements (flush; poll while the queue is full)",
        lambda s: any(f in s for f in ("Delivery.flush", "_wait_for_room", "settle_quietly", "is_acked")),
    ),
    ("producer.produce() (C: the message, key and headers into librdkafka)", lambda s: "Delivery.produce" in s),
    ("decoding the record (orjson.loads: the key, a check)", lambda s: "Codec.loads" in s or "json_object" in s),
    ("finding the record in its RECORD line (split_compact_record)", lambda s: "split_" in s and "record" in s),
    ("the message key (key_encoder)", lambda s: "key_encoder" in s),
    ("reading and routing lines (framework loop, sink calls)", lambda s: "Target._read" in s),
    ("start-up (imports, config, metadata) and the rest", lambda s: True),
)
TAP_CATEGORIES: Categories = (
    ("discovery (the schema from a sample of messages)", lambda s: "_discover" in s or "_sampled_schema" in s),
    (
        "consumer.consume() (C: fetched messages into Message objects; waits)",
        lambda s: "KafkaStream._read" in s and _leaf_calls(s, "consume("),
    ),
    ("checking each value is a JSON object (orjson.loads)", lambda s: "json_object" in s),
    ("the rest of decode() (newline test, EncodedRecord)", lambda s: "decode" in s and "KafkaStream._read" in s),
    ("the read loop (offsets, end checks, yield)", lambda s: "KafkaStream._read" in s),
    ("writing RECORD lines (framework)", lambda s: "_StreamSync.run" in s or "Tap.sync" in s),
    ("start-up (imports, config, metadata) and the rest", lambda s: True),
)


def _sampled(py_spy: Path, name: str, argv: list[str], stdin: Path | None, categories: Categories) -> None:
    raw = LOGS / f"{name}-pyspy.txt"
    err = LOGS / f"{name}-pyspy.stderr"
    with stdin.open("rb") if stdin else open("/dev/null", "rb") as src, err.open("wb") as fe:
        done = subprocess.run(
            [*record_argv(py_spy, raw), sys.executable, *argv],
            stdin=src,
            stdout=subprocess.DEVNULL,
            stderr=fe,
            cwd=REPO,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"error: {name} under py-spy failed ({done.returncode}):\n{tail(err)}")
    counts = sort_samples(raw, categories)
    total = sum(counts.values())
    print(f"\n{name} under py-spy: {total:,} samples at {SAMPLE_RATE}/s ({total / SAMPLE_RATE:.1f}s); raw in {raw}\n")
    print_samples(counts)


def profile(args: argparse.Namespace) -> None:
    py_spy = ensure_py_spy(Path(sys.executable))
    if isinstance(py_spy, str):
        print(f"profile skipped: {py_spy}")
        return
    bench = Bench(args)
    broker = MockKafka.start()
    try:
        bench.warm_up(broker)
        topic = "bench-profile"
        broker.create_topic(topic, bench.partitions)
        target = [str(BIN / "target-kafka"), "--config", str(bench.target_config(broker, topic))]
        _sampled(py_spy, "target-kafka", target, bench.singer, TARGET_CATEGORIES)
        check_topic(broker.bootstrap, topic, bench.partitions, bench.rows, "target-kafka under py-spy")
        tap = [str(BIN / "tap-kafka"), "--config", str(bench.tap_config(broker, topic))]
        _sampled(py_spy, "tap-kafka", tap, None, TAP_CATEGORIES)
    finally:
        broker.close()
