"""Graph files: the IR as networkx node-link JSON, saved and loaded exactly.

The layout is networkx's node-link format (`nx.node_link_data(g, edges="edges")`), one node
or edge a line so that files diff well:

    {
      "directed": true,
      "multigraph": true,
      "graph": {"name": "mlp", "outputs": ["loss"]},
      "nodes": [
        {"id": "x", "op": "input", "attrs": {}, "shape": ["batch", 64], "dtype": "float64"},
        ...
      ],
      "edges": [
        {"source": "x", "target": "matmul_1", "key": 0, "arg": 0},
        ...
      ]
    }

JSON has no tuples, so two rules make the round trip exact (tuples stay tuples, lists stay
lists): a node's `shape` is written as an array and read back as a tuple (the IR's type);
any other tuple is written as {"__tuple__": [...]}. The rare values these rules would
confuse are tagged too: a list in a `shape` field as {"__list__": [...]}, and a dict whose
only key is one of the tags as {"__dict__": {...}}. Files written by hand can use plain
arrays everywhere: validation turns shapes and attributes into their canonical types.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import networkx as nx

from ..errors import SpecError

_TUPLE, _LIST, _DICT = "__tuple__", "__list__", "__dict__"
_TAGS = (_TUPLE, _LIST, _DICT)
_SHAPE = "shape"


def save_graph(graph: Any, path: str | os.PathLike) -> Path:
    """Write `graph` (a gg.Graph or networkx DiGraph/MultiDiGraph) to `path` atomically."""
    from ..api import write_atomic  # api imports the compiler; keep this module light

    return write_atomic(path, dumps_graph(graph))


def load_graph(path: str | os.PathLike) -> nx.DiGraph:
    """Read a graph written by `save_graph` (or any node-link JSON of the IR).

    Raises OSError when the file cannot be read and SpecError when its content is not a
    node-link graph; the message names the file.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return loads_graph(text, source=str(path))


# ---- writing -----------------------------------------------------------------------------


def dumps_graph(graph: Any) -> str:
    """The node-link JSON text of `graph`."""
    if hasattr(graph, "nx") and isinstance(graph.nx, nx.Graph):
        graph = graph.nx
    if not isinstance(graph, nx.Graph):
        raise SpecError(f"expected a gg.Graph or a networkx graph, got {type(graph).__name__}")
    multigraph = graph.is_multigraph()
    head = {
        "directed": graph.is_directed(),
        "multigraph": multigraph,
        "graph": _encode(dict(graph.graph), "graph attributes"),
    }
    nodes = [_node_record(node, data) for node, data in graph.nodes(data=True)]
    if multigraph:
        edges = [
            _edge_record(u, v, data, key) for u, v, key, data in graph.edges(keys=True, data=True)
        ]
    else:
        edges = [_edge_record(u, v, data) for u, v, data in graph.edges(data=True)]
    lines = ["{"]
    lines += [f"  {_dump(k)}: {_dump(v)}," for k, v in head.items()]
    lines.append(f'  "nodes": [{_rows(nodes)}],')
    lines.append(f'  "edges": [{_rows(edges)}]')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _rows(records: list[dict]) -> str:
    if not records:
        return ""
    return "\n" + ",\n".join("    " + _dump(r) for r in records) + "\n  "


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, separators=(", ", ": "))


def _node_record(node: Any, data: dict) -> dict:
    if "id" in data:
        raise SpecError(f"node {node!r}: an attribute named 'id' clashes with the node-link id")
    record = {"id": _encode(node, "a node id")}
    for key, value in data.items():
        where = f"node {node!r} attribute {key!r}"
        if key == _SHAPE and isinstance(value, tuple):
            record[key] = [_encode(d, where) for d in value]
        elif key == _SHAPE and isinstance(value, list):
            record[key] = {_LIST: [_encode(d, where) for d in value]}
        else:
            record[key] = _encode(value, where)
    return record


def _edge_record(u: Any, v: Any, data: dict, key: Any = None) -> dict:
    record = {"source": _encode(u, "an edge source"), "target": _encode(v, "an edge target")}
    if key is not None:
        record["key"] = _encode(key, "an edge key")
    for name, value in data.items():
        if name in ("source", "target", "key"):
            raise SpecError(f"edge {u!r} -> {v!r}: attribute {name!r} clashes with node-link keys")
        record[name] = _encode(value, f"edge {u!r} -> {v!r} attribute {name!r}")
    return record


