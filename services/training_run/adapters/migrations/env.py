from alembic import context

from common.db import run_async_migrations
from services.training_run.adapters.orm import metadata

run_async_migrations(context, metadata)
