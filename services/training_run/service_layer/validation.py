"""Create validation: collects every field violation, then resolves the MMDetection config.

Nothing is stored here.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common import config_gate, dataset_refs, hyperparameters
from common.artifacts import ArtifactStore
from common.errors import AppError, FailedPrecondition, FieldViolation, NotFound, require
from common.hyperparameters import HyperParams
from common.mmdet_config import TEMPLATES, ConfigInvalid, ResolvedConfig, build_config
from common.precision import effective_learning_rate
from services.training_run.adapters.trained_models import BaseModelInfo, TrainedModelClient
from services.training_run.domain.budgets import budget_problem
from services.training_run.domain.datasets import RunInput
from services.training_run.domain.model import RunSpec
from services.training_run.service_layer.commands import CreateTrainingRun
from services.training_run.service_layer.split_guard import base_split, check_split_overlap

F = "training_run."
MODEL_NAME = re.compile(r"^trainedModels/[A-Za-z0-9_-]{1,64}$")
VERSION_FORMAT = "must look like 'datasets/{id}/versions/{n}' (n from 1)"
ConfigBuilder = Callable[..., ResolvedConfig]


class CachedConfigBuilder:
    """Caches ``build_config`` results: identical requests reuse the result.

    ``build_config`` is pure and costs ~0.3 s of CPU (mmengine parsing).
    """

    def __init__(self, builder: ConfigBuilder = build_config, size: int = 64) -> None:
        self._builder = builder
        self._size = size
        self._cache: OrderedDict[str, ResolvedConfig] = OrderedDict()

    def __call__(
        self, template: str, class_names: list[str], hp: HyperParams, **options: Any
    ) -> ResolvedConfig:
        key = json.dumps([template, class_names, hp.as_dict(), options], sort_keys=True, default=str)
        found = self._cache.get(key)
        if found is None:
            found = self._builder(template, class_names, hp, **options)
            self._cache[key] = found
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return found


@dataclass(frozen=True)
class CreateContext:
    dataset_root: str
    trained_models: TrainedModelClient
    backbone_checkpoint: str = ""
    config_builder: ConfigBuilder = field(default_factory=CachedConfigBuilder)
    artifacts: ArtifactStore | None = None  # split manifests, for the fine-tune guard (None = no guard)


def printable_text(value: str, field: str, max_chars: int, *, required: bool) -> list[FieldViolation]:
    if required and not value.strip():
        return [FieldViolation(field, "is required")]
    if len(value) > max_chars:
        return [FieldViolation(field, f"must be at most {max_chars} characters, got {len(value)}")]
    if value and not all(c.isprintable() or c in "\n\t" for c in value):
        return [FieldViolation(field, "must contain printable characters only")]
    return []


async def validate_create(
    cmd: CreateTrainingRun, ctx: CreateContext, *, operator: bool = False, version: RunInput | None = None
) -> RunSpec:
    """The run's spec with its resolved config, or InvalidArgument listing every bad field.

    ``operator`` (a superadmin caller) is told server-side details an ordinary user is not: the dataset root.
    ``version`` is ``cmd.dataset_version`` resolved (visible and READY) by the caller; None when the request
    names none or a malformed one (reported here).
    """
    violations = printable_text(cmd.display_name, F + "display_name", 200, required=True)
    violations += printable_text(cmd.description, F + "description", 10_000, required=False)
    violations += printable_text(cmd.request_id, "request_id", 200, required=False)
    header: dataset_refs.DatasetHeader | None = None
    if cmd.dataset_version:
        dataset, categories = "", list(version.class_names) if version else []
        if cmd.dataset:
            violations.append(
                FieldViolation(F + "dataset_version", "set either dataset or dataset_version, not both")
            )
        elif version is None:
            violations.append(FieldViolation(F + "dataset_version", VERSION_FORMAT))
    else:
        dataset, header = await _dataset(cmd.dataset, ctx.dataset_root, violations, operator=operator)
        categories = header.class_names if header else []
    base = await _base_model(cmd, ctx.trained_models, violations)
    template = cmd.model_template or (base.model_template if base else "")
    if base and cmd.model_template and base.model_template and cmd.model_template != base.model_template:
        violations.append(
            FieldViolation(
                F + "model_template",
                f"must be empty or {base.model_template!r}, the template of the base model",
            )
        )
    elif not template:
        violations.append(
            FieldViolation(F + "model_template", f"is required; one of: {', '.join(sorted(TEMPLATES))}")
        )
    elif template not in TEMPLATES:
        violations.append(
            FieldViolation(
                F + "model_template", f"unknown {template!r}; one of: {', '.join(sorted(TEMPLATES))}"
            )
        )
    pretrained = bool(cmd.base_model) or bool(ctx.backbone_checkpoint)
    asked = hyperparameters.validate_request(
        cmd.hyperparameters, TEMPLATES.get(template), pretrained=pretrained,
        largest_image_side=version.largest_image_side if version else 0,
        train_images=_train_images(cmd.hyperparameters, version, header),
    )  # fmt: skip
    violations += asked.violations
    class_names = _class_names(cmd.class_names, categories, base, violations)
    for name in ("max_runtime", "max_pending"):
        problem = budget_problem(getattr(cmd, f"{name}_seconds"))
        if problem:
            violations.append(FieldViolation(F + name, problem))
    require(_as_errors(violations))
    guarded = base is not None and ctx.artifacts is not None and not cmd.allow_split_overlap
    if base and version and guarded and ctx.artifacts is not None:
        await asyncio.to_thread(check_split_overlap, ctx.artifacts, base_split(base), version)
    try:
        resolved = await asyncio.to_thread(
            ctx.config_builder,
            template,
            class_names,
            asked.training,
            base_model_config=(base.config_data or None) if base else None,
            load_from=base.checkpoint_key if base else None,
            backbone_checkpoint=(ctx.backbone_checkpoint or None) if not base else None,
        )
    except ConfigInvalid as exc:
        require(_as_errors(exc.violations), "the training config does not resolve")
        raise
    return RunSpec(
        dataset=dataset, model_template=template, class_names=tuple(class_names),
        hyperparameters={**resolved.hyperparams.as_dict(), **asked.run},
        max_attempts=int(asked.run["max_attempts"]),
        base_model=base.name if base else "", base_model_checkpoint=base.checkpoint_key if base else "",
        config_text=resolved.text, config_data=resolved.data, config_sha256=resolved.sha256,
        dataset_version=version.name if version else "",
        dataset_source=dict(version.source) if version else {},
        max_runtime_seconds=cmd.max_runtime_seconds, max_pending_seconds=cmd.max_pending_seconds,
        effective_learning_rate=_effective_learning_rate(template, resolved.hyperparams, asked.run),
        # a plain reference: checked on its implicit version, at Create when READY, else when it is
        split_guard=base_split(base) if base and guarded and not cmd.dataset_version else None,
    )  # fmt: skip


def _effective_learning_rate(template: str, hp: HyperParams, run: dict[str, Any]) -> float:
    """The rate MMEngine's auto_scale_lr makes of the run's (common.precision): gpus x batch_size over the
    template's base batch size."""
    base = TEMPLATES[template].defaults.batch_size or hp.batch_size or 1
    return effective_learning_rate(
        float(hp.learning_rate or 0.0), int(hp.batch_size or 1), int(run.get("gpus", 1)), int(base),
        hp.auto_scale_lr is not False,
    )  # fmt: skip


