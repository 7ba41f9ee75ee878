"""Neural-network ops beyond their registry cases: optional operands, float32, numerical
edge cases, error messages and the generated code."""

from __future__ import annotations

import inspect
import json
import re

import networkx as nx
import numpy as np
import pytest
from graphs import KERNEL_LOOPS, loop_lines
from test_ops import build_case

import graphgen as gg
from graphgen.check import sample
from graphgen.ops import REGISTRY

NN_MODULES = ("nn", "nn_conv", "nn_pool", "nn_norm", "nn_embedding", "nn_attention")
NN_OPS = sorted(
    n for n, op in REGISTRY.items() if op.infer.__module__.rsplit(".", 1)[-1] in NN_MODULES
)

# ---- optional operands ---------------------------------------------------------------------


def test_builder_signatures_show_optional_operands_and_defaults():
    sig = inspect.signature(gg.conv2d)
    assert str(sig) == (
        "(x, w, /, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1, *, name=None)"
    )
    assert str(inspect.signature(gg.layer_norm)) == (
        "(x, /, weight=None, bias=None, axis=-1, eps=1e-05, *, name=None)"
    )
    assert "mask=None, causal=False" in str(inspect.signature(gg.scaled_dot_product_attention))


def test_an_absent_optional_operand_leaves_a_gap_in_the_edge_positions():
    g = gg.Graph("ln")
    x, b = g.input("x", (3, 4)), g.param("b", (4,))
    y = gg.layer_norm(x, bias=b, name="y")
    assert sorted(a for _, _, a in g.nx.in_edges("y", data="arg")) == [0, 2]
    g.output(gg.sum(y * y))
    model = gg.compile(g)
    assert "_normalize(x, None, b, axis=-1, eps=1e-05)" in model.source
    rng = np.random.default_rng(0)
    assert gg.gradcheck(model, {"x": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}).ok


def test_graphs_with_optional_operands_survive_node_link_json():
    g = gg.Graph("conv")
    x, w = g.input("x", ("batch", 2, 5, 5)), g.param("w", (3, 2, 3, 3))
    g.output(gg.sum(gg.conv2d(x, w, padding=1)))
    data = json.loads(json.dumps(nx.node_link_data(g.nx, edges="edges")))
    graph = nx.node_link_graph(data, directed=True, multigraph=True, edges="edges")
    source = gg.generate(graph)
    assert source == gg.generate(g)
    assert "_conv2d(x, w, padding=(1, 1), scratch=scratch)" in source


def _conv_nx(positions):
    graph = nx.MultiDiGraph(name="bad", outputs=["y"])
    graph.add_node("x", op="input", shape=(1, 2, 4, 4), dtype="float64")
    graph.add_node("w", op="param", shape=(3, 2, 3, 3), dtype="float64")
    graph.add_node("y", op="conv2d", attrs={})
    for node, arg in positions:
        graph.add_edge(node, "y", arg=arg)
    return graph


def test_a_missing_required_operand_or_a_repeated_position_is_an_op_error():
    with pytest.raises(gg.OpError, match=r"node 'y' \(op conv2d\) takes 3 operand\(s\)"):
        gg.generate(_conv_nx([("x", 0), ("w", 2)]))
    with pytest.raises(gg.OpError, match=r"argument positions \[0, 1, 1\]"):
        gg.generate(_conv_nx([("x", 0), ("w", 1), ("w", 1)]))
    assert "def forward" in gg.generate(_conv_nx([("x", 0), ("w", 1)]))


def test_none_for_a_required_operand_is_a_graph_error():
    g = gg.Graph()
    x = g.input("x", (1, 1, 3, 3))
    with pytest.raises(gg.GraphError, match="operand 1 is missing"):
        gg.conv2d(x, None)


# ---- float32 in, float32 out ---------------------------------------------------------------


def _as_float32(g: gg.Graph) -> gg.Graph:
    for _, data in g.nx.nodes(data=True):
        if data["op"] in ("input", "param") and data["dtype"] == "float64":
            data["dtype"] = "float32"
    return g


