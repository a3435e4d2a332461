"""The picture of the mesh: every workload, every identity that may call one, and the calls the
AuthorizationPolicies allow, each edge labelled with its methods. What Kiali's graph should
show once traffic flows.

Nothing is placed by hand. Nodes come from the render and the declared services: each
workload (by its `app` label), and each caller of the authorization matrix with an allowed
call (the ingress gateway, an operator's identity: dashed, as they run no workload here).
Columns follow the calls: callers without a workload left, then the services by call depth,
then the workloads that serve no gRPC (databases) right. Within a column nodes follow their
callers' order; an edge that would cross a node bends around it, and a label moves along its
edge until it covers nothing. Deterministic (no timestamps, sorted everything), so a test can
regenerate docs/topology.svg and compare it byte for byte.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

from services.runtime.registry import declarations
from shopmesh.manifests.analyzers.mesh_coherence import mesh_edges
from shopmesh.manifests.authz import INGRESS, NO_IDENTITY, OTHER_WORKLOAD, REFLECTION_PATHS, callers, matrix
from shopmesh.manifests.model import MeshObjects

NODE_W, NODE_H = 190, 46
COLUMN_GAP, ROW_GAP = 380, 210  # centre to centre
LEFT, TOP, BOTTOM = 40, 50, 70
METHODS_PER_LINE = 2
FONT_SIZE, LINE_HEIGHT, CHAR_WIDTH = 11, 13, 6.3  # CHAR_WIDTH: a generous average for the font
CLEARANCE = 12  # how far an edge or a label keeps from a node it does not touch
BEND_STEPS = (0, 1, -1, 2, -2, 3, -3, 4, -4)  # control point offsets tried, x BEND
BEND = 60
LABEL_POSITIONS = (0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8)
TITLES = {INGRESS: "istio-ingressgateway"}


EDGE_COLOR, LABEL_COLOR = "#1a73e8", "#174ea6"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: tuple[str, ...]
    color: str = EDGE_COLOR
    label_color: str = LABEL_COLOR


@dataclass(frozen=True)
class Node:
    key: str
    column: int
    external: bool  # an identity with no workload in the render (dashed)
    grpc: bool  # a declared gRPC service (else a database or another workload)
    label: str = ""  # what the box says, if not its key

    @property
    def title(self) -> str:
        return self.label or TITLES.get(self.key, self.key)


def edges(objects: MeshObjects) -> list[Edge]:
    """Caller -> service edges with the methods allowed, and the other connections allowed
    (a database's TCP port)."""
    methods: dict[tuple[str, str], list[str]] = defaultdict(list)
    probes = {OTHER_WORKLOAD.name, NO_IDENTITY.name}
    for cell in matrix(objects):
        if cell.allowed and cell.caller not in probes:
            name = "reflection" if cell.path in REFLECTION_PATHS else cell.path.rpartition("/")[2]
            if name not in methods[(cell.caller, cell.service)]:
                methods[(cell.caller, cell.service)].append(name)
    for caller, callee, service, port in mesh_edges(objects):
        if service.name not in declarations():
            methods[(caller.app, callee.app)] = [f"tcp {port}"]
    return [Edge(source, target, tuple(names)) for (source, target), names in sorted(methods.items())]


def nodes(objects: MeshObjects, drawn: Sequence[Edge]) -> list[Node]:
    """Every workload and every caller of an edge, each in its column."""
    workloads = sorted({w.app or w.owner.name for w in objects.workloads})
    callers_drawn = [c.name for c in callers(objects) if any(e.source == c.name for e in drawn)]
    external = [name for name in callers_drawn if name not in workloads]
    unknown = {e.target for e in drawn} - set(workloads)
    if unknown:  # an edge must never point at nothing: name what is missing
        raise LookupError(f"edges to {sorted(unknown)}, which no rendered workload is")
    grpc = [name for name in workloads if name in declarations()]
    depth = call_depths(grpc, drawn, roots=external)
    others = [name for name in workloads if name not in declarations()]
    last = max(depth.values(), default=0) + 1
    placed = [Node(name, 0, True, False) for name in external]
    placed += [Node(name, depth[name], False, True) for name in grpc]
    placed += [Node(name, last, False, False) for name in others]
    return placed


def call_depths(services: Sequence[str], drawn: Sequence[Edge], roots: Iterable[str]) -> dict[str, int]:
    """Each service's column: 1 + the longest chain of allowed calls reaching it from a caller
    without a workload (at least 1); a cycle stops growing after as many rounds as services."""
    depth = {name: 0 for name in roots} | {name: 1 for name in services}
    for _ in services:
        for edge in drawn:
            if edge.source in depth and edge.target in services and edge.source != edge.target:
                depth[edge.target] = max(depth[edge.target], depth[edge.source] + 1)
    return {name: depth[name] for name in services}


def _ordered(placed: Sequence[Node], drawn: Sequence[Edge]) -> dict[str, tuple[float, float]]:
    """Centre of each node: columns left to right; in a column, the ingress gateway first,
    then by the mean position of the node's callers already placed, then by name."""
    by_column: dict[int, list[Node]] = defaultdict(list)
    for node in placed:
        by_column[node.column].append(node)
    rows = max(len(column) for column in by_column.values())
    height = rows * ROW_GAP
    position: dict[str, tuple[float, float]] = {}
    for index, column in enumerate(sorted(by_column)):

        def rank(node: Node) -> tuple[int, float, str]:
            above = [position[e.source][1] for e in drawn if e.target == node.key and e.source in position]
            return (node.key != INGRESS, sum(above) / len(above) if above else height / 2, node.key)

        members = sorted(by_column[column], key=rank)
        for row, node in enumerate(members):
            x = LEFT + NODE_W / 2 + index * COLUMN_GAP
            y = TOP + (row + 0.5) * height / len(members)
            position[node.key] = (x, y)
    return position


Box = tuple[float, float, float, float]  # left, top, right, bottom


def _node_box(x: float, y: float, margin: float = 0) -> Box:
    return (
        x - NODE_W / 2 - margin,
        y - NODE_H / 2 - margin,
        x + NODE_W / 2 + margin,
        y + NODE_H / 2 + margin,
    )


def _inside(point: tuple[float, float], box: Box) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _curve(
    p0: tuple[float, float], c: tuple[float, float], p2: tuple[float, float], t: float
) -> tuple[float, float]:
    u = 1 - t
    return (
        u * u * p0[0] + 2 * u * t * c[0] + t * t * p2[0],
        u * u * p0[1] + 2 * u * t * c[1] + t * t * p2[1],
    )


def _control_point(
    start: tuple[float, float], end: tuple[float, float], obstacles: Sequence[Box]
) -> tuple[float, float]:
    """The straight line's midpoint, pushed sideways until the curve clears every obstacle."""
    (x1, y1), (x2, y2) = start, end
    length = math.hypot(x2 - x1, y2 - y1) or 1.0
    normal = (-(y2 - y1) / length, (x2 - x1) / length)
    middle = ((x1 + x2) / 2, (y1 + y2) / 2)
    for step in BEND_STEPS:
        control = (middle[0] + normal[0] * step * BEND, middle[1] + normal[1] * step * BEND)
        samples = [_curve(start, control, end, i / 32) for i in range(1, 32)]
        if not any(_inside(p, box) for p in samples for box in obstacles):
            return control
    return middle  # nothing clears: straight, as the least surprising fallback


def _border_point(centre: tuple[float, float], towards: tuple[float, float]) -> tuple[float, float]:
    """Where the segment from a node's centre towards a point leaves the node's box."""
    (x1, y1), (x2, y2) = centre, towards
    dx, dy = x2 - x1, y2 - y1
    scale = min(
        (NODE_W / 2) / abs(dx) if dx else float("inf"),
        (NODE_H / 2) / abs(dy) if dy else float("inf"),
    )
    return x1 + dx * scale, y1 + dy * scale


def _label_lines(edge: Edge) -> list[str]:
    return [
        ", ".join(edge.label[i : i + METHODS_PER_LINE]) for i in range(0, len(edge.label), METHODS_PER_LINE)
    ]


def _label_box(centre: tuple[float, float], lines: Sequence[str]) -> Box:
    width = max(len(line) for line in lines) * CHAR_WIDTH
    height = len(lines) * LINE_HEIGHT
    return (centre[0] - width / 2, centre[1] - height / 2, centre[0] + width / 2, centre[1] + height / 2)


@dataclass
class _Drawing:
    """What is on the canvas so far, for the next edge to avoid."""

    nodes: Mapping[str, Box]
    labels: list[Box]
    lines: list[tuple[float, float]]  # points along the edges drawn


def _svg_edge(edge: Edge, position: Mapping[str, tuple[float, float]], drawing: _Drawing) -> str:
    source, target = position[edge.source], position[edge.target]
    obstacles = [box for key, box in drawing.nodes.items() if key not in (edge.source, edge.target)]
    control = _control_point(source, target, obstacles)
    start, end = _border_point(source, control), _border_point(target, control)
    lines = _label_lines(edge)

    def free(t: float) -> bool:
        box = _label_box(_curve(start, control, end, t), lines)
        return not any(_overlap(box, b) for b in (*drawing.nodes.values(), *drawing.labels)) and not any(
            _inside(point, box) for point in drawing.lines
        )

    at = next((t for t in LABEL_POSITIONS if free(t)), LABEL_POSITIONS[0])
    centre = _curve(start, control, end, at)
    drawing.labels.append(_label_box(centre, lines))
    drawing.lines.extend(_curve(start, control, end, i / 64) for i in range(65))
    top = centre[1] - (len(lines) - 1) * LINE_HEIGHT / 2 + FONT_SIZE / 3
    text = "".join(
        f'<tspan x="{centre[0]:.0f}" y="{top + i * LINE_HEIGHT:.0f}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    path = f"M {start[0]:.1f} {start[1]:.1f} Q {control[0]:.1f} {control[1]:.1f} {end[0]:.1f} {end[1]:.1f}"
    return (
        f'<path d="{path}" fill="none" stroke="{edge.color}" stroke-width="1.6" '
        f'marker-end="url(#{_marker_id(edge.color)})"/>\n'
        f'<text text-anchor="middle" font-size="{FONT_SIZE}" fill="{edge.label_color}" stroke="#ffffff" '
        f'stroke-width="3" paint-order="stroke">{text}</text>'
    )


def _marker_id(color: str) -> str:
    return "arrow" if color == EDGE_COLOR else f"arrow-{color.lstrip('#')}"


def _marker(color: str) -> str:
    return (
        f'<marker id="{_marker_id(color)}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        f'markerHeight="8" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="{color}"/>'
        "</marker>"
    )


def _svg_node(node: Node, x: float, y: float) -> str:
    dash = ' stroke-dasharray="6 4"' if node.external else ""
    fill = "#f5f5f5" if node.external else ("#e8f0fe" if node.grpc else "#fef7e0")
    return (
        f'<rect x="{x - NODE_W / 2:.0f}" y="{y - NODE_H / 2:.0f}" width="{NODE_W}" height="{NODE_H}" rx="8" '
        f'fill="{fill}" stroke="#3c4043"{dash}/>\n'
        f'<text x="{x:.0f}" y="{y + 5:.0f}" text-anchor="middle" font-size="15" font-weight="bold">'
        f"{escape(node.title)}</text>"
    )


def render_svg(objects: MeshObjects) -> str:
    drawn = edges(objects)
    placed = nodes(objects, drawn)
    namespaces = ", ".join(sorted({w.namespace for w in objects.workloads}))
    external = ", ".join(node.title for node in placed if node.external) or "none"
    return draw(
        placed,
        drawn,
        title="shopmesh: the calls the AuthorizationPolicies allow",
        heading=f"shopmesh — allowed calls (namespace {namespaces}, generated by shopmesh topology)",
        footer=f"Dashed: callers with no workload in the manifests ({external}). Edges: what the "
        "AuthorizationPolicies allow, as docs/authz.md.",
    )


def draw(placed: Sequence[Node], drawn: Sequence[Edge], *, title: str, heading: str, footer: str) -> str:
    """The SVG of these nodes (each in its column) and edges, with a heading and a footer line."""
    position = _ordered(placed, drawn)
    drawing = _Drawing({key: _node_box(x, y, CLEARANCE) for key, (x, y) in position.items()}, [], [])
    drawn_edges = [_svg_edge(edge, position, drawing) for edge in drawn]
    # As large as what is drawn, bent edges and their labels included.
    width = int(max(x for x, _ in position.values()) + NODE_W / 2 + LEFT)
    lowest = max(
        [y + NODE_H / 2 for _, y in position.values()]
        + [y for _, y in drawing.lines]
        + [box[3] for box in drawing.labels]
    )
    height = int(lowest + BOTTOM)
    markers = "".join(_marker(color) for color in dict.fromkeys([EDGE_COLOR, *(e.color for e in drawn)]))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif">',
        f"<title>{escape(title)}</title>",
        f"<defs>{markers}</defs>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="20" y="30" font-size="18" font-weight="bold">{escape(heading)}</text>',
        *drawn_edges,
        *(_svg_node(node, *position[node.key]) for node in placed),
        f'<text x="20" y="{height - 16}" font-size="12" fill="#5f6368">{escape(footer)}</text>',
        "</svg>",
    ]
    return "\n".join(parts) + "\n"
