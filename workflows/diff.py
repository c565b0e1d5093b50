"""The difference between two workflow specs, as people review it: nodes and edges added,
removed or changed, and every changed field with its JSON path and both values."""


def _edge_key(edge):
    return f"{edge.get('from')}->{edge.get('to')}"


def _field_changes(before, after, path):
    """Every leaf that differs between two JSON values, as {path, before, after}."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes = []
        for key in sorted(set(before) | set(after), key=str):
            changes.extend(_field_changes(before.get(key), after.get(key), f"{path}.{key}"))
        return changes
    if before != after:
        return [{"path": path, "before": before, "after": after}]
    return []


def _by_key(items, key):
    return {key(item): item for item in items}


def _collection_diff(before, after, key, label):
    old, new = _by_key(before, key), _by_key(after, key)
    changed = []
    for k in sorted(old.keys() & new.keys()):
        fields = _field_changes(old[k], new[k], f"$.{label}[{k}]")
        if fields:
            changed.append({"id": k, "fields": fields})
    return {
        "added": [new[k] for k in sorted(new.keys() - old.keys())],
        "removed": [old[k] for k in sorted(old.keys() - new.keys())],
        "changed": changed,
    }


def diff_specs(before, after):
    """{"nodes": {added, removed, changed}, "edges": {...}, "fields": [...], "changed": bool}.

    Nodes are matched by id and edges by (from, to); "fields" holds changes outside nodes
    and edges (name, inputs, sources, queues, outputs, settings, ...).
    """
    nodes = _collection_diff(before.get("nodes", []), after.get("nodes", []), lambda n: n.get("id"), "nodes")
    edges = _collection_diff(before.get("edges", []), after.get("edges", []), _edge_key, "edges")
    rest_before = {k: v for k, v in before.items() if k not in ("nodes", "edges")}
    rest_after = {k: v for k, v in after.items() if k not in ("nodes", "edges")}
    fields = _field_changes(rest_before, rest_after, "$")
    changed = bool(fields) or any(nodes[k] or edges[k] for k in ("added", "removed", "changed"))
    return {"changed": changed, "nodes": nodes, "edges": edges, "fields": fields}
