"""What a client may ask for: the model template catalogue (the one CreateTrainingRun validates against) and
the trainer workers seen recently with the queue per capability."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from common import page_tokens
from common.auth import Permission, Principal
from common.errors import Aborted, FieldViolation, InvalidArgument, NotFound, require
from common.mmdet_templates import TEMPLATES, ModelTemplate
from common.retry import Failures, RetryPolicy
from services.training_run.adapters.repository import ConcurrentUpdate
from services.training_run.domain.workers import QueueDepth, SeenWorker, WorkerInfo, queue_depths
from services.training_run.service_layer.unit_of_work import UnitOfWorkFactory

TEMPLATE_NAME = re.compile(r"^modelTemplates/([A-Za-z0-9_.-]{1,100})$")
MAX_TEMPLATE_PAGE = 100
DEFAULT_SEEN_WITHIN = timedelta(minutes=5)
MAX_SEEN_WITHIN = timedelta(days=7)
MAX_WORKER_ID = 200
# Who may list workers: a worker's runs belong to every owner, so the claim that shows every owner's runs.
LIST_WORKERS_PERMISSION = Permission.VIEW_ALL_TRAINING_RUNS
# Two writers of one worker's row (a claim and a heartbeat): 3 tries in all, no sleep.
WORKER_RECORD_CONFLICTS = RetryPolicy.at_once(3)


class Discovery:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Callable[[], datetime],
        templates: Mapping[str, ModelTemplate] = TEMPLATES,
        *,
        pretrained_backbone: bool = False,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._templates = templates
        # Runs from a template start from pretrained backbone weights (a backbone checkpoint is configured).
        self.pretrained_backbone = pretrained_backbone

    # ---- model templates -----------------------------------------------------------------------------------
    def list_templates(
        self, principal: Principal, page_size: int, page_token: str
    ) -> tuple[list[ModelTemplate], str]:
        principal.require(Permission.VIEW_TRAINING_RUNS)
        if page_size < 0:
            raise InvalidArgument(
                "page_size must not be negative", [FieldViolation("page_size", "must be >= 0")]
            )
        size = min(page_size or MAX_TEMPLATE_PAGE, MAX_TEMPLATE_PAGE)
        after = str(page_tokens.decode(page_token).get("after", "")) if page_token else ""
        keys = [key for key in sorted(self._templates) if key > after]
        page = [self._templates[key] for key in keys[:size]]
        token = page_tokens.encode({"after": page[-1].name}) if len(keys) > size else ""
        return page, token

    def get_template(self, principal: Principal, name: str) -> ModelTemplate:
        principal.require(Permission.VIEW_TRAINING_RUNS)
        match = TEMPLATE_NAME.match(name or "")
        if not match:
            raise InvalidArgument(
                f"name must look like 'modelTemplates/{{id}}', got {name!r}",
                [FieldViolation("name", "must look like 'modelTemplates/{id}'")],
            )
        template = self._templates.get(match.group(1))
        if template is None:
            raise NotFound(
                f"model template {name} does not exist; one of: {', '.join(sorted(self._templates))}"
            )
        return template

    @property
    def gpu_templates(self) -> set[str]:
        return {key for key, template in self._templates.items() if template.gpu_recommended}

    # ---- workers -------------------------------------------------------------------------------------------
    async def worker_seen(self, worker_id: str, info: WorkerInfo) -> None:
        """Records a worker's claim or heartbeat (last seen, device, slots)."""
        violations = info.violations()
        if not worker_id or len(worker_id) > MAX_WORKER_ID or not worker_id.isprintable():
            violations.append(
                FieldViolation("worker_id", f"is required (at most {MAX_WORKER_ID} printable characters)")
            )
        require(violations)
        conflicts = Failures(WORKER_RECORD_CONFLICTS)
        while True:
            try:
                async with self._uow() as uow:
                    await uow.workers.record(worker_id, info, self._clock())
                    await uow.commit()
                return
            except ConcurrentUpdate:
                if not await conflicts.failed():
                    raise Aborted(f"worker {worker_id} is being recorded concurrently; retry") from None

    async def list_workers(
        self, principal: Principal, seen_within_seconds: float
    ) -> tuple[list[SeenWorker], list[QueueDepth]]:
        """Workers seen within the window (0 = the default 5 minutes), and the queue per capability."""
        principal.require(LIST_WORKERS_PERMISSION)
        if not 0 <= seen_within_seconds <= MAX_SEEN_WITHIN.total_seconds():
            raise InvalidArgument(
                "seen_within is out of range",
                [FieldViolation("seen_within", f"must be between 0 and {MAX_SEEN_WITHIN.days} days")],
            )
        window = timedelta(seconds=seen_within_seconds) if seen_within_seconds else DEFAULT_SEEN_WITHIN
        async with self._uow() as uow:
            workers = await uow.workers.seen_since(self._clock() - window)
            pending = await uow.workers.pending_by_template()
        return workers, queue_depths(workers, pending, self.gpu_templates)
