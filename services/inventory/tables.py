"""Inventory's tables, declared for the migrations (services/runtime/schema.py says why apart)."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, Integer, MetaData, String, Table

from services.runtime.schema import UtcDateTime

metadata = MetaData()

products = Table(
    "products",
    metadata,
    Column("product_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("price_minor_units", BigInteger, nullable=False),
    # The database, not only the code, refuses to oversell.
    Column(
        "available",
        BigInteger,
        CheckConstraint("available >= 0", name="available_not_negative"),
        nullable=False,
    ),
)

reservations = Table(
    "reservations",
    metadata,
    Column("reservation_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
)

reservation_lines = Table(
    "reservation_lines",
    metadata,
    Column("reservation_id", String(64), ForeignKey("reservations.reservation_id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("product_id", String(64), nullable=False),
    Column("product_name", String(200), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("unit_price_minor_units", BigInteger, nullable=False),
)
