"""`dpone doctor`: will each pipeline work? Checks with a fix hint each, before anything runs.

pipeline_checks.py walks the pipelines; runner_checks.py holds what the runner checks itself (the
clock, free disk, the state store and its lock, keys for upsert streams); connector_checks.py asks
each tap and target for its own checks (`--ops` doctor, dpone_protocol/ops.py); render.py prints.
"""
