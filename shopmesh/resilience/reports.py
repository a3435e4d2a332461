"""Where a benchmark's report goes: `<report>.json` (every figure) and `<report>.txt` (what a
person reads), the text also printed. Shared by scripts/soak, scripts/fuzz and scripts/chaos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(path: Path, report: dict[str, Any], text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    path.with_suffix(".txt").write_text(text + "\n")
    print(text)
    print(f"report: {path.with_suffix('.json')} and .txt")
