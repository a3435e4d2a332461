"""Inventory's use cases: each one transaction, each state change idempotent per reservation id."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from prometheus_client import Counter

from services.inventory.domain import (
    Product,
    Reservation,
    ReservationStatus,
    ReservedLine,
    StockRequest,
    check_single_currency,
    insufficient_stock,
)
from services.inventory.store import InventoryRepository, InventoryStore
from services.runtime.errors import NotFound
from services.runtime.messages import Money
from services.runtime.persistence import found, utc_now

log = logging.getLogger(__name__)

RESERVATIONS = Counter(
    "shop_reservations_total",
    "Reservation state changes by outcome: reserved, rejected (stock or product), committed, released.",
    ["outcome"],
)
STOCK_ADJUSTMENTS = Counter("shop_stock_adjustments_total", "AdjustStock calls that changed stock.")

DEMO_CATALOG: tuple[Product, ...] = (
    Product("sku-espresso-beans", "Espresso beans, 1 kg", Money("USD", 2450), 100),
    Product("sku-grinder", "Burr grinder", Money("USD", 12900), 10),
    Product("sku-moka-pot", "Moka pot, 6 cups", Money("USD", 3400), 25),
    Product("sku-milk-jug", "Milk jug, 350 ml", Money("USD", 1500), 40),
    Product("sku-tamper", "Tamper, 58 mm", Money("USD", 2900), 15),
)


class Stock:
    def __init__(self, store: InventoryStore) -> None:
        self.store = store

    async def get_product(self, product_id: str) -> Product:
        return found(await self.store.get_product(product_id), "product", product_id)

    async def list_products(self, after: str | None, limit: int) -> list[Product]:
        """Up to `limit` products after `after`, ordered by product id."""
        return await self.store.list_products(after, limit)

    async def reserve(self, reservation_id: str, items: Sequence[StockRequest]) -> Reservation:
        """All lines or none; a repeat returns the first reservation (or refuses other items)."""
        now = utc_now()

        async def reserve(repository: InventoryRepository) -> tuple[Reservation, bool]:
            reservation = Reservation(reservation_id, ReservationStatus.RESERVED, now, now)
            # The claim comes first: it is the write that serialises requests for one id.
            if not await repository.claim_reservation(reservation):
                existing = await repository.get_reservation(reservation_id)
                assert existing is not None, "claimed by a committed transaction"
                return existing.replay(items), False
            # Fixed order: two reservations touching the same products lock them alike (no deadlock).
            taken: dict[str, Product] = {}
            for item in sorted(items, key=lambda item: item.product_id):
                product = await repository.take_stock(item.product_id, item.quantity)
                if product is None:
                    RESERVATIONS.labels("rejected").inc()
                    raise await self._refusal(repository, item)  # rolls the claim back too
                taken[item.product_id] = product
            reservation.lines = [
                ReservedLine(
                    item.product_id, taken[item.product_id].name, item.quantity, taken[item.product_id].price
                )
                for item in items
            ]
            check_single_currency(reservation_id, reservation.lines)
            await repository.add_lines(reservation_id, reservation.lines)
            return reservation, True

        reservation, made = await self.store.transaction(reserve)
        if made:
            RESERVATIONS.labels("reserved").inc()
        return reservation

    @staticmethod
    async def _refusal(repository: InventoryRepository, item: StockRequest) -> Exception:
        product = await repository.get_product(item.product_id)
        if product is None:
            return NotFound("product", item.product_id)
        return insufficient_stock(item.product_id, item.quantity, product.available)

    async def commit(self, reservation_id: str) -> Reservation:
        """Makes the sale final: one conditional UPDATE (RESERVED → COMMITTED); a reservation in
        any other state is read to answer (committed already: idempotent; released: refused)."""
        now = utc_now()

        async def commit(repository: InventoryRepository) -> tuple[Reservation, bool]:
            moved = await repository.move_from_reserved(reservation_id, ReservationStatus.COMMITTED, now)
            if moved is not None:
                moved.lines = await repository.lines(reservation_id)
                return moved, True
            reservation = await repository.get_reservation(reservation_id)
            if reservation is None:
                raise NotFound("reservation", reservation_id)
            # Not RESERVED: committed already (the idempotent answer) or released (refused).
            if reservation.commit(now):
                raise RuntimeError(f"reservation {reservation_id!r} is RESERVED but was not committed")
            return reservation, False

        reservation, committed = await self.store.transaction(commit)
        if committed:
            RESERVATIONS.labels("committed").inc()
        return reservation

    async def release(self, reservation_id: str) -> Reservation:
        now = utc_now()

        async def release(repository: InventoryRepository) -> tuple[Reservation, bool]:
            tombstone = Reservation(reservation_id, ReservationStatus.RELEASED, now, now)
            # Releasing an id never reserved records it released, so a late ReserveStock for it
            # reserves nothing: the compensation can never be overtaken.
            if await repository.claim_reservation(tombstone):
                return tombstone, True
            reservation = await repository.get_reservation(reservation_id, for_update=True)
            assert reservation is not None, "claimed by a committed transaction"
            restock = reservation.release(now)
            # Same lock order as reserve (by product id): a release and a reservation of the
            # same products can never deadlock.
            for line in sorted(restock, key=lambda line: line.product_id):
                await repository.add_stock(line.product_id, line.quantity)
            if restock:
                await repository.save_status(reservation)
            return reservation, bool(restock)

        reservation, released = await self.store.transaction(release)
        if released:
            RESERVATIONS.labels("released").inc()
        return reservation

    async def adjust(self, product_id: str, delta: int, reason: str) -> Product:
        product = await self.store.add_stock(product_id, delta)
        if product is None:
            current = await self.store.get_product(product_id)
            if current is None:
                raise NotFound("product", product_id)
            raise insufficient_stock(product_id, -delta, current.available)
        STOCK_ADJUSTMENTS.inc()
        log.info("stock adjusted", extra={"product_id": product_id, "delta": delta, "reason": reason})
        return product

    async def seed(self, catalog: Sequence[Product] = DEMO_CATALOG) -> int:
        """Adds the catalog's products that are missing; returns how many were added."""

        async def seed(repository: InventoryRepository) -> int:
            return sum([await repository.add_product(product) for product in catalog])

        return await self.store.transaction(seed)