@pytest.mark.parametrize("name", NN_OPS)
def test_nn_ops_keep_float32(name):
    """Every case of every nn op, built in float32: value and gradients stay float32."""
    for index in range(len(REGISTRY[name].tests)):
        g, out, inputs = build_case(name, index, np.random.default_rng(0))
        graph = gg.ir.validate(_as_float32(g))  # re-infer the dtypes
        inputs = {
            n: v.astype(np.float32) if v.dtype == np.float64 else v for n, v in inputs.items()
        }
        floats = [n for n, v in inputs.items() if v.dtype == np.float32]
        spec = graph.nodes[out.id]
        wrt = floats if REGISTRY[name].vjp and spec["dtype"] == "float32" else []
        model = gg.compile(graph, wrt=wrt)
        value = model.forward(**inputs)
        assert np.asarray(value).dtype == np.dtype(spec["dtype"]), (name, index)
        if wrt:
            u = np.ones(np.shape(value), np.float32)
            _, grads = model.vjp(**inputs, cotangent=u)
            assert {n: g.dtype for n, g in grads.items()} == dict.fromkeys(wrt, np.float32)


# ---- numerical edge cases ------------------------------------------------------------------


def _compile_one(build, *specs, wrt=None):
    g = gg.Graph("one")
    leaves = [g.input(f"a{i}", s, d) for i, (s, d) in enumerate(specs)]
    g.output(build(*leaves))
    return gg.compile(g, wrt=wrt)


def test_binary_cross_entropy_with_logits_is_stable_for_huge_logits():
    logits = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    targets = np.array([0.0, 1.0, 0.5, 0.0, 1.0])
    model = _compile_one(
        lambda x, t: gg.binary_cross_entropy_with_logits(x, t, "none"),
        ((5,), "float64"),
        ((5,), "float64"),
        wrt=["a0", "a1"],
    )
    value, grads = model.vjp(a0=logits, a1=targets, cotangent=np.ones(5))
    np.testing.assert_allclose(value, [0.0, 40.0, np.log(2), 40.0, 0.0], atol=1e-15)
    np.testing.assert_allclose(grads["a0"], [0.0, -1.0, 0.0, 1.0, 0.0], atol=1e-15)
    np.testing.assert_array_equal(grads["a1"], -logits)


def test_attention_with_a_fully_masked_row_gives_zeros_like_pytorch():
    import torch  # the oracle extra: installed wherever the suite runs in CI

    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal(s) for s in ((3, 2), (4, 2), (4, 5)))
    mask = np.array([[True, False, True, False], [False] * 4, [True] * 4])
    model = _compile_one(
        gg.scaled_dot_product_attention,
        ((3, 2), "float64"),
        ((4, 2), "float64"),
        ((4, 5), "float64"),
        ((3, 4), "bool"),
        wrt=["a0", "a1", "a2"],
    )
    u = rng.standard_normal((3, 5))
    value, grads = model.vjp(a0=q, a1=k, a2=v, a3=mask, cotangent=u)
    assert np.all(value[1] == 0) and np.all(grads["a0"][1] == 0)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=torch.tensor(mask))
    out.backward(torch.tensor(u))
    np.testing.assert_allclose(value, out.detach().numpy(), rtol=1e-12, atol=1e-15)
    for name, t in zip(("a0", "a1", "a2"), (tq, tk, tv)):
        np.testing.assert_allclose(grads[name], t.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_attention_scores_never_overflow():
    q = np.array([[300.0, 0.0], [0.0, -300.0]])
    model = _compile_one(
        lambda a, b: gg.attention_weights(a, b, causal=True),
        ((2, 2), "float64"),
        ((2, 2), "float64"),
    )
    p = model.forward(a0=q, a1=q)
    np.testing.assert_allclose(p, [[1.0, 0.0], [0.0, 1.0]])


def test_max_pool_sends_the_gradient_to_the_first_of_tied_maxima():
    model = _compile_one(lambda x: gg.max_pool2d(x, 2), ((1, 1, 2, 2), "float64"), wrt=["a0"])
    _, grads = model.vjp(a0=np.ones((1, 1, 2, 2)), cotangent=np.full((1, 1, 1, 1), 3.0))
    np.testing.assert_array_equal(grads["a0"], [[[[3.0, 0.0], [0.0, 0.0]]]])


@pytest.mark.parametrize(
    ("shape", "ties"), [((2, 3, 6, 6), True), ((2, 3, 7, 5), True), ((2, 3, 6, 8), False)]
)
def test_non_overlapping_max_pool_gradient_matches_the_general_windows(shape, ties, rng):
    """stride == kernel without padding takes strided views (the fast path): each window's
    g goes to its first max in row-major order (np.argmax), with many ties (rounded
    inputs), without any (whole rows at once), and with leftover rows and columns (7 x 5)
    that get no gradient."""
    x = rng.standard_normal(shape)
    x = np.round(x, 0) if ties else x
    g = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2))
    fast = _compile_one(lambda t: gg.max_pool2d(t, 2), (shape, "float64"), wrt=["a0"])
    _, got = fast.vjp(a0=x, cotangent=g)
    want = np.zeros(shape)
    for n, c, r, q in np.ndindex(g.shape):  # the first max of each window, row-major
        window = x[n, c, 2 * r : 2 * r + 2, 2 * q : 2 * q + 2]
        i, j = np.unravel_index(np.argmax(window), (2, 2))
        want[n, c, 2 * r + i, 2 * q + j] += g[n, c, r, q]
    np.testing.assert_array_equal(got["a0"], want)
    assert "_tiled_max_pool2d_grad(x, g, kernel_size, pooled, out)" in fast.source


