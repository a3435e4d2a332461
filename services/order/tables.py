"""Order's table, declared for the migrations (services/runtime/schema.py says why apart)."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, MetaData, String, Table

from services.runtime.schema import UtcDateTime

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("customer_id", String(64), nullable=False),
    Column("request_fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("step", String(16), nullable=True),
    Column("attempt", Integer, nullable=False),
    Column("items", JSON, nullable=False),
    Column("lines", JSON, nullable=False),
    Column("total_currency_code", String(3), nullable=True),
    Column("total_minor_units", BigInteger, nullable=True),
    Column("payment_id", String(64), nullable=False),
    Column("rejection_reason", String(200), nullable=False),
    Column("outcome", String(16), nullable=True),
    Column("undo_charge", Integer, nullable=False),
    Column("failure", String(24), nullable=True),
    Column("version", Integer, nullable=False),
    # Until when the saga's current runner owns an in-flight order; after that the recovery
    # pass may take it over (the runner died, or its compensation could not finish).
    Column("lease_expires_at", UtcDateTime, nullable=True),
    Column("create_time", UtcDateTime, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
    Index("orders_by_customer", "customer_id", "create_time", "order_id"),
    Index("orders_in_flight", "step", "lease_expires_at"),
)
