"""tap-rest: JSON REST APIs as Singer streams, declared in config."""
