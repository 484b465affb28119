"""The numbers a run report becomes, named once for Prometheus and for OpenTelemetry.

Prometheus (a textfile, a Pushgateway) carries gauges of the last run: each file or push
replaces the one before. OpenTelemetry carries the same numbers as instruments a collector
aggregates: counters for rows, bytes and runs, a histogram for the duration, gauges for the rest.

Every series has the labels env, pipeline, tap and target; stream metrics add stream. A run into
several targets is one series with `target` the targets' names joined by commas: every target
gets the same rows, so one series per target would only count them twice in a sum().
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dpone_runner.observe import ObservedRun
    from dpone_runner.report import RunReport

RUN_LABELS = ("env", "pipeline", "tap", "target")
STREAM_LABELS = (*RUN_LABELS, "stream")
CONNECTOR_LABELS = (*RUN_LABELS, "connector", "role")

GAUGE = "gauge"
COUNTER = "counter"
HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True)
class Metric:
    name: str  # Prometheus
    help: str
    labels: tuple[str, ...] = RUN_LABELS
    otel: str | None = None  # the OpenTelemetry instrument, when it has one
    kind: str = GAUGE  # of the OpenTelemetry instrument
    unit: str = ""


SUCCESS = Metric("dpone_run_success", "1 when the last run succeeded, 0 when it failed or was interrupted.",
                 otel="dpone.run.success", unit="1")  # fmt: skip
DURATION = Metric("dpone_run_duration_seconds", "Wall time of the last run.",
                  otel="dpone.run.duration", kind=HISTOGRAM, unit="s")  # fmt: skip
LAST_END = Metric("dpone_run_last_end_timestamp_seconds", "When the last run ended (Unix time).")
LAST_SUCCESS = Metric("dpone_run_last_success_timestamp_seconds", "When the last successful run ended (Unix time).")
ATTEMPTS = Metric("dpone_run_attempts", "Tries of the last run so far (runner retries included).",
                  otel="dpone.run.attempts", unit="{attempt}")  # fmt: skip
BYTES_IN = Metric("dpone_run_input_bytes", "Bytes the tap wrote in the last run.",
                  otel="dpone.run.input_bytes", kind=COUNTER, unit="By")  # fmt: skip
RATE = Metric("dpone_run_rows_per_second", "Records per second of the last run, all streams.")
STATES = Metric("dpone_run_states_received", "STATE messages the tap sent in the last run.",
                otel="dpone.run.states_received", kind=COUNTER, unit="{state}")  # fmt: skip
STATE_SAVED = Metric("dpone_run_state_saved", "1 when the last run saved a new state, else 0.")
EXIT_CODE = Metric("dpone_connector_exit_code", "Exit code of each connector of the last run.", CONNECTOR_LABELS)
ROWS_IN = Metric("dpone_stream_rows_in", "Records the tap sent for the stream in the last run.", STREAM_LABELS,
                 otel="dpone.stream.rows_in", kind=COUNTER, unit="{row}")  # fmt: skip
ROWS_OUT = Metric("dpone_stream_rows_out", "Records the targets got for the stream (after filters) in the last run.",
                  STREAM_LABELS, otel="dpone.stream.rows_out", kind=COUNTER, unit="{row}")  # fmt: skip
QUARANTINED = Metric("dpone_stream_quarantined_rows", "Records a data contract set aside in the last run.",
                     STREAM_LABELS, otel="dpone.stream.quarantined_rows", kind=COUNTER, unit="{row}")  # fmt: skip
STREAM_RATE = Metric("dpone_stream_rows_per_second", "Records per second of the stream in the last run.",
                     STREAM_LABELS)  # fmt: skip
# OpenTelemetry only: a counter of finished runs by status (Prometheus has dpone_run_success).
RUNS = Metric("", "Finished runs (each try of a retried run counts), by status.", otel="dpone.runs", kind=COUNTER,
              unit="{run}")  # fmt: skip

METRICS = (SUCCESS, DURATION, LAST_END, LAST_SUCCESS, ATTEMPTS, BYTES_IN, RATE, STATES, STATE_SAVED, EXIT_CODE,
           ROWS_IN, ROWS_OUT, QUARANTINED, STREAM_RATE, RUNS)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Sample:
    metric: Metric
    labels: dict[str, str]
    value: float


def run_labels(run: ObservedRun) -> dict[str, str]:
    return {"env": run.env, "pipeline": run.pipeline_id, "tap": run.tap, "target": ",".join(run.targets)}


def samples(run: ObservedRun, report: RunReport) -> list[Sample]:
    """Every number of the report, labelled. LAST_SUCCESS only when this run succeeded."""
    labels = run_labels(run)
    ok = report.status == "success"
    ended = _unix(report.ended_at)
    state_saved = report.state_after is not None and report.state_after != report.state_before
    found = [
        Sample(SUCCESS, labels, 1.0 if ok else 0.0),
        Sample(DURATION, labels, report.duration_seconds),
        Sample(LAST_END, labels, ended),
        Sample(ATTEMPTS, labels, float(len(report.attempts) or report.attempt)),
        Sample(BYTES_IN, labels, float(report.bytes_in)),
        Sample(RATE, labels, report.rows_per_second),
        Sample(STATES, labels, float(report.states_received)),
        Sample(STATE_SAVED, labels, 1.0 if state_saved else 0.0),
    ]
    if ok:
        found.append(Sample(LAST_SUCCESS, labels, ended))
    roles = {run.tap: "tap", **dict.fromkeys(run.targets, "target")}
    for connector, code in report.exit_codes.items():
        if code is not None:
            found.append(Sample(EXIT_CODE, {**labels, "connector": connector, "role": roles.get(connector, "")}, code))
    seconds = max(report.duration_seconds, 1e-9)
    for stream in report.streams:
        per = {**labels, "stream": stream.stream}
        found += [
            Sample(ROWS_IN, per, float(stream.rows_in)),
            Sample(ROWS_OUT, per, float(stream.rows_out)),
            Sample(QUARANTINED, per, float(stream.quarantined)),
            Sample(STREAM_RATE, per, round(stream.rows_in / seconds, 1)),
        ]
    return found


def _unix(stamp: str) -> float:
    """The report's UTC timestamps (ISO 8601) as Unix seconds; now when there is none."""
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return datetime.now().timestamp()
