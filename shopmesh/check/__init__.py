"""The consistency check: do order's, inventory's and payment's books agree once the orders are
at rest? Nothing lost, nothing doubled, no stock or money that no order accounts for.

- `rules`: the rule itself, on plain records (`model`): also what the tests' books check runs;
- `reading`: the records, read from the services' databases by URL (SQLite or PostgreSQL);
- `stocked`: what was stocked (inventory does not record it; a baseline is given);
- `report`: `check(urls, stocked=..., wait=...)` -> `CheckReport` (JSON, text, exit status).

`shopmesh check` (shopmesh/commands/check.py) and the Chaos Toolkit probe
(shopmesh/chaos/probes.py) run it.
"""
