"""The source side of the tap-kafka tests: topics on a broker, messages produced to exact partitions, and
tap-kafka run in-process on them, its output read back with exact numbers.

`KafkaLab` works on any broker that can create a topic with an exact partition count: the mock cluster
(tests/tools/kafka_mock.py) or a real one (`LiveKafka`, created with the AdminClient).
"""

from __future__ import annotations

import datetime as dt
import io
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from dpone.taps.framework.tap_cli import run as run_tap_cli
from dpone.taps.kafka.tap import KafkaTap
from dpone_protocol.codec import EXACT_CODEC
from tests.conftest import Run

EXIT_DATA = 65
EXIT_CONFIG = 78
EXIT_TRANSIENT = 75
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Broker(Protocol):
    bootstrap: str

    def create_topic(self, topic: str, partitions: int) -> None: ...


@dataclass
class LiveKafka:
    """A real broker (DPONE_TEST_KAFKA_BOOTSTRAP): topics made with the AdminClient, deleted by `close()`."""

    bootstrap: str
    created: list[str] = field(default_factory=list)

    def _admin(self) -> Any:
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap})

    def create_topic(self, topic: str, partitions: int) -> None:
        from confluent_kafka.cimpl import NewTopic

        admin = self._admin()  # kept alive until its answer: a freed client fails its futures
        admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=30)[topic].result(timeout=60)
        self.created.append(topic)
        # Until every partition has a leader: produce and the tap's watermarks need one.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            meta = admin.list_topics(topic, timeout=10).topics.get(topic)
            ready = meta is not None and meta.error is None and len(meta.partitions) == partitions
            if ready and all(part.leader >= 0 for part in meta.partitions.values()):
                return
            time.sleep(0.1)
        raise AssertionError(f"topic {topic} has no leader for every partition after 30 s")

    def close(self) -> None:
        if self.created:
            admin = self._admin()
            for future in admin.delete_topics(self.created, operation_timeout=30).values():
                future.result(timeout=60)


def millis(when: dt.datetime) -> int:
    """Epoch milliseconds, exactly (no float on the way)."""
    return (when - EPOCH) // dt.timedelta(milliseconds=1)


def parse(stdout: bytes) -> list[dict[str, Any]]:
    """Messages of a tap's stdout, every number exact (integers of any width, decimals as Decimal)."""
    if stdout.startswith(b"{\n"):
        return []  # an indented document (--discover)
    return [_message(line) for line in stdout.splitlines() if line.strip()]


def _message(line: bytes) -> dict[str, Any]:
    try:
        message: dict[str, Any] = EXACT_CODEC.loads(line)
    except ValueError:
        # Not JSON: kept for the test to see, instead of failing before it looks at the exit code.
        return {"type": "NOT-JSON", "line": line}
    return message


def records(run: Run, stream: str | None = None) -> list[dict[str, Any]]:
    return [m["record"] for m in run.of_type("RECORD") if stream in (None, m["stream"])]


def record_lines(run: Run) -> list[bytes]:
    """The RECORD lines as the tap wrote them."""
    return [line for line in run.stdout.splitlines() if line.startswith(b'{"type":"RECORD"')]


def by_partition(rows: Sequence[Mapping[str, Any]]) -> dict[int, list[int]]:
    """Partition -> the offsets of its records, in the order they came (needs metadata_columns)."""
    found: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        found[row["_kafka_partition"]].append(row["_kafka_offset"])
    return dict(found)


def offsets(state: Mapping[str, Any], stream: str) -> dict[int, int]:
    """The next offset per partition a state holds for a stream."""
    bookmark = state.get("bookmarks", {}).get(stream, {})
    return {int(p): o for p, o in bookmark.get("partitions", {}).items()}


