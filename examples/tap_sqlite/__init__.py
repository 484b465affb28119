"""tap-sqlite: the SQLite tap of docs/writing-a-connector.md, run by its tests."""
