"""Behaviours of the math, reduction, indexing and einsum ops that one finite-difference
case cannot show: exact gradients at ties and zeros, erf's accuracy, gathers with repeated
indices, index forms, einsum's subscript forms, integer results, stop_gradient."""

import json
import math
import warnings

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import graphgen as gg
from graphgen.errors import AttrError, GraphError, OpError, ShapeError


def grads_of(build, **inputs):
    """The gradient of sum(build(*leaves)) for float64 params named as `inputs`."""
    g = gg.Graph("t")
    leaves = [g.param(name, np.shape(v)) for name, v in inputs.items()]
    g.output(gg.sum(build(*leaves)))
    _, grads = gg.compile(g).value_and_grad(**inputs)
    return grads


def forward_of(build, *arrays):
    g = gg.Graph("t")
    leaves = [g.input(f"a{i}", a.shape, a.dtype.name) for i, a in enumerate(arrays)]
    g.output(build(*leaves))
    return gg.compile(g).forward(*arrays)


# ---- ties and zeros ------------------------------------------------------------------------


def test_max_reduction_splits_the_gradient_equally_among_ties():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    d = grads_of(lambda x: gg.max(x, axis=1), x=x)["x"]
    np.testing.assert_array_equal(d, [[0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


def test_min_reduction_splits_the_gradient_equally_among_ties():
    x = np.array([[4.0, 1.0, 1.0, 5.0], [0.0, 2.0, 3.0, 0.0]])
    d = grads_of(lambda x: gg.min(x, axis=-1, keepdims=True), x=x)["x"]
    np.testing.assert_array_equal(d, [[0.0, 0.5, 0.5, 0.0], [0.5, 0.0, 0.0, 0.5]])


def test_maximum_gives_each_operand_half_the_gradient_at_ties():
    x1, x2 = np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 0.0])
    d = grads_of(lambda a, b: gg.maximum(a, b), x1=x1, x2=x2)
    np.testing.assert_array_equal(d["x1"], [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(d["x2"], [0.5, 1.0, 0.0])


def test_minimum_ties_split_then_unbroadcast_for_a_scalar_operand():
    x1, x2 = np.array([1.0, 2.0, 3.0, 2.0]), np.array(2.0)
    d = grads_of(lambda a, b: gg.minimum(a, b), x1=x1, x2=x2)
    np.testing.assert_array_equal(d["x1"], [1.0, 0.5, 0.0, 0.5])
    assert d["x2"] == 2.0  # 0.5 + 1 + 0.5


def test_clip_passes_the_gradient_strictly_inside_the_bounds():
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    d = grads_of(lambda x: gg.clip(x, -1.0, 1.0), x=x)["x"]
    np.testing.assert_array_equal(d, [0.0, 0.0, 1.0, 0.0, 0.0])


def _products_of_others(x, axes):
    """Reference: d prod / d x by replacing each entry by 1 (exact, no division)."""
    out = np.empty_like(x)
    for i in np.ndindex(x.shape):
        y = x.copy()
        y[i] = 1.0
        keep = tuple(slice(None) if a in axes else i[a] for a in range(x.ndim))
        out[i] = np.prod(y[keep])
    return out


def test_prod_gradient_with_one_zero_is_the_product_of_the_others():
    x = np.array([[2.0, 0.0, 3.0, 0.5], [1.5, -2.0, 4.0, 1.0]])
    d = grads_of(lambda x: gg.prod(x, axis=1), x=x)["x"]
    np.testing.assert_allclose(d, _products_of_others(x, (1,)), rtol=1e-15)
    assert d[0, 1] == 3.0  # 2 * 3 * 0.5, not 0/0


def test_prod_gradient_with_two_zeros_is_zero():
    x = np.array([0.0, 2.0, 0.0, 3.0, 5.0])
    d = grads_of(lambda x: gg.prod(x), x=x)["x"]
    np.testing.assert_array_equal(d, np.zeros(5))


def test_prod_gradient_over_several_axes_with_zeros():
    x = np.random.default_rng(0).standard_normal((3, 2, 5))
    x[0, 1, 2] = x[2, 0, 4] = x[1, 1, 0] = x[1, 0, 0] = 0.0
    d = grads_of(lambda x: gg.prod(x, axis=(0, -1)), x=x)["x"]
    np.testing.assert_allclose(d, _products_of_others(x, (0, 2)), rtol=1e-13, atol=1e-15)


def test_prod_gradient_over_a_symbolic_dim_is_refused_with_a_clear_error():
    g = gg.Graph("t")
    x = g.param("x", ("batch", 3))
    g.output(gg.sum(gg.prod(x, axis=0)))
    with pytest.raises(ShapeError, match="symbolic dim 'batch'"):
        gg.compile(g)


# ---- erf -------------------------------------------------------------------------------------


def test_erf_matches_math_erf_to_float64_rounding():
    x = np.concatenate([np.linspace(-7.0, 7.0, 20001), np.geomspace(1e-300, 8.0, 2000), [1.5, 6.0]])
    x = np.concatenate([x, -x])
    got = forward_of(gg.erf, x)
    want = np.array([math.erf(v) for v in x])
    err = np.abs(got - want)
    assert np.all(err <= 1e-15 * np.maximum(np.abs(want), 1e-300) + 1e-300)  # relative
    assert np.max(err / np.spacing(np.abs(want))) <= 4  # ulps


def test_erf_of_inf_and_nan():
    got = forward_of(gg.erf, np.array([np.inf, -np.inf, np.nan, 0.0, -0.0]))
    np.testing.assert_array_equal(got, [1.0, -1.0, np.nan, 0.0, -0.0])
    assert np.signbit(got[4])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_erf_family_at_the_extremes_without_warnings(dtype):
    """Beyond the near polynomial's range, values come from erfc: huge and infinite inputs
    give the limits, nan stays nan, and no overflow or invalid-value warning is raised."""
    big = np.finfo(dtype).max
    x = np.array([-np.inf, -big, -40.0, 40.0, big, np.inf, np.nan], dtype=dtype)
    want = {
        gg.erf: [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, np.nan],
        gg.erfc: [2.0, 2.0, 2.0, 0.0, 0.0, 0.0, np.nan],
        gg.normal_cdf: [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, np.nan],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for build, values in want.items():
            got = forward_of(build, x)
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, np.array(values, dtype=dtype))


def test_erfc_keeps_its_relative_accuracy_in_the_tail():
    x = np.concatenate([np.linspace(-8.0, 27.0, 20001), np.geomspace(1e-300, 1.5, 500)])
    got = forward_of(gg.erfc, x)
    want = np.array([math.erfc(v) for v in x])
    far = (x >= 1.5) | (x <= 0)  # 0 < x < 1.5 computes 1 - erf(x): a few bits are lost
    np.testing.assert_allclose(got[far], want[far], rtol=1e-15, atol=1e-300)  # subnormals
    np.testing.assert_allclose(got[~far], want[~far], rtol=1e-14)


@pytest.mark.parametrize("op", ["erf", "erfc"])
def test_float32_erf_and_erfc_are_float32_accurate(op):
    """The float32 path (float32 series, shorter fraction) is within 4 float32 ulps."""
    x = np.concatenate([np.linspace(-9.0, 9.0, 40001), np.geomspace(1e-30, 8.0, 2000)])
    x = np.concatenate([x, -x]).astype(np.float32)
    got = forward_of(getattr(gg, op), x)
    assert got.dtype == np.float32
    want = np.array([getattr(math, op)(float(v)) for v in x])
    normal = np.abs(want) >= np.finfo(np.float32).tiny  # float32 subnormals lose bits
    ulps = np.abs(got[normal] - want[normal]) / np.spacing(np.abs(want[normal]).astype(np.float32))
    assert np.max(ulps) <= 4


@pytest.mark.parametrize("op", ["normal_cdf", "gelu"])
def test_float32_normal_cdf_and_gelu_are_float32_accurate(op):
    """float32 arrays are computed in float64 and rounded once: within 1 float32 ulp of
    Phi and of x * Phi (measured 0.6), in both tails and across the switch to erfc."""
    x = np.concatenate([np.linspace(-9.0, 9.0, 80001), np.geomspace(1e-30, 8.0, 4000)])
    edge = np.float32(1.5 * math.sqrt(2.0))  # where the polynomial hands over to erfc
    x = np.concatenate([x, -x]).astype(np.float32)
    x = np.concatenate([x, [edge, -edge, np.nextafter(edge, 0), -np.nextafter(edge, 0)]])
    got = forward_of(getattr(gg, op), x)
    assert got.dtype == np.float32
    phi = np.array([0.5 * math.erfc(-float(v) / math.sqrt(2.0)) for v in x])
    want = phi * x.astype(np.float64) if op == "gelu" else phi
    normal = np.abs(want) >= np.finfo(np.float32).tiny
    ulps = np.abs(got[normal] - want[normal]) / np.spacing(np.abs(want[normal]).astype(np.float32))
    assert np.max(ulps) <= 1


def test_gelu_exact_is_x_times_the_normal_cdf_also_in_the_negative_tail():
    x = np.linspace(-12.0, 6.0, 361)
    want = np.array([v * 0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x])
    np.testing.assert_allclose(forward_of(gg.gelu, x), want, rtol=5e-14)


def test_float32_inputs_keep_float32_results():
    x = np.linspace(-3.0, 3.0, 12, dtype=np.float32).reshape(3, 4)
    for build in (
        gg.erf,
        gg.erfc,
        gg.gelu,
        lambda x: gg.gelu(x, approximate="tanh"),
        gg.softplus,
        gg.elu,
        gg.leaky_relu,
        lambda x: gg.log1p(gg.abs(x)),
        lambda x: gg.logsumexp(x, axis=1),
        lambda x: gg.var(x, axis=0),
        lambda x: gg.prod(x, axis=0),
        lambda x: gg.clip(x, -1.0, 1.0),
        lambda x: gg.pad(x, 1, constant_values=2.5),
        lambda x: gg.einsum("ij,kj->ik", x, x),
    ):
        assert forward_of(build, x).dtype == np.float32


def test_float32_cotangents_give_float32_gradients():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    i = np.array([[0, 3], [1, 1], [2, 0]])
    builds = {
        "gelu": gg.gelu,
        "elu": gg.elu,
        "erfc": gg.erfc,
        "prod": lambda t: gg.prod(t, axis=1),
        "std": lambda t: gg.std(t, axis=0),
        "logsumexp": lambda t: gg.logsumexp(t, axis=-1),
        "maximum": lambda t: gg.maximum(t, t[0]),
        "einsum": lambda t: gg.einsum("ii->i", t[:, :3]),
        "take_along_axis": lambda t: gg.take_along_axis(t, t.graph.const(i.tolist()), 1),
        "cumsum": lambda t: gg.cumsum(t, axis=0),
    }
    for name, build in builds.items():
        g = gg.Graph(name)
        out = build(g.param("x", (3, 4), "float32"))
        g.output(out)
        u = np.ones(out.shape, np.float32)
        _, grads = gg.compile(g).vjp(x=x, cotangent=u)
        assert grads["x"].dtype == np.float32, name


# ---- reductions --------------------------------------------------------------------------


def test_logsumexp_is_stable_for_large_and_minus_infinite_inputs():
    x = np.array([[1000.0, 1000.0], [-np.inf, -np.inf], [-1000.0, 0.0]])
    got = forward_of(lambda x: gg.logsumexp(x, axis=-1), x)
    np.testing.assert_allclose(got, [1000.0 + math.log(2.0), -np.inf, 0.0])


def test_logsumexp_gradient_is_the_softmax():
    x = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 700.0]])
    d = grads_of(lambda x: gg.logsumexp(x, axis=1), x=x)["x"]
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(d, e / e.sum(axis=1, keepdims=True), rtol=1e-15)


