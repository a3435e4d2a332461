"""The picture of the mesh: workloads, and the calls the AuthorizationPolicies allow, each edge
labelled with its methods. What Kiali's graph should show once traffic flows.

Pure Python and deterministic (fixed layout, sorted edges, no timestamps), so a test can
regenerate docs/topology.svg and compare it byte for byte.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from html import escape

from shopmesh.manifests.analyzers.mesh_coherence import mesh_edges
from shopmesh.manifests.authz import CALLERS, REFLECTION_PATHS, matrix
from shopmesh.manifests.model import Inventory

#: Where each node sits (centre x, y) and how it is drawn. Callers outside the rendered
#: workloads (the gateway, an operator's pod) are dashed.
LAYOUT: dict[str, tuple[int, int, str]] = {
    "ingress": (130, 140, "istio-ingressgateway"),
    "operator": (460, 560, "operator"),
    "order": (460, 300, "order"),
    "inventory": (820, 140, "inventory"),
    "payment": (820, 460, "payment"),
    "postgres": (1160, 300, "postgres"),
}
EXTERNAL = frozenset({"ingress", "operator"})
WIDTH, HEIGHT = 1300, 640
NODE_W, NODE_H = 190, 46
METHODS_PER_LINE = 2
#: Where along an edge its label sits (0 source, 1 target), where the middle is crowded.
LABEL_POSITION = {("operator", "inventory"): 0.72, ("order", "payment"): 0.4}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: tuple[str, ...]


def edges(inventory: Inventory) -> list[Edge]:
    """Caller -> service edges with the methods allowed, and the database connections."""
    methods: dict[tuple[str, str], list[str]] = defaultdict(list)
    drawn = {c.name for c in CALLERS} & LAYOUT.keys()
    for cell in matrix(inventory):
        if cell.allowed and cell.caller in drawn:
            name = "reflection" if cell.path in REFLECTION_PATHS else cell.path.rpartition("/")[2]
            if name not in methods[(cell.caller, cell.service)]:
                methods[(cell.caller, cell.service)].append(name)
    for caller, _callee, service, port in mesh_edges(inventory):
        if service.name == "postgres":
            methods[(caller.app, "postgres")] = [f"tcp {port}"]
    return [Edge(source, target, tuple(names)) for (source, target), names in sorted(methods.items())]


def _border_point(x1: float, y1: float, x2: float, y2: float) -> tuple[float, float]:
    """Where the segment from the centre (x1, y1) towards (x2, y2) leaves the node's box."""
    dx, dy = x2 - x1, y2 - y1
    scale = min(
        (NODE_W / 2) / abs(dx) if dx else float("inf"),
        (NODE_H / 2) / abs(dy) if dy else float("inf"),
    )
    return x1 + dx * scale, y1 + dy * scale


def _node(key: str) -> str:
    x, y, title = LAYOUT[key]
    dash = ' stroke-dasharray="6 4"' if key in EXTERNAL else ""
    fill = "#f5f5f5" if key in EXTERNAL else ("#e8f0fe" if key != "postgres" else "#fef7e0")
    return (
        f'<rect x="{x - NODE_W // 2}" y="{y - NODE_H // 2}" width="{NODE_W}" height="{NODE_H}" rx="8" '
        f'fill="{fill}" stroke="#3c4043"{dash}/>\n'
        f'<text x="{x}" y="{y + 5}" text-anchor="middle" font-size="15" font-weight="bold">'
        f"{escape(title)}</text>"
    )


def _edge(edge: Edge) -> str:
    sx, sy, _ = LAYOUT[edge.source]
    tx, ty, _ = LAYOUT[edge.target]
    x1, y1 = _border_point(sx, sy, tx, ty)
    x2, y2 = _border_point(tx, ty, sx, sy)
    lines = [
        ", ".join(edge.label[i : i + METHODS_PER_LINE]) for i in range(0, len(edge.label), METHODS_PER_LINE)
    ]
    at = LABEL_POSITION.get((edge.source, edge.target), 0.5)
    mx, my = x1 + (x2 - x1) * at, y1 + (y2 - y1) * at - 6 * len(lines)
    text = "".join(
        f'<tspan x="{mx:.0f}" dy="{0 if i == 0 else 13}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="#1a73e8" stroke-width="1.6" '
        f'marker-end="url(#arrow)"/>\n'
        f'<text x="{mx:.0f}" y="{my:.0f}" text-anchor="middle" font-size="11" fill="#174ea6" '
        f'stroke="#ffffff" stroke-width="3" paint-order="stroke">{text}</text>'
    )


def render_svg(inventory: Inventory) -> str:
    drawn = edges(inventory)
    used = sorted({e.source for e in drawn} | {e.target for e in drawn}, key=list(LAYOUT).index)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif">',
        "<title>shopmesh: the calls the AuthorizationPolicies allow</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#1a73e8"/></marker></defs>',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        '<text x="20" y="30" font-size="18" font-weight="bold">shopmesh — allowed calls (namespace shop, '
        "generated by shopmesh topology)</text>",
        *(_edge(e) for e in drawn),
        *(_node(key) for key in used),
        f'<text x="20" y="{HEIGHT - 16}" font-size="12" fill="#5f6368">Dashed: callers outside the '
        "workloads (istio-ingressgateway; pods an operator runs as ServiceAccount operator). "
        "Edges: what the AuthorizationPolicies allow, as docs/authz.md.</text>",
        "</svg>",
    ]
    return "\n".join(parts) + "\n"
