"""How the pages draw a workflow and a run: the graph in layers, and the steps on a time axis.

Both are computed here, on the server, so the pages need no drawing library: the templates
turn these numbers into SVG (runs/_graph.html) and positioned bars (runs/_timeline.html).

The graph is laid out left to right by longest path: a node's layer is one more than the
deepest of its predecessors, so every edge points rightwards. Within a layer, nodes are
ordered by the mean height of their predecessors (one barycentric sweep), which keeps
fan-outs and joins mostly uncrossed for the small graphs workflows are.
"""
import math
from dataclasses import dataclass, field

from django.utils import timezone

# Geometry of the drawing, in SVG user units (pixels at 100 %).
NODE_W, NODE_H = 176, 64
GAP_X, GAP_Y = 52, 20
PAD = 8

ID_CHARS = 20  # a longer node id is cut with an ellipsis in its box (the full id is in its title)
DONE = ("succeeded", "failed", "skipped", "cancelled")


@dataclass
class GraphNode:
    id: str
    type: str
    title: str
    layer: int
    x: int = 0
    y: int = 0
    label: str = ""
    # What the run did with this node (None on a workflow page or before the node started).
    step: object = None
    status: str = ""
    items_done: int | None = None  # a map node: item steps finished, of items_total
    items_total: int | None = None

    @property
    def width(self):
        return NODE_W

    @property
    def height(self):
        return NODE_H


@dataclass
class GraphEdge:
    source: str
    target: str
    when: str | None
    path: str = ""
    state: str = ""  # "taken", "dead" or "" (not decided yet, or no run)


@dataclass
class Graph:
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    width: int
    height: int
    layers: int

    def describe(self):
        """One sentence per layer, for the SVG's <desc>: "Layer 1: start. Layer 2: a, b." """
        by_layer = {}
        for node in self.nodes:
            by_layer.setdefault(node.layer, []).append(node.id)
        return " ".join(f"Layer {layer + 1}: {', '.join(ids)}." for layer, ids in sorted(by_layer.items()))


def _layers(spec):
    """{node id: layer} by longest path from the nodes without predecessors.

    Specs are validated to be acyclic; a cycle that slipped in anyway puts its remaining
    nodes one layer after everything else rather than failing the page."""
    ids = [node.id for node in spec.nodes]
    known = set(ids)
    incoming = {node_id: [] for node_id in ids}
    outgoing = {node_id: [] for node_id in ids}
    for edge in spec.edges:
        if edge.from_ in known and edge.to in known and edge.from_ != edge.to:
            incoming[edge.to].append(edge.from_)
            outgoing[edge.from_].append(edge.to)
    remaining = {node_id: len(set(incoming[node_id])) for node_id in ids}
    layer = {}
    ready = [node_id for node_id in ids if remaining[node_id] == 0]
    while ready:
        node_id = ready.pop(0)
        layer[node_id] = max((layer[p] + 1 for p in incoming[node_id] if p in layer), default=0)
        for target in dict.fromkeys(outgoing[node_id]):
            remaining[target] -= 1
            if remaining[target] == 0:
                ready.append(target)
    last = max(layer.values(), default=-1) + 1
    for node_id in ids:
        layer.setdefault(node_id, last)
    return layer, incoming


