"""The consistency check as a whole: read, judge, wait for orders in flight, report.

    report = await check(DatabaseUrls.sqlite_files(Path("var/mesh/db")), stocked=demo_catalog(), wait=30)
    report.consistent, report.exit_status, report.to_json(), report.to_text()

Orders in flight at the first reading are waited for (up to `wait` seconds) until each is at
rest; orders that start meanwhile (steady load) are not waited for, and their reservations
count as held stock. A report is consistent when nothing was found and every order it waited
for came to rest.
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass
from typing import Any

from shopmesh.check.model import Evaluation, Kind, Units
from shopmesh.check.reading import DatabaseUrls, read_books
from shopmesh.check.rules import evaluate

#: How often the books are read again while waiting for orders in flight.
POLL_SECONDS = 0.5
#: The orders, findings and products a text report lists in full; beyond that, counts.
TEXT_LIMIT = 20


class ExitStatus(enum.IntEnum):
    CONSISTENT = 0
    INCONSISTENT = 1  # a finding
    UNREADABLE = 2  # a database or a baseline could not be read (and usage errors)
    NOT_AT_REST = 3  # nothing found, but orders were still in flight when the wait ended


@dataclass(frozen=True)
class CheckReport:
    evaluation: Evaluation
    still_moving: dict[str, str]  # of the orders waited for, those not at rest at the end
    waited_seconds: float
    databases: dict[str, str]  # the URLs read, passwords hidden

    @property
    def settled(self) -> bool:
        return not self.still_moving

    @property
    def consistent(self) -> bool:
        return self.settled and not self.evaluation.findings

    @property
    def exit_status(self) -> ExitStatus:
        if self.evaluation.findings:
            return ExitStatus.INCONSISTENT
        return ExitStatus.CONSISTENT if self.settled else ExitStatus.NOT_AT_REST

    def counts(self) -> dict[str, int]:
        """Findings by kind, every kind listed (0 when none): lost orders, orphan charges, …"""
        counts = dict.fromkeys((kind.value for kind in Kind), 0)
        for finding in self.evaluation.findings:
            counts[finding.kind.value] += 1
        return counts

    def to_json(self) -> dict[str, Any]:
        evaluation = self.evaluation
        return {
            "consistent": self.consistent,
            "settled": self.settled,
            "exit_status": int(self.exit_status),
            "counts": self.counts(),
            "findings": [finding.to_json() for finding in evaluation.findings],
            "not_at_rest": self.still_moving,
            "in_flight_not_waited_for": len(evaluation.not_at_rest) - len(self.still_moving),
            "orders": evaluation.orders_by_status,
            "stock_checked": evaluation.stock_checked,
            "stock": None if evaluation.stock is None else [line.to_json() for line in evaluation.stock],
            "notes": evaluation.notes,
            "waited_seconds": round(self.waited_seconds, 3),
            "databases": self.databases,
        }

    def to_text(self) -> str:
        evaluation = self.evaluation
        orders = ", ".join(
            f"{count} {status}" for status, count in sorted(evaluation.orders_by_status.items())
        )
        verdict = {
            ExitStatus.CONSISTENT: "consistent",
            ExitStatus.INCONSISTENT: f"INCONSISTENT: {len(evaluation.findings)} finding(s)",
            ExitStatus.NOT_AT_REST: f"not at rest: {len(self.still_moving)} order(s) still in flight",
        }[self.exit_status]
        lines = [f"shopmesh check: {verdict}", f"  orders: {orders or 'none'}"]
        found = {kind: count for kind, count in self.counts().items() if count}
        if found:
            lines.append("  found: " + ", ".join(f"{count} {kind}" for kind, count in found.items()))
        lines += [f"  {f.kind.value} {f.subject}: {f.detail}" for f in evaluation.findings[:TEXT_LIMIT]]
        lines += _more(len(evaluation.findings), "findings")
        moving = sorted(self.still_moving.items())
        lines += [f"  in flight {order_id}: {state}" for order_id, state in moving[:TEXT_LIMIT]]
        lines += _more(len(moving), "orders in flight")
        if evaluation.stock is not None and evaluation.stock_checked:
            drift = sum(1 for line in evaluation.stock if line.stocked != line.accounted)
            lines.append(f"  stock: {len(evaluation.stock)} products, {drift} drifting")
        lines += [f"  note: {note}" for note in evaluation.notes]
        return "\n".join(lines)


def _more(count: int, what: str) -> list[str]:
    return [f"  ... and {count - TEXT_LIMIT} more {what}"] if count > TEXT_LIMIT else []


async def check(urls: DatabaseUrls, *, stocked: Units | None, wait: float = 0.0) -> CheckReport:
    """Reads and judges the books; while orders that were in flight at the first reading are
    not at rest, reads them again, for up to `wait` seconds. Raises `reading.Unreadable`."""
    started = time.monotonic()
    waited_for: set[str] | None = None
    while True:
        reading = await read_books(urls)
        evaluation = evaluate(reading.books, stocked, reading.moved)
        if waited_for is None:
            waited_for = set(evaluation.not_at_rest)
        still_moving = {o: state for o, state in evaluation.not_at_rest.items() if o in waited_for}
        elapsed = time.monotonic() - started
        if not still_moving or elapsed >= wait:
            return CheckReport(evaluation, still_moving, elapsed, urls.shown())
        await asyncio.sleep(min(POLL_SECONDS, max(0.0, wait - elapsed)))
