"""Database driver adapters shared by taps, targets and state stores.

Each module imports its driver lazily, inside functions, so importing it costs nothing and
works without the driver installed.
"""
