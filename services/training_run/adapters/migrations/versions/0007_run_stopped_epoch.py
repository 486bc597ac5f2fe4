"""training_runs.stopped_epoch: the last epoch trained when early stopping ended a run's training

Set from RunCompleted.stopped_epoch when the worker reports stopped_early; NULL for every other run (and for
the runs stored before this revision).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(sa.Column("stopped_epoch", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_column("stopped_epoch")
