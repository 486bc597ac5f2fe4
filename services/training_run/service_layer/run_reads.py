"""GetTrainingRun's and ListTrainingRuns' read path: each run rendered once per row version.

A rendering is the API message without the resolved config, serialized, kept per (run id, row version); the
config fields are serialized once per config hash (configs never change). A Get answers the rendering
followed by the config bytes: protobuf parses concatenated messages as one merged message, and the two share
no field. A List page reads its runs' keys (id, version) and the total in one statement, and decodes and
renders only the runs whose version it has not rendered yet.

Replicas share the database, so a rendering is served only when the database shows that version: a List
read its keys; a Get first reads the row version (an async point read by primary key, ``adapters/
run_versions``). No invalidation is needed, in this process or another: a write bumps the version and the
next read misses. A miss (or a failed version read) takes the ordinary unit-of-work read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import Message

from common.auth import Principal
from common.errors import NotFound
from common.logging import get_logger
from services.training_run.adapters.run_versions import RunVersions
from services.training_run.domain.model import TrainingRun
from services.training_run.service_layer import commands
from services.training_run.service_layer.services import TrainingRunService, can_view_owner, parse_name

log = get_logger("training_run.reads")


@dataclass(frozen=True)
class _Entry:
    version: int
    owner: str  # never changes, so the access check needs no read
    value: bytes  # the run without its resolved config, serialized
    config_sha256: str


class RenderedRuns:
    def __init__(
        self,
        service: TrainingRunService,
        versions: RunVersions,
        render: Callable[[TrainingRun], Message],
        render_config: Callable[[TrainingRun], Message],
        size: int = 8192,
    ) -> None:
        """``render``: the run without its resolved config; ``render_config``: the config fields alone."""
        self._service = service
        self._versions = versions
        self._render = render
        self._render_config = render_config
        self._size = size
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._configs: OrderedDict[str, bytes] = OrderedDict()
        self.hits = 0
        self.misses = 0

    async def get(self, principal: Principal, name: str) -> bytes:
        """The run ``name`` with its resolved config, serialized."""
        run_id = parse_name(name)
        entry = self._entries.get(run_id)
        if entry is not None:
            try:
                current = await self._versions.version(run_id)
            except Exception as exc:  # the ordinary read below still answers (or says why not)
                log.debug("version read failed", run_id=run_id, error=str(exc))
                current = -1
            if current is None:
                self._entries.pop(run_id, None)
            if current is None or not can_view_owner(principal, entry.owner):
                raise NotFound(f"training run trainingRuns/{run_id} does not exist")
            config = self._configs.get(entry.config_sha256)
            if current == entry.version and config is not None:
                self.hits += 1
                self._entries.move_to_end(run_id)
                return entry.value + config
        self.misses += 1
        run = await self._service.get(principal, name)
        return self._store(run).value + self._config(run)

    async def list(
        self, principal: Principal, query: commands.ListTrainingRuns
    ) -> tuple[list[bytes], str, int]:
        """A page of runs without their resolved config, each serialized; the next page's token; the
        number of runs on all pages."""
        keys, token, total = await self._service.list(principal, query)
        found: dict[str, bytes] = {}
        missing: list[str] = []
        for key in keys:
            entry = self._entries.get(key.id)
            if entry is not None and entry.version == key.version:
                found[key.id] = entry.value
            else:
                missing.append(key.id)
        self.hits += len(found)
        self.misses += len(missing)
        if missing:
            for run in (await self._service.listed(missing)).values():
                found[run.id] = self._store(run).value
        # a run deleted between the two reads is left out
        return [found[key.id] for key in keys if key.id in found], token, total

    def _store(self, run: TrainingRun) -> _Entry:
        entry = _Entry(run.version, run.owner, self._render(run).SerializeToString(), run.spec.config_sha256)
        current = self._entries.get(run.id)
        if current is None or current.version <= run.version:
            self._entries[run.id] = entry
            self._entries.move_to_end(run.id)
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return entry

    def _config(self, run: TrainingRun) -> bytes:
        """The config fields of a run read whole, serialized; kept per config hash (a config never changes;
        one without a hash is not kept)."""
        sha256 = run.spec.config_sha256
        value = self._configs.get(sha256) if sha256 else None
        if value is None:
            value = self._render_config(run).SerializeToString()
            if sha256:
                self._configs[sha256] = value
                if len(self._configs) > 256:
                    self._configs.popitem(last=False)
        return value
