"""What was stocked: the baseline inventory's units are checked against.

Inventory keeps only each product's `available` units and its reservations: neither the units
a product was created with (its seed) nor the AdjustStock calls since are recorded (AdjustStock
writes a log line and a counter, not a row). So "what was stocked" cannot be read from its
database; it is given:

- `demo`: the demo catalog inventory seeds into an empty database (`scripts/up`), with no
  AdjustStock since;
- a JSON file `{"<product id>": <units>, ...}`, e.g. written by `shopmesh check --record-stock`
  on books that were checked, before an experiment;
- `none`: the stock rule is skipped (and the report says so).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from shopmesh.check.model import Units

DEMO = "demo"
NONE = "none"
#: A baseline file is a product list, not a data set: anything larger is refused unread.
MAX_BASELINE_BYTES = 1024 * 1024


class BaselineError(ValueError):
    """A baseline that cannot be used; the message names the file and the problem."""


def demo_catalog() -> dict[str, int]:
    from services.inventory.stock import DEMO_CATALOG

    return {product.product_id: product.available for product in DEMO_CATALOG}


def baseline(spec: str) -> Units | None:
    """`demo`, `none`, or the path of a JSON baseline file."""
    if spec == DEMO:
        return demo_catalog()
    if spec == NONE:
        return None
    path = Path(spec)
    try:
        with path.open("rb") as file:
            content = file.read(MAX_BASELINE_BYTES + 1)
    except OSError as error:
        raise BaselineError(f"stock baseline {spec}: {error.strerror or error}") from None
    if len(content) > MAX_BASELINE_BYTES:
        raise BaselineError(f"stock baseline {spec}: larger than {MAX_BASELINE_BYTES} bytes")
    try:
        document = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BaselineError(f"stock baseline {spec}: not JSON ({error})") from None
    if not isinstance(document, dict) or not all(
        isinstance(units, int) and not isinstance(units, bool) and units >= 0 for units in document.values()
    ):
        raise BaselineError(f'stock baseline {spec}: want {{"<product id>": <units >= 0>, ...}}')
    return {str(product): units for product, units in document.items()}


def write_baseline(path: Path, units: Mapping[str, int]) -> None:
    path.write_text(json.dumps(dict(sorted(units.items())), indent=2) + "\n")
