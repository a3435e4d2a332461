"""Alembic environment of the inventory service: the runtime's one body, with inventory's tables."""

from services.inventory.tables import metadata
from services.runtime.migrations import run_migrations

run_migrations(metadata)
