"""Validation: each malformed graph gets a GraphError subclass naming node, op and shapes."""

import networkx as nx
import pytest

import graphgen as gg
from graphgen.ir import validate


def small_graph() -> nx.MultiDiGraph:
    g = nx.MultiDiGraph(name="small", outputs=["y"])
    g.add_node("x", op="input", attrs={}, shape=(3,), dtype="float64")
    g.add_node("w", op="param", attrs={}, shape=(3,), dtype="float64")
    g.add_node("y", op="multiply", attrs={})
    g.add_edge("x", "y", arg=0)
    g.add_edge("w", "y", arg=1)
    return g


def test_a_valid_networkx_graph_gets_shapes_inferred():
    g = validate(small_graph())
    assert g.nodes["y"]["shape"] == (3,) and g.nodes["y"]["dtype"] == "float64"


def test_a_plain_digraph_is_accepted():
    g = nx.DiGraph(small_graph())
    assert validate(g).nodes["y"]["shape"] == (3,)


def test_a_cycle_is_reported_with_its_path():
    g = small_graph()
    g.add_node("z", op="negative", attrs={})
    g.add_edge("y", "z", arg=0)
    g.remove_edge("x", "y")
    g.add_edge("z", "y", arg=0)
    with pytest.raises(gg.CycleError, match="cycle: .*y.*z"):
        validate(g)


def test_a_self_loop_is_a_cycle():
    g = small_graph()
    g.add_edge("y", "y", arg=2)
    with pytest.raises(gg.CycleError, match="'y'"):
        validate(g)


def test_an_unknown_op_suggests_the_closest_name():
    g = small_graph()
    g.nodes["y"]["op"] = "multiplyy"
    with pytest.raises(gg.OpError, match="node 'y'.*unknown op 'multiplyy'.*'multiply'"):
        validate(g)


def test_a_missing_operand_is_an_arity_error():
    g = small_graph()
    g.remove_edge("w", "y")
    with pytest.raises(gg.OpError, match=r"node 'y' \(op multiply\) takes 2 operand"):
        validate(g)


def test_a_duplicated_argument_position_is_rejected():
    g = small_graph()
    g.remove_edge("w", "y")
    g.add_edge("w", "y", arg=0)
    with pytest.raises(gg.OpError, match=r"argument positions \[0, 0\]"):
        validate(g)


def test_an_edge_without_arg_is_rejected():
    g = small_graph()
    g.remove_edge("w", "y")
    g.add_edge("w", "y")
    with pytest.raises(gg.OpError, match="'w' -> 'y'"):
        validate(g)


def test_an_unknown_attribute_is_rejected():
    g = small_graph()
    g.nodes["y"]["attrs"] = {"axis": 1}
    with pytest.raises(gg.AttrError, match="node 'y' \\(op multiply\\): unknown attribute 'axis'"):
        validate(g)


def test_a_string_where_a_number_belongs_is_rejected():
    g = gg.Graph("bad")
    x = g.input("x", (3, 4))
    with pytest.raises(gg.AttrError, match="attribute axis='1'"):
        gg.sum(x, axis="1")


def test_a_missing_required_attribute_is_rejected():
    g = small_graph()
    g.nodes["y"].update(op="reshape", attrs={})
    g.remove_edge("w", "y")
    with pytest.raises(gg.AttrError, match="missing attribute 'shape'"):
        validate(g)


def test_shape_mismatch_names_node_op_and_shapes():
    g = gg.Graph("bad")
    a = g.input("a", (3, 4))
    b = g.input("b", (5,))
    with pytest.raises(gg.ShapeError, match=r"op add.*\(3, 4\) and \(5,\).*a: f64\[3,4\]"):
        gg.add(a, b)


def test_matmul_contracted_dims_must_agree():
    g = gg.Graph("bad")
    a, b = g.input("a", (3, 4)), g.input("b", (5, 2))
    with pytest.raises(gg.ShapeError, match="contracted dims"):
        a @ b


def test_a_symbolic_dim_never_broadcasts_like_one():
    g = gg.Graph("sym")
    a, b = g.input("a", ("batch", 4)), g.input("b", ("time", 4))
    with pytest.raises(gg.ShapeError, match="do not broadcast"):
        a + b


def test_a_symbolic_dim_unifies_with_itself():
    g = gg.Graph("sym")
    a, b = g.input("a", ("batch", 4)), g.input("b", ("batch", 1))
    assert (a + b).shape == ("batch", 4)


def test_missing_outputs_are_reported():
    g = small_graph()
    g.graph["outputs"] = []
    with pytest.raises(gg.GraphError, match="no outputs"):
        validate(g)


def test_an_output_that_is_not_a_node_is_reported():
    g = small_graph()
    g.graph["outputs"] = ["nope"]
    with pytest.raises(gg.GraphError, match="output 'nope'"):
        validate(g)


def test_wrt_must_name_a_leaf():
    with pytest.raises(gg.WrtError, match="'y' is a multiply node"):
        gg.compile(small_graph(), wrt=["y"])


def test_wrt_must_name_an_existing_node():
    with pytest.raises(gg.WrtError, match="'nope' is not a node"):
        gg.compile(small_graph(), wrt=["nope"])


def test_wrt_cannot_be_an_int_input():
    g = gg.Graph("ints")
    i = g.input("i", (3,), dtype="int64")
    w = g.param("w", (3,))
    g.output(gg.sum(w * i))
    with pytest.raises(gg.WrtError, match="'i' has dtype int64"):
        gg.compile(g, wrt=["i"])


def test_node_ids_must_be_strings():
    g = small_graph()
    g.add_node(7, op="input", attrs={}, shape=(3,), dtype="float64")
    with pytest.raises(gg.GraphError, match="node id 7"):
        validate(g)


def test_duplicate_builder_names_are_rejected():
    g = gg.Graph("dup")
    g.input("x", (3,))
    with pytest.raises(gg.GraphError, match="'x' already exists"):
        g.param("x", (3,))


def test_graph_errors_are_value_errors_for_callers_that_catch_broadly():
    assert issubclass(gg.ShapeError, gg.GraphError) and issubclass(gg.GraphError, ValueError)
