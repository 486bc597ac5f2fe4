"""The child process of the concurrent-migration test: waits at the barrier, then migrates.

Kept apart from the test module so a spawned child imports only ``common.db`` (alembic, SQLAlchemy), not the
services the test module imports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.db import upgrade_to_head


def migrate_after_barrier(
    migrations: str, database_url: str, version_table: str, barrier: Any, errors: Any
) -> None:
    barrier.wait(timeout=60)
    try:
        upgrade_to_head(Path(migrations), database_url, version_table)
    except Exception as exc:  # reported to the test, which names it
        errors.put(f"{type(exc).__name__}: {exc}")
        raise
