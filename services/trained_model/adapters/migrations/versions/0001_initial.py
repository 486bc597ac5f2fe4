"""trained_models registry table

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trained_models",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("training_run_id", sa.String(64), nullable=True),
        sa.Column("base_model_id", sa.String(36), nullable=True),
        sa.Column("dataset", sa.String(500), nullable=False),
        sa.Column("dataset_snapshot_sha256", sa.String(64), nullable=False),
        sa.Column("class_names", sa.JSON, nullable=False),
        sa.Column("model_template", sa.String(100), nullable=False),
        sa.Column("config_text", sa.Text, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("config_sha256", sa.String(64), nullable=False),
        sa.Column("checkpoint_uri", sa.String(1000), nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger, nullable=False),
        sa.Column("checkpoint_sha256", sa.String(64), nullable=False),
        sa.Column("artifacts", sa.JSON, nullable=False),
        sa.Column("evaluation", sa.JSON, nullable=False),
        sa.Column("bbox_map", sa.Float, nullable=True),
        sa.Column("training_seconds", sa.Float, nullable=False),
        sa.Column("parameter_count", sa.BigInteger, nullable=False),
        sa.Column("framework_versions", sa.JSON, nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("epochs", sa.Integer, nullable=False),
        sa.Column("learning_rate", sa.Float, nullable=False),
        sa.Column("average_loss", sa.Float, nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("published", sa.Boolean, nullable=False),
        sa.Column("published_by", sa.String(200), nullable=False),
        sa.Column("publish_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("import_request_id", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_trained_models"),
        sa.UniqueConstraint("training_run_id", name="uq_trained_models_training_run_id"),
        sa.UniqueConstraint("display_name", "version", name="uq_trained_models_display_name_version"),
        sa.UniqueConstraint("owner", "import_request_id", name="uq_trained_models_owner_import_request_id"),
    )
    op.create_index("ix_trained_models_base_model_id", "trained_models", ["base_model_id"])
    op.create_index("ix_trained_models_dataset", "trained_models", ["dataset"])
    op.create_index("ix_trained_models_model_template", "trained_models", ["model_template"])
    op.create_index("ix_trained_models_owner", "trained_models", ["owner"])
    op.create_index("ix_trained_models_published", "trained_models", ["published"])
    op.create_index("ix_trained_models_create_time_id", "trained_models", ["create_time", "id"])
    op.create_index("ix_trained_models_bbox_map_id", "trained_models", ["bbox_map", "id"])


def downgrade() -> None:
    op.drop_table("trained_models")
