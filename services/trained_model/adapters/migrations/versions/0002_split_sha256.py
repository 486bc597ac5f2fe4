"""trained_models.split_sha256: the dataset version's split the model was trained and validated on (lineage)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trained_models") as batch:
        batch.add_column(sa.Column("split_sha256", sa.String(64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("trained_models") as batch:
        batch.drop_column("split_sha256")
