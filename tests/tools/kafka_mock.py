"""A Kafka-protocol broker on loopback for tests and benchmarks: librdkafka's mock cluster.

No Kafka broker is packaged for these machines; the librdkafka bundled with confluent-kafka has a
mock cluster that speaks the protocol (produce, fetch, groups, watermarks, idempotence). Its C API is
called through ctypes in a helper process that prints the bootstrap address and lives until its
stdin closes, so a killed test leaves no broker behind.

The mock keeps at most 5 MB (and 100,000 batches) per partition and silently drops the oldest
messages past that: create topics with enough partitions for the data (`create_topic`), and check
end offsets where a drop would hide a bug.

Faults for tests, through the mock's error-injection API (rdkafka_mock.h): a broker down or slow
(`broker_down`, `broker_up`, `broker_rtt`), the next N requests of a kind answered with an error
(`push_request_errors`, `clear_request_errors`), a partition led by another broker (`partition_leader`),
a topic's metadata answered with an error (`topic_error`).
They act on the whole cluster: a test that injects faults takes a cluster of its own.

    python -m tests.tools.kafka_mock [--brokers N]   # prints "127.0.0.1:PORT", then waits

The helper reads one command a line and answers `ok <librdkafka error code>`:

    <topic> <partitions>                 create a topic with exactly that many partitions
    @down <broker> | @up <broker>        a broker (1..N, or -1 for all) refuses connections / takes them again
    @rtt <broker> <ms>                   a broker answers every request after ms milliseconds
    @errors <api key> <code> [<code>...] the next requests of that kind (0 Produce, 3 Metadata) fail with these
    @clear <api key>                     forget the errors still pushed for that kind
    @leader <topic> <partition> <broker> move a partition's leader to another broker (1..N)
    @topic_error <topic> <code>          metadata requests answer this error for the topic (0 clears it)
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _librdkafka() -> ctypes.CDLL:
    import confluent_kafka  # only the helper process loads the library

    base = Path(confluent_kafka.__file__).resolve().parent
    found = sorted(glob.glob(str(base.parent / "confluent_kafka.libs" / "librdkafka*.so*")))
    if not found:
        raise RuntimeError(f"no bundled librdkafka next to {base}")
    lib = ctypes.CDLL(found[0])
    lib.rd_kafka_conf_new.restype = ctypes.c_void_p
    lib.rd_kafka_conf_set.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
    ]
    lib.rd_kafka_new.restype = ctypes.c_void_p
    lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
    lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
    lib.rd_kafka_mock_topic_create.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.argtypes = [ctypes.c_void_p, ctypes.c_int]
    for name in ("rd_kafka_mock_broker_set_down", "rd_kafka_mock_broker_set_up"):
        getattr(lib, name).restype = ctypes.c_int
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_int32]
    lib.rd_kafka_mock_broker_set_rtt.restype = ctypes.c_int
    lib.rd_kafka_mock_broker_set_rtt.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int]
    lib.rd_kafka_mock_push_request_errors_array.restype = None
    lib.rd_kafka_mock_push_request_errors_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int16,
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_int),
    ]
    lib.rd_kafka_mock_clear_request_errors.restype = None
    lib.rd_kafka_mock_clear_request_errors.argtypes = [ctypes.c_void_p, ctypes.c_int16]
    lib.rd_kafka_mock_topic_set_error.restype = None
    lib.rd_kafka_mock_topic_set_error.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.rd_kafka_mock_partition_set_leader.restype = ctypes.c_int
    lib.rd_kafka_mock_partition_set_leader.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
    return lib


def _command(lib: ctypes.CDLL, cluster: int, words: list[str]) -> int:
    """One `@` command of the helper (see the module docstring); the librdkafka error code."""
    verb, args = words[0], words[1:]
    if verb == "@down":
        return int(lib.rd_kafka_mock_broker_set_down(cluster, int(args[0])))
    if verb == "@up":
        return int(lib.rd_kafka_mock_broker_set_up(cluster, int(args[0])))
    if verb == "@rtt":
        return int(lib.rd_kafka_mock_broker_set_rtt(cluster, int(args[0]), int(args[1])))
    if verb == "@errors":
        codes = [int(a) for a in args[1:]]
        array = (ctypes.c_int * len(codes))(*codes)
        lib.rd_kafka_mock_push_request_errors_array(cluster, int(args[0]), len(codes), array)
        return 0
    if verb == "@clear":
        lib.rd_kafka_mock_clear_request_errors(cluster, int(args[0]))
        return 0
    if verb == "@topic_error":
        lib.rd_kafka_mock_topic_set_error(cluster, args[0].encode(), int(args[1]))
        return 0
    if verb == "@leader":
        return int(lib.rd_kafka_mock_partition_set_leader(cluster, args[0].encode(), int(args[1]), int(args[2])))
    raise ValueError(f"unknown command {verb}")


def serve(brokers: int) -> None:
    """The helper process: start the cluster, print its address, then take `topic partitions` lines."""
    lib = _librdkafka()
    err = ctypes.create_string_buffer(512)
    conf = lib.rd_kafka_conf_new()
    lib.rd_kafka_conf_set(conf, b"log_level", b"0", err, 512)
    handle = lib.rd_kafka_new(1, conf, err, 512)  # a producer handle owns the cluster's threads
    if not handle:
        raise RuntimeError(err.value.decode())
    cluster = lib.rd_kafka_mock_cluster_new(handle, brokers)
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, 0)
    print(lib.rd_kafka_mock_cluster_bootstraps(cluster).decode(), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0].startswith("@"):  # a fault command ('@' is in no topic name)
            try:
                code = _command(lib, cluster, words)
            except (ValueError, IndexError) as exc:
                print(f"error {exc}", flush=True)
                continue
        else:
            # "<topic> <partitions>": exact partition counts (auto-created topics get the mock's default).
            topic, partitions = words
            code = lib.rd_kafka_mock_topic_create(cluster, topic.encode(), int(partitions), 1)
        print(f"ok {code}", flush=True)


# Kafka protocol request kinds (ApiKey), for push_request_errors.
PRODUCE = 0
METADATA = 3


@dataclass
class MockKafka:
    """A running mock cluster (a helper process); `close()` stops it."""

    bootstrap: str
    process: subprocess.Popen[str]
    topics: dict[str, int] = field(default_factory=dict)

    @classmethod
    def start(cls, brokers: int = 1) -> MockKafka:
        repo = Path(__file__).resolve().parents[2]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH")) if p)}
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.tools.kafka_mock", "--brokers", str(brokers)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert process.stdout is not None
        bootstrap = process.stdout.readline().strip()
        if not bootstrap:
            process.kill()
            raise RuntimeError("the mock Kafka cluster did not start")
        return cls(bootstrap, process)

    def create_topic(self, topic: str, partitions: int) -> None:
        """Create `topic` with exactly `partitions` partitions (before anything produces to it)."""
        self._ask(f"{topic} {partitions}", f"creating topic {topic}")
        self.topics[topic] = partitions

    # -- faults (they act on the whole cluster) ------------------------------------------------------
    def broker_down(self, broker: int = -1) -> None:
        """Disconnect the broker (-1: every broker) and refuse new connections until `broker_up`."""
        self._ask(f"@down {broker}", "setting a broker down")

    def broker_up(self, broker: int = -1) -> None:
        self._ask(f"@up {broker}", "setting a broker up")

    def broker_rtt(self, ms: int, broker: int = -1) -> None:
        """Delay every answer of the broker (-1: every broker) by `ms` milliseconds; 0 undoes it."""
        self._ask(f"@rtt {broker} {ms}", "setting a broker's round-trip time")

    def push_request_errors(self, api_key: int, *codes: int) -> None:
        """The next len(codes) requests of kind `api_key` (PRODUCE, METADATA) fail with these error codes."""
        self._ask(f"@errors {api_key} {' '.join(str(c) for c in codes)}", "pushing request errors")

    def clear_request_errors(self, api_key: int) -> None:
        self._ask(f"@clear {api_key}", "clearing request errors")

    def partition_leader(self, topic: str, partition: int, broker: int) -> None:
        """Make `broker` (1..N) the partition's leader. Not -1 (no leader): librdkafka 2.16's mock then
        crashes (SIGSEGV) on the next request for the partition."""
        self._ask(f"@leader {topic} {partition} {broker}", f"setting the leader of {topic} [{partition}]")

    def topic_error(self, topic: str, code: int) -> None:
        """Metadata requests answer `code` for the topic (e.g. UNKNOWN_TOPIC_OR_PART: a topic that does not
        exist on brokers that do not create topics); 0 clears it."""
        self._ask(f"@topic_error {topic} {code}", f"setting the metadata error of {topic}")

    def _ask(self, command: str, doing: str) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        if answer != "ok 0":
            raise RuntimeError(f"{doing}: {answer or 'the mock cluster died'}")

    def config(self, **extra: Any) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap, **extra}

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                pipe.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--brokers", type=int, default=1)
    serve(parser.parse_args().brokers)


if __name__ == "__main__":
    main()
