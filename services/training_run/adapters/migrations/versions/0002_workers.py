"""training_run_workers: trainer workers seen through claims and heartbeats (ListWorkers)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from services.training_run.adapters.orm import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_run_workers",
        sa.Column("worker_id", sa.String(200), nullable=False),
        sa.Column("device_kind", sa.String(16), nullable=False),
        sa.Column("gpu_model", sa.String(200), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("first_seen_time", UTCDateTime(), nullable=False),
        sa.Column("last_seen_time", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("worker_id", name="pk_training_run_workers"),
    )
    op.create_index("ix_training_run_workers_last_seen", "training_run_workers", ["last_seen_time"])


def downgrade() -> None:
    op.drop_table("training_run_workers")
