"""The one rule for ``update_mask`` (AIP-134) in every service: it names fields, and only editable ones."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from common.errors import FieldViolation

FIELD = "update_mask"


def violations(
    paths: Collection[str], editable: Collection[str], hints: Mapping[str, str] | None = None
) -> list[FieldViolation]:
    """What is wrong with ``paths``: empty, or naming a field outside ``editable``.

    ``hints`` maps a field prefix to a word on what to use instead (e.g. a dedicated RPC).
    """
    allowed = ", ".join(editable)
    if not paths:
        return [FieldViolation(FIELD, f"name at least one of {allowed}")]
    found = []
    for path in sorted(set(paths) - set(editable)):
        hint = next((f" ({h})" for prefix, h in (hints or {}).items() if path.startswith(prefix)), "")
        found.append(FieldViolation(FIELD, f"{path!r} cannot be updated; only {allowed}{hint}"))
    return found
