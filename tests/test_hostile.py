"""Hostile and malformed graphs: a clear GraphError naming the node, or correct code.

Two halves:
- Names and strings from a graph never become code. Every place a graph string reaches
  (leaf names, node names, the graph name, symbolic dims, outputs, wrt) is filled with text
  that would create a sentinel file if it ever ran, at compile time or at import and call of
  the generated module; the module must also compute exactly what the plain-named graph does.
- Malformed graphs (networkx level, and node-link JSON documents) each raise a GraphError
  subclass whose message names the node and the problem.
"""

from __future__ import annotations

import functools
import json
import keyword

import networkx as nx
import numpy as np
import pytest

import graphgen as gg
from graphgen.api import load_module, write_atomic
from graphgen.naming import MODULE_NAMES, Namespace, to_identifier

# ---- names that are code ------------------------------------------------------------------


def payloads(sentinel) -> list[str]:
    """Texts that break out of a docstring, a comment, a string literal or a template and
    create `sentinel` if what follows is ever executed."""
    code = f"open(r'{sentinel}', 'w').close()"
    return [
        f'"""\n{code}\nr"""',
        f"'''\n{code}\nr'''",
        f"\n{code}\n#",
        f"\n    {code}\n    #",
        f"\r{code}\r#",
        f"\r\n    {code}  #",
        f'"); {code}; ("',
        f"'); {code}; ('",
        f'\\"); {code}; #',
        f"{{{code}}}",
        f"{{{{ {code} }}}}",
        f"{{% if {code} %}}{{% endif %}}",
        f"\u2028{code}\u2028#",
        f"\x0c\n{code}\n#",
        f"\\\n{code}",
        f"__import__('os').system('touch {sentinel}')",
    ]


ODD_NAMES = [
    "import os",
    "def",
    "class",
    "lambda",
    "None",
    "True",
    "match",
    "np",
    "numpy",
    "forward",
    "value_and_grad",
    "vjp",
    "INPUTS",
    "OUTPUT_SPECS",
    "cotangent",
    "print",
    "sum",
    "__import__",
    "__builtins__",
    "__class__",
    "_check_inputs",
    "_softmax",
    "d_h",
    "λ",
    "数据",
    "🙂",
    " ",
    "_",
    "0",
    "1x",
    "a" * 5000,
    "x\x00y",
    "x\\",
    "#",
    "{x}",
]


def small_graph(name: str, dim: str, names: dict[str, str]) -> gg.Graph:
    """Broadcasting, fan-out, a symbolic dim, int labels, two outputs; names as given."""
    g = gg.Graph(name)
    x = g.input(names["x"], (dim, 3))
    y = g.input(names["y"], (dim,), "int64")
    W = g.param(names["W"], (3, 4))
    b = g.param(names["b"], (4,))
    h = gg.tanh(gg.add(x @ W, b, name=names["z"]), name=names["h"])
    loss = gg.softmax_cross_entropy(gg.multiply(h, h, name=names["hh"]), y, name=names["loss"])
    g.output(loss, h)
    return g


ROLES = ("x", "y", "W", "b", "z", "h", "hh", "loss")
PLAIN = {r: r for r in ROLES}


def hostile_names(text: str) -> dict[str, str]:
    """Distinct node ids that all sanitize to the same identifier."""
    return {r: f"{text}{' ' * i}" for i, r in enumerate(ROLES)}