def _train_images(
    values: dict[str, Any], version: RunInput | None, header: dataset_refs.DatasetHeader | None
) -> int:
    """The run's train images for the small-dataset defaults: a version's profile, else the dataset's files
    (a plain reference: its train.json, or train_fraction of annotations.json); 0 = unknown."""
    if version is not None:
        return version.train_images
    if header is None:
        return 0
    fraction = values.get("train_fraction", hyperparameters.RUN_DEFAULTS["train_fraction"])
    if not isinstance(fraction, int | float) or not 0 < fraction < 1:
        return 0  # out of range (1e308 overflowed the count): the hyperparameter checks say so
    return header.train_images(float(fraction))


def _as_errors(violations: list[Any]) -> list[FieldViolation]:
    return [
        v if isinstance(v, FieldViolation) else FieldViolation(v.field, v.description) for v in violations
    ]


async def _dataset(
    ref: str, root: str, violations: list[FieldViolation], *, operator: bool
) -> tuple[str, dataset_refs.DatasetHeader | None]:
    try:
        dataset = await asyncio.to_thread(dataset_refs.resolve_dataset_ref, root, ref)
        return dataset, await asyncio.to_thread(dataset_refs.read_dataset_header, root, ref)
    except NotFound as exc:
        hint = missing_dataset_hint(ref, root, operator)
        violations.append(FieldViolation(F + "dataset", f"{exc.message}; {hint}"))
        return "", None
    except AppError as exc:
        violations.append(FieldViolation(F + "dataset", exc.message))
        return "", None


