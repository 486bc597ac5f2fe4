"""training_runs.split_guard: the fine-tune guard a run on a plain dataset reference still owes

Set at Create for a run whose implicit dataset version is not READY yet, that names a base model and does not
allow split overlap: {model, dataset, split_manifest} of the base model, checked when the version becomes
READY. NULL for every other run (and for the runs stored before this revision).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(sa.Column("split_guard", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_column("split_guard")
