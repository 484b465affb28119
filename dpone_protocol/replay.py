"""The answer of a `replay_plan` operation (dpone_protocol/ops.py): per stream, what rewinding its
committed position would re-deliver, or why the source can no longer serve it.

A tap fills one StreamReplay per stream it was asked about; the runner prints them and, only when
no stream is refused, writes each stream's new `bookmark` into the state (`dpone state
replay-plan --apply`). Positions are the tap's own (an LSN, offsets per partition); the runner
shows them as they are and never interprets them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

# Hints name the pipeline with this word (a tap does not know the pipeline's id); the runner fills it in.
PIPELINE = "PIPELINE"
# `--to committed`: no rewind; is the committed position itself still served? (`dpone doctor` asks it.)
COMMITTED = "committed"


def pipeline_word() -> str:
    """The pipeline's id in a tap's error hints: `dpone run` tells it (DPONE_PIPELINE), a shell pipe does not."""
    return os.environ.get("DPONE_PIPELINE") or PIPELINE


@dataclass(slots=True)
class StreamReplay:
    stream: str
    committed: Any  # the position the committed state holds, as the tap shows it
    rewind_to: Any  # the position asked for, resolved (an LSN, offsets per partition)
    summary: str = ""  # what would be re-delivered, for people
    redeliver: dict[str, Any] = field(default_factory=dict)  # amounts: wal_bytes, changes, messages, ...
    bookmark: Any = None  # the stream's new bookmark; None when refused
    refusal: str = ""  # why the source cannot serve the rewind; "" when it can
    hint: str = ""  # what to do instead, with PIPELINE for the pipeline's id

    @property
    def refused(self) -> bool:
        return bool(self.refusal)

    def refuse(self, reason: str, hint: str = "") -> StreamReplay:
        self.refusal, self.hint, self.bookmark = reason, hint, None
        return self

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "refused": self.refused}


def replay_body(streams: list[StreamReplay]) -> dict[str, Any]:
    """The body of a supported answer: every stream, and whether any of them is refused."""
    return {"streams": [s.to_dict() for s in streams], "refused": any(s.refused for s in streams)}


def resync_hint(stream: str) -> str:
    """What to do when a stream's changes are gone: read it again from the start."""
    return (
        f"re-sync the stream: `dpone state clear {PIPELINE} --stream {stream}` (its next run reads it "
        "from the start), or a one-off `dpone run ... --full-refresh` of the whole pipeline"
    )


def streams_of(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The streams of a supported answer, checked for the keys the runner reads."""
    streams = answer.get("streams")
    if not isinstance(streams, list) or not all(
        isinstance(s, dict) and isinstance(s.get("stream"), str) and "refused" in s for s in streams
    ):
        raise ValueError("a replay_plan answer lists streams, each with stream and refused")
    return streams
