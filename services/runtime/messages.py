"""The value types the contracts share, as the domain uses them, and their protobuf forms.

Money (`shop.money.v1.Money`) is an integer count of minor units and an ISO 4217 code, never a
float; times are aware UTC datetimes in the domain and `google.protobuf.Timestamp` on the wire.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from shop.money.v1 import money_pb2

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The largest amount PaymentService.Charge accepts (its contract: 1 to 100,000,000 minor units).
MAX_CHARGE_MINOR_UNITS = 100_000_000


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined."""


@functools.total_ordering
@dataclass(frozen=True)
class Money:
    currency_code: str
    minor_units: int

    def __lt__(self, other: Money) -> bool:
        """Amounts of one currency compare; amounts of two do not (CurrencyMismatch)."""
        self._same_currency(other)
        return self.minor_units < other.minor_units

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.currency_code, self.minor_units + other.minor_units)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.currency_code, self.minor_units - other.minor_units)

    def __mul__(self, factor: int) -> Money:
        return Money(self.currency_code, self.minor_units * factor)

    def _same_currency(self, other: Money) -> None:
        if other.currency_code != self.currency_code:
            raise CurrencyMismatch(f"{self.currency_code} and {other.currency_code}")

    @classmethod
    def zero(cls, currency_code: str) -> Money:
        return cls(currency_code, 0)

    @classmethod
    def total(cls, amounts: Iterable[Money]) -> Money | None:
        """The sum of `amounts`, or None for none (an empty sum has no currency)."""
        result: Money | None = None
        for amount in amounts:
            result = amount if result is None else result + amount
        return result

    @classmethod
    def from_proto(cls, message: money_pb2.Money) -> Money:
        return cls(message.currency_code, message.minor_units)

    def to_proto(self) -> money_pb2.Money:
        return money_pb2.Money(currency_code=self.currency_code, minor_units=self.minor_units)


@dataclass(frozen=True)
class PricedLine:
    """Units of one product at one unit price: a reservation's line, and so an order's."""

    product_id: str
    product_name: str
    quantity: int
    unit_price: Money

    @property
    def line_total(self) -> Money:
        return self.unit_price * self.quantity


def timestamp(moment: datetime) -> Timestamp:
    """An aware datetime as a Timestamp: whole seconds since the epoch and the rest, in integer
    arithmetic (protobuf's FromDatetime goes through a time tuple and costs three times as much,
    twice for every resource a reply carries)."""
    since = moment - _EPOCH
    return Timestamp(seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1_000)
