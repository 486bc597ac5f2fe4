"""What the training_run benchmark plays and reads: a worker's events for one run, the watchers' delivery
statistics, and the printed table (figure, measured, target, the machine's limit measured in the same run)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import training_run_clients as clients
from training_run_parts import Sender, fmt_ms, pct

from common.proto.raven.v1 import events_pb2, types_pb2


def _progress(phase: int, epoch: int, it: int, total: int, val: float | None = None) -> events_pb2.RunEvent:
    snapshot = types_pb2.ProgressSnapshot(
        phase=phase, epoch=epoch, max_epochs=2, iter=it, max_iters=total, learning_rate=0.01,
        losses=[types_pb2.Loss(name="loss", value=1.0 / it), types_pb2.Loss(name="loss_cls", value=0.5 / it)],
    )  # fmt: skip
    if val is not None:
        snapshot.val_metrics.add(name="coco/bbox_mAP", value=val)
    return events_pb2.RunEvent(attempt=1, progress=events_pb2.ProgressReported(progress=snapshot))


async def play_run(send: Sender, epochs: int, iters: int, interval: float = 0.3) -> dict[int, str]:
    """A worker's events for one run: per epoch ``iters`` progress reports ``interval`` apart, the last one
    followed at once by the move to EVALUATING, a validation report, then (last epoch) UPLOADING, completed
    and the trained_model service's model_registered. Returns each event's stream sequence → what it was."""
    tags: dict[int, str] = {}
    total = epochs * iters

    async def publish(event: events_pb2.RunEvent, tag: str) -> None:
        event.time.GetCurrentTime()
        if event.WhichOneof("payload") == "progress":
            event.progress.progress.update_time.CopyFrom(event.time)
        tags[await send(event)] = tag

    def phase(value: int) -> events_pb2.RunEvent:
        return events_pb2.RunEvent(attempt=1, phase_changed=events_pb2.PhaseChanged(phase=value))

    for epoch in range(1, epochs + 1):
        for k in range(1, iters + 1):
            it = (epoch - 1) * iters + k
            tag = "run_last" if it == total else "epoch_last" if k == iters else "progress"
            await publish(_progress(types_pb2.TRAINING, epoch, it, total), tag)
            if k < iters:
                await asyncio.sleep(interval)
        await publish(phase(types_pb2.EVALUATING), "phase")
        await asyncio.sleep(interval / 2)
        await publish(_progress(types_pb2.EVALUATING, epoch, epoch * iters, total, val=0.1 * epoch), "val")
        await asyncio.sleep(interval / 2)
        if epoch < epochs:
            await publish(phase(types_pb2.TRAINING), "phase")
    await publish(phase(types_pb2.UPLOADING), "phase")
    await asyncio.sleep(interval / 2)
    await publish(
        events_pb2.RunEvent(attempt=1, completed=events_pb2.RunCompleted(epochs=epochs)), "completed"
    )
    registered = events_pb2.ModelRegistered(trained_model_id=uuid.uuid4().hex)
    await publish(events_pb2.RunEvent(attempt=1, model_registered=registered), "model_registered")
    return tags


@dataclass
class WatchStats:
    latencies: list[float] = field(default_factory=list)
    by_tag: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    spreads: list[float] = field(default_factory=list)
    received: int = 0
    expected: int = 0
    errors: int = 0
    complete: bool = False

    @property
    def p99(self) -> float:
        return pct(self.latencies, 0.99)

    def summary(self) -> str:
        return " / ".join(
            fmt_ms(v) for v in (pct(self.latencies, 0.5), self.p99, max(self.latencies, default=0))
        )

    def tag_p99(self, tag: str) -> float:
        return pct(self.by_tag.get(tag, []), 0.99)

    def spread(self) -> str:
        return f"{fmt_ms(pct(self.spreads, 0.5))} / {fmt_ms(max(self.spreads, default=0))}"

    def completeness(self) -> str:
        return f"{self.received} / {self.expected}; {self.errors}"


def watch_stats(results: list[clients.WatchResult], tags: dict[int, str], connected: int) -> WatchStats:
    """Deliveries of the played events and of the terminal transition (replayed ones left out)."""
    stats = WatchStats()
    first = min(tags)
    receipts: dict[int, list[float]] = defaultdict(list)
    for result in results:
        stats.errors += len(result.errors)
        for seq, kind, sent, received in result.deliveries:
            if seq < first:
                continue
            tag = tags.get(seq) or ("terminal" if kind == "state_changed" else kind)
            stats.latencies.append(received - sent)
            stats.by_tag[tag].append(received - sent)
            receipts[seq].append(received)
    stats.spreads = [max(v) - min(v) for v in receipts.values()]
    stats.received = sum(len(v) for v in receipts.values())
    stats.expected = clients.WATCHERS * max(len(receipts), len(tags) + 1)
    ended = sum(r.ended for r in results)
    stats.complete = (
        stats.received == stats.expected and stats.errors == 0 and "terminal" in stats.by_tag
        and ended == clients.WATCHERS and connected == clients.WATCHERS
    )  # fmt: skip
    return stats


class Table:
    def __init__(self) -> None:
        self.rows: list[list[str]] = []

    def add(self, figure: str, value: str, target: str, limit: str, ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("met" if ok else "MISSED")
        self.rows.append([figure, value, target, limit, verdict])

    def note(self, text: str) -> None:
        self.rows.append([text, "", "", "", ""])

    def machine(self, after: bool = False) -> None:
        load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
        self.add(
            f"machine: {os.cpu_count()} CPUs, load 1/5/15 min {'after' if after else 'before'}", load, "", ""
        )

    def print(self) -> None:
        header = ["figure", "measured", "target", "limit (same run)", ""]
        widths = [max(len(r[i]) for r in [header, *self.rows]) for i in range(5)]
        for row in [header, ["-" * w for w in widths], *self.rows]:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
