"""training_runs: time budgets (max_runtime_seconds, max_pending_seconds), stopped_by_time_budget, and
pending_deadline with its index (state, pending_deadline) for the reaper's query of runs past max_pending;
effective_learning_rate (the rate auto_scale_lr makes of the run's)

NULL budgets (every run stored before this revision) mean none; a NULL effective_learning_rate, unknown.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from common.db import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(sa.Column("max_runtime_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("max_pending_seconds", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("stopped_by_time_budget", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("pending_deadline", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("effective_learning_rate", sa.Float(), nullable=True))
    op.create_index("ix_training_runs_state_pending_deadline", "training_runs", ["state", "pending_deadline"])


def downgrade() -> None:
    op.drop_index("ix_training_runs_state_pending_deadline", table_name="training_runs")
    with op.batch_alter_table("training_runs") as batch:
        for column in ("effective_learning_rate", "pending_deadline", "stopped_by_time_budget"):
            batch.drop_column(column)
        batch.drop_column("max_pending_seconds")
        batch.drop_column("max_runtime_seconds")
