"""Opaque keyset page tokens (AIP-158): the last row's sort key and a fingerprint of their query."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from common.errors import FieldViolation, InvalidArgument
from services.trained_model.adapters.repository import Cursor


def fingerprint(query: Any) -> str:
    return hashlib.sha256(repr(query).encode()).hexdigest()[:16]


def encode(cursor: Cursor, query_fingerprint: str) -> str:
    blob = json.dumps({"v": cursor.value, "id": cursor.id, "q": query_fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(blob.encode()).decode().rstrip("=")


def decode(token: str, query_fingerprint: str) -> Cursor | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        cursor = Cursor(value=data["v"], id=str(data["id"]))
        matches = data["q"] == query_fingerprint
        if not isinstance(cursor.value, str | int | float) or isinstance(cursor.value, bool):
            raise ValueError("bad cursor value")
    except (ValueError, KeyError, TypeError) as exc:
        raise _bad("is not a page token issued by this service") from exc
    if not matches:
        raise _bad("belongs to a different query; resend the same filters and order, or drop the token")
    return cursor


def _bad(description: str) -> InvalidArgument:
    return InvalidArgument(f"page_token {description}", [FieldViolation("page_token", description)])