@pytest.mark.parametrize("odd_windows", [("tie",), ("nan",), ("tie", "nan")])
def test_tied_or_nan_windows_among_distinct_maxima_keep_the_first_tap_rule(odd_windows, rng):
    """Distinct maxima take the whole-row path; a window with two equal maxima or a nan
    sends it back to the tap-by-tap rule (g to the first max, or to the last nan: PyTorch's
    choices), also when the tie's extra hit and the nan's missing one would balance out."""
    x = rng.standard_normal((1, 2, 4, 6))
    if "tie" in odd_windows:
        x[0, 1, 2:4, 2:4] = [[0.5, 3.0], [1.0, 3.0]]
    if "nan" in odd_windows:
        x[0, 0, 0, 0] = np.nan
    g = rng.standard_normal((1, 2, 2, 3))
    model = _compile_one(lambda t: gg.max_pool2d(t, 2), (x.shape, "float64"), wrt=["a0"])
    _, got = model.vjp(a0=x, cotangent=g)
    want = np.zeros(x.shape)
    for n, c, r, q in np.ndindex(g.shape):
        window = x[n, c, 2 * r : 2 * r + 2, 2 * q : 2 * q + 2]
        nans = np.flatnonzero(np.isnan(window))
        tap = nans[-1] if nans.size else np.argmax(window)
        i, j = np.unravel_index(tap, (2, 2))
        want[n, c, 2 * r + i, 2 * q + j] = g[n, c, r, q]
    np.testing.assert_array_equal(got["a0"], want)
    if "tie" in odd_windows:
        assert got["a0"][0, 1, 2, 3] == g[0, 1, 1, 1] and got["a0"][0, 1, 3, 3] == 0.0


@pytest.mark.parametrize(
    ("shape", "attrs"),
    [((2, 3, 6, 6), {}), ((2, 3, 7, 5), {}), ((1, 2, 7, 5), {"stride": 1, "padding": 1})],
)
def test_max_pool_gradient_given_the_pooled_output_is_the_same(shape, attrs, rng):
    """max_pool2d's VJP hands its output y to max_pool2d_grad, which then compares the taps
    with it instead of taking the maxima again: the same bits as without y, with ties and
    a nan window."""
    x = np.round(rng.standard_normal(shape), 0)  # many ties
    x[0, 0, 0, 0] = np.nan
    pooled = _compile_one(lambda t: gg.max_pool2d(t, 2, **attrs), (shape, "float64"), wrt=["a0"])
    y = pooled.forward(x)
    g = rng.standard_normal(y.shape)
    specs = ((shape, "float64"), (y.shape, "float64"), (y.shape, "float64"))
    with_y = _compile_one(lambda a, b, c: gg.max_pool2d_grad(a, b, c, 2, **attrs), *specs)
    without = _compile_one(
        lambda a, b: gg.max_pool2d_grad(a, b, kernel_size=2, **attrs), *specs[:2]
    )
    np.testing.assert_array_equal(with_y.forward(x, g, y), without.forward(x, g))
    assert re.search(r"_max_pool2d_grad\(\s*a0, a1, a2, kernel_size", with_y.source)
    _, grads = pooled.vjp(a0=x, cotangent=g)
    np.testing.assert_array_equal(grads["a0"], with_y.forward(x, g, y))
    assert re.search(r"_max_pool2d_grad\(\s*a0, cotangent, max_pool2d", pooled.source)


def test_max_pool_gradient_refuses_a_y_that_is_not_the_pooled_shape():
    g = gg.Graph("t")
    x, d = g.input("x", (1, 2, 4, 4)), g.input("g", (1, 2, 2, 2))
    with pytest.raises(gg.ShapeError, match=r"y must be max_pool2d\(x\): \(1, 2, 2, 2\)"):
        gg.max_pool2d_grad(x, d, g.input("y", (1, 2, 4, 4)), 2)