def test_var_and_std_with_ddof_match_numpy():
    x = np.random.default_rng(1).standard_normal((3, 5))
    np.testing.assert_allclose(forward_of(lambda x: gg.var(x, axis=1, ddof=1), x), x.var(1, ddof=1))
    np.testing.assert_allclose(forward_of(lambda x: gg.std(x, ddof=1), x), x.std(ddof=1))


def test_argmax_and_argmin_return_int64_positions():
    x = np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]])
    got = forward_of(lambda x: gg.argmax(x, axis=1), x)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [1, 0])
    assert forward_of(lambda x: gg.argmin(x), x) == 4
    assert forward_of(lambda x: gg.argmin(x, axis=0, keepdims=True), x).shape == (1, 3)


def test_argmax_stops_the_gradient():
    g = gg.Graph("t")
    x = g.param("x", (3,))
    g.output(gg.sum(x * gg.astype(gg.argmax(x), "float64")))
    _, grads = gg.compile(g).value_and_grad(x=np.array([1.0, 3.0, 2.0]))
    np.testing.assert_array_equal(grads["x"], [1.0, 1.0, 1.0])


def test_stop_gradient_passes_the_value_and_blocks_the_cotangent():
    x = np.array([1.0, -2.0, 3.0])
    g = gg.Graph("t")
    p = g.param("x", (3,))
    g.output(gg.sum(p * gg.stop_gradient(p)))
    value, grads = gg.compile(g).value_and_grad(x=x)
    assert value == np.sum(x * x)
    np.testing.assert_array_equal(grads["x"], x)  # not 2 * x


