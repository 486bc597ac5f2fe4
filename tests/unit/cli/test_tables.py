"""ravenctl's table fitting: columns dropped by priority, ids and header words never broken."""

from __future__ import annotations

import io

from rich.console import Console

from services.cli.tables import Col, fitted_table


def render(table: object, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()


def test_fitted_table_drops_low_priority_columns_and_keeps_header_words_whole() -> None:
    columns = [
        Col("NAME", 0, min_width=32),
        Col("DISPLAY NAME", 1),
        Col("PUBLISHED", 2),
        Col("BASE MODEL", 3, min_width=46),
    ]
    rows = [["a" * 32, "a long display name that wraps", "yes", "trainedModels/" + "b" * 32]]
    text = render(fitted_table("t", columns, rows, 80), 80)
    assert max(map(len, text.splitlines())) <= 80
    assert "PUBLISHED" in text and "DISPLAY" in text and "BASE" not in text
    assert "a" * 32 in text  # the id is never folded
    wide = render(fitted_table("t", columns, rows, 200), 200)
    assert "BASE MODEL" in wide and "trainedModels/" + "b" * 32 in wide
