"""training_run_workers.gpus_per_run: the run size a worker takes (RAVEN_WORKER_GPUS_PER_RUN), from WorkerInfo

0 for the workers stored before this revision (an older worker did not say; ListWorkers shows it as 1, the
only size such a worker took).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_run_workers") as batch:
        batch.add_column(sa.Column("gpus_per_run", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("training_run_workers") as batch:
        batch.drop_column("gpus_per_run")
