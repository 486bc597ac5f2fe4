"""trained_models.dataset_reference: the plain dataset reference a model's run was created with

A run on a plain dataset reference ("waste/v3") trains on an implicit dataset version, which
TrainedModel.dataset names; ListTrainedModels(dataset="waste/v3") matches this column too, so a filter by the
reference keeps finding its models. Empty for runs on a dataset version, imports, and the models stored before
this revision
(their dataset is the reference itself).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("trained_models") as batch:
        batch.add_column(sa.Column("dataset_reference", sa.String(500), nullable=False, server_default=""))
        batch.create_index("ix_trained_models_dataset_reference", ["dataset_reference"])


def downgrade() -> None:
    with op.batch_alter_table("trained_models") as batch:
        batch.drop_index("ix_trained_models_dataset_reference")
        batch.drop_column("dataset_reference")
