"""The connector kit's tests: one suite every target runs, one every tap runs (see docs/testing-a-connector.md)."""