@pytest.fixture
def sentinel(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a string from the graph was executed"


def test_the_sentinel_payloads_would_run(tmp_path):
    """The payloads are live: executed as code, they create the sentinel."""
    path = tmp_path / "pwned"
    exec(f"open(r'{path}', 'w').close()")  # noqa: S102 - the one deliberate execution
    assert path.exists()


def run_module(source: str, names: dict[str, str]) -> list:
    """Import generated `source` and call its forward, value_and_grad and vjp."""
    module = load_module(source)
    rng = np.random.default_rng(0)
    values = {
        names["x"]: rng.standard_normal((5, 3)),
        names["y"]: rng.integers(0, 4, 5),
        names["W"]: rng.standard_normal((3, 4)),
        names["b"]: rng.standard_normal(4),
    }
    args = [values[n] for n in module.INPUTS]
    loss, h = module.forward(*args)
    (value, _), grads = module.value_and_grad(*args)
    (out, _), vjp_grads = module.vjp(*args, np.float64(1.0))
    assert list(module.INPUTS) == [names[r] for r in ("x", "y", "W", "b")]
    assert list(module.OUTPUTS) == [names["loss"], names["h"]]
    assert list(module.WRT) == list(grads) == [names["W"], names["b"]]
    return [loss, h, value, out, *grads.values(), *vjp_grads.values()]


@functools.lru_cache(maxsize=1)
def reference() -> list:
    return run_module(gg.generate(small_graph("g", "batch", PLAIN)), PLAIN)


def check_same_numbers(graph_name: str, dim: str, names: dict[str, str], sentinel=None):
    source = gg.generate(small_graph(graph_name, dim, names))
    assert sentinel is None or not sentinel.exists()  # compile time
    for got, want in zip(run_module(source, names), reference()):  # import and call
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("index", range(16))
@pytest.mark.parametrize("where", ["names", "graph", "dim"])
def test_code_in_names_never_runs(index, where, sentinel):
    text = payloads(sentinel)[index]
    names = hostile_names(text) if where == "names" else PLAIN
    graph_name = text if where == "graph" else "g"
    dim = text if where == "dim" else "batch"
    check_same_numbers(graph_name, dim, names, sentinel)


@pytest.mark.parametrize("text", ODD_NAMES, ids=range(len(ODD_NAMES)))
def test_odd_names_compile_to_the_same_numbers(text):
    check_same_numbers(text, text if text.strip() else "batch", hostile_names(text))


def test_generated_names_are_plain_unique_identifiers():
    model = gg.compile(small_graph("g", "batch", hostile_names("é x")))
    params = model.source.split("def forward(")[1].split(", *, workspace=None)")[0].split(", ")
    assert len(set(params)) == len(params) == 4
    assert all(p.isidentifier() and p.isascii() and not keyword.iskeyword(p) for p in params)


def test_names_that_collide_with_gradient_names():
    """A node called d_h next to h: the gradient of h must not overwrite it."""
    g = gg.Graph("g")
    h = g.param("h", (3,))
    d_h = g.param("d_h", (3,))
    g.output(gg.sum(h * d_h * h))
    model = gg.compile(g)
    rng = np.random.default_rng(2)
    gg.gradcheck(model, {"h": rng.standard_normal(3), "d_h": rng.standard_normal(3)})


def test_str_subclasses_cannot_smuggle_code(sentinel):
    """A str subclass whose repr/format is code: only its characters reach the source."""
    code = f"open(r'{sentinel}', 'w').close()"

    class Sneaky(str):
        def __repr__(self):
            return code

        def __str__(self):
            return code

        def __format__(self, spec):
            return code

    g = gg.Graph(Sneaky("g"))
    x = g.param(Sneaky("x"), (Sneaky("n"), 2))
    g.output(gg.sum(gg.tanh(x), name=Sneaky("s")))
    model = gg.compile(g, wrt=[Sneaky("x")])
    model.value_and_grad(np.ones((3, 2)))
    assert code not in model.source


@pytest.mark.parametrize("value", [10**30, 2**63, -(2**63) - 1])
def test_int_consts_out_of_range(value):
    g = gg.Graph("g")
    x = g.input("x", (2,), "int64")
    g.output(x + g.const(value, dtype="int64", name="big"))
    with pytest.raises(gg.AttrError, match="'big'.*not an int64"):
        gg.generate(g)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_inf_consts_are_numbers_in_the_source(value):
    g = gg.Graph("g")
    x = g.param("x", (2,))
    g.output(gg.sum(x * g.const(value) + g.const([value, 1.0])))
    model = gg.compile(g)
    out = model.forward(np.ones(2))
    np.testing.assert_equal(out, np.sum(np.ones(2) * value + np.array([value, 1.0])))


@pytest.mark.parametrize("attr", ["value", "dtype"])
def test_deeply_nested_attrs(attr):
    deep: list = [1.0]
    for _ in range(5000):
        deep = [deep]
    g = leaf_graph()
    g.add_node("c", op="const", attrs={"value": 1.0, attr: deep})
    with pytest.raises(gg.AttrError, match="'c'"):
        gg.generate(g)


def test_int_const_from_nan_is_an_error():
    g = gg.Graph("g")
    x = g.input("x", (2,))
    g.output(x * g.const(float("nan"), dtype="int64", name="c"))
    with pytest.raises(gg.AttrError, match="'c'"):
        gg.generate(g)


# ---- the namespace, as a property --------------------------------------------------------


@pytest.mark.parametrize("text", ODD_NAMES + ["", "__", "9", "a" * 41 + "_", "def_"])
def test_to_identifier_is_legal_and_idempotent(text):
    name = to_identifier(text)
    assert name.isidentifier() and name.isascii() and not name.startswith("_")
    assert not keyword.iskeyword(name) and name not in MODULE_NAMES
    assert to_identifier(name) == name


def test_namespace_claims_are_unique():
    ns = Namespace()
    texts = ["a b", "a-b", "a_b", "a__b", "a b ", "a_b_2", "a_b", "", "", "v"]
    claimed = [ns.claim(t) for t in texts]
    assert len(set(claimed)) == len(claimed)


# ---- malformed graphs at the networkx level ------------------------------------------------
# Each case edits one small valid graph: x (param, (3,)) -> s = sum(x), outputs [s].
# A row: (label, what to change, error class, regex the message must match).

DELETE = object()


def leaf_graph() -> nx.MultiDiGraph:
    g = nx.MultiDiGraph(name="bad", outputs=["s"])
    g.add_node("x", op="param", shape=(3,), dtype="float64")
    g.add_node("s", op="sum", attrs={})
    g.add_edge("x", "s", arg=0)
    return g


def _update(data: dict, changes: dict) -> None:
    for key, value in changes.items():
        if value is DELETE:
            data.pop(key, None)
        else:
            data[key] = value


NODE_EDITS = [  # (label, node, changes to its attributes, error, message)
    ("unknown op", "s", {"op": "summ"}, gg.OpError, "'s'.*'summ'.*did you mean 'sum'"),
    ("op missing", "s", {"op": DELETE}, gg.OpError, "'s'.*unknown op None"),
    ("op unhashable", "s", {"op": ["sum"]}, gg.OpError, "'s'"),
    ("op is code", "s", {"op": "__import__('os')"}, gg.OpError, "'s'"),
    ("attrs not a dict", "s", {"attrs": [1]}, gg.AttrError, "'s'.*must be a dict"),
    ("attr key not a str", "s", {"attrs": {0: 1}}, gg.AttrError, "'s'.*name 0"),
    ("unknown attr", "s", {"attrs": {"axes": 0}}, gg.AttrError, "'s'.*unknown attribute 'axes'"),
    ("axis as str", "s", {"attrs": {"axis": "0"}}, gg.AttrError, "'s'.*axis='0'"),
    ("axis as float", "s", {"attrs": {"axis": 0.0}}, gg.AttrError, "'s'.*axis=0.0"),
    ("axis as bool", "s", {"attrs": {"axis": True}}, gg.AttrError, "'s'.*axis=True"),
    ("axis as numpy", "s", {"attrs": {"axis": np.int64(0)}}, gg.AttrError, "'s'.*axis"),
    ("axis nan", "s", {"attrs": {"axis": float("nan")}}, gg.AttrError, "'s'.*axis=nan"),
    ("axis out of range", "s", {"attrs": {"axis": 5}}, gg.ShapeError, "'s'.*axis 5"),
    ("axis repeated", "s", {"attrs": {"axis": [0, 0]}}, gg.ShapeError, "'s'.*repeated"),
    ("keepdims as str", "s", {"attrs": {"keepdims": "yes"}}, gg.AttrError, "'s'.*keepdims"),
    ("keepdims as code", "s", {"attrs": {"keepdims": "exec('1')"}}, gg.AttrError, "'s'"),
    ("leaf with attrs", "x", {"attrs": {"a": 1}}, gg.AttrError, "'x'.*a leaf takes no"),
    ("shape a str", "x", {"shape": "3"}, gg.ShapeError, "'x'.*shape '3'"),
    ("shape -1", "x", {"shape": (-1,)}, gg.ShapeError, "'x'.*-1"),
    ("shape float", "x", {"shape": (3.0,)}, gg.ShapeError, "'x'.*dim 3.0"),
    ("shape bool", "x", {"shape": (True,)}, gg.ShapeError, "'x'.*dim True"),
    ("shape nested", "x", {"shape": ((3,),)}, gg.ShapeError, "'x'"),
    ("dim empty", "x", {"shape": ("",)}, gg.ShapeError, "'x'.*non-empty"),
    ("dtype float16", "x", {"dtype": "float16"}, gg.ShapeError, "'x'.*'float16'"),
    ("dtype unhashable", "x", {"dtype": ["float64"]}, gg.ShapeError, "'x'"),
    ("dtype numpy", "x", {"dtype": np.float64}, gg.ShapeError, "'x'"),
    (
        "broadcast to n",
        "s",
        {"op": "broadcast_to", "attrs": {"shape": ["n", 3]}},
        gg.ShapeError,
        "'s'.*'n'.*not a dim of any input",
    ),
]

CONST_VALUES = [  # (label, attrs of a new const node c, error, message)
    ("value a str", {"value": "1"}, gg.AttrError, "'c'.*value='1'"),
    ("value is code", {"value": "__import__('os')"}, gg.AttrError, "'c'"),
    ("value an array", {"value": np.ones(2)}, gg.AttrError, "'c'"),
    ("value ragged", {"value": [[1], [1, 2]]}, gg.AttrError, "'c'.*rectangular"),
    ("value a dict", {"value": {"a": 1}}, gg.AttrError, "'c'"),
    ("value missing", {}, gg.AttrError, "'c'.*missing attribute 'value'"),
    ("dtype complex", {"value": 1, "dtype": "complex128"}, gg.AttrError, "'c'.*dtype"),
    ("huge float", {"value": 10**400, "dtype": "float64"}, gg.AttrError, "'c'.*too large"),
    ("huge int", {"value": 2**64}, gg.AttrError, "'c'.*not an int64"),
    ("nan int", {"value": float("nan"), "dtype": "int64"}, gg.AttrError, "'c'.*not an int64"),
]

EDGE_ARGS = [  # (label, the arg of edge x -> s, message of the OpError)
    ("arg missing", DELETE, "'x' -> 's'.*'arg'.*got None"),
    ("arg a str", "0", "'x' -> 's'.*got '0'"),
    ("arg a bool", False, "'x' -> 's'.*got False"),
    ("arg a float", 0.0, "'x' -> 's'.*got 0.0"),
    ("arg out of range", 1, "'s'.*positions \\[1\\]"),
    ("arg negative", -1, "'s'.*positions \\[-1\\]"),
]

OUTPUTS = [  # (label, the graph's outputs attribute, message of the GraphError)
    ("outputs missing", DELETE, "no outputs"),
    ("outputs empty", [], "no outputs"),
    ("outputs a number", 3, "no outputs"),
    ("output not a node", ["nope"], "output 'nope' is not a node"),
    ("output not a str", [["s"]], "output \\['s'\\]"),
]


def _multiply(g, args=(0, 1), sources=("x", "x")):
    g.add_node("m", op="multiply")
    for a, u in zip(args, sources):
        g.add_edge(u, "m", arg=a)
    g.graph["outputs"] = ["m"]


def _where_on_floats(g):
    g.add_node("w", op="where")
    for i in range(3):
        g.add_edge("x", "w", arg=i)
    g.graph["outputs"] = ["w"]


def _one_hot(g, classes):
    g.add_node("k", op="input", shape=(3,), dtype="int64")
    g.add_node("h", op="one_hot", attrs={"num_classes": classes})
    g.add_edge("k", "h", arg=0)
    g.graph["outputs"] = ["h"]


def _cycle(g):
    g.add_node("t", op="negative")
    g.add_edge("s", "t", arg=0)
    g.add_edge("t", "x", arg=0)


STRUCTURE = [  # (label, edit of the graph, error, message)
    ("self-loop", lambda g: g.add_edge("s", "s", arg=1), gg.CycleError, "'s'.*itself"),
    ("cycle", _cycle, gg.CycleError, "cycle: .*x -> s -> t -> x"),
    ("arg duplicated", lambda g: _multiply(g, (0, 0)), gg.OpError, "'m'.*positions \\[0, 0\\]"),
    ("operand missing", lambda g: _multiply(g, (0,), ("x",)), gg.OpError, "'m'.*takes 2"),
    ("operand extra", lambda g: g.add_edge("x", "s", arg=1), gg.OpError, "'s'.*takes 1"),
    ("implicit node", lambda g: g.add_edge("ghost", "s", arg=1), gg.OpError, "'ghost'.*op None"),
    ("node id an int", lambda g: g.add_node(7, op="param"), gg.GraphError, "node id 7"),
    ("node id a tuple", lambda g: g.add_node(("a",), op="param"), gg.GraphError, "\\('a',\\)"),
    ("node id empty", lambda g: g.add_node("", op="param"), gg.GraphError, "node id ''"),
    ("where on floats", _where_on_floats, gg.ShapeError, "'w'.*condition must be bool"),
    ("negative classes", lambda g: _one_hot(g, -1), gg.ShapeError, "'h'.*invalid dim -1"),
    ("classes a dim of nothing", lambda g: _one_hot(g, "c"), gg.ShapeError, "'h'.*'c'"),
    (
        "shapes do not broadcast",
        lambda g: (g.add_node("y", op="param", shape=(4,)), _multiply(g, sources=("x", "y"))),
        gg.ShapeError,
        "'m'.*\\(3,\\) and \\(4,\\) do not broadcast",
    ),
]


def _cases():
    for label, node, changes, error, message in NODE_EDITS:
        yield pytest.param(
            lambda g, n=node, c=changes: _update(g.nodes[n], c), error, message, id=label
        )
    for label, attrs, error, message in CONST_VALUES:
        yield pytest.param(
            lambda g, a=attrs: g.add_node("c", op="const", attrs=a), error, message, id=label
        )
    for label, arg, message in EDGE_ARGS:
        yield pytest.param(
            lambda g, a=arg: _update(g.edges["x", "s", 0], {"arg": a}),
            gg.OpError,
            message,
            id=label,
        )
    for label, outputs, message in OUTPUTS:
        yield pytest.param(
            lambda g, o=outputs: _update(g.graph, {"outputs": o}), gg.GraphError, message, id=label
        )
    for label, change, error, message in STRUCTURE:
        yield pytest.param(change, error, message, id=label)


@pytest.mark.parametrize(("change", "error", "message"), list(_cases()))
def test_malformed_graphs_raise_a_graph_error(change, error, message):
    g = leaf_graph()
    change(g)
    with pytest.raises(error, match=message) as caught:
        gg.generate(g)
    assert "\n" not in str(caught.value)


def test_error_messages_stay_on_one_line():
    """Names and dims with line breaks, in a message that prints shapes and node ids."""
    g = gg.Graph("g\nh")
    x = g.param("x\ny", ("a\nb", 3))
    y = g.param("y\rz", (4,))
    with pytest.raises(gg.ShapeError) as caught:
        x + y
    assert len(str(caught.value).splitlines()) == 1
    assert "\\n" in str(caught.value)


@pytest.mark.parametrize("thing", [None, {}, [], "graph", 3, nx.Graph()])
def test_not_a_graph(thing):
    with pytest.raises(gg.GraphError, match="expected a networkx"):
        gg.generate(thing)


def test_plain_digraph_is_accepted():
    g = nx.DiGraph(leaf_graph())
    assert "def forward" in gg.generate(g)


def test_reverse_tags_from_the_graph_cannot_break_codegen():
    """Tags that autodiff uses for comments, present (and wrong) in a user graph."""
    g = leaf_graph()
    g.nodes["s"].update(role="backward", rule="fan-out", vjp_of="ghost", grad_of=3, cot_arg="0")
    g.nodes["x"].update(role=["x"], vjp_of="s")
    rng = np.random.default_rng(3)
    gg.gradcheck(gg.compile(g), {"x": rng.standard_normal(3)})


# ---- wrt -------------------------------------------------------------------------------


def labelled_graph() -> gg.Graph:
    g = gg.Graph("g")
    x = g.param("x", (3,))
    k = g.input("k", (3,), "int64")
    g.output(gg.sum(x * gg.astype(k, "float64"), name="s"))
    return g


@pytest.mark.parametrize(
    ("wrt", "message"),
    [
        (["k"], "'k' has dtype int64"),
        (["nope"], "'nope' is not a node"),
        (["s"], "'s' is a sum node"),
        (5, "list of leaf names"),
        ([1], "1 is not a str"),
        ([None], "None is not a str"),
        ({"x"}, "list of leaf names"),
        ("x,k", "'k' has dtype int64"),
    ],
)
def test_bad_wrt(wrt, message):
    with pytest.raises(gg.WrtError, match=message):
        gg.generate(labelled_graph(), wrt=wrt)


# ---- JSON documents -------------------------------------------------------------------------
# Node-link JSON as a file would hold it. Documents that are valid node-link data run
# through networkx; documents that are not a graph at all go through gg.load_graph.
# To add a case, add a (label, JSON text, error class, message) row.


def node_link(nodes, links, **graph) -> str:
    return json.dumps(
        {"directed": True, "multigraph": True, "graph": graph, "nodes": nodes, "links": links}
    )


GOOD_NODES = [{"id": "x", "op": "param", "shape": [3]}, {"id": "s", "op": "sum"}]
JSON_GRAPHS = [
    (
        "cycle",
        node_link(
            GOOD_NODES,
            [{"source": "x", "target": "s", "arg": 0}, {"source": "s", "target": "x", "arg": 0}],
            name="j",
            outputs=["s"],
        ),
        gg.CycleError,
        "cycle",
    ),
    (
        "unknown op",
        node_link(
            [GOOD_NODES[0], {"id": "s", "op": "eval"}],
            [{"source": "x", "target": "s", "arg": 0}],
            name="j",
            outputs=["s"],
        ),
        gg.OpError,
        "'s'.*'eval'",
    ),
    (
        "arg missing",
        node_link(GOOD_NODES, [{"source": "x", "target": "s"}], name="j", outputs=["s"]),
        gg.OpError,
        "arg",
    ),
    (
        "attrs a list",
        node_link(
            [GOOD_NODES[0], {"id": "s", "op": "sum", "attrs": [0]}],
            [{"source": "x", "target": "s", "arg": 0}],
            name="j",
            outputs=["s"],
        ),
        gg.AttrError,
        "'s'",
    ),
    (
        "number where a list belongs",
        node_link(
            [{"id": "x", "op": "param", "shape": 3}, GOOD_NODES[1]],
            [{"source": "x", "target": "s", "arg": 0}],
            name="j",
            outputs=["s"],
        ),
        gg.ShapeError,
        "'x'",
    ),
    (
        "int node ids",
        node_link([{"id": 1, "op": "param"}], [], name="j", outputs=[1]),
        gg.GraphError,
        "1",
    ),
    (
        "NaN axis",
        node_link(
            [GOOD_NODES[0], {"id": "s", "op": "sum", "attrs": {"axis": float("nan")}}],
            [{"source": "x", "target": "s", "arg": 0}],
            name="j",
            outputs=["s"],
        ),
        gg.AttrError,
        "'s'.*axis",
    ),
]
JSON_NOT_GRAPHS = [
    ("a list", "[1, 2, 3]"),
    ("a number", "3"),
    ("a string", '"graph"'),
    ("no nodes key", '{"links": []}'),
    ("nodes not a list", '{"nodes": 3, "links": []}'),
    ("node without id", '{"nodes": [{"op": "param"}], "links": []}'),
    ("link to nowhere", '{"nodes": [], "links": [{"source": "a", "target": "b"}]}'),
    ("truncated", '{"nodes": ['),
]


def networkx_load(text: str) -> nx.MultiDiGraph:
    data = json.loads(text)
    return nx.node_link_graph(data, directed=True, multigraph=True, edges="links")


@pytest.mark.parametrize(
    ("text", "error", "message"), [c[1:] for c in JSON_GRAPHS], ids=[c[0] for c in JSON_GRAPHS]
)
def test_json_graphs_that_are_malformed(text, error, message):
    with pytest.raises(error, match=message):
        gg.generate(networkx_load(text))


@pytest.mark.parametrize(
    "text", [c[1] for c in JSON_NOT_GRAPHS], ids=[c[0] for c in JSON_NOT_GRAPHS]
)
def test_json_that_is_not_a_graph(text, tmp_path):
    path = tmp_path / "g.json"
    path.write_text(text)
    with pytest.raises(gg.GraphError):
        gg.generate(gg.load_graph(path))


# ---- writing files ----------------------------------------------------------------------


def test_a_failed_write_leaves_no_file(tmp_path):
    target = tmp_path / "out.py"
    with pytest.raises(UnicodeEncodeError):
        write_atomic(target, "x = 1\n" * 1000 + "\ud800")  # not encodable: fails mid-write
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.py"
    target.write_text("old\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(target, "\ud800")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.py"]


# ---- regressions ---------------------------------------------------------------------------


def test_regression_a_dim_name_cannot_end_the_module_docstring(sentinel):
    """Symbolic dims were printed raw into the module docstring (names were escaped, dims
    were not): a dim closing the docstring ran its code when the module was imported."""
    dim = f'"""\nopen(r"{sentinel}", "w")\nr"""'
    g = gg.Graph("g")
    g.output(gg.sum(g.param("x", (dim, 3))))
    module = load_module(gg.generate(g))
    module.forward(np.ones((2, 3)))


def test_regression_a_dim_name_cannot_end_a_comment(sentinel):
    """Backward comments print shapes with their symbolic dims: a newline in a dim ended
    the comment and the rest of the line became code in value_and_grad."""
    dim = f"b\n    open(r'{sentinel}', 'w')\n    #"
    g = gg.Graph("g")
    x = g.param("x", (dim, 3))
    w = g.param("w", (3, 2))
    g.output(gg.sum(gg.tanh(x @ w)))
    source = gg.generate(g)
    assert all(line.lstrip().startswith("#") for line in source.splitlines() if "VJP" in line)
    module = load_module(source)
    module.value_and_grad(np.ones((2, 3)), np.ones((3, 2)))


def test_regression_reverse_tags_in_a_user_graph():
    """A user node tagged role=backward, rule=fan-out with a vjp_of that is not a node
    crashed codegen with a KeyError."""
    g = leaf_graph()
    g.nodes["s"].update(role="backward", rule="fan-out", vjp_of="ghost")
    assert "def value_and_grad" in gg.generate(g)


def test_regression_wrt_that_is_not_a_list():
    """wrt=5 raised TypeError from deep in autodiff instead of a WrtError."""
    with pytest.raises(gg.WrtError):
        gg.generate(leaf_graph(), wrt=5)


def test_regression_unbound_symbolic_dim():
    """broadcast_to with a symbolic dim that no input has crashed codegen (ValueError)."""
    g = gg.Graph("g")
    g.output(gg.sum(gg.broadcast_to(g.param("x", (3,)), ("n", 3), name="b")))
    with pytest.raises(gg.ShapeError, match="'b'.*'n'"):
        gg.generate(g)


def test_keyword_calls_with_hostile_names():
    names = hostile_names("x = 1; y")
    model = gg.compile(small_graph("g", "batch", names))
    rng = np.random.default_rng(0)
    values = {
        names["x"]: rng.standard_normal((2, 3)),
        names["y"]: np.array([0, 3]),
        names["W"]: rng.standard_normal((3, 4)),
        names["b"]: rng.standard_normal(4),
    }
    loss, grads = model.value_and_grad(**values)
    assert set(grads) == {names["W"], names["b"]}


def test_regression_a_deep_unnamed_chain_compiles():
    """300 auto-named ops in a chain were all inlined into one expression: RecursionError in
    codegen (and a nesting depth Python cannot parse). Inlining now stops every few levels."""
    g = gg.Graph("deep")
    x = g.param("x", (3,))
    h = x
    for _ in range(300):
        h = gg.tanh(h)
    g.output(gg.sum(h))
    model = gg.compile(g)
    assert max(line.count("(") for line in model.source.splitlines()) < 40
    gg.gradcheck(model, {"x": np.array([0.1, -0.2, 0.3])})
