"""model_aliases (an alias of a family points at one model) and trained_models.publish_decision (audit)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_aliases",
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("alias", sa.String(63), nullable=False),
        sa.Column("model_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("display_name", "alias", name="pk_model_aliases"),
    )
    op.create_index("ix_model_aliases_model_id", "model_aliases", ["model_id"])
    with op.batch_alter_table("trained_models") as batch:
        batch.add_column(sa.Column("publish_decision", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trained_models") as batch:
        batch.drop_column("publish_decision")
    op.drop_index("ix_model_aliases_model_id", table_name="model_aliases")
    op.drop_table("model_aliases")
