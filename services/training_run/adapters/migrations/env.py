from alembic import context

from common.db import run_async_migrations
from services.training_run.adapters import dataset_orm  # noqa: F401  (its tables join the metadata)
from services.training_run.adapters.orm import metadata

run_async_migrations(context, metadata)