def _encode(value: Any, where: str) -> Any:
    """`value` as plain JSON data, tuples tagged."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, where) for v in value]
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise SpecError(f"{where}: dict key {bad[0]!r} is not a string, so not JSON")
        out = {k: _encode(v, where) for k, v in value.items()}
        return {_DICT: out} if len(out) == 1 and next(iter(out)) in _TAGS else out
    raise SpecError(f"{where}: a {type(value).__name__} value cannot be written as JSON")


# ---- reading -----------------------------------------------------------------------------


def loads_graph(text: str, source: str = "<string>") -> nx.DiGraph:
    """The graph in node-link JSON `text`; `source` names it in error messages."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise SpecError(f"{source}: invalid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a node-link JSON object, got {_kind(data)}")
    nodes = data.get("nodes")
    edges = data.get("edges", data.get("links", []))
    if not isinstance(nodes, list):
        raise SpecError(f"{source}: not a node-link graph: no 'nodes' list")
    if not isinstance(edges, list):
        raise SpecError(f"{source}: not a node-link graph: 'edges' is not a list")
    graph_attrs = _decode(data.get("graph", {}), source)
    if not isinstance(graph_attrs, dict):
        raise SpecError(f"{source}: 'graph' must be an object of graph attributes")
    directed = data.get("directed", True)
    multigraph = data.get("multigraph", True)
    cls = {
        (True, True): nx.MultiDiGraph,
        (True, False): nx.DiGraph,
        (False, True): nx.MultiGraph,
        (False, False): nx.Graph,
    }[(bool(directed), bool(multigraph))]
    graph = cls()
    graph.graph.update(graph_attrs)
    for i, record in enumerate(nodes):
        if not isinstance(record, dict) or "id" not in record:
            raise SpecError(f"{source}: node #{i} is not an object with an 'id'")
        attrs = {k: _decode_field(k, v, source) for k, v in record.items() if k != "id"}
        node = _decode(record["id"], source)
        if isinstance(node, (list, dict)):
            raise SpecError(f"{source}: node #{i} has an id that is not a string: {node!r}")
        if node in graph:
            raise SpecError(f"{source}: node {node!r} appears twice")
        graph.add_node(node, **attrs)
    for i, record in enumerate(edges):
        _add_edge(graph, record, i, source)
    return graph


def _add_edge(graph: nx.Graph, record: Any, i: int, source: str) -> None:
    if not isinstance(record, dict) or "source" not in record or "target" not in record:
        raise SpecError(f"{source}: edge #{i} is not an object with 'source' and 'target'")
    u, v = _decode(record["source"], source), _decode(record["target"], source)
    for end in (u, v):
        if isinstance(end, (list, dict)) or end not in graph:
            raise SpecError(f"{source}: edge #{i} refers to {end!r}, which is not a node")
    attrs = {k: _decode(x, source) for k, x in record.items() if k not in ("source", "target")}
    if graph.is_multigraph():
        key = attrs.pop("key", None)
        graph.add_edge(u, v, key=key, **attrs)
    else:
        attrs.pop("key", None)
        graph.add_edge(u, v, **attrs)


def _decode_field(key: str, value: Any, source: str) -> Any:
    if key == _SHAPE and isinstance(value, list):
        return tuple(_decode(d, source) for d in value)
    return _decode(value, source)


def _decode(value: Any, source: str) -> Any:
    if isinstance(value, list):
        return [_decode(v, source) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and next(iter(value)) in _TAGS:
        tag, inner = next(iter(value.items()))
        if tag == _DICT:
            if not isinstance(inner, dict):
                raise SpecError(f"{source}: {_DICT} must hold an object")
            return {k: _decode(v, source) for k, v in inner.items()}
        if not isinstance(inner, list):
            raise SpecError(f"{source}: {tag} must hold an array")
        items = [_decode(v, source) for v in inner]
        return tuple(items) if tag == _TUPLE else items
    return {k: _decode(v, source) for k, v in value.items()}


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