def error_line(run: Run) -> str:
    """The tap's one-line error (the last stderr line)."""
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@dataclass
class KafkaLab:
    """Topics of one test (named with its prefix), a producer, and tap-kafka runs on them."""

    broker: Broker
    prefix: str
    workdir: Path
    base: dict[str, Any] = field(default_factory=dict)
    _producer: Any = None
    _files: Iterator[int] = field(default_factory=lambda: iter(range(1_000_000)))

    # -- the source ---------------------------------------------------------------------------------
    def topic(self, name: str, partitions: int = 1) -> str:
        topic = f"{self.prefix}{name}"
        self.broker.create_topic(topic, partitions)
        return topic

    @property
    def producer(self) -> Any:
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer({"bootstrap.servers": self.broker.bootstrap, "linger.ms": 0})
        return self._producer

    def send(
        self,
        topic: str,
        value: bytes | dict[str, Any] | None,
        key: bytes | dict[str, Any] | None = None,
        *,
        partition: int = 0,
        timestamp: dt.datetime | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """One message; dicts are sent as compact JSON (a key as target-kafka writes it)."""
        extra: dict[str, Any] = {}
        if timestamp is not None:
            extra["timestamp"] = millis(timestamp)
        if headers is not None:
            extra["headers"] = headers
        self.producer.produce(
            topic,
            orjson.dumps(value) if isinstance(value, dict) else value,
            orjson.dumps(key) if isinstance(key, dict) else key,
            partition=partition,
            **extra,
        )

    def flush(self) -> None:
        assert self.producer.flush(30) == 0, "messages not acknowledged"

    def fill(self, topic: str, counts: Mapping[int, int], start: int = 0, *, batch_each: bool = False) -> None:
        """`counts[p]` messages {"p": p, "n": i} into each partition p (n from `start`), acknowledged;
        `batch_each` sends each in a batch of its own (Tansu 0.6 reports a high watermark one past the
        first offset of the last batch, not past its last message)."""
        for partition, count in counts.items():
            for n in range(start, start + count):
                self.send(topic, {"p": partition, "n": n}, partition=partition)
                if batch_each:
                    self.flush()
        self.flush()

    def consumer(self, **extra: Any) -> Any:
        from confluent_kafka import Consumer

        conf = {"bootstrap.servers": self.broker.bootstrap, "group.id": f"{self.prefix}probe", **extra}
        return Consumer(conf)

    def watermarks(self, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
        from confluent_kafka import TopicPartition

        consumer = self.consumer()
        try:
            return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(partitions)}
        finally:
            consumer.close()

    def ends(self, topic: str, partitions: int) -> dict[int, int]:
        return {p: high for p, (_, high) in self.watermarks(topic, partitions).items()}

    def read_all(self, topic: str, partitions: int) -> list[Any]:
        """Every message of a topic, partition by partition, in offset order."""
        from confluent_kafka import TopicPartition

        ends = self.ends(topic, partitions)
        consumer = self.consumer(**{"enable.auto.commit": False})
        found: list[Any] = []
        try:
            consumer.assign([TopicPartition(topic, p, 0) for p in ends if ends[p]])
            left = {p for p, end in ends.items() if end}
            deadline = time.monotonic() + 20
            while left and time.monotonic() < deadline:
                for message in consumer.consume(100, 0.2):
                    if message.error() is None:
                        found.append(message)
                        if message.offset() + 1 >= ends[message.partition()]:
                            left.discard(message.partition())
        finally:
            consumer.close()
        assert not left, f"partitions {sorted(left)} of {topic} not read to their end"
        return sorted(found, key=lambda m: (m.partition(), m.offset()))

    @contextmanager
    def writing(self, topic: str, partitions: Sequence[int]) -> Iterator[Writer]:
        """A producer thread writing {"p", "n", "late": true} round the partitions until the block ends."""
        writer = Writer(self.broker.bootstrap, topic, list(partitions))
        writer.start()
        try:
            yield writer
        finally:
            writer.stop()

    # -- the tap ------------------------------------------------------------------------------------
    def config(self, **extra: Any) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.broker.bootstrap,
            "connect_timeout": 5,
            "read_timeout_seconds": 10,
            # A read of a few messages does not wait a second for a full batch.
            "consume_batch_size": 7,
            "group_id": f"{self.prefix}tap",
            **self.base,
            **extra,
        }

    def file(self, what: str, value: Any) -> str:
        path = self.workdir / f"{what}-{next(self._files)}.json"
        path.write_bytes(orjson.dumps(value))
        return str(path)

    def argv(self, *args: str, state: Any = None, catalog: Any = None, **config: Any) -> list[str]:
        argv = ["--config", self.file("tap-config", self.config(**config)), *args]
        if state is not None:
            argv += ["--state", self.file("state", state)]
        if catalog is not None:
            argv += ["--catalog", self.file("catalog", catalog)]
        return argv

    def run(
        self, *args: str, state: Any = None, catalog: Any = None, stdout: IO[bytes] | None = None, **config: Any
    ) -> Run:
        """tap-kafka in-process; `stdout` replaces the tap's (it must keep what it is given in `.getvalue()`)."""
        out = stdout if stdout is not None else io.BytesIO()
        err = io.StringIO()
        rc = run_tap_cli(KafkaTap, self.argv(*args, state=state, catalog=catalog, **config), stdout=out, stderr=err)
        data: bytes = out.getvalue()  # type: ignore[attr-defined]
        return Run(rc, data, err.getvalue(), parse(data))

    def run_within(self, seconds: float, *args: str, **kwargs: Any) -> Run:
        """`run` in a thread: a run that does not end within `seconds` fails the test instead of hanging it."""
        result: list[Run] = []
        thread = threading.Thread(target=lambda: result.append(self.run(*args, **kwargs)), daemon=True)
        thread.start()
        thread.join(seconds)
        assert result, f"tap-kafka did not end within {seconds} s"
        return result[0]

    def discover(self, **config: Any) -> dict[str, Any]:
        run = self.run("--discover", **config)
        assert run.rc == 0, run.stderr
        catalog: dict[str, Any] = orjson.loads(run.stdout)
        return catalog

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)


class Hooked(io.BytesIO):
    """A tap's stdout that calls `hook(message)` before it keeps each message the tap writes."""

    def __init__(self, hook: Callable[[bytes], None]) -> None:
        super().__init__()
        self.hook = hook

    def write(self, data: Any) -> int:
        self.hook(bytes(data))
        return super().write(data)


def first_record(action: Callable[[], None]) -> Callable[[bytes], None]:
    """A hook that runs `action` once, when the tap writes its first RECORD (its end offsets are fixed by then)."""
    done: list[bool] = []

    def hook(data: bytes) -> None:
        if not done and data.startswith(b'{"type":"RECORD"'):
            done.append(True)
            action()

    return hook


class Writer:
    """A producer that keeps writing while a tap reads; `written` counts what was acknowledged."""

    def __init__(self, bootstrap: str, topic: str, partitions: list[int]) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        from confluent_kafka import Producer

        try:
            producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 1})
            n = 0
            while not self._stop.is_set():
                for partition in self.partitions:
                    producer.produce(
                        self.topic, orjson.dumps({"p": partition, "n": n, "late": True}), partition=partition
                    )
                n += 1
                if n % 10 == 0:
                    producer.flush(10)
                    self.written = n * len(self.partitions)
                    time.sleep(0.002)
            producer.flush(10)
            self.written = n * len(self.partitions)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def wait_for(self, more: int, timeout: float = 10) -> None:
        """Until `more` messages beyond what was written by now are acknowledged."""
        goal = self.written + more
        deadline = time.monotonic() + timeout
        while self.written < goal and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.written >= goal, "the writer stalled"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(20)
        assert self.error is None, self.error
