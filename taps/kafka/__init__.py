"""tap-kafka: Kafka topics as Singer streams."""
