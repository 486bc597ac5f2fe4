"""Tables that fit the terminal: columns are dropped by priority, widths are shared out, and a header word is
never broken (each kept column is at least as wide as the longest word of its header)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.table import Table
from rich.text import Text

# A column costs its content width plus one space of padding each side and one border line.
COLUMN_OVERHEAD = 3
TABLE_OVERHEAD = 1
COMFORTABLE = 12  # a column narrower than its content gets at least this much before columns are dropped


@dataclass(frozen=True)
class Col:
    """A column; ``priority`` 0 is always kept, higher numbers are dropped first when space runs out."""

    header: str
    priority: int = 0
    justify: Literal["left", "right", "center"] = "left"
    min_width: int = 0

    @property
    def narrowest(self) -> int:
        return max([self.min_width, *(Text.from_markup(word).cell_len for word in self.header.split())])


def cell_width(value: str) -> int:
    return max((Text.from_markup(line).cell_len for line in value.splitlines() or [""]), default=0)


def fits(columns: Sequence[Col], width: int) -> bool:
    return sum(c.narrowest + COLUMN_OVERHEAD for c in columns) + TABLE_OVERHEAD <= width


def fitted_table(
    title: str, columns: Sequence[Col], rows: Sequence[Sequence[str]], width: int, caption: str = ""
) -> Table:
    """A rich table no wider than ``width`` when the always-kept columns allow it.

    A column is kept only if it gets at least its comfortable width (its content, up to ``COMFORTABLE``, never
    less than its longest header word): fewer columns read better than many folded ones.
    """
    natural = [
        max([cell_width(c.header), *(cell_width(row[i]) for row in rows)]) for i, c in enumerate(columns)
    ]
    comfortable = [max(c.narrowest, min(n, COMFORTABLE)) for c, n in zip(columns, natural, strict=True)]

    def needed(kept: list[int]) -> int:
        return sum(comfortable[i] + COLUMN_OVERHEAD for i in kept) + TABLE_OVERHEAD

    keep = list(range(len(columns)))
    for priority in sorted({c.priority for c in columns if c.priority}, reverse=True):
        if needed(keep) <= width:
            break
        keep = [i for i in keep if columns[i].priority != priority]
    budget = width - TABLE_OVERHEAD - COLUMN_OVERHEAD * len(keep)
    widths = _share([natural[i] for i in keep], [comfortable[i] for i in keep], budget)
    table = Table(title=title, caption=caption or None, title_justify="left")
    for i, column_width in zip(keep, widths, strict=True):
        column = columns[i]
        table.add_column(column.header, justify=column.justify, width=column_width, overflow="fold")
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    return table


def _share(natural: list[int], minimum: list[int], budget: int) -> list[int]:
    """Each column its natural width when all fit; else every column at least its minimum, and the space left
    raised evenly (water-filling) so narrow columns are whole before wide ones grow."""
    target = [max(n, m) for n, m in zip(natural, minimum, strict=True)]
    if sum(target) <= budget:
        return target
    widths = list(minimum)
    left = budget - sum(widths)
    while left > 0:
        growing = [i for i, w in enumerate(widths) if w < target[i]]
        if not growing:
            break
        for i in growing[:left]:
            widths[i] += 1
        left -= min(left, len(growing))
    return widths
