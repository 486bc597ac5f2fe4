"""Hypothesis strategies for arbitrary protobuf requests, driven by the message descriptors.

Every field of every request type gets a value from a strategy chosen by its type (and, for strings, by its
name: resource names, page tokens, resume tokens, dataset refs, artifact keys, templates, owners), so a field
added to a .proto is fuzzed without touching this file. Values cover unicode, control characters, NUL, very
long strings, negative and huge integers, NaN/inf, unknown enum values, random field-mask paths and forged
page tokens.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf import descriptor, message, message_factory
from hypothesis import strategies as st

FD = descriptor.FieldDescriptor
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

HOSTILE = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\n",
    "\r\n",
    "\t",
    "'",
    '"',
    "\\",
    "'; DROP TABLE training_runs; --",
    '" OR 1=1 --',
    "__import__('os').system('touch /tmp/raven-pwned')",
    "{{7*7}}",
    "{0.__class__}",
    "${jndi:ldap://x}",
    "$(id)",
    "`id`",
    "%s%s%s%n",
    "../../../../etc/passwd",
    "..",
    ".",
    "/",
    "//",
    "/etc/passwd",
    "file:///etc/passwd",
    "s3://bucket/key",
    "~root",
    "C:\\Windows",
    "\u202e\u0645\u0631\u062d\u0628\u0627",
    "\ud7ff\ue000\uffff",
    "😀" * 50,
    "\x1b[31mred",
    "a" * 201,
    "b" * 10_001,
    "c" * 100_000,
    "trainingRuns/",
    "trainingRuns/../x",
    "trainedModels/",
    "trainedModels/%00",
    "9" * 30,
    "-1",
    "0",
    "NaN",
]

text = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.sampled_from(HOSTILE),
)


def _b64(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00", "x"]),
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=5)
# Forged page tokens: base64 JSON objects with the keys the services use, and wrong value types.
forged_token = st.dictionaries(
    st.sampled_from(["t", "i", "f", "a", "v", "id", "q", "x"]), json_values, max_size=5
).map(lambda d: _b64(json.dumps(d).encode()))
page_tokens = st.one_of(text, forged_token, st.binary(max_size=40).map(_b64))
resume_tokens = st.one_of(
    text, st.integers(min_value=0, max_value=10**25).map(str), st.integers(max_value=-1).map(str)
)


class Pools:
    """Values the strategies draw names from: existing resources, so the fuzz reaches past name parsing."""

    def __init__(
        self,
        run_names: Sequence[str],
        model_names: Sequence[str],
        datasets: Sequence[str],
        artifact_keys: Sequence[str],
        owners: Sequence[str],
        templates: Sequence[str],
        classes: Sequence[str],
        field_paths: Sequence[str],
    ) -> None:
        self.runs = st.one_of(
            st.sampled_from(list(run_names)),
            st.text(alphabet="abcdef0123456789-_", max_size=40).map(lambda s: f"trainingRuns/{s}"),
        )
        self.models = st.one_of(
            st.sampled_from(list(model_names)),
            st.uuids().map(lambda u: f"trainedModels/{u}"),
            st.text(alphabet="abcdef0123456789-_", max_size=70).map(lambda s: f"trainedModels/{s}"),
        )
        self.names = st.one_of(self.runs, self.models, text)
        self.datasets = st.one_of(st.sampled_from(list(datasets)), text)
        self.keys = st.one_of(st.sampled_from(list(artifact_keys)), text)
        self.owners = st.one_of(st.sampled_from(list(owners)), text)
        self.templates = st.one_of(st.sampled_from(list(templates)), text)
        self.classes = st.one_of(st.sampled_from(list(classes)), text)
        self.paths = st.one_of(st.sampled_from(list(field_paths)), text)

    def string_for(self, field: descriptor.FieldDescriptor) -> st.SearchStrategy[str]:
        name = field.name
        if name == "name":
            return self.names
        if name in ("base_model", "trained_model"):
            return st.one_of(self.models, text)
        if name == "training_run":
            return st.one_of(self.runs, text)
        if name == "page_token" or name == "next_page_token":
            return page_tokens
        if name == "resume_token":
            return resume_tokens
        if name == "dataset":
            return self.datasets
        if name.endswith("_uri") or name.endswith("checkpoint") or name == "uri":
            return self.keys
        if name in ("owner", "published_by"):
            return self.owners
        if name == "model_template":
            return self.templates
        if name in ("class_names", "class_name"):
            return self.classes
        if name == "paths":
            return self.paths
        return text


def _ints(bounds: tuple[int, int]) -> st.SearchStrategy[int]:
    low, high = bounds
    edges = [
        v for v in (0, 1, 2, 3, -1, 5, 64, 500, 501, 5000, 4 * 1024 * 1024 + 1, low, high) if low <= v <= high
    ]
    return st.one_of(
        st.sampled_from(edges),
        st.integers(min_value=max(low, -100), max_value=min(high, 10_000)),
        st.integers(min_value=low, max_value=high),
    )


_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FD.TYPE_INT32: _ints(INT32),
    FD.TYPE_SINT32: _ints(INT32),
    FD.TYPE_SFIXED32: _ints(INT32),
    FD.TYPE_INT64: _ints(INT64),
    FD.TYPE_SINT64: _ints(INT64),
    FD.TYPE_SFIXED64: _ints(INT64),
    FD.TYPE_UINT32: _ints((0, 2**32 - 1)),
    FD.TYPE_FIXED32: _ints((0, 2**32 - 1)),
    FD.TYPE_UINT64: _ints((0, 2**64 - 1)),
    FD.TYPE_FIXED64: _ints((0, 2**64 - 1)),
    FD.TYPE_BOOL: st.booleans(),
    FD.TYPE_DOUBLE: st.one_of(st.sampled_from([0.0, 0.5, 1.0, -1.0, 1e308]), st.floats()),
    FD.TYPE_FLOAT: st.floats(width=32),
    FD.TYPE_BYTES: st.binary(max_size=64),
}
_STRUCT_TYPES = {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}


def _value(field: descriptor.FieldDescriptor, pools: Pools, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FD.TYPE_STRING:
        return pools.string_for(field)
    if field.type == FD.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), _ints(INT32))  # unknown values included (open enums)
    if field.type == FD.TYPE_MESSAGE:
        return messages(field.message_type, pools, depth + 1)
    return _SCALARS[field.type]


def _is_map(field: descriptor.FieldDescriptor) -> bool:
    return field.type == FD.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


@st.composite
def _message(
    draw: Callable[..., Any], desc: descriptor.Descriptor, pools: Pools, depth: int
) -> message.Message:
    cls = message_factory.GetMessageClass(desc)
    msg = cls()
    if desc.full_name in _STRUCT_TYPES:
        if desc.full_name == "google.protobuf.Struct":
            msg.update(draw(st.dictionaries(st.text(max_size=10), json_scalars, max_size=3)))
        return msg
    if depth > 3:
        return msg
    for field in desc.fields:
        if not draw(st.booleans()):
            continue
        if _is_map(field):
            key_field, value_field = (
                field.message_type.fields_by_name["key"],
                field.message_type.fields_by_name["value"],
            )
            if value_field.type == FD.TYPE_MESSAGE:
                continue
            entries = draw(
                st.dictionaries(
                    _value(key_field, pools, depth), _value(value_field, pools, depth), max_size=3
                )
            )
            getattr(msg, field.name).update(entries)
        elif field.label == FD.LABEL_REPEATED:
            values = draw(st.lists(_value(field, pools, depth), max_size=4))
            if field.type == FD.TYPE_MESSAGE:
                getattr(msg, field.name).extend(values)
            else:
                getattr(msg, field.name).extend(values)
        elif field.type == FD.TYPE_MESSAGE:
            getattr(msg, field.name).CopyFrom(draw(_value(field, pools, depth)))
        else:
            setattr(msg, field.name, draw(_value(field, pools, depth)))
    return msg


def messages(desc: descriptor.Descriptor, pools: Pools, depth: int = 0) -> st.SearchStrategy[message.Message]:
    return _message(desc, pools, depth)


def requests(
    desc: descriptor.Descriptor, pools: Pools, seeds: Sequence[message.Message] = ()
) -> st.SearchStrategy[message.Message]:
    """Arbitrary requests; half of them start from a valid seed with random fields merged over it."""
    fresh = messages(desc, pools)
    if not seeds:
        return fresh

    def merged(pair: tuple[message.Message, message.Message]) -> message.Message:
        seed, noise = pair
        out = type(seed)()
        out.CopyFrom(seed)
        out.MergeFrom(noise)
        return out

    return st.one_of(fresh, st.tuples(st.sampled_from(list(seeds)), fresh).map(merged))
