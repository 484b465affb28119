"""dpone_runner.orchestrators.dagster_assets without a database: which failures Dagster may retry,
and the names it gives assets and ops. tests/service/test_dagster_partitions.py runs the assets."""

from __future__ import annotations

import dagster as dg
import pytest

from dpone_protocol.errors import ConfigError, DataError, FatalError, InputCutError, TransientError
from dpone_runner.orchestrators import dagster_assets
from dpone_runner.orchestrators.dagster_assets import asset_name, for_dagster, ranges_asset
from dpone_runner.partitions.api import RangeOutcome


def failing(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize(
    "exc",
    [TransientError("deadlock detected"), InputCutError("cut"), ConnectionResetError("reset"), TimeoutError()],
    ids=["transient", "input cut", "connection", "timeout"],
)
def test_what_a_retry_can_fix_is_raised_as_it_is_for_the_retry_policy(exc: Exception) -> None:
    with pytest.raises(type(exc)) as raised:
        for_dagster(lambda: failing(exc), "loading range r0001")
    assert raised.value is exc


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (DataError("value too long"), "data"),
        (ConfigError("no plan"), "config"),
        (FatalError("bug"), "fatal"),
        (ValueError("unexpected"), "fatal"),
    ],
)
def test_what_a_retry_cannot_fix_fails_the_step_without_retries(exc: Exception, kind: str) -> None:
    with pytest.raises(dg.Failure) as raised:
        for_dagster(lambda: failing(exc), "loading range r0001")
    assert raised.value.allow_retries is False
    assert raised.value.description == f"loading range r0001: {exc}"
    assert raised.value.metadata["error_kind"].value == kind
    assert raised.value.__cause__ is exc


def test_a_success_passes_through() -> None:
    assert for_dagster(lambda: 42, "finalizing") == 42


def test_stream_names_become_dagster_names() -> None:
    assert asset_name("public-orders") == "public_orders"
    assert asset_name("sales.v2-orders") == "sales_v2_orders"


def test_two_ranges_assets_of_one_stream_live_in_one_code_location_by_their_prefixes() -> None:
    """Op names are global to a code location: each asset's ops carry its key prefix."""
    east = ranges_asset("orders", "public-orders", project_dir="/p", key_prefix="east")
    west = ranges_asset("orders", "public-orders", project_dir="/p", key_prefix=["west", "dw"])
    defs = dg.Definitions(assets=[east, west])
    assert {a.key for a in (east, west)} == {
        dg.AssetKey(["east", "public_orders"]),
        dg.AssetKey(["west", "dw", "public_orders"]),
    }
    job = defs.resolve_implicit_global_asset_job_def()
    ops = {d.name for d in job.all_node_defs if isinstance(d, dg.OpDefinition)}
    assert ops == {
        f"{prefix}__public_orders__{op}"
        for prefix in ("east", "west__dw")
        for op in ("ranges", "load_range", "finalize")
    }


def test_a_range_the_plan_skips_fails_the_step_without_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """`dpone partitions reset --skip` leaves a range unloaded for good: its step cannot succeed."""
    skipped = RangeOutcome("r0001", "skipped", 0, 0, 1)
    monkeypatch.setattr(dagster_assets, "run_range", lambda *args, **kwargs: skipped)
    with pytest.raises(dg.Failure) as raised:
        dagster_assets.load("/p", "orders", "public-orders", "r0001", "dagster-run")
    assert raised.value.allow_retries is False
    assert "r0001 of public-orders is skipped" in str(raised.value.description)
