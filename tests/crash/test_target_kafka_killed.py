"""target-kafka killed with SIGKILL never has echoed a state ahead of the messages in its topic.

The target runs as a process (its cli module) against librdkafka's mock cluster (a cluster per test:
faults act on the whole cluster), fed records with a STATE every few records, and is killed:

* before any acknowledgement: every broker answer is held back longer than the process lives;
* mid-stream at seeded random moments, acknowledgements arriving as it goes;
* right after a flush, the moment its first state is echoed;
* with the broker down, from the start of the records or from the middle of the stream.

After each kill, every record an echoed state covers must be in the topic; resuming from the last
echoed state, as a tap would, then leaves every record in the topic (at least once).
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import pytest

from tests.conftest import lines, record, schema, state
from tests.kit.kit import process_command, process_env
from tests.service.kafka_dest import KafkaDest
from tests.tools.kafka_mock import MockKafka

ROWS = 150
STATE_EVERY = 10
PROPS = {"id": {"type": "integer"}, "payload": {"type": "string"}}
CLI = "dpone.targets.kafka.cli"


def stream(start: int, every: int = STATE_EVERY) -> list[bytes]:
    """Chunks to feed: the SCHEMA, then each record, a STATE {"upto": i} every `every` records and at the end."""
    out = [lines(schema("events", PROPS))]
    for i in range(start, ROWS + 1):
        chunk = [record("events", {"id": i, "payload": f"row {i}"})]
        if i % every == 0 or i == ROWS:
            chunk.append(state({"upto": i}))
        out.append(lines(*chunk))
    return out


class Target:
    """target-kafka as a process: stdin fed by the test, echoed states collected as they come."""

    def __init__(self, config: Path, stderr: IO[bytes]) -> None:
        self.proc = subprocess.Popen(
            [*process_command(CLI), "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=process_env(DPONE_LOG_LEVEL="INFO"),  # its topic check is the sign it is ready
        )
        self.echoed: list[int] = []
        self.first_echo = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if raw.endswith(b"\n"):  # a torn echo is not an echo
                self.echoed.append(orjson.loads(raw)["upto"])
                self.first_echo.set()

    def feed(self, chunks: list[bytes], pace: float = 0.0, close: bool = False) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            for chunk in chunks:
                stdin.write(chunk)
                stdin.flush()
                if pace:
                    time.sleep(pace)
            if close:
                stdin.close()
        except (BrokenPipeError, ValueError):
            pass  # killed while we were writing

    def kill(self) -> None:
        self.proc.kill()
        self._end(30)

    def finish(self, timeout: float = 60) -> int:
        self._end(timeout)
        return int(self.proc.returncode)

    def _end(self, timeout: float) -> None:
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=30)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


@pytest.fixture
def cluster() -> Iterator[MockKafka]:
    running = MockKafka.start()
    try:
        yield running
    finally:
        running.close()


class Scene:
    def __init__(self, cluster: MockKafka, workdir: Path) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.dest = KafkaDest(cluster.bootstrap, "k_")
        self.topic = self.dest.topic_for("events")
        self.runs = 0

    def start(self, **config: Any) -> Target:
        self.runs += 1
        path = self.workdir / f"config-{self.runs}.json"
        path.write_bytes(orjson.dumps(self.dest.config(**config)))
        with (self.workdir / f"stderr-{self.runs}.txt").open("wb") as stderr:
            return Target(path, stderr)  # the process has its own copy of the file

    def stderr(self) -> str:
        return (self.workdir / f"stderr-{self.runs}.txt").read_text()

    def ids(self) -> list[int]:
        return [r["id"] for r in self.dest.rows(self.topic) or []]

    def wait_for_the_topic(self) -> None:
        """The target has read the cluster's metadata at the SCHEMA (it logs that its topic is new)."""
        deadline = time.monotonic() + 20
        while f"topic {self.topic} does not exist yet" not in self.stderr():
            assert time.monotonic() < deadline, "the target never checked its topic"
            time.sleep(0.05)

    def assert_covered(self, echoed: list[int]) -> None:
        assert echoed == sorted(echoed), echoed
        last = echoed[-1] if echoed else 0
        missing = set(range(1, last + 1)) - set(self.ids())
        assert not missing, f"state upto={last} echoed, but records {sorted(missing)[:10]}... are not in the topic"

    def resume(self, echoed: list[int], **config: Any) -> None:
        """A run from the last echoed state, as a tap would resume: every record is then in the topic."""
        last = echoed[-1] if echoed else 0
        if last == ROWS:  # the run had ended before the kill
            assert set(self.ids()) == set(range(1, ROWS + 1))
            return
        target = self.start(**config)
        target.feed(stream(last + 1), close=True)
        assert target.finish() == 0, self.stderr()
        assert target.echoed[-1] == ROWS
        assert set(self.ids()) == set(range(1, ROWS + 1))