def test_floor_of_an_integer_tensor_is_the_tensor():
    x = np.array([-2, 0, 3])
    got = forward_of(gg.floor, x)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, x)


# ---- gathers and slicing ----------------------------------------------------------------------


def test_take_accumulates_the_gradient_of_repeated_indices():
    g = gg.Graph("t")
    p, i = g.param("x", (4,)), g.input("i", (4,), "int64")
    g.output(gg.sum(gg.take(p, i) * g.const([1.0, 10.0, 100.0, 1000.0])))
    _, grads = gg.compile(g).value_and_grad(x=np.arange(4.0), i=np.array([0, 2, 0, 0]))
    np.testing.assert_array_equal(grads["x"], [1101.0, 0.0, 10.0, 0.0])


def test_take_along_axis_accumulates_repeated_indices():
    x = np.arange(6.0).reshape(2, 3)
    idx = np.array([[2, 2, 0, 2], [1, 1, 1, 1]])
    g = gg.Graph("t")
    p, i = g.param("x", (2, 3)), g.input("i", (2, 4), "int64")
    g.output(gg.sum(gg.take_along_axis(p, i, axis=1)))
    _, grads = gg.compile(g).value_and_grad(x=x, i=idx)
    np.testing.assert_array_equal(grads["x"], [[1.0, 0.0, 3.0], [0.0, 4.0, 0.0]])


