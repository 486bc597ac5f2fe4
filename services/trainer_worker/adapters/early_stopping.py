"""Early stopping in the training child: MMEngine's ``EarlyStoppingHook`` with a warm-up.

The run's config carries a plain ``EarlyStoppingHook`` (``common.mmdet_config``; the config gate allows it and
a downloaded config runs it in stock MMDetection). The training child takes those entries out of
``custom_hooks`` before it builds the runner and registers :class:`WarmUpEarlyStoppingHook` with the same
arguments instead: a detector trained from random weights scores val bbox mAP 0 for its first validations,
and stock MMEngine would count them as validations without improvement and stop a run that has not started
to learn (with patience 3 and ``val_interval`` 1, after epoch 4). Validations before the monitored score
first rises above 0 are not counted; from then on the hook is MMEngine's own.
"""

from __future__ import annotations

import math
from typing import Any

from mmengine.hooks import EarlyStoppingHook

HOOK_TYPE = "EarlyStoppingHook"


class WarmUpEarlyStoppingHook(EarlyStoppingHook):  # type: ignore[misc]
    """``EarlyStoppingHook`` that starts once the monitored score is first above 0 (``warmed_up``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warmed_up = False

    def after_val_epoch(self, runner: Any, metrics: dict[str, Any] | None = None) -> None:
        if not self.warmed_up:
            score = (metrics or {}).get(self.monitor)
            if not isinstance(score, int | float) or not math.isfinite(score) or score <= 0:
                runner.logger.info(f"early stopping waits for {self.monitor} above 0 (now {score})")
                return
            self.warmed_up = True
        super().after_val_epoch(runner, metrics)


def take_early_stopping(cfg: Any) -> list[WarmUpEarlyStoppingHook]:
    """Removes the ``EarlyStoppingHook`` entries from ``cfg.custom_hooks`` (an mmengine Config) and returns
    them as warm-up hooks, for ``runner.register_hook`` (priority: the class's, as from the config)."""
    hooks = list(cfg.get("custom_hooks") or [])
    taken = [dict(h) for h in hooks if h.get("type") == HOOK_TYPE]
    cfg.custom_hooks = [h for h in hooks if h.get("type") != HOOK_TYPE]
    out = []
    for args in taken:
        args.pop("type")
        priority = args.pop("priority", None)
        hook = WarmUpEarlyStoppingHook(**args)
        if priority is not None:
            hook.priority = priority
        out.append(hook)
    return out
