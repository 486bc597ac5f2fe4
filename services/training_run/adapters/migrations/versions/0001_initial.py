"""training_runs, log lines and outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from services.training_run.adapters.orm import AutoId, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("dataset", sa.String(500), nullable=False),
        sa.Column("base_model", sa.String(200), nullable=False),
        sa.Column("base_model_checkpoint", sa.String(1000), nullable=False),
        sa.Column("model_template", sa.String(100), nullable=False),
        sa.Column("class_names", sa.JSON(), nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("config_text", sa.Text(), nullable=False),
        sa.Column("config_data", sa.JSON(), nullable=False),
        sa.Column("config_sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("progress", sa.LargeBinary(), nullable=False),
        sa.Column("progress_seq", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("lost_attempts", sa.Integer(), nullable=False),
        sa.Column("released_attempts", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(200), nullable=False),
        sa.Column("lease_expire_time", UTCDateTime(), nullable=True),
        sa.Column("resume_checkpoint", sa.String(1000), nullable=False),
        sa.Column("registering", sa.Boolean(), nullable=False),
        sa.Column("trained_model", sa.String(200), nullable=False),
        sa.Column("failure", sa.JSON(), nullable=True),
        sa.Column("transitions", sa.JSON(), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("update_time", UTCDateTime(), nullable=False),
        sa.Column("start_time", UTCDateTime(), nullable=True),
        sa.Column("end_time", UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_training_runs"),
        sa.UniqueConstraint("owner", "request_id", name="uq_training_runs_owner_request_id"),
    )
    op.create_index("ix_training_runs_create_time_id", "training_runs", ["create_time", "id"])
    op.create_index("ix_training_runs_owner_create_time", "training_runs", ["owner", "create_time"])
    op.create_index("ix_training_runs_state_lease", "training_runs", ["state", "lease_expire_time"])

    op.create_table(
        "training_run_log_lines",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("line_index", sa.Integer(), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_training_run_log_lines"),
        sa.UniqueConstraint("run_id", "event_seq", "line_index", name="uq_training_run_log_lines_event"),
    )
    op.create_index(
        "ix_training_run_log_lines_run_attempt", "training_run_log_lines", ["run_id", "attempt", "id"]
    )

    op.create_table(
        "training_run_outbox",
        sa.Column("id", AutoId, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("msg_id", sa.String(200), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("sent_time", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_training_run_outbox"),
    )
    op.create_index("ix_training_run_outbox_unsent", "training_run_outbox", ["sent_time", "id"])
    op.create_index("ix_training_run_outbox_run_id", "training_run_outbox", ["run_id"])


def downgrade() -> None:
    op.drop_table("training_run_outbox")
    op.drop_table("training_run_log_lines")
    op.drop_table("training_runs")
