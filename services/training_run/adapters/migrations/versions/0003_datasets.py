"""datasets and dataset_versions (DatasetService); training_runs.dataset_version for the in-use check

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

from services.training_run.adapters.orm import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("next_version", sa.Integer(), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("update_time", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.UniqueConstraint("owner", "request_id", name="uq_datasets_owner_request_id"),
    )
    op.create_index("ix_datasets_owner_create_time", "datasets", ["owner", "create_time"])
    op.create_index("ix_datasets_create_time_id", "datasets", ["create_time", "id"])
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("dataset_id", sa.String(36), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("source_uri", sa.String(2000), nullable=False),
        sa.Column("upload", sa.JSON(), nullable=True),
        sa.Column("split_options", sa.JSON(), nullable=False),
        sa.Column("snapshot_sha256", sa.String(64), nullable=False),
        sa.Column("manifest_key", sa.String(1000), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("manifest_size", sa.BigInteger(), nullable=False),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("annotation_files", sa.JSON(), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("progress", sa.LargeBinary(), nullable=False),
        sa.Column("progress_seq", sa.BigInteger(), nullable=False),
        sa.Column("problem_count", sa.Integer(), nullable=False),
        sa.Column("result", sa.LargeBinary(), nullable=True),
        sa.Column("failure", sa.JSON(), nullable=True),
        sa.Column("transitions", sa.JSON(), nullable=False),
        sa.Column("create_time", UTCDateTime(), nullable=False),
        sa.Column("update_time", UTCDateTime(), nullable=False),
        sa.Column("ready_time", UTCDateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dataset_versions"),
        sa.UniqueConstraint("dataset_id", "number", name="uq_dataset_versions_dataset_number"),
        sa.UniqueConstraint("dataset_id", "request_id", name="uq_dataset_versions_dataset_request_id"),
    )
    op.create_index(
        "ix_dataset_versions_dataset_snapshot", "dataset_versions", ["dataset_id", "snapshot_sha256"]
    )
    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(sa.Column("dataset_version", sa.String(200), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_column("dataset_version")
    op.drop_table("dataset_versions")
    op.drop_table("datasets")