def test_embedding_gradient_accumulates_repeated_indices():
    model = _compile_one(gg.embedding, ((5,), "int64"), ((3, 2), "float64"), wrt=["a1"])
    indices = np.array([2, 0, 2, 2, 1])
    g = np.arange(10.0).reshape(5, 2)
    _, grads = model.vjp(a0=indices, a1=np.zeros((3, 2)), cotangent=g)
    expected = np.zeros((3, 2))
    np.add.at(expected, indices, g)
    np.testing.assert_array_equal(grads["a1"], expected)
    np.testing.assert_array_equal(grads["a1"][2], g[0] + g[2] + g[3])


def test_dropout_scales_the_kept_entries():
    model = _compile_one(lambda x, m: gg.dropout(x, m, p=0.75), ((4,), "float32"), ((4,), "bool"))
    out = model.forward(a0=np.ones(4, np.float32), a1=np.array([True, False, True, False]))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [4.0, 0.0, 4.0, 0.0])


def test_sample_keep_domain_has_a_true_in_every_row():
    masks = sample((50, 3, 4), "bool", "keep", np.random.default_rng(0))
    assert masks.dtype == bool and masks.any(axis=-1).all() and not masks.all()


def test_cross_entropy_per_element_keeps_the_labels_leading_dims(rng):
    g = gg.Graph("ce")
    x = g.param("x", (2, 3, 5))
    y = g.input("y", (2, 3), "int64")
    g.output(gg.softmax_cross_entropy(x, y, reduction="none"))
    logits, labels = rng.standard_normal((2, 3, 5)), rng.integers(0, 5, (2, 3))
    got = gg.compile(g).forward(logits, labels)
    z = logits - logits.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    want = -np.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, want, rtol=1e-14)


@pytest.mark.parametrize("label", [5, 7])
def test_cross_entropy_refuses_a_label_beyond_the_classes(label):
    g = gg.Graph("ce")
    g.output(gg.softmax_cross_entropy(g.param("x", (3, 5)), g.input("y", (3,), "int64")))
    with pytest.raises(IndexError, match=f"index {label} is out of bounds"):
        gg.compile(g).forward(np.zeros((3, 5)), np.array([0, label, 1]))


def test_cross_entropy_refuses_a_negative_label():
    """NumPy would count -1 from the end: the loss would use the last class."""
    g = gg.Graph("ce")
    g.output(gg.softmax_cross_entropy(g.param("x", (3, 5)), g.input("y", (3,), "int64")))
    with pytest.raises(IndexError, match=r"labels must be in \[0, 5\), got -1"):
        gg.compile(g).value_and_grad(np.zeros((3, 5)), np.array([0, -1, 1]))


def test_cross_entropy_refuses_labels_that_only_broadcast_to_the_rows():
    g = gg.Graph("ce")
    x, y = g.param("x", (2, 3, 5)), g.input("y", (1, 3), "int64")
    message = r"labels must have the leading dims of logits \(2, 3\), got \(1, 3\)"
    with pytest.raises(gg.ShapeError, match=message):
        gg.softmax_cross_entropy(x, y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("per_row", [False, True])
def test_cross_entropy_gradient_kernel_is_softmax_minus_one_hot_scaled(per_row, dtype, rng):
    """softmax_cross_entropy_grad, called into a dirty planned buffer (a symbolic batch
    gets one) and without one."""
    g = gg.Graph("ce_grad")
    x, y = g.input("x", ("n", 3, 5), dtype), g.input("y", ("n", 3), "int64")
    s = g.input("s", ("n", 3, 1) if per_row else (), dtype)
    d = gg.softmax_cross_entropy_grad(x, y, s)
    g.output(gg.exp(d) + d)  # d read twice: a statement, not an output, so it gets a buffer
    model = gg.compile(g)
    assert "_softmax_cross_entropy_grad(x,y,s,out=_out(" in re.sub(r"\s", "", model.source)
    logits = (rng.standard_normal((2, 3, 5)) * 30).astype(dtype)
    labels = rng.integers(0, 5, (2, 3))
    scale = (rng.standard_normal((2, 3, 1) if per_row else ()) + 2).astype(dtype)
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    softmax = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
    d = (softmax - (labels[..., None] == np.arange(5))) * scale
    want = np.exp(d) + d
    workspace = {}
    for _ in range(3):  # the second and third calls find the buffer dirty
        got = model.forward(logits, labels, scale, workspace=workspace)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == "float32" else 1e-13, atol=1e-6)
    np.testing.assert_array_equal(model.forward(logits, labels, scale), got)


