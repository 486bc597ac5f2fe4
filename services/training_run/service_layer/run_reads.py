"""GetTrainingRun's read path: the rendered run (the API message, serialized) cached per (run id, version).

Replicas share the database, so a cached rendering is served only after a point read of the row version shows
it is still current: a Get right after a write on another replica never sees the old run. A write in this
process needs no invalidation: it bumps the version and the next probe misses. A hit costs the version probe
(a point read off the event loop) and no session, decoding, mapping or serializing (the servicer returns the
bytes; the interceptors' serializer sends bytes as they are); a miss (or a failed probe) takes the ordinary
unit-of-work read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import Message

from common.auth import Principal
from common.errors import NotFound
from common.logging import get_logger
from services.training_run.adapters.run_versions import RunVersions
from services.training_run.domain.model import TrainingRun
from services.training_run.service_layer.services import TrainingRunService, can_view_owner, parse_name

T = TypeVar("T", bound=Message)
log = get_logger("training_run.reads")


@dataclass(frozen=True)
class _Entry:
    version: int
    owner: str  # never changes, so the access check needs no read
    value: bytes  # the rendered message, serialized


class RenderedRuns(Generic[T]):
    def __init__(
        self,
        service: TrainingRunService,
        versions: RunVersions,
        render: Callable[[TrainingRun], T],
        size: int = 4096,
    ) -> None:
        self._service = service
        self._versions = versions
        self._render = render
        self._size = size
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    async def get(self, principal: Principal, name: str) -> bytes:
        """The run ``name``, rendered and serialized."""
        run_id = parse_name(name)
        entry = self._entries.get(run_id)
        if entry is not None:
            try:
                current = await self._versions.version(run_id)
            except Exception as exc:  # e.g. SQLITE_BUSY: the ordinary read below still answers
                log.debug("version probe failed", run_id=run_id, error=str(exc))
                current = -1
            if current is None:
                self._entries.pop(run_id, None)
            if current is None or not can_view_owner(principal, entry.owner):
                raise NotFound(f"training run trainingRuns/{run_id} does not exist")
            if current == entry.version:
                self.hits += 1
                self._entries.move_to_end(run_id)
                return entry.value
        self.misses += 1
        run = await self._service.get(principal, name)
        value = self._render(run).SerializeToString()
        self._entries[run_id] = _Entry(run.version, run.owner, value)
        self._entries.move_to_end(run_id)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return value
