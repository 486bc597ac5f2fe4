"""Startup check: stored model configs that fail the config gate.

Models imported or registered before :mod:`common.config_gate` existed may hold configs the gate now refuses
(a dotted ``type``, a ``custom_hooks`` entry that is no registered class...). Such a model can no longer be
published or used as a base (FAILED_PRECONDITION); this check finds them all at startup, logs one structured
line per model and reports the count (``raven_trained_models_failing_config_gate``) so an operator can
re-import or delete them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from common import config_gate
from common.logging import get_logger
from services.trained_model.service_layer.unit_of_work import UnitOfWork

log = get_logger("trained_model.config_audit")

PAGE = 500


@dataclass(frozen=True)
class GateFailure:
    name: str
    published: bool
    problem: str


async def stored_configs_failing_gate(new_uow: Callable[[], UnitOfWork]) -> list[GateFailure]:
    """Every model whose stored config the gate refuses, logged as ``stored config fails the config gate``."""
    found: list[GateFailure] = []
    after = ""
    while True:
        async with new_uow() as uow:
            page = await uow.models.configs_after(after, PAGE)
        for model_id, published, config in page:
            problem = config_gate.problem(config)
            if problem:
                failure = GateFailure(f"trainedModels/{model_id}", published, problem)
                found.append(failure)
                log.warning(
                    "stored config fails the config gate: the model cannot be published or used as a base",
                    model=failure.name, published=published, problem=problem,
                )  # fmt: skip
        if len(page) < PAGE:
            return found
        after = page[-1][0]
