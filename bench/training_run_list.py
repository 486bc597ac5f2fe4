"""ListTrainingRuns data for bench_training_run.py: 100,000 runs copied from one real run, in one statement.

The copies differ in id, owner (10 owners), state (6/10 SUCCEEDED, 2/10 FAILED, 1/10 CANCELLED, 1/10 PENDING,
independent of the owner) and create_time (one second apart); everything else (config included) is the
template run's, as created through the API.
"""

from __future__ import annotations

from sqlalchemy import text

from common.db import make_engine
from services.training_run.adapters.orm import TrainingRunRow

OWNERS = 10
COPIED = [c.name for c in TrainingRunRow.__table__.columns if c.name not in (
    "id", "request_id", "owner", "display_name", "state", "create_time", "update_time")]  # fmt: skip

# RunState numbers, drawn from i / 10 so that every owner (i % 10) has every state
_STATE = "CASE WHEN i / 10 % 10 < 6 THEN 3 WHEN i / 10 % 10 < 8 THEN 4 WHEN i / 10 % 10 = 8 THEN 6 ELSE 1 END"
_SQLITE = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
INSERT INTO training_runs (id, request_id, owner, display_name, state, create_time, update_time, {columns})
SELECT printf('bench-%08d', i), NULL, 'bench-owner-' || (i % {owners}), 'bench run ' || i, {state},
       datetime('2026-01-01', '+' || i || ' seconds') || '.000000',
       datetime('2026-01-01', '+' || i || ' seconds') || '.000000', {copied}
FROM n, (SELECT * FROM training_runs WHERE id = :template) AS t
"""
_POSTGRES = """
INSERT INTO training_runs (id, request_id, owner, display_name, state, create_time, update_time, {columns})
SELECT 'bench-' || lpad(i::text, 8, '0'), NULL, 'bench-owner-' || (i % {owners}), 'bench run ' || i, {state},
       timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second',
       timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second', {copied}
FROM generate_series(1, :count) AS i, (SELECT * FROM training_runs WHERE id = :template) AS t
"""


async def populate(database_url: str, template_id: str, count: int) -> None:
    """Adds ``count`` copies of the run ``template_id``, then refreshes the planner's statistics."""
    sql = _SQLITE if database_url.startswith("sqlite") else _POSTGRES
    statement = sql.format(
        columns=", ".join(COPIED),
        copied=", ".join(f"t.{c}" for c in COPIED),
        owners=OWNERS,
        state=_STATE,
    )
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(statement), {"count": count, "template": template_id})
        # What autovacuum does to a table that grew: without it PostgreSQL's index-only scans visit the heap.
        analyze = "ANALYZE" if database_url.startswith("sqlite") else "VACUUM ANALYZE training_runs"
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(analyze))
    finally:
        await engine.dispose()
