"""Runner retries: a run that failed with a transient error (exit 75: a dropped connection, a
deadlock, a lock held by a live run) is run again, from the state the targets committed, after a
backoff. Config, data and authorization errors are not retried: running again changes nothing.

Every attempt is a whole run of its own (its own run id, report and saved run record); the last
attempt's report lists them all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dpone_protocol.errors import DponeError, ErrorKind
from dpone_runner.project import RetryPolicy
from dpone_runner.report import RunReport

log = logging.getLogger("dpone.run")

# One attempt: given its number (1-based) and the summaries of the attempts before it, run and
# return the report with the error the run ended with (None: success).
Attempt = Callable[[int, list[dict[str, Any]]], tuple[RunReport, DponeError | None]]


class AttemptFailed(Exception):
    """Carries a failed attempt's report to the retry loop (the error is its __cause__)."""

    def __init__(self, report: RunReport) -> None:
        self.report = report


def retryable(exc: BaseException) -> bool:
    cause = exc.__cause__ if isinstance(exc, AttemptFailed) else exc
    return isinstance(cause, DponeError) and cause.kind is ErrorKind.TRANSIENT


def run_with_retries(policy: RetryPolicy, attempt: Attempt, sleep: Callable[[float], None] | None = None) -> RunReport:
    """Run `attempt` until it succeeds, fails for good, or `policy.attempts` are used up."""
    history: list[dict[str, Any]] = []

    def once(number: int) -> RunReport:
        report, error = attempt(number, list(history))
        if error is None:
            return report
        if not retryable(error) or number >= policy.attempts:
            raise error
        history.append(report.attempt_summary())
        raise AttemptFailed(report) from error

    if policy.attempts <= 1:
        return once(1)
    import tenacity  # noqa: PLC0415 - only pipelines with retries need it

    def before_sleep(state: tenacity.RetryCallState) -> None:
        failed = state.outcome.exception() if state.outcome else None
        cause = failed.__cause__ if failed is not None else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "attempt %d of %d failed with a transient error (%s); retrying from the committed state in %.0fs",
            state.attempt_number,
            policy.attempts,
            cause,
            wait,
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=tenacity.wait_exponential(multiplier=policy.backoff_seconds, max=policy.max_backoff_seconds),
        retry=tenacity.retry_if_exception(retryable),
        before_sleep=before_sleep,
        sleep=sleep or tenacity.nap.sleep,
        reraise=True,
    )
    for try_ in retrying:
        with try_:
            return once(try_.retry_state.attempt_number)
    raise AssertionError("tenacity ended without an outcome")  # pragma: no cover - reraise=True re-raises
