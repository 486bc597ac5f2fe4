"""Writes ``common/registered_classes.json``: the names the config gate accepts as ``type`` values.

``classes``: every name registered to a *class* in the mmengine registries (mmcv registers into them) and in
their mmdet children; ``functions``: the names registered in the ``function`` registries (collate functions).
Dotted names are left out: the gate never accepts them.

The services check configs against this file instead of importing mmdet (torch, mmcv: seconds and hundreds of
MB in training_run and trained_model). ``tests/unit/test_config_gate.py`` compares it with the installed
registries, so an mmdet/mmengine/mmcv upgrade fails the tests until the file is regenerated and reviewed:

    .venv/bin/python -m scripts.gen_registered_classes
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

TARGET = Path(__file__).resolve().parent.parent / "common" / "registered_classes.json"
SCOPES = ("mmengine", "mmdet")


def collect() -> dict[str, list[str]]:
    """Names from the live registries (imports mmdet, mmcv and torch)."""
    import mmengine.registry as root
    from mmdet.utils import register_all_modules
    from mmengine.registry import Registry

    register_all_modules(init_default_scope=False)
    classes: set[str] = set()
    functions: set[str] = set()

    def visit(registry: Any) -> None:
        registry.import_from_location()
        if registry.scope in SCOPES:
            for name, obj in registry.module_dict.items():
                if "." in name:
                    continue
                if inspect.isclass(obj):
                    classes.add(name)
                elif registry.name == "function" and callable(obj):
                    functions.add(name)
        for child in registry.children.values():
            visit(child)

    for registry in vars(root).values():
        if isinstance(registry, Registry):
            visit(registry)
    return {"classes": sorted(classes), "functions": sorted(functions)}


def main() -> None:
    TARGET.write_text(json.dumps(collect(), indent=1) + "\n")
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
