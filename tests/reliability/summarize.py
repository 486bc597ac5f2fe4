"""Summarize the JSON lines the reliability tests recorded (``RAVEN_RELIABILITY_RESULTS``, default
var/reliability) as one line per scenario: how many times it ran, the outcomes, durations.

    python -m tests.reliability.summarize [results_dir]
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import Counter
from pathlib import Path


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def durations(rows: list[dict]) -> str:
    values = [r["duration_s"] for r in rows if "duration_s" in r]
    if not values:
        return ""
    median, longest, total = statistics.median(values), max(values), sum(values)
    return f"duration median {median:.0f} s, max {longest:.0f} s, total {total:.0f} s"


def main(directory: Path) -> None:
    for path in sorted(directory.glob("*.jsonl")):
        rows = load(path)
        states = Counter(r.get("state", r.get("state_after", "")) for r in rows)
        line = f"{path.stem}: {len(rows)} runs, states {dict(states)}, {durations(rows)}"
        if path.stem == "worker_death":
            points = Counter(r["point"] for r in rows)
            landed = Counter(k["phase_after_kill"] for r in rows for k in r["kills"])
            resumed = sum(1 for r in rows if r["attempts"] > 1 and r["resumed_from"])
            fewer = sum(
                1
                for r in rows
                if r["attempts"] > 1 and r["iters_per_attempt"][str(r["attempts"])] < r["max_iters"]
            )
            kills = sum(len(r["kills"]) for r in rows)
            models = Counter(r["models"] for r in rows)
            line += (
                f"; kill points {dict(points)}; kills landed in {dict(landed)}; kills {kills}; "
                f"resumed from a checkpoint {resumed}; "
                f"final attempt trained fewer iterations than from scratch {fewer}; "
                f"models per run {dict(models)}"
            )
        if path.stem == "restarts":
            attempts = Counter(r["attempts"] for r in rows)
            line += f"; events per run {[r['events'] for r in rows]}; attempts {dict(attempts)}"
        print(line)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "var/reliability"))