def test_slicing_with_negative_steps_none_and_ellipsis_matches_numpy():
    x = np.arange(60.0).reshape(3, 4, 5)
    got = forward_of(lambda t: t[::-2, None, ..., 3:0:-2], x)
    np.testing.assert_array_equal(got, x[::-2, None, ..., 3:0:-2])
    assert forward_of(lambda t: t[-1, ..., 2], x).tolist() == x[-1, ..., 2].tolist()


def test_slicing_gradient_scatters_into_the_sliced_positions():
    x = np.arange(12.0).reshape(3, 4)
    d = grads_of(lambda t: t[::-2, None, 1::2] * t[::-2, None, 1::2], x=x)["x"]
    want = np.zeros_like(x)
    want[::-2, 1::2] = 2 * x[::-2, 1::2]
    np.testing.assert_array_equal(d, want)


@st.composite
def basic_indices(draw):
    """(shape, index): ints, slices with any step, None and Ellipsis, as NumPy takes them."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    k = draw(st.integers(0, len(shape)))
    ellipsis = draw(st.booleans())
    items = [Ellipsis] if ellipsis else []
    bound = st.none() | st.integers(-5, 5)
    for d in shape[len(shape) - k :] if ellipsis else shape[:k]:
        if draw(st.booleans()):
            items.append(draw(st.integers(-d, d - 1)))
        else:
            step = draw(st.sampled_from([None, 1, 2, -1, -2, -3]))
            items.append(slice(draw(bound), draw(bound), step))
        if draw(st.integers(0, 3)) == 0:
            items.append(None)
    return shape, tuple(items)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(basic_indices())
def test_basic_indexing_value_and_vjp_match_numpy(case):
    shape, index = case
    x = np.arange(float(np.prod(shape))).reshape(shape)
    g = gg.Graph("t")
    p = g.param("x", shape)
    g.output(p[index])
    model = gg.compile(g)
    want = x[index]
    np.testing.assert_array_equal(model.forward(x), want)
    u = np.arange(1.0, want.size + 1.0).reshape(want.shape)
    _, grads = model.vjp(x=x, cotangent=u)
    expected = np.zeros(shape)
    expected[index] = u
    np.testing.assert_array_equal(grads["x"], expected)


def test_slice_index_is_json_data_and_survives_a_node_link_round_trip():
    g = gg.Graph("t")
    x = g.input("x", (4, 5))
    g.output(x[1:, None, ..., ::-2])
    data = json.loads(json.dumps(nx.node_link_data(g.nx, edges="edges")))
    again = nx.node_link_graph(data, directed=True, multigraph=True, edges="edges")
    a = np.arange(20.0).reshape(4, 5)
    np.testing.assert_array_equal(gg.compile(again).forward(a), a[1:, None, ..., ::-2])


def test_advanced_indexing_is_refused_with_a_pointer_to_take():
    g = gg.Graph("t")
    x = g.input("x", (4,))
    with pytest.raises(GraphError, match="gg.take"):
        x[[0, 1]]


def test_out_of_range_index_is_a_shape_error():
    g = gg.Graph("t")
    x = g.input("x", (4, 3))
    with pytest.raises(ShapeError, match="out of bounds"):
        x[:, 3]


# ---- einsum ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subscripts", "shapes"),
    [
        ("ii->i", [(3, 3)]),
        ("ii", [(4, 4)]),
        ("bii,bj->bij", [(2, 3, 3), (2, 4)]),
        ("...ij,...jk->...ik", [(2, 1, 2, 3), (4, 3, 2)]),
        ("i...j,j->i...", [(2, 1, 3), (3,)]),
        ("ij,jk", [(2, 3), (3, 4)]),
        ("Ba,aC", [(2, 3), (3, 4)]),
    ],
)
def test_einsum_forms_match_numpy_and_finite_differences(subscripts, shapes):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(s) for s in shapes]
    g = gg.Graph("t")
    leaves = [g.param(f"a{i}", s) for i, s in enumerate(shapes)]
    g.output(gg.einsum(subscripts, *leaves))
    model = gg.compile(g)
    np.testing.assert_allclose(model.forward(*arrays), np.einsum(subscripts, *arrays), rtol=1e-14)
    assert gg.gradcheck(model, {f"a{i}": a for i, a in enumerate(arrays)}).ok


def test_einsum_implicit_output_is_stored_explicitly_in_numpys_order():
    g = gg.Graph("t")
    a, b = g.input("a", (2, 3)), g.input("b", (3, 4))
    assert g.nx.nodes[gg.einsum("ij,jk", a, b).id]["attrs"]["subscripts"] == "ij,jk->ik"
    assert g.nx.nodes[gg.einsum("ba", a).id]["attrs"]["subscripts"] == "ba->ab"
    assert g.nx.nodes[gg.einsum("b...a", a).id]["attrs"]["subscripts"] == "b...a->...ab"


def test_einsum_diagonal_gradient_lands_on_the_diagonal():
    x = np.arange(9.0).reshape(3, 3)
    d = grads_of(lambda t: gg.einsum("ii->i", t) * t.graph.const([1.0, 2.0, 3.0]), x=x)["x"]
    np.testing.assert_array_equal(d, np.diag([1.0, 2.0, 3.0]))


def test_einsum_rejects_code_in_subscripts():
    g = gg.Graph("t")
    a = g.input("a", (2,))
    with pytest.raises(AttrError):
        gg.einsum('i"); import os; ("->i', a)


def test_variadic_ops_need_at_least_one_operand_in_the_ir():
    g = nx.MultiDiGraph(name="t", outputs=["c"])
    g.add_node("c", op="concatenate", attrs={"axis": 0})
    with pytest.raises(OpError, match="1 or more"):
        gg.compile(g)


def test_concatenate_and_stack_take_a_sequence_like_numpy():
    a, b = np.ones((2, 3)), np.zeros((1, 3))
    got = forward_of(lambda x, y: gg.concatenate([x, y]), a, b)
    np.testing.assert_array_equal(got, np.concatenate([a, b]))
    got = forward_of(lambda x, y: gg.stack((x, x * 2.0), axis=-1), a, b)
    np.testing.assert_array_equal(got, np.stack((a, a * 2.0), axis=-1))
    with pytest.raises(TypeError, match="sequence"):
        forward_of(lambda x, y: gg.concatenate(x), a, b)