def missing_dataset_hint(ref: str, root: str, operator: bool) -> str:
    """How to make a dataset available. Only an operator (superadmin) is told where the dataset root is: to
    anyone else its URL would leak the server's storage layout."""
    relative = ref.strip("/")
    where = f"{root.rstrip('/')}/{relative}/" if operator else f"'{relative}/' under the dataset root"
    who = "copy" if operator else "ask an operator to copy"
    return (
        f"{who} it to {where} ({dataset_refs.LAYOUT_HINT}), or upload it as a dataset version "
        "(DatasetService.UploadDatasetVersion) and train on that with dataset_version"
    )


async def _base_model(
    cmd: CreateTrainingRun, client: TrainedModelClient, violations: list[FieldViolation]
) -> BaseModelInfo | None:
    if not cmd.base_model:
        return None
    if not MODEL_NAME.match(cmd.base_model):
        violations.append(FieldViolation(F + "base_model", "must look like 'trainedModels/{id}'"))
        return None
    try:
        base = await client.get(cmd.base_model, cmd.auth_metadata)
    except NotFound:
        violations.append(FieldViolation(F + "base_model", f"{cmd.base_model} does not exist"))
        return None
    if not base.published:
        violations.append(
            FieldViolation(
                F + "base_model",
                f"{cmd.base_model} is not published; publish it first or choose a published model",
            )
        )
        return None
    if not base.checkpoint_key:
        violations.append(
            FieldViolation(F + "base_model", f"{cmd.base_model} has no checkpoint to start from")
        )
        return None
    refused = config_gate.problem(base.config_data)
    if refused:  # stored before the gate existed: the model's state is the problem, not the request
        raise FailedPrecondition(
            f"{cmd.base_model} cannot be used as a base: its stored config fails the config gate "
            f"({refused}); its owner must import it again from a config that passes"
        )
    return base


def _class_names(
    given: tuple[str, ...],
    categories: list[str],
    base: BaseModelInfo | None,
    violations: list[FieldViolation],
) -> list[str]:
    field = F + "class_names"
    if given:
        problems = [f"#{i} is empty" for i, n in enumerate(given) if not n]
        seen: set[str] = set()
        problems += [f"{n!r} is repeated" for n in given if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
        if categories:
            problems += [
                f"{n!r} is not a category of the dataset" for n in given if n and n not in categories
            ]
        if problems:
            violations.append(FieldViolation(field, "; ".join(problems[:10])))
            return []
    names = list(given) or list(categories)
    if base is not None:
        if not given and set(base.class_names) == set(categories):
            names = list(base.class_names)  # same classes: keep the base model's label order
        if names and names != list(base.class_names):
            violations.append(
                FieldViolation(
                    field,
                    f"must match the base model's classes {list(base.class_names)} "
                    f"(in that order), got {names}",
                )
            )
    return names
