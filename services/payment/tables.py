"""Payment's tables, declared for the migrations (services/runtime/schema.py says why apart)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, MetaData, String, Table

from services.runtime.schema import UtcDateTime

metadata = MetaData()

payments = Table(
    "payments",
    metadata,
    Column("payment_id", String(64), primary_key=True),
    # Unique: the key is the claim that makes concurrent identical charges charge once.
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("order_id", String(64), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("amount_minor_units", BigInteger, nullable=False),
    Column("refunded_minor_units", BigInteger, nullable=False),
    Column("status", String(24), nullable=False),
    Column("decline_reason", String(64), nullable=False),
    Column("request_fingerprint", String(64), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
)

refunds = Table(
    "refunds",
    metadata,
    Column("idempotency_key", String(64), primary_key=True),
    Column("request_fingerprint", String(64), nullable=False),
    # Null when the refund voided a charge key under which nothing had been charged.
    Column("payment_id", String(64), nullable=True),
    Column("currency_code", String(3), nullable=False),
    Column("refunded_minor_units", BigInteger, nullable=False),
    Column("reason", String(200), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
)
