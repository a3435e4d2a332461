"""The local mesh's state directory (var/mesh by default): who writes what where."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MeshState:
    root: Path

    @property
    def placement_file(self) -> Path:
        return self.root / "placement.json"

    @property
    def ca_directory(self) -> Path:
        return self.root / "ca"

    @property
    def identities_directory(self) -> Path:
        return self.root / "identities"

    def bootstrap_file(self, instance_name: str) -> Path:
        return self.root / "bootstrap" / f"{instance_name}.json"

    def log_file(self, process_name: str) -> Path:
        return self.root / "logs" / f"{process_name}.log"
