"""Partitioned loads run by an existing orchestrator (dagster_assets.py); nothing here is imported by `dpone`."""