def _edge_path(source, target):
    """A horizontal S-curve from the right side of `source` to the left side of `target`."""
    x1, y1 = source.x + NODE_W, source.y + NODE_H // 2
    x2, y2 = target.x, target.y + NODE_H // 2
    bend = max(24, (x2 - x1) // 2)
    return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"


def _short(text, limit=ID_CHARS):
    return text if len(text) <= limit else text[: limit - 1] + "…"


def layout(spec, steps=()):
    """The graph of `spec` with positions and, given the run's `steps`, each node's status.

    A node's status is its own step's (a map's item steps only count towards
    items_done/items_total); a node with no step yet has status "". An edge is "taken"
    when its source succeeded and its target started, "dead" when its target was
    skipped. Returns a Graph whose width and height fit every node with PAD around.
    """
    layer_of, incoming = _layers(spec)
    layers = {}
    for node in spec.nodes:
        layers.setdefault(layer_of[node.id], []).append(node)

    tallest = max((len(members) for members in layers.values()), default=1)
    height = tallest * NODE_H + (tallest - 1) * GAP_Y
    own_steps, item_steps = {}, {}
    for step in steps:
        if step.map_index is None:
            own_steps[step.node_id] = step
        else:
            item_steps.setdefault(step.node_id, []).append(step)

    nodes = {}
    for number in sorted(layers):
        members = layers[number]
        # Order by the mean height of the predecessors already placed; spec order breaks ties.
        keys = {}
        for position, node in enumerate(members):
            above = [nodes[p].y for p in incoming[node.id] if p in nodes]
            keys[node.id] = (sum(above) / len(above) if above else 0, position)
        members.sort(key=lambda node: keys[node.id])
        column = len(members) * NODE_H + (len(members) - 1) * GAP_Y
        top = PAD + (height - column) // 2  # each layer is centred on the tallest one
        for position, node in enumerate(members):
            step = own_steps.get(node.id)
            items = item_steps.get(node.id)
            nodes[node.id] = GraphNode(
                id=node.id, type=node.type, title=node.title, layer=number, label=_short(node.id),
                x=PAD + number * (NODE_W + GAP_X), y=top + position * (NODE_H + GAP_Y),
                step=step, status=step.status if step is not None else "",
                items_done=sum(1 for s in items if s.status in DONE) if items else None,
                items_total=len(items) if items else None,
            )

    edges = []
    for edge in spec.edges:
        source, target = nodes.get(edge.from_), nodes.get(edge.to)
        if source is None or target is None:
            continue
        state = ""
        if target.status == "skipped":
            state = "dead"
        elif source.status == "succeeded" and target.status not in ("", "pending"):
            state = "taken"
        edges.append(GraphEdge(edge.from_, edge.to, edge.when, _edge_path(source, target), state))

    count = len(layers)
    return Graph(
        nodes=list(nodes.values()), edges=edges, layers=count,
        width=2 * PAD + count * NODE_W + max(count - 1, 0) * GAP_X,
        height=2 * PAD + height,
    )


@dataclass
class Bar:
    step: object
    offset_s: float
    duration_s: float
    left: float  # percent of the axis
    width: float  # percent of the axis
    open: bool  # still running or waiting: the bar ends at "now"


@dataclass
class Timeline:
    bars: list[Bar]
    span_s: float
    ticks: list[tuple[float, float]] = field(default_factory=list)  # (percent, seconds)


def _nice_step(span, most=6):
    """The tick interval: 1, 2 or 5 times a power of ten, giving at most `most` intervals."""
    raw = span / most
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power


MIN_BAR = 0.6  # percent: an instant step still shows as a sliver


def timeline(run, steps, now=None):
    """The steps that started, as bars on one time axis starting when the run started.

    Steps running in parallel overlap on the axis, one row each, in the order given. A step
    still running (or waiting for a person) ends at `now`. Returns a Timeline with no bars
    when no step has started.
    """
    now = now or timezone.now()
    started = [step for step in steps if step.started_at is not None]
    if not started:
        return Timeline(bars=[], span_s=0)
    origin = min([step.started_at for step in started] + ([run.started_at] if run.started_at else []))
    ends = [step.finished_at or now for step in started]
    if run.finished_at:
        ends.append(run.finished_at)
    span = max((max(ends) - origin).total_seconds(), 0.001)
    bars = []
    for step in started:
        offset = max((step.started_at - origin).total_seconds(), 0)
        duration = max(((step.finished_at or now) - step.started_at).total_seconds(), 0)
        left = min(offset / span * 100, 100 - MIN_BAR)
        width = max(min(duration / span * 100, 100 - left), MIN_BAR)
        bars.append(Bar(step, offset, duration, round(left, 2), round(width, 2), step.finished_at is None))
    interval = _nice_step(span)
    ticks = [(round(k * interval / span * 100, 2), k * interval)
             for k in range(int(span / interval) + 1) if k * interval <= span]
    return Timeline(bars=bars, span_s=span, ticks=ticks)
