"""target-kafka: Singer streams to Kafka topics."""
