"""Claims and owner scoping for models.

Published models are visible to anyone holding the view claim (they are meant to be fine-tuned from);
unpublished ones only to their owner or a holder of view-all. A model the caller cannot see answers NOT_FOUND,
never PERMISSION_DENIED, so ids of others' models do not leak. Changing a model (edit, publish, delete)
additionally needs ownership or view-all.
"""

from __future__ import annotations

from common.auth import Permission, Principal
from common.errors import NotFound, PermissionDenied
from services.trained_model.domain.model import TrainedModel


def can_see(who: Principal, model: TrainedModel) -> bool:
    return model.published or who.can_see_owner(model.owner, Permission.VIEW_ALL_MODELS)


def ensure_visible(who: Principal, model: TrainedModel | None, name: str) -> TrainedModel:
    if model is None or not can_see(who, model):
        raise NotFound(f"{name} does not exist or is not visible to you")
    return model


def ensure_manageable(who: Principal, model: TrainedModel, action: str) -> None:
    if not who.can_see_owner(model.owner, Permission.VIEW_ALL_MODELS):
        raise PermissionDenied(
            f"only the owner of {model.name} (or a holder of models.view_all) may {action} it"
        )


def ensure_force_allowed(who: Principal, force: bool) -> None:
    if force and not who.is_superadmin:
        raise PermissionDenied("force (skipping publication gates) needs the superadmin claim")
