"""evaluations.inference: how an evaluation predicted (sliced into tiles and merged, or on full images)

``raven.v1.EvaluationInference`` as JSON, reported by the worker with the result (recorded from the model's
stored config for a training run's own test split evaluation). NULL for the rows stored before this
revision: not recorded.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.add_column(sa.Column("inference", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evaluations") as batch:
        batch.drop_column("inference")
