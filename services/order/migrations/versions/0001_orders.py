"""Orders, each one row holding its saga's state.

The first revision of this service's schema.
"""

import sqlalchemy as sa
from alembic import op

from services.runtime.schema import UtcDateTime

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("request_fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("step", sa.String(16), nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("items", sa.JSON, nullable=False),
        sa.Column("lines", sa.JSON, nullable=False),
        sa.Column("total_currency_code", sa.String(3), nullable=True),
        sa.Column("total_minor_units", sa.BigInteger, nullable=True),
        sa.Column("payment_id", sa.String(64), nullable=False),
        sa.Column("rejection_reason", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("undo_charge", sa.Integer, nullable=False),
        sa.Column("failure", sa.String(24), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("lease_expires_at", UtcDateTime, nullable=True),
        sa.Column("create_time", UtcDateTime, nullable=False),
        sa.Column("update_time", UtcDateTime, nullable=False),
    )
    op.create_index("orders_by_customer", "orders", ["customer_id", "create_time", "order_id"])
    op.create_index("orders_in_flight", "orders", ["step", "lease_expires_at"])


def downgrade() -> None:
    op.drop_table("orders")
