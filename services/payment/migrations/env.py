"""Alembic environment of the payment service: the runtime's one body, with payment's tables."""

from services.payment.tables import metadata
from services.runtime.migrations import run_migrations

run_migrations(metadata)
