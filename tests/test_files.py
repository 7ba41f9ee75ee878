"""Graph files and model files: exact node-link JSON round trips, model.py:function, domains."""

import json
import textwrap

import networkx as nx
import numpy as np
import pytest
from graphs import mlp

import graphgen as gg
from graphgen.domains import input_domains
from graphgen.frontends import load_spec
from graphgen.ir import validate


def snapshot(graph: nx.Graph):
    """Everything a graph holds, with the Python type of every attribute value."""

    def typed(value):
        if isinstance(value, (list, tuple)):
            return (type(value).__name__, [typed(v) for v in value])
        if isinstance(value, dict):
            return ("dict", {k: typed(v) for k, v in value.items()})
        return (type(value).__name__, value)

    edges = graph.edges(keys=True, data=True) if graph.is_multigraph() else graph.edges(data=True)
    return (
        type(graph),
        typed(dict(graph.graph)),
        [(n, typed(d)) for n, d in graph.nodes(data=True)],
        [(*e[:-1], typed(e[-1])) for e in edges],
    )


def test_saved_graph_loads_back_identical(tmp_path):
    g = mlp()
    gg.save_graph(g, tmp_path / "mlp.json")
    assert snapshot(gg.load_graph(tmp_path / "mlp.json")) == snapshot(g.nx)


def test_tuples_stay_tuples_and_lists_stay_lists(tmp_path):
    g = gg.Graph("types")
    x = g.input("x", (2, 3))
    s = gg.sum(x * g.const([[1.0, 2.0, 3.0]]), axis=(0, 1), keepdims=True)
    g.output(gg.reshape(s, (1,)))
    g.nx.graph["meta"] = {"pair": (1, [2, 3]), "__tuple__": "not a tag"}
    g.nx.graph["tag_like"] = {"__tuple__": [1, 2]}
    gg.save_graph(g, tmp_path / "g.json")
    loaded = gg.load_graph(tmp_path / "g.json")
    assert snapshot(loaded) == snapshot(g.nx)
    assert loaded.nodes[s.id]["attrs"]["axis"] == (0, 1)
    assert isinstance(loaded.graph["tag_like"], dict)


def test_a_list_shape_stays_a_list(tmp_path):
    g = nx.MultiDiGraph(name="listy", outputs=["x"])
    g.add_node("x", op="input", shape=[2, "n"], dtype="float64")
    gg.save_graph(g, tmp_path / "g.json")
    assert gg.load_graph(tmp_path / "g.json").nodes["x"]["shape"] == [2, "n"]


def test_loaded_graph_compiles_to_byte_identical_source(tmp_path):
    gg.save_graph(mlp(), tmp_path / "mlp.json")
    assert gg.generate(gg.load_graph(tmp_path / "mlp.json")) == gg.generate(mlp())


def test_operand_used_twice_keeps_both_parallel_edges(tmp_path):
    g = gg.Graph("square")
    x = g.param("x", (3,))
    g.output(gg.sum(x * x))
    gg.save_graph(g, tmp_path / "sq.json")
    loaded = gg.load_graph(tmp_path / "sq.json")
    assert loaded.number_of_edges() == g.nx.number_of_edges() == 3
    assert snapshot(loaded) == snapshot(g.nx)


def test_plain_digraph_round_trips_as_digraph(tmp_path):
    g = nx.DiGraph(name="plain", outputs=["t"])
    g.add_node("x", op="param", attrs={}, shape=(3,), dtype="float64")
    g.add_node("t", op="tanh", attrs={})
    g.add_edge("x", "t", arg=0)
    gg.save_graph(g, tmp_path / "plain.json")
    loaded = gg.load_graph(tmp_path / "plain.json")
    assert snapshot(loaded) == snapshot(g)


def test_file_lists_one_node_a_line_in_node_link_layout(tmp_path):
    gg.save_graph(mlp(), tmp_path / "mlp.json")
    text = (tmp_path / "mlp.json").read_text()
    data = json.loads(text)
    assert set(data) == {"directed", "multigraph", "graph", "nodes", "edges"}
    assert '    {"id": "h1", "op": "tanh", "attrs": {}, "shape": ["batch", 5]' in text
    assert nx.node_link_graph(data, edges="edges").number_of_nodes() == len(mlp().nx)