@pytest.fixture
def scene(cluster: MockKafka, tmp_path: Path) -> Scene:
    return Scene(cluster, tmp_path)


def test_killed_before_any_acknowledgement_echoes_nothing(scene: Scene) -> None:
    target = scene.start(batch_size_rows=STATE_EVERY)
    chunks = stream(1)
    target.feed(chunks[:1])
    scene.wait_for_the_topic()
    # No answer to anything sent from now on for 5 s. The mock takes what it is sent at once and holds
    # back only its answer: records may be in the topic, none of them acknowledged.
    scene.cluster.broker_rtt(5000)
    target.feed(chunks[1:])
    time.sleep(1.0)
    target.kill()
    assert target.echoed == []
    scene.cluster.broker_rtt(0)
    scene.resume(target.echoed)


@pytest.mark.parametrize("seed", range(6))
def test_killed_mid_stream_has_echoed_only_covered_states(scene: Scene, seed: int) -> None:
    rng = random.Random(seed)
    target = scene.start(batch_size_rows=rng.randint(3, 40), linger_ms=rng.choice([0, 5, 50]))
    # Start-up takes ~0.5 s and feeding ~1.2 s: killed before, during and after the work.
    killer = threading.Timer(rng.uniform(0.3, 1.8), target.kill)
    killer.start()
    target.feed(stream(1), pace=0.008, close=True)
    killer.join()
    scene.assert_covered(target.echoed)
    scene.resume(target.echoed)


def test_killed_right_after_a_flush(scene: Scene) -> None:
    target = scene.start(batch_size_rows=STATE_EVERY)
    feeder = threading.Thread(target=target.feed, args=(stream(1),), kwargs={"pace": 0.01})
    feeder.start()
    assert target.first_echo.wait(timeout=30), scene.stderr()
    target.kill()
    feeder.join()
    assert target.echoed, "the first state was echoed"
    scene.assert_covered(target.echoed)
    scene.resume(target.echoed)


@pytest.mark.parametrize("down_after", [0, 60], ids=["down_before_the_records", "down_mid_stream"])
def test_with_the_broker_down_no_new_state_is_echoed(scene: Scene, down_after: int) -> None:
    target = scene.start(batch_size_rows=STATE_EVERY)
    chunks = stream(1)  # chunks[i] holds record i (and its state)
    target.feed(chunks[: down_after + 1])
    scene.wait_for_the_topic()
    if down_after:
        deadline = time.monotonic() + 20
        while not target.echoed or target.echoed[-1] < down_after:
            assert time.monotonic() < deadline, (target.echoed, scene.stderr())
            time.sleep(0.02)
    before = list(target.echoed)
    scene.cluster.broker_down()
    target.feed(chunks[down_after + 1 :])
    time.sleep(1.5)  # batches fill and wait for acknowledgements that cannot come
    target.kill()
    assert target.echoed == before, (before, target.echoed)
    scene.cluster.broker_up()
    scene.assert_covered(target.echoed)
    scene.resume(target.echoed)


def test_a_state_acknowledged_while_the_input_was_idle_goes_out_before_a_later_failure(
    cluster: MockKafka, tmp_path: Path
) -> None:
    """STATE 1's record is acknowledged while no input comes; then the brokers go down and the next
    records time out: the run fails, and STATE 1, which they do not concern, was echoed."""
    dest = KafkaDest(cluster.bootstrap, "idle_")
    path = tmp_path / "config.json"
    path.write_bytes(orjson.dumps(dest.config(delivery_timeout_seconds=3)))
    proc = subprocess.Popen(
        [*process_command("dpone.targets.kafka.cli"), "--config", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=process_env(),
    )
    assert proc.stdin is not None
    proc.stdin.write(lines(schema("events", {"id": {"type": "integer"}}, ["id"]), record("events", {"id": 1})))
    proc.stdin.write(lines(state({"n": 1})))
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    while not dest.rows(dest.topic_for("events")):  # the broker has it; its acknowledgement follows
        assert time.monotonic() < deadline, "record 1 never reached the broker"
        time.sleep(0.1)
    time.sleep(1.0)
    cluster.broker_down()
    proc.stdin.write(lines(*[record("events", {"id": i}) for i in range(2, 6)], state({"n": 2})))
    proc.stdin.close()
    assert proc.stdout is not None and proc.stderr is not None
    proc.wait(timeout=60)
    out, err = proc.stdout.read(), proc.stderr.read()
    assert proc.returncode == 75, err.decode()[-500:]
    assert [orjson.loads(line) for line in out.splitlines()] == [{"n": 1}]
