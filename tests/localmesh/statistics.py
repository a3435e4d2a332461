"""How far a count of random outcomes may honestly stray: for the tests that count calls."""

from __future__ import annotations

import math


def binomial_bounds(n: int, p: float, confidence: float = 0.999) -> tuple[int, int]:
    """The smallest [low, high] holding `confidence` of Binomial(n, p), tails split evenly."""
    pmf = [
        math.exp(
            math.lgamma(n + 1)
            - math.lgamma(k + 1)
            - math.lgamma(n - k + 1)
            + k * math.log(p)
            + (n - k) * math.log(1 - p)
        )
        for k in range(n + 1)
    ]
    tail = (1 - confidence) / 2
    low, acc = 0, 0.0
    while acc + pmf[low] <= tail:
        acc += pmf[low]
        low += 1
    high, acc = n, 0.0
    while acc + pmf[high] <= tail:
        acc += pmf[high]
        high -= 1
    return low, high
