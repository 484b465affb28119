"""`dpone reconcile`: after a run, does the destination hold what the source holds?

streams.py turns the tap's selected catalog into one request per stream (keys, columns and
their kinds); compare.py asks the tap to cut the first key into ranges and count them, asks each
target to count the same ranges, narrows a range that differs by cutting it again a few levels
down, and finds destination keys missing at the source (and removes them, when asked);
render.py prints the outcome as text or JSON. Every count and checksum is computed by a
database (dpone_protocol/reconcile.py says how); the runner only compares numbers.
"""
