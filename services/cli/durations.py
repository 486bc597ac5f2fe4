"""Durations on the command line: ``90``, ``90s``, ``1.5m``, ``2h``, ``1h30m``, ``1d`` (what ``--max-runtime``
and ``--max-pending`` take), and back to words."""

from __future__ import annotations

import re

from google.protobuf import duration_pb2

UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


def parse_duration(text: str) -> float:
    """Seconds; ValueError with a message a person can act on."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = PART.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"{text!r} is not a duration; write e.g. 90, 90s, 5m, 2h or 1h30m")
    return sum(float(n) * UNITS[u] for n, u in parts)


def duration_message(seconds: float) -> duration_pb2.Duration:
    message = duration_pb2.Duration()
    message.seconds = int(seconds)
    message.nanos = round((seconds - int(seconds)) * 1e9)
    return message


def duration_text(message: duration_pb2.Duration) -> str:
    """``5m``, ``1h30m``, ``2.5s``."""
    seconds = message.seconds + message.nanos / 1e9
    if seconds != int(seconds) or seconds < 1:
        return f"{seconds:g}s"
    left, out = int(seconds), ""
    for unit, size in UNITS.items():
        if left >= size:
            out += f"{int(left // size)}{unit}"
            left %= int(size)
    return out
