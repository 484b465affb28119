"""The default `check` of a target: load one probe row the way a batch would, and keep nothing.

A database target (a :class:`LoaderSink`) connects, creates its staging table, bulk-loads the
row into it and drops it; the probe stream is a full refresh, so no final table is created.
Other sinks are only opened: a target whose sink leaves a file behind overrides `check`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dpone.targets.framework.capabilities import OVERWRITE
from dpone.targets.framework.loader_sink import LoaderSink
from dpone.targets.framework.sink import Sink
from dpone_protocol.messages import SchemaMessage

if TYPE_CHECKING:
    from dpone.targets.framework.target import Target

PROBE = SchemaMessage(
    "_dpone_check",
    {"type": "object", "properties": {"id": {"type": "integer"}, "note": {"type": ["string", "null"]}}},
    ["id"],
)


def write_probe(target: Target) -> None:
    base = target.config
    target.config = {**base, "load_method": OVERWRITE, "add_record_metadata": False}
    sink: Sink | None = None
    try:
        sink = target.make_sink(PROBE)
        if isinstance(sink, LoaderSink) and sink.plan is not None:
            sink.loader.write_probe(sink.plan, [{"id": 1, "note": "dpone check"}])
    finally:
        target.config = base
        try:
            if sink is not None:
                sink.close()
        finally:
            target.close()
