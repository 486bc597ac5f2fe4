"""training_runs.dataset_source: what a run on a dataset version trains on (snapshot, split manifest, files)

Resolved once at CreateTrainingRun from the READY version and copied into every attempt's job, so a retry
trains on exactly the split the run was created with.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.add_column(sa.Column("dataset_source", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_runs") as batch:
        batch.drop_column("dataset_source")
