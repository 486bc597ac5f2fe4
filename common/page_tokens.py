"""Opaque page tokens (AIP-158), one format for every service: base64url (unpadded) of a small JSON object.

Keyset lists (newest or best first) put a :class:`Cursor` in the token with a fingerprint of the query, so a
token is refused when the filters or the order changed. Other lists put what they need in a plain object
(``encode``/``decode``). Whatever the client sends back, a token that is not ours is INVALID_ARGUMENT on
``page_token``, never INTERNAL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from common.errors import FieldViolation, InvalidArgument

FIELD = "page_token"


@dataclass(frozen=True)
class Cursor:
    """Keyset position: the sort value (ISO time or mAP) and the id of the last row of the previous page."""

    value: str | int | float
    id: str


def fingerprint(query: object) -> str:
    """A short digest of a query (its filters, order and caller), recorded in its tokens."""
    return hashlib.sha256(repr(query).encode()).hexdigest()[:16]


def encode(payload: Mapping[str, object]) -> str:
    blob = json.dumps(dict(payload), separators=(",", ":"))
    return base64.urlsafe_b64encode(blob.encode()).decode().rstrip("=")


def decode(token: str) -> dict[str, object]:
    """The object inside a token from :func:`encode`."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise invalid("is not a page token issued by this service") from exc
    if not isinstance(data, dict):
        raise invalid("is not a page token issued by this service")
    return data


def non_negative_int(payload: Mapping[str, object], key: str, default: int) -> int:
    """An integer of a decoded token; anything else (a forged token) is INVALID_ARGUMENT."""
    value = payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62:
        raise invalid("is not a page token issued by this service")
    return value


def encode_cursor(cursor: Cursor, query_fingerprint: str) -> str:
    return encode({"v": cursor.value, "id": cursor.id, "q": query_fingerprint})


def decode_cursor(token: str, query_fingerprint: str) -> Cursor | None:
    """The cursor of a keyset token (None for the first page) issued for the same query."""
    if not token:
        return None
    data = decode(token)
    value, row_id = data.get("v"), data.get("id")
    if not isinstance(value, str | int | float) or isinstance(value, bool) or not isinstance(row_id, str):
        raise invalid("is not a page token issued by this service")
    if data.get("q") != query_fingerprint:
        raise invalid("belongs to a different query; resend the same filters and order, or drop the token")
    return Cursor(value, row_id)


def invalid(description: str) -> InvalidArgument:
    return InvalidArgument(f"{FIELD} {description}", [FieldViolation(FIELD, description)])