def test_hand_written_file_with_plain_arrays_compiles(tmp_path):
    (tmp_path / "hand.json").write_text(
        json.dumps(
            {
                "graph": {"name": "hand", "outputs": ["s"]},
                "nodes": [
                    {"id": "x", "op": "param", "shape": [2, 3]},
                    {"id": "s", "op": "sum", "attrs": {"axis": [0, 1]}},
                ],
                "links": [{"source": "x", "target": "s", "arg": 0}],
            }
        )
    )
    model = gg.compile(gg.load_graph(tmp_path / "hand.json"))
    _, grads = model.value_and_grad(np.ones((2, 3)))
    np.testing.assert_array_equal(grads["x"], np.ones((2, 3)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"nodes": [', "invalid JSON at line 1 column 12"),
        ("[1, 2]", "expected a node-link JSON object, got an array"),
        ('{"edges": []}', "no 'nodes' list"),
        ('{"nodes": [{"op": "input"}]}', "node #0 is not an object with an 'id'"),
        ('{"nodes": [{"id": "a"}], "edges": [{"source": "a", "target": "b"}]}', "'b'"),
        ('{"nodes": [{"id": "a"}, {"id": "a"}]}', "node 'a' appears twice"),
        ('{"nodes": [{"id": "a", "shape": {"__tuple__": 3}}]}', "__tuple__ must hold an array"),
    ],
)
def test_malformed_file_raises_spec_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(gg.SpecError, match="bad.json") as info:
        gg.load_graph(path)
    assert message in str(info.value)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        gg.load_graph(tmp_path / "nope.json")


def test_value_json_cannot_hold_is_refused_and_nothing_is_written(tmp_path):
    g = nx.MultiDiGraph(name="np", outputs=["x"])
    g.add_node("x", op="input", shape=(2,), extra=np.zeros(2))
    with pytest.raises(gg.SpecError, match="node 'x' attribute 'extra'"):
        gg.save_graph(g, tmp_path / "g.json")
    assert list(tmp_path.iterdir()) == []


# ---- model.py:function -------------------------------------------------------------------

MODEL = """
import graphgen as gg
from helper import WIDTH

def build():
    g = gg.Graph("from_file")
    x = g.param("x", (WIDTH,))
    g.output(gg.sum(gg.tanh(x)))
    return g

def as_networkx():
    return build().nx

def broken():
    return 1 / 0

def not_a_graph():
    return 42
"""


@pytest.fixture
def model_file(tmp_path):
    (tmp_path / "helper.py").write_text("WIDTH = 4\n")
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(MODEL))
    return path


def test_function_spec_builds_the_graph_and_can_import_neighbours(model_file):
    graph = load_spec(f"{model_file}:build")
    assert validate(graph).nodes["x"]["shape"] == (4,)


def test_function_spec_accepts_a_networkx_graph(model_file):
    assert isinstance(load_spec(f"{model_file}:as_networkx"), nx.MultiDiGraph)


def test_function_that_raises_is_reported_with_its_line(model_file):
    with pytest.raises(gg.SpecError, match=r"broken\(\) raised ZeroDivisionError: .*model.py line"):
        load_spec(f"{model_file}:broken")


def test_function_returning_something_else_is_refused(model_file):
    with pytest.raises(gg.SpecError, match="returned a int, not a gg.Graph"):
        load_spec(f"{model_file}:not_a_graph")


def test_unknown_function_lists_the_files_functions(model_file):
    with pytest.raises(gg.SpecError, match="no function 'buld'; its functions: .*build"):
        load_spec(f"{model_file}:buld")


def test_python_file_without_function_name_is_refused(model_file):
    with pytest.raises(gg.SpecError, match=r"name the function .*model.py:function"):
        load_spec(str(model_file))


def test_model_file_with_syntax_error_is_reported_with_its_line(tmp_path):
    (tmp_path / "bad.py").write_text("def build(:\n")
    with pytest.raises(gg.SpecError, match=r"SyntaxError: .*bad.py line 1"):
        load_spec(f"{tmp_path / 'bad.py'}:build")


# ---- input domains -----------------------------------------------------------------------


def test_labels_take_their_range_from_the_class_count_of_the_logits():
    assert input_domains(validate(mlp(n_out=7)))["y"] == "int:7"


def test_symbolic_class_count_stays_symbolic():
    g = gg.Graph("sym")
    logits = g.param("logits", ("batch", "classes"))
    g.output(gg.softmax_cross_entropy(logits, g.input("y", ("batch",), dtype="int64")))
    assert input_domains(validate(g))["y"] == "int:classes"


def test_operand_of_log_and_divisor_are_drawn_away_from_zero():
    g = gg.Graph("domains")
    a, b, c = g.param("a", (3,)), g.param("b", (3,)), g.param("c", (3,))
    g.output(gg.sum(gg.log(a) + c / b))
    assert input_domains(validate(g)) == {"a": "positive", "b": "nonzero", "c": "real"}


def test_generated_module_carries_input_domains():
    model = gg.compile(mlp(n_out=3))
    assert model.module.INPUT_DOMAINS["y"] == "int:3"
    assert list(model.module.INPUT_DOMAINS) == list(model.inputs)
