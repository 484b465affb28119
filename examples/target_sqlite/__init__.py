"""target-sqlite: the SQLite target of docs/writing-a-connector.md, run by its tests."""
