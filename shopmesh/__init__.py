"""shopmesh tooling: the `shopmesh` CLI and what it runs (contracts, manifests, local mesh)."""
