"""evaluations: models scored on dataset version splits (requested, or recorded from a training run)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("model_id", sa.String(36), nullable=False),
        sa.Column("dataset_version", sa.String(200), nullable=False),
        sa.Column("split", sa.String(16), nullable=False),
        sa.Column("state", sa.Integer, nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("split_sha256", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(500), nullable=False),
        sa.Column("training_run_id", sa.String(64), nullable=True),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("worker_id", sa.String(200), nullable=False),
        sa.Column("progress", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("artifacts", sa.JSON, nullable=False),
        sa.Column("failure_kind", sa.String(64), nullable=False),
        sa.Column("failure_message", sa.Text, nullable=False),
        sa.Column("cancel_reason", sa.Text, nullable=False),
        sa.Column("job_published", sa.Boolean, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_evaluations"),
        sa.UniqueConstraint("training_run_id", name="uq_evaluations_training_run_id"),
        sa.UniqueConstraint("owner", "request_id", name="uq_evaluations_owner_request_id"),
    )
    op.create_index("ix_evaluations_create_time_id", "evaluations", ["create_time", "id"])
    op.create_index("ix_evaluations_model_id", "evaluations", ["model_id"])
    op.create_index("ix_evaluations_dataset_version", "evaluations", ["dataset_version"])
    op.create_index("ix_evaluations_job_published", "evaluations", ["job_published"])


def downgrade() -> None:
    op.drop_table("evaluations")
