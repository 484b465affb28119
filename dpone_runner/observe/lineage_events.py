"""OpenLineage RunEvents of one run, built with the official client's classes.

    START            the job and the run; no datasets: which streams a run reads is known only
                     from the SCHEMA messages the tap sends once it runs (a discovery up front
                     would cost a connection and seconds)
    COMPLETE | FAIL  input datasets: the tap's streams, each with a schema facet (from its newest
    | ABORT          SCHEMA) and an inputStatistics facet (rows read); output datasets: each
                     target's table, topic or file for each stream it got (names after filters),
                     with a schema facet and an outputStatistics facet (rows written); FAIL and
                     ABORT (an interrupted run) carry an errorMessage run facet

The runId is a UUIDv7 derived from the run's start time, pipeline and dpone run id, so START and
its end share it whatever happens in between. Imported only on a background thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from openlineage.client.constants import __version__ as openlineage_version
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    error_message_run,
    input_statistics_input_dataset,
    job_type_job,
    output_statistics_output_dataset,
    processing_engine_run,
    schema_dataset,
)
from openlineage.client.uuid import generate_static_uuid

from dpone_protocol.about import dpone_version
from dpone_runner.observe import ObservedRun
from dpone_runner.observe.datasets import Address
from dpone_runner.report import RunReport

PRODUCER = "urn:dpone:runner"
END_STATES = {"success": RunState.COMPLETE, "interrupted": RunState.ABORT}
# Where a stream of the tap (`source`) or of a target (`destination`, by target index) lives.
Locate = Callable[[str], Address]


def run_uuid(run: ObservedRun, started_at: datetime) -> str:
    return str(generate_static_uuid(started_at, f"{run.pipeline_id}/{run.run_id}".encode()))


def start_event(run: ObservedRun, started_at: datetime, namespace: str) -> RunEvent:
    return RunEvent(
        eventType=RunState.START,
        eventTime=started_at.isoformat(),
        run=Run(runId=run_uuid(run, started_at), facets=_run_facets()),
        job=_job(run, namespace),
        producer=PRODUCER,
    )


def end_event(
    run: ObservedRun,
    report: RunReport,
    started_at: datetime,
    namespace: str,
    source: Locate,
    destinations: list[Locate],
) -> RunEvent:
    state = END_STATES.get(report.status, RunState.FAIL)
    facets = _run_facets()
    if state != RunState.COMPLETE:
        message = report.error or f"run {report.status}"
        facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=message, programmingLanguage="python", producer=PRODUCER
        )
    rows_in = {s.stream: s.rows_in for s in report.streams}
    rows_out = {s.stream: s.rows_out for s in report.streams}
    read = _streams(run.schemas_in, rows_in)
    written = _streams(run.schemas_out, rows_out)
    inputs = [
        InputDataset(
            namespace=(where := source(stream)).namespace,
            name=where.name,
            facets=_schema_facets(run.schemas_in.get(stream)),
            inputFacets={
                "inputStatistics": input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                    rowCount=rows_in.get(stream, 0), producer=PRODUCER
                )
            },
        )
        for stream in read
    ]
    outputs = [
        OutputDataset(
            namespace=(where := locate(stream)).namespace,
            name=where.name,
            facets=_schema_facets(run.schemas_out.get(stream)),
            # Rows written are known only when the targets committed them all: a failed run's
            # targets kept what their last state covered, which no count here tells.
            outputFacets={
                "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=rows_out.get(stream, 0), producer=PRODUCER
                )
            }
            if state == RunState.COMPLETE
            else {},
        )
        for locate in destinations
        for stream in written
    ]
    return RunEvent(
        eventType=state,
        eventTime=report.ended_at or datetime.now().astimezone().isoformat(),
        run=Run(runId=run_uuid(run, started_at), facets=facets),
        job=_job(run, namespace),
        inputs=inputs,
        outputs=outputs,
        producer=PRODUCER,
    )


def _streams(schemas: Mapping[str, Any], rows: Mapping[str, int]) -> list[str]:
    """Streams with a SCHEMA or with rows, in name order."""
    return sorted(set(schemas) | {name for name, n in rows.items() if n})


def _job(run: ObservedRun, namespace: str) -> Job:
    kind = job_type_job.JobTypeJobFacet(
        processingType="BATCH", integration="DPONE", jobType="PIPELINE", producer=PRODUCER
    )
    return Job(namespace=namespace, name=run.pipeline_id, facets={"jobType": kind})


def _run_facets() -> dict[str, Any]:
    engine = processing_engine_run.ProcessingEngineRunFacet(
        version=dpone_version(), name="dpone", openlineageAdapterVersion=openlineage_version, producer=PRODUCER
    )
    return {"processing_engine": engine}


def _schema_facets(kept: Mapping[str, Any] | None) -> dict[str, Any]:
    schema = kept.get("schema") if kept else None
    if not isinstance(schema, Mapping):
        return {}
    return {"schema": schema_dataset.SchemaDatasetFacet(fields=_fields(schema), producer=PRODUCER)}


def _fields(schema: Mapping[str, Any]) -> list[schema_dataset.SchemaDatasetFacetFields]:
    """The columns of a JSON Schema object, nested objects (and arrays of them) as nested fields."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return []
    found = []
    for position, (name, given) in enumerate(properties.items(), start=1):
        spec: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        inner = spec.get("items") if _types(spec) == ["array"] else spec
        nested = _fields(inner) if isinstance(inner, Mapping) else []
        found.append(
            schema_dataset.SchemaDatasetFacetFields(
                name=str(name),
                type=_type_name(spec),
                description=spec.get("description") if isinstance(spec.get("description"), str) else None,
                ordinal_position=position,
                fields=nested,
            )
        )
    return found


def _types(spec: Mapping[str, Any]) -> list[str]:
    kind = spec.get("type")
    names = (
        [kind] if isinstance(kind, str) else [k for k in kind if isinstance(k, str)] if isinstance(kind, list) else []
    )
    return [k for k in names if k != "null"]


def _type_name(spec: Mapping[str, Any]) -> str | None:
    """The JSON Schema type, without null; with its format: `string(date-time)`, `integer`."""
    names = _types(spec)
    if not names:
        choices = spec.get("anyOf") or spec.get("oneOf")
        if isinstance(choices, list):
            names = [n for choice in choices if isinstance(choice, Mapping) for n in _types(choice)]
    if not names:
        return None
    text = "|".join(dict.fromkeys(names))
    form = spec.get("format")
    return f"{text}({form})" if isinstance(form, str) else text
