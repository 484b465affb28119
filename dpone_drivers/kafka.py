"""Kafka clients and error classification; the only module that imports confluent_kafka.

Settings are named after librdkafka's properties (`bootstrap_servers` is `bootstrap.servers`), and
`kafka_properties` passes any other property through, last, so it can override what we set.
librdkafka's own log lines go through Python logging (and so through the redaction filter) instead
of being printed by the C library.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError, DponeError, FatalError, TransientError
from dpone_protocol.settings import Setting

CONNECTION_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "bootstrap_servers",
        "string",
        "Comma-separated host:port list of brokers to start from, e.g. broker1:9092,broker2:9092.",
        required=True,
    ),
    Setting(
        "security_protocol",
        "string",
        "How to talk to the brokers.",
        default="PLAINTEXT",
        choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    ),
    Setting(
        "sasl_mechanism",
        "string",
        "SASL mechanism with SASL_* protocols.",
        choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"),
    ),
    Setting("sasl_username", "string", "SASL user name."),
    Setting("sasl_password", "string", "SASL password.", secret=True),
    Setting("ssl_ca_location", "string", "CA certificate file to verify the brokers with."),
    Setting("ssl_certificate_location", "string", "Client certificate file (mutual TLS)."),
    Setting("ssl_key_location", "string", "Client private key file (mutual TLS)."),
    Setting("ssl_key_password", "string", "Password of the client private key.", secret=True),
    Setting("client_id", "string", "Client id the brokers see in their logs and quotas.", default="dpone"),
    Setting("connect_timeout", "integer", "Seconds to wait for the cluster's metadata at start.", default=15),
    Setting(
        "kafka_properties",
        "object",
        'Any other librdkafka property, applied last, e.g. {"socket.keepalive.enable": true}.',
    ),
    Setting("schema_registry_url", "string", "Confluent-compatible Schema Registry URL (Avro values)."),
    Setting("schema_registry_username", "string", "Schema Registry user (basic auth)."),
    Setting("schema_registry_password", "string", "Schema Registry password (basic auth).", secret=True),
)
SECRET_KEYS = ("sasl_password", "ssl_key_password", "schema_registry_password")

_MAPPED = {
    "bootstrap_servers": "bootstrap.servers",
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_username": "sasl.username",
    "sasl_password": "sasl.password",
    "ssl_ca_location": "ssl.ca.location",
    "ssl_certificate_location": "ssl.certificate.location",
    "ssl_key_location": "ssl.key.location",
    "ssl_key_password": "ssl.key.password",
    "client_id": "client.id",
}
# Kafka's rule for topic names (and librdkafka refuses anything else only at the broker, late).
_TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")

log = logging.getLogger("dpone.kafka")


class _Repeats(logging.Filter):
    """librdkafka logs every reconnect attempt: an unreachable broker is hundreds of identical lines.
    The first few of a kind pass, then one saying the rest are left out."""

    LIMIT = 3

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        count = self.seen[text] = self.seen.get(text, 0) + 1
        if count == self.LIMIT:
            record.msg, record.args = f"{text} (repeats of this line are not shown)", None
        return count <= self.LIMIT


_LIBRDKAFKA_LOG = logging.getLogger("dpone.kafka.librdkafka")
_LIBRDKAFKA_LOG.addFilter(_Repeats())
# The first error librdkafka reported through its error callback that says the settings are wrong
# (authentication, TLS, a host name that does not resolve): the call that then times out sees only a
# transport failure, so this is what an error names instead.
_SETTINGS_ERROR: list[Any] = []


def note_client_error(error: Any) -> None:
    """The default error callback of every client (error_cb): keeps a settings error, logs the rest."""
    if str(error.name()) in _CONFIG_ERRORS and not _SETTINGS_ERROR:
        _SETTINGS_ERROR.append(error)
    log.debug("Kafka client error: %s", error)


def settings_error(redactor: Redactor, doing: str) -> DponeError | None:
    """A ConfigError for the settings error librdkafka reported, if it reported one."""
    return classify(_SETTINGS_ERROR[0], redactor, doing) if _SETTINGS_ERROR else None


def client_config(config: Mapping[str, Any], **ours: Any) -> dict[str, Any]:
    """librdkafka properties from the settings: ours (the connector's defaults), then the
    connection settings, then `kafka_properties`."""
    conf: dict[str, Any] = dict(ours)
    for name, prop in _MAPPED.items():
        value = config.get(name)
        if value not in (None, ""):
            conf[prop] = value
    extra = config.get("kafka_properties") or {}
    if not isinstance(extra, Mapping):
        raise ConfigError("setting 'kafka_properties' must be an object of librdkafka properties")
    for key, value in extra.items():
        if key in ("on_delivery", "error_cb", "logger", "stats_cb"):
            raise ConfigError(f"kafka_properties: {key!r} is a callback, not a property")
        conf[str(key)] = value if isinstance(value, str | int | float | bool) else str(value)
    conf["logger"] = _LIBRDKAFKA_LOG
    conf.setdefault("error_cb", note_client_error)
    return conf


def check_topic(topic: str, where: str) -> str:
    if not _TOPIC_RE.fullmatch(topic) or topic in (".", ".."):
        raise ConfigError(f"{where}: {topic!r} is not a valid Kafka topic name (letters, digits, '.', '_', '-')")
    return topic


def producer(config: Mapping[str, Any], redactor: Redactor, **ours: Any) -> Any:
    from confluent_kafka import KafkaException, Producer  # noqa: PLC0415 - lazy driver import

    try:
        return Producer(client_config(config, **ours))
    except (KafkaException, ValueError, TypeError) as exc:
        raise ConfigError(f"Kafka producer settings: {redactor(str(exc))}") from None


def fast_producer(config: Mapping[str, Any], redactor: Redactor, **ours: Any) -> Any:
    """The compiled producer (dpone_drivers/kafkafast/producer.c) with the same properties as
    `producer`, or None where the fast path is off. It sets its own callbacks: failures are read
    with its failure(), log lines with its logs() (see targets/kafka/delivery.py)."""
    fast = fast_module()
    if fast is None:
        return None
    conf = client_config(config, **ours)
    for callback in ("logger", "error_cb", "on_delivery", "stats_cb"):
        conf.pop(callback, None)
    try:
        return fast.Producer({str(k): _property_text(v) for k, v in conf.items()})
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"Kafka producer settings: {redactor(str(exc))}") from None


def _property_text(value: Any) -> str:
    """A property value as librdkafka reads it (confluent-kafka writes booleans the same way)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def consumer(config: Mapping[str, Any], redactor: Redactor, **ours: Any) -> Any:
    from confluent_kafka import Consumer, KafkaException  # noqa: PLC0415 - lazy driver import

    try:
        return Consumer(client_config(config, **ours))
    except (KafkaException, ValueError, TypeError) as exc:
        raise ConfigError(f"Kafka consumer settings: {redactor(str(exc))}") from None


def topic_partitions(
    client: Any, topics: list[str] | None, config: Mapping[str, Any], redactor: Redactor
) -> dict[str, int]:
    """Topic -> partition count from the cluster's metadata (every topic when `topics` is None).

    It is also the connection check: an unreachable cluster fails here, within connect_timeout,
    instead of as delivery timeouts minutes later."""
    timeout = float(config.get("connect_timeout") or 15)
    found: dict[str, int] = {}
    if hasattr(client, "topics") and topics is None:
        # The compiled producer: every topic at once, errors as (code, name, text).
        doing = f"reading the metadata of {config.get('bootstrap_servers')}"
        try:
            listed = client.topics(timeout)
        except Exception as exc:  # ProducerError: the cluster did not answer
            raise settings_error(redactor, doing) or classify_exception(exc, redactor, doing) from None
        for name, (partitions, error) in listed.items():
            if error is not None:
                if error[1] in ("UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC"):
                    continue
                raise classify(ClientError(*error), redactor, f"topic {name}")
            found[name] = partitions
        return found
    for topic in topics if topics is not None else [None]:
        doing = f"reading the metadata of {config.get('bootstrap_servers')}"
        try:
            metadata = client.list_topics(topic=topic, timeout=timeout)
        except Exception as exc:  # KafkaException: the cluster did not answer
            client.poll(0)  # serves the error callback, which says why when the settings are wrong
            raise settings_error(redactor, doing) or classify_exception(exc, redactor, doing) from None
        for name, meta in metadata.topics.items():
            if meta.error is not None:
                if meta.error.name() in ("UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC"):
                    continue
                raise classify(meta.error, redactor, f"topic {name}")
            found[name] = len(meta.partitions)
    return found


# librdkafka error names (rdkafka.h) by what the caller should do.
_CONFIG_ERRORS = {
    "_AUTHENTICATION",
    "SASL_AUTHENTICATION_FAILED",
    "TOPIC_AUTHORIZATION_FAILED",
    "GROUP_AUTHORIZATION_FAILED",
    "CLUSTER_AUTHORIZATION_FAILED",
    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
    "UNSUPPORTED_SASL_MECHANISM",
    "ILLEGAL_SASL_STATE",
    "UNKNOWN_TOPIC_OR_PART",
    "_UNKNOWN_TOPIC",
    "_UNKNOWN_PARTITION",
    "TOPIC_EXCEPTION",
    "INVALID_CONFIG",
    "_INVALID_ARG",
    "_SSL",
    "_RESOLVE",
    "_NOT_CONFIGURED",
    "POLICY_VIOLATION",
}
_DATA_ERRORS = {
    "MSG_SIZE_TOO_LARGE",
    "RECORD_LIST_TOO_LARGE",
    "INVALID_RECORD",
    "CORRUPT_MESSAGE",
    "_BAD_MSG",
}
_TRANSIENT_ERRORS = {
    "_TRANSPORT",
    "_ALL_BROKERS_DOWN",
    "_TIMED_OUT",
    "_MSG_TIMED_OUT",
    "REQUEST_TIMED_OUT",
    "NETWORK_EXCEPTION",
    "NOT_LEADER_FOR_PARTITION",
    "LEADER_NOT_AVAILABLE",
    "NOT_ENOUGH_REPLICAS",
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    "BROKER_NOT_AVAILABLE",
    "COORDINATOR_NOT_AVAILABLE",
    "COORDINATOR_LOAD_IN_PROGRESS",
    "NOT_COORDINATOR",
    "THROTTLING_QUOTA_EXCEEDED",
    "_QUEUE_FULL",
}
_HINTS = {
    "_MSG_TIMED_OUT": " (not acknowledged within delivery_timeout_seconds: are the brokers reachable?)",
    "_ALL_BROKERS_DOWN": " (no broker answers: check bootstrap_servers and the network)",
    "_TRANSPORT": " (check bootstrap_servers, security_protocol and the network)",
    "_TIMED_OUT": " (check bootstrap_servers, security_protocol and the network)",
    "MSG_SIZE_TOO_LARGE": " (raise message.max.bytes in kafka_properties and the topic's max.message.bytes, or "
    "send smaller records)",
    "UNKNOWN_TOPIC_OR_PART": " (create the topic, or let the brokers auto-create topics)",
    "_UNKNOWN_TOPIC": " (create the topic, or let the brokers auto-create topics)",
    "SASL_AUTHENTICATION_FAILED": " (check sasl_mechanism, sasl_username and sasl_password)",
}


def classify(error: Any, redactor: Redactor, doing: str) -> DponeError:
    """A confluent_kafka.KafkaError as the error kind the caller acts on."""
    name = str(error.name())
    message = f"{doing}: {redactor(str(error.str()))} [{name}]{_HINTS.get(name, '')}"
    if name in _CONFIG_ERRORS:
        return ConfigError(message)
    if name in _DATA_ERRORS:
        return DataError(message)
    if name in _TRANSIENT_ERRORS or error.retriable():
        return TransientError(message)
    if error.fatal():
        return FatalError(message)
    return TransientError(message) if not error.txn_requires_abort() else FatalError(message)


class ClientError:
    """An error the compiled producer reported, as (code, name, text), with the methods of
    confluent_kafka.KafkaError that `classify` reads: the same error is the same kind either way.
    Like the KafkaError of a delivery report or a produce() call, it is not retriable unless its
    name says so; `fatal` only for the idempotent producer's fatal error."""

    __slots__ = ("_code", "_fatal", "_name", "_text")

    def __init__(self, code: int, name: str, text: str, fatal: bool = False) -> None:
        self._code, self._name, self._text, self._fatal = code, name, text, fatal

    def code(self) -> int:
        return self._code

    def name(self) -> str:
        return self._name

    def __str__(self) -> str:
        return f"{self._text} [{self._name}]"

    def str(self) -> str:
        return self._text

    def retriable(self) -> bool:
        return False

    def fatal(self) -> bool:
        return self._fatal

    def txn_requires_abort(self) -> bool:
        return False


def classify_exception(exc: BaseException, redactor: Redactor, doing: str) -> DponeError:
    """A KafkaException (or another client error) as the error kind the caller acts on."""
    fast = _FAST or None
    if fast is not None and isinstance(exc, fast.ProducerError) and len(exc.args) == 3:
        return classify(ClientError(*exc.args), redactor, doing)
    args = getattr(exc, "args", ())
    if args and hasattr(args[0], "name") and hasattr(args[0], "retriable"):
        return classify(args[0], redactor, doing)
    return TransientError(f"{doing}: {redactor(str(exc))}")


def fast_module() -> Any:
    """The compiled per-message paths (dpone_drivers/kafkafast/), bound to the librdkafka that
    confluent-kafka loaded; None where it was not built, cannot bind, or DPONE_PURE_PYTHON=1 asks for
    the Python paths (which the differential tests compare it with)."""
    global _FAST  # noqa: PLW0603 - resolved once per process
    if _FAST is None:
        _FAST = _load_fast() or False
    return _FAST or None


_FAST: Any = None


def _load_fast() -> Any:
    import glob  # noqa: PLC0415
    import os  # noqa: PLC0415

    if os.environ.get("DPONE_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        import confluent_kafka  # noqa: PLC0415 - lazy driver import

        from dpone_drivers import _kafkafast  # type: ignore[attr-defined]  # noqa: PLC0415 - compiled, optional
    except ImportError:
        return None
    base = os.path.dirname(os.path.abspath(confluent_kafka.__file__))
    found = sorted(glob.glob(os.path.join(base, os.pardir, "confluent_kafka.libs", "librdkafka*.so*")))
    if not found:
        log.info("the Kafka fast path is off: no bundled librdkafka next to %s", base)
        return None
    try:
        _kafkafast.load(os.path.realpath(found[0]))
    except ImportError as exc:
        log.info("the Kafka fast path is off: %s", exc)
        return None
    return _kafkafast
