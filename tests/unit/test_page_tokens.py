"""Page tokens and update masks: the rules every service shares."""

import pytest

from common import page_tokens, update_masks
from common.errors import InvalidArgument
from common.page_tokens import Cursor, decode_cursor, encode_cursor


def test_page_tokens_round_trip_and_reject_tampering() -> None:
    token = encode_cursor(Cursor("2026-01-01T00:00:00+00:00", "m1"), "q1")
    assert decode_cursor(token, "q1") == Cursor("2026-01-01T00:00:00+00:00", "m1")
    assert decode_cursor("", "q1") is None
    forged = page_tokens.encode({"v": True, "id": "m1", "q": "q1"})
    for bad, fp in [(token, "other-query"), ("not-a-token", "q1"), (token[:-3], "q1"), (forged, "q1")]:
        with pytest.raises(InvalidArgument) as caught:
            decode_cursor(bad, fp)
        assert caught.value.violations[0].field == "page_token"


@pytest.mark.parametrize("value", ["1", -1, 2**62, True, 1.5, None])
def test_an_integer_in_a_token_is_a_small_non_negative_int(value: object) -> None:
    assert page_tokens.non_negative_int(page_tokens.decode(page_tokens.encode({"i": 7})), "i", 0) == 7
    assert page_tokens.non_negative_int({}, "i", 3) == 3
    with pytest.raises(InvalidArgument):
        page_tokens.non_negative_int({"i": value}, "i", 0)


@pytest.mark.parametrize("token", ["%%%", "garbage!", "WzFd"])
def test_what_is_not_a_token_object_is_invalid_argument(token: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        page_tokens.decode(token)
    assert caught.value.violations[0].field == "page_token"


def test_update_mask_names_editable_fields_only() -> None:
    editable = ("display_name", "description")
    assert update_masks.violations(["description"], editable) == []
    assert [v.field for v in update_masks.violations([], editable)] == ["update_mask"]
    (found,) = update_masks.violations(["published", "description"], editable, {"publish": "use Publish"})
    assert "'published'" in found.description and "(use Publish)" in found.description
