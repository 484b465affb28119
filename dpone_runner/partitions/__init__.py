"""Partitioned loads: one stream split into key ranges that workers claim and load in parallel.

plan.py makes the manifest (state/partitions.py) from the tap's ranges; worker.py claims and loads
ranges and moves the stream's bookmark once all are in; api.py is what orchestrators call; status.py
shows the manifest. Each range runs through the ordinary pipeline (dpone_runner/pipeline.py) with a
RangeTask: the tap reads the range, the target commits it whole (dpone_protocol/key_ranges.py).
"""
