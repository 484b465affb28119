"""A database target: one loader (one connection) shared by the LoaderSinks of its streams."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import IO, Any, ClassVar

import orjson

from dpone.targets.framework.capabilities import DATABASE_CAPABILITIES, TargetCapabilities
from dpone.targets.framework.committer import Committer
from dpone.targets.framework.loader import Loader, SchemaQueue
from dpone.targets.framework.loader_sink import LoaderSink
from dpone.targets.framework.schema_evolution import SchemaPlan
from dpone.targets.framework.sink import Sink
from dpone.targets.framework.sql_loader import SqlLoader
from dpone.targets.framework.target import Target
from dpone_protocol.codec import MessageReader, decode_line
from dpone_protocol.errors import ConfigError, InputCutError
from dpone_protocol.key_ranges import RANGE_TOKEN_ENV
from dpone_protocol.messages import SchemaMessage, from_dict

log = logging.getLogger(__name__)


class LoaderTarget(Target):
    capabilities: ClassVar[TargetCapabilities] = DATABASE_CAPABILITIES
    sink_class: ClassVar[type[LoaderSink]] = LoaderSink

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.loader: Loader | None = None
        self.schema_queue = SchemaQueue()  # shared by every stream and lane: one destination
        self.committer: Committer | None = None
        self.read_only = False  # --schema-plan: the loader must not create anything, not even a schema

    def make_loader(self) -> Loader:
        raise NotImplementedError

    def _shared_loader(self) -> Loader:
        if self.loader is None:
            self.loader = self.make_loader()
            token = os.environ.get(RANGE_TOKEN_ENV)
            if token and not self.read_only:
                self._load_one_range(self.loader, token)
                if self.loader.background_commit:
                    # One lane: the range's one connection loads a batch while the next is encoded.
                    self.committer = Committer(f"{type(self.loader).__name__}-commit", 1)
            elif self.loader.background_commit:
                # One committer for the whole destination: batches of every stream commit in order.
                self.committer = Committer(f"{type(self.loader).__name__}-commit", self.loader.lanes)
        return self.loader

    def make_sink(self, schema: SchemaMessage) -> Sink:
        loader = self._shared_loader()
        self.router = loader.line_router()
        return self.sink_class(self.config, schema, self.policy, loader, self.schema_queue, self.committer)

    def _load_one_range(self, loader: Loader, token: str) -> None:
        if not isinstance(loader, SqlLoader) or type(loader).ledger_claim is SqlLoader.ledger_claim:
            raise ConfigError(f"{self.name} cannot load a key range in one transaction (it keeps no range ledger)")
        # One connection and one transaction: no second lane, which would commit batches on its own.
        loader.range_token = token
        if loader.keep_staging:
            # A kept staging table is one named table per target table: workers loading ranges of the
            # same table at once would share it. Temporary staging is the session's own.
            log.warning("keep_staging is ignored for a key range: workers of the same table would share it")
            loader.keep_staging = False
        log.info("loading key range %s in one transaction", token)

    def commit_input(self) -> None:
        token = os.environ.get(RANGE_TOKEN_ENV)
        if token and not self.read_only:
            if self.range_end != token:
                raise InputCutError(
                    f"key range {token}: the input ended without dpone's end-of-range mark (its runner died?); "
                    "nothing of the range is committed"
                )
            loader = self._shared_loader()
            if isinstance(loader, SqlLoader):
                loader.commit_range(self.records_in)

    def range_ledger(self, request: Mapping[str, Any]) -> dict[str, Any]:
        loader = self._shared_loader()
        if not isinstance(loader, SqlLoader) or type(loader).ledger_lookup is SqlLoader.ledger_lookup:
            return super().range_ledger(request)
        try:
            if request.get("prepare"):
                loader.ledger_prepare()
            token = request.get("token")
            rows = loader.ledger_lookup(str(token)) if token else None
        finally:
            self.close()
        return {"committed": rows is not None, "rows": rows}

    def plan_schemas(self, source: IO[bytes], out: IO[bytes], fmt: str) -> None:
        """--schema-plan: what each SCHEMA would change in the destination; nothing is changed."""
        plans: dict[str, SchemaPlan] = {}
        self.read_only = True
        try:
            for frame in MessageReader(source).frames():
                message = from_dict(decode_line(frame.raw, frame.line), frame.line)
                if isinstance(message, SchemaMessage):
                    loader = self._shared_loader()
                    sink = self.sink_class(self.config, message, self.policy, loader, self.schema_queue, plan_only=True)
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
        if self.committer is not None:
            self.committer.close()  # never close the connection under a batch in flight
            self.committer = None
        if self.loader is not None:
            self.loader.close()
            self.loader = None
