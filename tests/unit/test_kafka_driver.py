"""dpone_drivers/kafka.py without a broker: settings to librdkafka properties, and error kinds."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from dpone_drivers.kafka import check_topic, classify, classify_exception, client_config
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError, FatalError, TransientError


def test_settings_map_to_librdkafka_properties_and_passthrough_comes_last() -> None:
    config: dict[str, Any] = {
        "bootstrap_servers": "b1:9092,b2:9092",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "me",
        "sasl_password": "s3cret-pw",
        "ssl_ca_location": "/ca.pem",
        "client_id": "dpone",
        "kafka_properties": {"linger.ms": 5, "socket.keepalive.enable": True, "client.id": "mine"},
    }
    conf = client_config(config, **{"linger.ms": 20, "acks": "all"})
    assert conf["bootstrap.servers"] == "b1:9092,b2:9092"
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (conf["sasl.username"], conf["sasl.password"]) == ("me", "s3cret-pw")
    assert conf["ssl.ca.location"] == "/ca.pem"
    assert conf["acks"] == "all"
    assert conf["linger.ms"] == 5  # the passthrough overrides our default
    assert conf["client.id"] == "mine"  # and the named setting
    assert conf["socket.keepalive.enable"] is True
    assert "logger" in conf  # librdkafka's lines go through logging (and redaction)


@pytest.mark.parametrize("key", ["on_delivery", "error_cb", "logger", "stats_cb"])
def test_callbacks_cannot_be_passed_through(key: str) -> None:
    with pytest.raises(ConfigError, match="callback"):
        client_config({"bootstrap_servers": "b:9092", "kafka_properties": {key: "x"}})


def test_kafka_properties_must_be_an_object() -> None:
    with pytest.raises(ConfigError, match="kafka_properties"):
        client_config({"bootstrap_servers": "b:9092", "kafka_properties": ["linger.ms"]})


@pytest.mark.parametrize("topic", ["orders", "a.b-c_d", "x" * 249])
def test_valid_topic_names(topic: str) -> None:
    assert check_topic(topic, "topic") == topic


@pytest.mark.parametrize("topic", ["", "a/b", "with space", "é", "x" * 250, ".", ".."])
def test_invalid_topic_names_are_config_errors(topic: str) -> None:
    with pytest.raises(ConfigError, match="not a valid Kafka topic name"):
        check_topic(topic, "topic")


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (KafkaError._MSG_TIMED_OUT, TransientError),
        (KafkaError._TRANSPORT, TransientError),
        (KafkaError._ALL_BROKERS_DOWN, TransientError),
        (KafkaError.NOT_LEADER_FOR_PARTITION, TransientError),
        (KafkaError.SASL_AUTHENTICATION_FAILED, ConfigError),
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, ConfigError),
        (KafkaError.UNKNOWN_TOPIC_OR_PART, ConfigError),
        (KafkaError._SSL, ConfigError),
        (KafkaError.MSG_SIZE_TOO_LARGE, DataError),
        (KafkaError.INVALID_RECORD, DataError),
    ],
)
def test_errors_are_typed_by_what_the_caller_should_do(code: int, kind: type[Exception]) -> None:
    error = classify(KafkaError(code), Redactor(), "doing it")
    assert isinstance(error, kind)
    assert str(error).startswith("doing it: ")


def test_a_fatal_error_is_fatal() -> None:
    error = classify(KafkaError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, fatal=True), Redactor(), "producing")
    assert isinstance(error, FatalError)


def test_messages_are_redacted_and_hinted() -> None:
    redactor = Redactor(["hunter2-password"])
    error = classify(KafkaError(KafkaError._TRANSPORT, "failed with hunter2-password"), redactor, "connecting")
    assert "hunter2-password" not in str(error)
    assert "check bootstrap_servers" in str(error)


def test_an_exception_carrying_a_kafka_error_is_classified_by_it() -> None:
    exc = KafkaException(KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED))
    assert isinstance(classify_exception(exc, Redactor(), "x"), ConfigError)
    assert isinstance(classify_exception(RuntimeError("boom"), Redactor(), "x"), TransientError)
