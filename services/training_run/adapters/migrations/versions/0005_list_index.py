"""training_runs: index (owner, state, create_time, id) for ListTrainingRuns filtered on owner and state

Without it the page's total_size counted an owner's rows in the table (100 ms over 100,000 runs); with it the
count reads the index only and a one-state page comes out of the index in order.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_training_runs_owner_state_create_time", "training_runs", ["owner", "state", "create_time", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_training_runs_owner_state_create_time", table_name="training_runs")
