"""A database target: one loader (one connection) shared by the LoaderSinks of its streams."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any, ClassVar

import orjson

from dpone_protocol.codec import MessageReader, decode_line
from dpone_protocol.messages import SchemaMessage, from_dict
from targets.framework.capabilities import TargetCapabilities
from targets.framework.loader import DATABASE_CAPABILITIES, Loader
from targets.framework.loader_sink import LoaderSink
from targets.framework.schema_evolution import SchemaPlan
from targets.framework.sink import Sink
from targets.framework.target import Target


class LoaderTarget(Target):
    capabilities: ClassVar[TargetCapabilities] = DATABASE_CAPABILITIES

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.loader: Loader | None = None
        self.read_only = False  # --schema-plan: the loader must not create anything, not even a schema

    def make_loader(self) -> Loader:
        raise NotImplementedError

    def _shared_loader(self) -> Loader:
        if self.loader is None:
            self.loader = self.make_loader()
        return self.loader

    def make_sink(self, schema: SchemaMessage) -> Sink:
        loader = self._shared_loader()
        self.router = loader.line_router()
        return LoaderSink(self.config, schema, self.policy, loader)

    def plan_schemas(self, source: IO[bytes], out: IO[bytes], fmt: str) -> None:
        """--schema-plan: what each SCHEMA would change in the destination; nothing is changed."""
        plans: dict[str, SchemaPlan] = {}
        self.read_only = True
        try:
            for frame in MessageReader(source).frames():
                message = from_dict(decode_line(frame.raw, frame.line), frame.line)
                if isinstance(message, SchemaMessage):
                    sink = LoaderSink(self.config, message, self.policy, self._shared_loader(), plan_only=True)
                    plans[message.stream] = sink.schema_plan()
        finally:
            self.close()
        if fmt == "json":
            doc = {"target": self.name, "plans": [p.to_dict() for p in plans.values()]}
            out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        else:
            out.write("".join(p.render_text() for p in plans.values()).encode() or b"no SCHEMA messages read\n")
        out.flush()

    def close(self) -> None:
        if self.loader is not None:
            self.loader.close()
            self.loader = None
