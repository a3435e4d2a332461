"""Alembic environment of the order service: the runtime's one body, with order's tables."""

from services.order.tables import metadata
from services.runtime.migrations import run_migrations

run_migrations(metadata)