# ---- error messages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda g: gg.conv2d(g.input("x", (1, 3, 5, 5)), g.param("w", (4, 2, 3, 3))),
            r"node 'conv2d_\d+' \(op conv2d\): w \(4, 2, 3, 3\) needs C // groups = 3",
        ),
        (
            lambda g: gg.conv2d(g.input("x", (1, 3, 2, 2)), g.param("w", (4, 3, 3, 3))),
            r"the kernel \(span 3\) is larger than the padded input \(2\)",
        ),
        (
            lambda g: gg.conv2d(g.input("x", (1, 4, 5, 5)), g.param("w", (3, 2, 3, 3)), groups=2),
            r"groups=2 must divide the input channels \(4\) and the output channels \(3\)",
        ),
        (
            lambda g: gg.conv2d(g.input("x", (1, "c", 5, 5)), g.param("w", (3, 2, 3, 3))),
            r"the channel and spatial dims of x must be static ints",
        ),
        (
            lambda g: gg.max_pool2d(g.input("x", (1, 1, 4, 4)), 2, padding=2),
            r"padding \(2, 2\) must be at most half the kernel size \(2, 2\)",
        ),
        (
            lambda g: gg.layer_norm(g.input("x", (2, 5)), g.param("w", (4,))),
            r"weight must have shape \(5,\), got \(4,\)",
        ),
        (
            lambda g: gg.embedding(g.input("i", (3,)), g.param("t", (5, 2))),
            r"indices must be int64, got float64",
        ),
        (
            lambda g: gg.scaled_dot_product_attention(
                g.input("q", (3, 4)), g.input("k", (5, 4)), g.input("v", (6, 2))
            ),
            r"k and v lengths differ: 5 vs 6",
        ),
        (
            lambda g: gg.dropout(g.input("x", (3,)), g.input("m", (3,))),
            r"mask must be bool \(True = keep\), got float64",
        ),
    ],
)
def test_nn_shape_errors_name_the_node_and_the_problem(build, message):
    with pytest.raises(gg.ShapeError, match=message):
        build(gg.Graph())


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: gg.conv2d(x, x, stride=0), r"attribute stride=0: expected values >= 1"),
        (lambda x: gg.conv2d(x, x, padding=(1, 2, 3)), "expected an int or a pair of ints"),
        (lambda x: gg.dropout(x, x, p=1.5), r"expected a probability in \[0, 1\]"),
        (lambda x: gg.layer_norm(x, eps=-1.0), "eps must be >= 0"),
    ],
)
def test_nn_attribute_errors(call, message):
    x = gg.Graph().input("x", (1, 1, 3, 3))
    with pytest.raises(gg.AttrError, match=message):
        call(x)


# ---- generated code ------------------------------------------------------------------------


def test_conv_and_pool_kernels_have_no_loop_over_batch_or_pixels():
    """The only Python loops in the conv/pool kernels run over the kernel positions."""
    g = gg.Graph("cnn")
    x = g.input("x", ("batch", 2, 8, 8))
    w = g.param("w", (3, 2, 3, 3))
    h = gg.avg_pool2d(gg.max_pool2d(gg.conv2d(x, w, stride=2, padding=1), 2), 2, padding=1)
    g.output(gg.sum(h))
    # without the input checks and workspace helpers, which loop over the inputs
    source = gg.generate(g, checks=False, buffers=False)
    assert loop_lines(source) <= KERNEL_LOOPS
    for kernel in ("_conv2d", "_conv2d_weight_grad", "_max_pool2d_grad", "_avg_pool2d_grad"):
        assert source.count(f"def {kernel}(") == 1


def test_cse_tells_optional_operand_positions_apart():
    from graphgen.passes.cse import eliminate_common_subexpressions

    g = gg.Graph("cse")
    x, w = g.input("x", (4,)), g.input("w", (4,))
    with g.tagged(role="backward"):
        scaled = gg.layer_norm(x, weight=w, name="scaled")
        shifted = gg.layer_norm(x, bias=w, name="shifted")
        again = gg.layer_norm(x, weight=w, name="again")
    targets = eliminate_common_subexpressions(g.nx, [scaled.id, shifted.id, again.id])
    assert targets == ["scaled", "shifted", "scaled"]
