"""The performance-minded emission keeps gradients exact: each rewrite's output is checked
against finite differences or an independent formula, and against the code it replaced."""

import itertools
import math
import re

import numpy as np
import pytest
from test_pipeline import function_source

import graphgen as gg


def batched_dense(batch_dims) -> gg.Graph:
    g = gg.Graph("dense")
    x = g.input("x", (*batch_dims, 4))
    W = g.param("W", (4, 3))
    g.output(gg.sum(gg.tanh(x @ W)))
    return g


@pytest.mark.parametrize("batch_dims", [(2, 5), ("batch", 5), (2, "seq"), ("batch", "seq")])
def test_a_weight_shared_across_batch_axes_gets_its_gradient_from_one_product(batch_dims, rng):
    model = gg.compile(batched_dense(batch_dims))
    body = function_source(model.source, "value_and_grad")
    assert "@ d_" not in body.replace("d_W = ", "")  # only d_W's statement is a product
    assert "axis=0" not in body  # no batched product summed afterwards
    x = rng.standard_normal((2, 5, 4))
    W = rng.standard_normal((4, 3))
    assert gg.gradcheck(model, {"x": x, "W": W}).ok
    want = np.einsum("bti,btj->ij", x, 1 - np.tanh(x @ W) ** 2)
    np.testing.assert_allclose(model.value_and_grad(x, W)[1]["W"], want, rtol=1e-13)


@pytest.mark.parametrize("op", ["gelu", "erf", "erfc", "normal_cdf"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_blockwise_kernels_cover_every_element_of_a_large_array(op, dtype):
    """The erf family runs in blocks of 16384 elements: sizes around the block edge and
    several blocks give the same values as a reference formula, element by element. The
    values are shuffled, so that elements beyond the float64 polynomial's range (recomputed
    after the blocks) sit in every block."""
    exact = {
        "erf": math.erf,
        "erfc": math.erfc,
        "gelu": lambda v: v * 0.5 * math.erfc(-v / math.sqrt(2.0)),
        "normal_cdf": lambda v: 0.5 * math.erfc(-v / math.sqrt(2.0)),
    }[op]
    for n in (16383, 16384, 16385, 3 * 16384 + 7):
        x = np.random.default_rng(n).permutation(np.linspace(-7.0, 7.0, n).astype(dtype))
        x = x.reshape(-1, 1)
        g = gg.Graph("big")
        g.output(getattr(gg, op)(g.input("x", ("n", 1), dtype)))
        got = gg.compile(g).forward(x)
        assert got.dtype == dtype and got.shape == x.shape
        want = np.array([exact(float(v)) for v in x.ravel()]).reshape(x.shape)
        tol = 1e-6 if dtype == "float32" else 1e-13
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 1e-3)


@pytest.mark.parametrize("op", ["gelu", "erf", "erfc", "normal_cdf"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_blockwise_kernels_may_write_over_their_input(op, dtype):
    """out=x: the elements beyond the polynomial's range are read before the blocks
    overwrite x (they were read after, and came out as the polynomial at the clip)."""
    g = gg.Graph("in_place")
    g.output(getattr(gg, op)(g.input("x", ("n",), dtype)))
    kernels = {}
    exec(gg.compile(g).source, kernels)
    kernel = kernels[{"normal_cdf": "_normal_cdf"}.get(op, f"_{op}")]
    x = np.random.default_rng(3).permutation(np.linspace(-7.0, 7.0, 3 * 16384 + 5)).astype(dtype)
    want = kernel(x)
    got = kernel(x, out=x)
    assert got is x or np.shares_memory(got, x)
    np.testing.assert_array_equal(got, want)


def test_gelu_backward_reuses_the_forward_normal_cdf(rng):
    """gelu is differentiated as x * Phi(x): value_and_grad evaluates Phi (the costly
    erfc) once, and the lowered node keeps its name and its place as an output."""
    g = gg.Graph("ffn")
    x = g.input("x", ("batch", 6))
    W = g.param("W", (6, 5))
    f = gg.gelu(x @ W, name="f")
    g.output(gg.sum(f * f, name="loss"), f)
    model = gg.compile(g)
    body = function_source(model.source, "value_and_grad")
    assert body.count("_normal_cdf(") == 1 and "_erfc(" not in body and "_gelu(" not in body
    assert "f = " in body and model.outputs == ("loss", "f")
    x0, W0 = rng.standard_normal((4, 6)), rng.standard_normal((6, 5))
    (loss, f0), _ = model.value_and_grad(x0, W0)
    np.testing.assert_array_equal(f0, model.forward(x0, W0)[1])
    assert gg.gradcheck(model, {"x": x0, "W": W0}).ok


@pytest.mark.parametrize("batch_dims", [(2, 5), ("batch", 5), (2, "seq")])
def test_a_stack_times_a_matrix_is_one_gemm_over_all_rows(batch_dims, rng):
    """x (..., 4) @ W (4, 3) is emitted as _matmul_rows (NumPy would run one GEMM per matrix
    of the stack), forward and backward, with and without a workspace."""
    model = gg.compile(batched_dense(batch_dims))
    body = function_source(model.source, "value_and_grad")
    assert "_matmul_rows(x, W" in body and "x @ W" not in body
    x = rng.standard_normal((2, 5, 4))
    W = rng.standard_normal((4, 3))
    np.testing.assert_allclose(model.forward(x, W), np.sum(np.tanh(x @ W)), rtol=1e-14)
    assert gg.gradcheck(model, {"x": x, "W": W}).ok
    plain = model.value_and_grad(x, W)
    workspace = {}
    for _ in range(2):
        kept = model.value_and_grad(x, W, workspace=workspace)
        np.testing.assert_array_equal(kept[1]["W"], plain[1]["W"])


@pytest.mark.parametrize("x_shape", [(0, 3, 4), (2, 3, 0), (2, 0, 4)])
def test_a_stack_times_a_matrix_with_an_empty_axis_gives_zeros_of_the_right_shape(x_shape):
    g = gg.Graph("empty")
    x = g.input("x", x_shape)
    g.output(x @ g.param("W", (x_shape[-1], 5)))
    got = gg.compile(g).forward(np.ones(x_shape), np.ones((x_shape[-1], 5)))
    np.testing.assert_array_equal(got, np.zeros(x_shape[:-1] + (5,)))


def where_graph(cond_shape, x_shape, dtype, zero_first=False, zero=0.0) -> gg.Graph:
    g = gg.Graph("w")
    c = g.input("c", cond_shape, dtype)
    x = g.input("x", x_shape, dtype)
    chosen = c > 0.0
    g.output(gg.where(chosen, zero, x) if zero_first else gg.where(chosen, x, zero))
    return g


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("zero_first", [False, True])
def test_where_with_a_zero_branch_masks_bits_and_matches_np_where_exactly(dtype, zero_first):
    """where(c, x, 0.0) (relu's backward) clears x's bits instead of branching on each
    element; inf, nan, -0.0 and subnormal values come out as np.where gives them."""
    rng = np.random.default_rng(7)
    c = rng.standard_normal((6, 50)).astype(dtype)
    c[0, :4] = [np.nan, 0.0, -0.0, np.inf]
    x = rng.standard_normal((6, 50)).astype(dtype)
    x[1, :5] = [np.nan, np.inf, -np.inf, -0.0, np.finfo(dtype).smallest_subnormal]
    x[1, 5:10] = x[1, :5]
    c[1, :5], c[1, 5:10] = 1.0, -1.0
    model = gg.compile(where_graph((6, 50), (6, 50), dtype, zero_first))
    assert "_where_zero(" in model.source and "np.where(" not in function_source(
        model.source, "forward"
    )
    got = model.forward(c, x)
    want = np.where(c > 0.0, 0.0, x) if zero_first else np.where(c > 0.0, x, 0.0)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want.astype(dtype))
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def test_where_with_a_zero_branch_broadcasts_the_kept_operand():
    c = np.array([[1.0, -1.0, 2.0], [-3.0, 4.0, 0.0]])
    x = np.array([5.0, -6.0, 7.0])
    got = gg.compile(where_graph((2, 3), (3,), "float64")).forward(c, x)
    np.testing.assert_array_equal(got, np.where(c > 0.0, x, 0.0))


def test_where_with_negative_zero_keeps_np_where():
    """+0.0 is what clearing bits gives; a -0.0 branch must stay -0.0."""
    model = gg.compile(where_graph((4,), (4,), "float64", zero=-0.0))
    assert "_where_zero(" not in model.source
    got = model.forward(np.array([1.0, -1.0, 1.0, -1.0]), np.arange(4.0))
    assert list(np.signbit(got)) == [False, True, False, True]


def test_relu_backward_overwrites_its_cotangent_by_masking_bits(rng):
    g = gg.Graph("mlp")
    x = g.input("x", ("batch", 40))
    W = g.param("W", (40, 40))
    g.output(gg.sum(gg.relu(x @ W) * x))
    model = gg.compile(g)
    body = function_source(model.source, "value_and_grad")
    assert "_where_zero(" in body and "np.copyto" not in body
    x0, W0 = rng.standard_normal((64, 40)), rng.standard_normal((40, 40))
    assert gg.gradcheck(model, {"x": x0, "W": W0}).ok
    want = x0.T @ np.where(x0 @ W0 > 0, x0, 0.0)
    np.testing.assert_allclose(model.value_and_grad(x0, W0)[1]["W"], want, rtol=1e-13)


def direct_conv2d(x, w, padding):
    """Cross-correlation by its definition, a sum over kernel taps (float64 reference)."""
    (ph, pw), (kh, kw) = padding, w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho, wo = xp.shape[2] - kh + 1, xp.shape[3] - kw + 1
    out = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,oc->nohw", xp[:, :, i : i + ho, j : j + wo], w[:, :, i, j])
    return out


def two_convs_sharing_a_padded_shape() -> gg.Graph:
    """Two short-row convolutions whose padded inputs have the same shape, (2, 3, 9, 8),
    with different paddings: their shared workspace buffer must get its zero border back."""
    g = gg.Graph("two_convs")
    a = g.input("a", (2, 3, 6, 6))
    b = g.input("b", (2, 3, 8, 8))
    w = g.param("w", (4, 3, 3, 3))
    ya = gg.conv2d(a, w, padding=1, name="ya")
    yb = gg.conv2d(b, w, name="yb")
    g.output(gg.sum(ya * ya) + gg.sum(yb * yb))
    return g


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_short_row_convolutions_run_on_padded_rows_and_match_the_direct_sum(dtype):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((2, 3, 6, 6)).astype(dtype)
    b = rng.standard_normal((2, 3, 8, 8)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    g = two_convs_sharing_a_padded_shape()
    model = gg.compile(g)
    assert "_row_windows(" in model.source
    ya = direct_conv2d(a.astype(float), w.astype(float), (1, 1))
    yb = direct_conv2d(b.astype(float), w.astype(float), (0, 0))
    want = np.sum(ya * ya) + np.sum(yb * yb)
    plain = model.value_and_grad(a, b, w)
    np.testing.assert_allclose(plain[0], want, rtol=1e-5 if dtype == "float32" else 1e-12)
    workspace = {}
    for _ in range(3):  # the second and third calls find the buffers dirty
        kept = model.value_and_grad(a, b, w, workspace=workspace)
        np.testing.assert_array_equal(kept[0], plain[0])
        np.testing.assert_array_equal(kept[1]["w"], plain[1]["w"])
    if dtype == "float64":
        assert gg.gradcheck(model, {"a": a, "b": b, "w": w}).ok
        dx = gg.compile(g, wrt=["a", "b", "w"])
        assert gg.gradcheck(dx, {"a": a, "b": b, "w": w}).ok


def test_short_row_convolution_of_float32_data_with_float64_weights_computes_in_float64():
    """The result dtype is the graph's (float64): the row layout's buffers follow it,
    never the data's narrower dtype."""
    rng = np.random.default_rng(5)
    g = gg.Graph("mixed")
    x = g.input("x", (2, 3, 7, 7), "float32")
    w = g.param("w", (4, 3, 3, 3), "float64")
    y = gg.conv2d(x, w, padding=1, name="y")
    g.output(gg.sum(y * y))
    x0 = rng.standard_normal((2, 3, 7, 7)).astype("float32")
    w0 = rng.standard_normal((4, 3, 3, 3))
    want = direct_conv2d(x0.astype(float), w0, (1, 1))
    for buffers in (True, False):
        model = gg.compile(g, buffers=buffers)
        assert "_row_windows(" in model.source
        for workspace in (None, {}):
            loss = model.forward(x0, w0, workspace=workspace)
            np.testing.assert_allclose(loss, np.sum(want * want), rtol=1e-13)
            grads = model.value_and_grad(x0, w0, workspace=workspace)[1]
            assert grads["w"].dtype == np.float64
        assert gg.gradcheck(model, {"x": x0, "w": w0}).ok


def test_plain_code_keeps_np_where_and_gives_the_same_bits():
    """buffers=False writes the textbook np.where(c, x, 0.0); the planned code's bit mask
    computes exactly the same values."""
    rng = np.random.default_rng(11)
    c, x = rng.standard_normal((2, 6, 50)), rng.standard_normal((6, 50))
    x[0, :3] = [np.nan, -np.inf, -0.0]
    plain = gg.compile(where_graph((6, 50), (6, 50), "float64"), buffers=False)
    assert "np.where(" in plain.source and "_where_zero" not in plain.source
    planned = gg.compile(where_graph((6, 50), (6, 50), "float64"))
    assert "_where_zero(" in planned.source
    got, want = planned.forward(c[0], x), plain.forward(c[0], x)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bit_mask_selection_matches_np_where_bit_for_bit_with_broadcasting(dtype):
    """_where_zero and _where_bits widen a byte mask (-1 or 0 per condition entry) inside the
    AND: every bit of the result, nan payloads, infinities and zero signs included, is
    np.where's, also when the condition broadcasts against the branches."""
    g = gg.Graph("select")
    c = g.input("c", (5, 1), dtype)
    x = g.input("x", (5, 7), dtype)
    y = g.input("y", (5, 7), dtype)
    keep = c > 0.0
    g.output(gg.where(keep, x, 0.0))
    g.output(gg.where(keep, x, y))
    model = gg.compile(g)
    assert "_where_zero(" in model.source and "_where_bits(" in model.source
    module = model.module
    rng = np.random.default_rng(4)
    c0 = rng.standard_normal((5, 1)).astype(dtype)
    x0, y0 = (rng.standard_normal((5, 7)).astype(dtype) for _ in range(2))
    x0[:, 0], y0[:, 1] = [np.nan, -np.nan, np.inf, -np.inf, -0.0], -0.0
    bits = f"u{np.dtype(dtype).itemsize}"
    for condition in (c0 > 0, np.True_, np.array(False)):
        want = np.where(condition, x0, 0.0).astype(dtype)
        got = module._where_zero(condition, x0)
        np.testing.assert_array_equal(got.view(bits), want.view(bits))
        want = np.where(condition, x0, y0)
        got = module._where_bits(condition, x0, y0, out=np.empty_like(x0))
        np.testing.assert_array_equal(got.view(bits), want.view(bits))


@pytest.mark.parametrize(
    "attrs",
    [
        {"groups": 2},  # im2col, one product per group, written into a workspace buffer
        {"stride": 2, "padding": 1},
        {"dilation": 2, "padding": 2},
        {"padding": 1},  # short rows: the row layout
    ],
)
def test_planned_convolutions_write_their_buffers_as_the_plain_code_computes(attrs):
    """A symbolic batch makes conv2d's result a planned buffer (out=): every layout gives
    bitwise the plain code's values, and the plain code matches finite differences."""
    rng = np.random.default_rng(13)
    g = gg.Graph("convs")
    x = g.input("x", ("batch", 4, 9, 9))
    w = g.param("w", (6, 4 // attrs.get("groups", 1), 3, 3))
    y = gg.conv2d(x, w, name="y", **attrs)
    g.output(gg.sum(gg.tanh(y) * y))
    x0 = rng.standard_normal((3, 4, 9, 9))
    w0 = rng.standard_normal((6, 4 // attrs.get("groups", 1), 3, 3))
    planned, plain = gg.compile(g), gg.compile(g, buffers=False)
    assert "out=_out(scratch" in planned.source
    workspace: dict = {}
    for _ in range(2):
        got = planned.value_and_grad(x0, w0, workspace=workspace)
        want = plain.value_and_grad(x0, w0)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1]["w"], want[1]["w"])
    assert gg.gradcheck(plain, {"x": x0, "w": w0}).ok


def select_graph(x1_shape, x2_shape, dtype) -> gg.Graph:
    g = gg.Graph("select")
    c = g.input("c", (6, 40), dtype)
    x1 = g.input("x1", x1_shape, dtype)
    x2 = g.input("x2", x2_shape, dtype)
    g.output(gg.where(c > 0.0, x1, x2))
    return g


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shapes", [((6, 40), (6, 40)), ((40,), (6, 40)), ((6, 40), (1, 40))])
def test_where_of_two_arrays_picks_bits_and_matches_np_where_exactly(dtype, shapes):
    rng = np.random.default_rng(17)
    c = rng.standard_normal((6, 40)).astype(dtype)
    c[0, :3] = [np.nan, 0.0, -0.0]
    x1 = rng.standard_normal(shapes[0]).astype(dtype)
    x2 = rng.standard_normal(shapes[1]).astype(dtype)
    x1.reshape(-1)[:4] = [np.nan, np.inf, -0.0, np.finfo(dtype).smallest_subnormal]
    x2.reshape(-1)[:4] = [-np.inf, -0.0, np.nan, 0.0]
    model = gg.compile(select_graph(*shapes, dtype))
    assert "_where_bits(" in function_source(model.source, "forward")
    got, want = model.forward(c, x1, x2), np.where(c > 0.0, x1, x2)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def test_leaky_relu_backward_overwrites_its_cotangent_by_picking_bits(rng):
    g = gg.Graph("leaky")
    x = g.input("x", ("batch", 30))
    W = g.param("W", (30, 30))
    g.output(gg.sum(gg.leaky_relu(x @ W, 0.1) * x))
    model = gg.compile(g)
    body = function_source(model.source, "value_and_grad")
    assert "_where_bits(" in body and "np.copyto" not in body
    x0, W0 = rng.standard_normal((50, 30)), rng.standard_normal((30, 30))
    assert gg.gradcheck(model, {"x": x0, "W": W0}).ok
    plain = gg.compile(g, buffers=False)
    assert "np.where(" in plain.source and "_where_bits(" not in plain.source
    workspace: dict = {}
    for _ in range(2):
        np.testing.assert_array_equal(
            model.value_and_grad(x0, W0, workspace=workspace)[1]["W"],
            plain.value_and_grad(x0, W0)[1]["W"],
        )


@pytest.mark.parametrize("dead_first", [True, False])
def test_where_of_two_arrays_overwrites_either_dead_branch(dead_first):
    """forward: the branch read for the last time by where(c, x1, x2) receives the result,
    whether it is x1 or x2; the other branch is read before it is overwritten."""
    g = gg.Graph("dead_branch")
    x = g.input("x", ("batch", 40))
    dying = gg.tanh(x, name="dying")
    other = gg.multiply(x, 2.0)
    picked = gg.where(x > 0.5, dying, other) if dead_first else gg.where(x > 0.5, other, dying)
    g.output(gg.sum(picked * picked) + gg.sum(picked))
    model, plain = gg.compile(g), gg.compile(g, buffers=False)
    assert "out=dying)" in function_source(model.source, "forward")
    x0 = np.random.default_rng(19).standard_normal((7, 40))
    np.testing.assert_array_equal(model.forward(x0, workspace={}), plain.forward(x0))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", [7, 1023, 1024, 16384, 16385, 3 * 16384, 3 * 16384 + 5])
def test_relu_meets_a_row_of_zeros_and_matches_np_maximum_bit_for_bit(dtype, size):
    """relu's kernel compares x with a kept row of zeros, x viewed as rows of its length,
    with the leftover elements after: at every size around those edges the bits are
    np.maximum(x, 0)'s, nan, -0.0, infinities and subnormals included."""
    rng = np.random.default_rng(size)
    x = rng.standard_normal(size).astype(dtype)
    tiny = np.finfo(dtype).smallest_subnormal
    special = np.array([np.nan, -np.nan, -0.0, 0.0, np.inf, -np.inf, tiny, -tiny], dtype)
    x[: len(special)] = special[:size]
    x = rng.permutation(x)
    g = gg.Graph("relu")
    g.output(gg.relu(g.input("x", ("n",), dtype)))
    model = gg.compile(g)
    assert "_relu(x" in function_source(model.source, "forward")
    bits = f"u{np.dtype(dtype).itemsize}"
    want = np.maximum(x, 0).view(bits)
    np.testing.assert_array_equal(model.forward(x).view(bits), want)
    np.testing.assert_array_equal(model.forward(x, workspace={}).view(bits), want)
    strided = np.repeat(x, 2)[::2]  # not contiguous: the plain np.maximum path
    np.testing.assert_array_equal(model.forward(strided).view(bits), want)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "shape",
    [(300, 10), (4, 75, 3), (64, 32), (64, 33), (64, 64), (64, 65), (63, 10), (5, 1), (200, 1)],
)
def test_a_short_last_axis_max_is_np_max_bit_for_bit(shape, dtype):
    """_max_along reduces 64+ rows of at most 256 bytes (64 float32, 32 float64) across a
    transposed copy, other shapes directly: either way the bits of np.max(keepdims=True),
    nan, -inf and zeros of both signs included."""
    g = gg.Graph("sm")
    g.output(gg.softmax(g.input("x", shape, dtype), axis=-1))
    module = gg.compile(g).module
    x = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    x.reshape(-1)[:3] = [np.nan, -np.inf, np.inf]
    x.reshape(-1, shape[-1])[-1] = -1.0
    x.reshape(-1, shape[-1])[-1, ::2] = -0.0
    x.reshape(-1, shape[-1])[-1, 1::3] = 0.0
    bits = f"u{np.dtype(dtype).itemsize}"
    for axis in (-1, x.ndim - 1, 0):
        np.testing.assert_array_equal(
            module._max_along(x, axis).view(bits), np.max(x, axis=axis, keepdims=True).view(bits)
        )


def sum_module():
    g = gg.Graph("sums")
    x = g.param("x", (3, 4))
    g.output(gg.sum(gg.mean(x, axis=0)))
    return gg.compile(g).module


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64", "bool", "float16"])
@pytest.mark.parametrize(
    "shape", [(7,), (6, 5), (2, 3, 4), (2, 3, 4, 5), (1, 4), (4, 1), (0, 3), ()]
)
def test_the_sum_kernel_is_np_sum_and_np_mean_for_every_axis_and_dtype(shape, dtype):
    """_sum and _mean take a matrix-vector product with ones where the summed axes lead or
    trail a contiguous float32/float64 array, np.sum and np.mean elsewhere: the same
    shapes, dtypes and result types (NumPy scalars for a total) as NumPy's, and the same
    values to rounding (BLAS adds in another order)."""
    module = sum_module()
    rng = np.random.default_rng(len(shape))
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    axes = [None, *range(-len(shape), len(shape))]
    if len(shape) == 3:
        axes += [(0, 1), (1, 2), (0, 2), (-1, -2), (0, 1, 2), (), (2, 0)]
    if len(shape) == 4:  # a conv bias's gradient sums (0, 2, 3)
        axes += [(0, 2, 3), (0, 1, 3), (1, 2), (0, 3), (2, 3)]
    for value in (x, np.asfortranarray(x)):  # F order: not C-contiguous beyond 1-d
        for axis in axes:
            for keepdims in (False, True):
                for ours, theirs in ((module._sum, np.sum), (module._mean, np.mean)):
                    if theirs is np.mean and (dtype == "bool" or x.size == 0):
                        continue
                    got = ours(value, axis, keepdims)
                    want = theirs(value, axis=axis, keepdims=keepdims)
                    assert type(got) is type(want) and got.dtype == want.dtype
                    assert np.shape(got) == np.shape(want)
                    assert not np.shares_memory(got, value)
                    tol = 1e-12 if dtype == "float64" else 2e-3
                    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 8)


def test_the_sum_kernel_keeps_ones_only_up_to_its_limit():
    """The ones a sum multiplies by are kept between calls up to _ONES_KEPT long; a longer
    sum gets a new vector, so one huge call does not hold memory for the module's life."""
    module = sum_module()
    module._ONES.clear()
    x = np.ones((module._ONES_KEPT + 3, 2))
    np.testing.assert_array_equal(module._sum(x, 0), [module._ONES_KEPT + 3] * 2)
    assert all(ones.size <= module._ONES_KEPT for ones in module._ONES.values())
    np.testing.assert_array_equal(module._sum(x[:1000], 0), [1000.0, 1000.0])
    assert module._ONES[np.dtype("float64")].size >= 1000


def test_the_sum_kernel_runs_on_blas_and_adds_at_least_as_accurately_as_numpy():
    """Over 4096 rows of float32, the bias gradient's sum: no further from the float64
    sum than NumPy's (which adds the rows one at a time)."""
    module = sum_module()
    x = np.random.default_rng(0).standard_normal((4096, 128)).astype(np.float32) + 0.25
    exact = x.astype(np.float64).sum(axis=0)
    ours = np.abs(module._sum(x, 0).astype(np.float64) - exact).max()
    theirs = np.abs(np.sum(x, axis=0).astype(np.float64) - exact).max()
    assert ours <= theirs


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp", "cross_entropy"])
def test_softmax_family_on_many_short_rows_matches_the_reference_and_gradcheck(op, rng):
    """300 rows of 10 classes take the transposed-copy reductions in every kernel."""
    g = gg.Graph(op)
    x = g.param("x", (300, 10))
    if op == "cross_entropy":
        labels = g.input("y", (300,), "int64")
        g.output(gg.softmax_cross_entropy(x, labels))
    else:
        out = gg.logsumexp(x, axis=-1) if op == "logsumexp" else getattr(gg, op)(x, axis=-1)
        g.output(gg.sum(gg.square(out)))
    model = gg.compile(g)
    assert "_max_along(" in model.source and "_sum(" in model.source
    inputs = {"x": rng.standard_normal((300, 10)) * 3}
    shifted = inputs["x"] - inputs["x"].max(axis=-1, keepdims=True)
    log_sm = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    if op == "cross_entropy":
        inputs["y"] = rng.integers(0, 10, 300)
        want = -np.mean(log_sm[np.arange(300), inputs["y"]])
    else:
        lse = np.log(np.exp(shifted).sum(axis=-1)) + inputs["x"].max(axis=-1)
        want = {"softmax": np.exp(log_sm), "log_softmax": log_sm, "logsumexp": lse}[op]
        want = np.sum(np.square(want))
    np.testing.assert_allclose(model.forward(**inputs), want, rtol=1e-12)
    assert gg.gradcheck(model, inputs).ok


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shapes", [((64, 33), (64, 33)), ((64, 33), (33,)), ((), ())])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mse_loss_totals_by_a_dot_product_like_numpy(reduction, shapes, dtype):
    """The kernel adds the squared differences as the difference's dot product with
    itself: the value of np.mean / np.sum of np.square(a - b), in the inputs' dtype, and
    the squares themselves for "none", broadcast and 0-d inputs included."""
    rng = np.random.default_rng(11)
    a, b = (np.asarray(rng.standard_normal(s) * 3).astype(dtype) for s in shapes)
    g = gg.Graph("mse")
    pa, pb = (g.input(n, s, dtype) for n, s in zip("ab", shapes))
    g.output(gg.mse_loss(pa, pb, reduction=reduction))
    got = gg.compile(g).forward(a, b)
    squares = np.square(a - b)
    want = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](squares)
    assert np.asarray(got).dtype == dtype and np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == "float32" else 1e-13)


def direct_conv2d_input_grad(g, w, input_size, padding):
    """The adjoint of direct_conv2d: each tap's share of g added back under its window."""
    (ph, pw), (kh, kw), (h, wd) = padding, w.shape[2:], input_size
    ho, wo = g.shape[2:]
    dx = np.zeros((g.shape[0], w.shape[1], h + 2 * ph, wd + 2 * pw))
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i : i + ho, j : j + wo] += np.einsum("nohw,oc->nchw", g, w[:, :, i, j])
    return dx[:, :, ph : ph + h, pw : pw + wd]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    ("x_shape", "w_shape", "padding"),
    [
        ((2, 3, 6, 6), (4, 3, 3, 3), (1, 1)),
        ((1, 2, 5, 9), (3, 2, 2, 4), (1, 2)),  # rectangular kernel and padding
        ((2, 3, 4, 5), (2, 3, 1, 1), (0, 0)),  # 1 x 1: no shifts at all
        ((2, 2, 11, 11), (3, 2, 3, 3), (1, 1)),  # rows padded against 4K aliasing
        ((3, 1, 28, 28), (4, 1, 5, 5), (2, 2)),
        ((2, 1, 7, 7), (4, 1, 3, 3), (1, 1)),  # kw * C = 3: col2im instead
    ],
)
def test_dense_convolution_input_gradient_on_the_flat_grid_matches_the_direct_sum(
    dtype, x_shape, w_shape, padding
):
    """Stride 1 without groups (and kw * C >= 4): the input gradient is one GEMM over
    row-shifted copies of g and one add per kernel column, on all planes laid end to end.
    Shifts that cross a plane's end must carry only zeros; a workspace (dirty on the
    second call) gives the same bits as fresh arrays."""
    rng = np.random.default_rng(23)
    n, c, h, wd = x_shape
    ho, wo = h + 2 * padding[0] - w_shape[2] + 1, wd + 2 * padding[1] - w_shape[3] + 1
    g = gg.Graph("input_grad")
    d = g.input("g", (n, w_shape[0], ho, wo), dtype)
    w = g.input("w", w_shape, dtype)
    g.output(gg.conv2d_input_grad(d, w, input_size=(h, wd), padding=padding))
    model = gg.compile(g)
    assert "_flat_input_grad(" in model.source
    g0 = rng.standard_normal((n, w_shape[0], ho, wo)).astype(dtype)
    w0 = rng.standard_normal(w_shape).astype(dtype)
    got = model.forward(g0, w0)
    assert got.dtype == dtype and got.flags.c_contiguous
    want = direct_conv2d_input_grad(g0.astype(float), w0.astype(float), (h, wd), padding)
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)
    workspace: dict = {}
    for _ in range(2):
        np.testing.assert_array_equal(model.forward(g0, w0, workspace=workspace), got)


POOLS = [  # tiled, tiled with leftover rows, overlapping, overlapping and padded
    {"kernel_size": 2},
    {"kernel_size": (2, 3)},
    {"kernel_size": 2, "stride": 1},
    {"kernel_size": 3, "stride": 2, "padding": 1},
]


def relu_then_pool(keep_relu: bool, pool: dict) -> gg.Graph:
    """loss = sum(max_pool2d(relu(x * s)) * q); keep_relu also outputs the relu's value,
    which keeps it in place (an output is never moved)."""
    g = gg.Graph("relu_pool")
    x = g.input("x", (2, 3, 7, 8))
    s = g.param("s", (3, 1, 1))
    a = gg.relu(x * s, name="a")
    p = gg.max_pool2d(a, **pool, name="p")
    q = g.input("q", p.spec.shape)
    g.output(gg.sum(p * q))
    if keep_relu:
        g.output(a)
    return g


@pytest.mark.parametrize("pool", POOLS)
def test_max_pool_after_relu_pools_first_and_gives_the_same_bits(pool, rng):
    """relu(max_pool2d(x)) is max_pool2d(relu(x)), gradients included, with ties (whole
    windows of negatives), zeros of both signs and windows holding nan."""
    moved, kept = gg.compile(relu_then_pool(False, pool)), gg.compile(relu_then_pool(True, pool))
    assert "p_max = _max_pool2d(" in moved.source and "_relu(p_max" in moved.source
    assert "p_max" not in kept.source
    x = np.round(rng.standard_normal((2, 3, 7, 8)), 0)
    x[0, 0, :2, :2] = [[-0.0, 0.0], [-1.0, -0.0]]
    x[1, 2, 2:4, 4:6] = [[np.nan, 1.0], [2.0, -3.0]]
    x[0, 1, 3, 1] = x[1, 0, 5, 6] = np.nan
    q = rng.standard_normal(moved.module.INPUT_SPECS["q"]["shape"])
    s = np.array([1.0, -2.0, 0.5]).reshape(3, 1, 1)
    np.testing.assert_array_equal(moved.forward(x, s, q), kept.forward(x, s, q)[0])
    (loss, grads), ((want_loss, _), want) = moved.value_and_grad(x, s, q), kept.value_and_grad(
        x, s, q
    )
    np.testing.assert_array_equal(loss, want_loss)
    np.testing.assert_array_equal(grads["s"], want["s"])
    wrt = ["x", "s"]
    dx = gg.compile(relu_then_pool(False, pool), wrt=wrt).value_and_grad(x, s, q)[1]["x"]
    dx_kept = gg.compile(relu_then_pool(True, pool), wrt=wrt).value_and_grad(x, s, q)[1]["x"]
    np.testing.assert_array_equal(dx, dx_kept)
    assert np.isnan(grads["s"]).any()  # the nan windows reach s, as in the original order
    x_smooth = rng.standard_normal((2, 3, 7, 8))
    assert gg.gradcheck(moved, {"x": x_smooth, "q": q, "s": s}).ok


def test_a_relu_with_another_use_stays_before_the_pool():
    g = gg.Graph("shared_relu")
    x = g.input("x", (1, 2, 4, 4))
    a = gg.relu(x, name="a")
    g.output(gg.sum(gg.max_pool2d(a, 2, name="p")) + gg.sum(a))
    assert "p_max" not in gg.compile(g).source


def projections(bias: tuple[bool, ...], output_product: bool = False) -> gg.Graph:
    """Three products of one input x (an attention block's q, k, v), some with biases."""
    g = gg.Graph("projections")
    x = g.input("x", ("batch", 5, 4))
    heads = []
    for name, with_bias in zip("qkv", bias):
        product = x @ g.param(f"W{name}", (4, 6))
        if with_bias:
            product = gg.add(product, g.param(f"b{name}", (6,)), name=name)
        heads.append(product)
    q, k, v = heads
    g.output(gg.sum(gg.tanh(q) * k * gg.sin(v)))
    if output_product:
        g.output(v)
    return g


def projection_values(bias, params, x0):
    q, k, v = (x0 @ params[f"W{n}"] + (params[f"b{n}"] if b else 0) for n, b in zip("qkv", bias))
    return np.sum(np.tanh(q) * k * np.sin(v))


@pytest.mark.parametrize("bias", [(True, True, True), (False, False, False), (True, False, True)])
def test_products_of_one_input_are_one_gemm_and_keep_their_gradients(bias, rng):
    """x @ Wq (+ bq), x @ Wk, x @ Wv run as x @ [Wq Wk Wv] (+ [bq bk bv] when every product
    has a bias); the backward joins the blocks' cotangents, so x's gradient is one product."""
    model = gg.compile(projections(bias))
    body = function_source(model.source, "value_and_grad")
    assert body.count("_matmul_rows(") == 1  # the fused product
    assert "np.concatenate((Wq, Wk, Wv), axis=1" in body
    assert ("np.concatenate((bq, bk, bv), axis=0" in body) == all(bias)
    assert "the blocks' cotangents are joined" in body
    params = {f"W{n}": rng.standard_normal((4, 6)) for n in "qkv"}
    params.update({f"b{n}": rng.standard_normal(6) for n, b in zip("qkv", bias) if b})
    x0 = rng.standard_normal((3, 5, 4))
    inputs = {"x": x0, **params}
    loss, grads = model.value_and_grad(**inputs)
    np.testing.assert_allclose(loss, projection_values(bias, params, x0), rtol=1e-13)
    np.testing.assert_allclose(model.forward(**inputs), loss, rtol=1e-13)
    assert set(grads) == set(params)
    for a, b in itertools.combinations(grads.values(), 2):  # no views of one joined array
        assert not np.shares_memory(a, b)
    assert gg.gradcheck(model, inputs).ok
    with_x = gg.compile(projections(bias), wrt=["x", *params])
    assert function_source(with_x.source, "value_and_grad").count("_matmul_rows(") == 2
    assert gg.gradcheck(with_x, inputs).ok


def test_a_product_that_is_an_output_is_not_fused():
    body = function_source(gg.compile(projections((False,) * 3, True)).source, "value_and_grad")
    assert "np.concatenate((Wq, Wk), axis=1" in body  # only q and k are fused


def test_products_with_different_dtypes_or_computed_weights_are_not_fused():
    g = gg.Graph("mixed")
    x = g.input("x", (5, 4))
    a = x @ g.param("Wa", (4, 3), "float32")
    b = x @ g.param("Wb", (4, 3))
    c = x @ gg.tanh(g.param("Wc", (4, 3)))
    g.output(gg.sum(a) + gg.sum(b) + gg.sum(c))
    assert "np.concatenate" not in gg.generate(g)


@pytest.mark.parametrize(
    ("blocks", "joined"),
    [(((0, 3), (3, 7)), True), (((3, 7), (0, 3)), True), (((0, 2), (3, 7)), False)],
)
def test_cotangents_of_column_blocks_are_joined_when_they_tile_the_axis(blocks, joined, rng):
    g = gg.Graph("blocks")
    x = g.input("x", (4, 7))
    parts = [gg.sin(x[..., a:b]) * float(i + 2) for i, (a, b) in enumerate(blocks)]
    g.output(sum((gg.sum(p) for p in parts[1:]), gg.sum(parts[0])))
    model = gg.compile(g, wrt=["x"])
    body = function_source(model.source, "value_and_grad")
    assert ("the blocks' cotangents are joined" in body) == joined
    x0 = rng.standard_normal((4, 7))
    want = np.zeros((4, 7))
    for i, (a, b) in enumerate(blocks):
        want[:, a:b] += np.cos(x0[:, a:b]) * (i + 2)
    np.testing.assert_allclose(model.value_and_grad(x0)[1]["x"], want, rtol=1e-14)


def test_joining_reshaped_heads_concatenates_them_before_the_reshape(rng):
    """concatenate((reshape(a), reshape(b)), axis=-1) of heads (..., h, d) is emitted as
    one concatenate along the heads axis, then a reshape (a view): one copy, not three."""
    g = gg.Graph("heads")
    a, b = g.input("a", (2, 5, 3, 4)), g.input("b", (2, 5, 2, 4))
    w = g.input("w", (2, 5, 20))
    joined = gg.concatenate([gg.reshape(a, (2, 5, 12)), gg.reshape(b, (2, 5, 8))], axis=-1)
    g.output(gg.sum(gg.tanh(joined) * w))
    model = gg.compile(g, wrt=["a", "b"])
    body = function_source(model.source, "value_and_grad")
    assert "np.concatenate((a, b), axis=2" in body
    inputs = {"a": rng.standard_normal((2, 5, 3, 4)), "b": rng.standard_normal((2, 5, 2, 4))}
    inputs["w"] = rng.standard_normal((2, 5, 20))
    want = np.concatenate([inputs["a"].reshape(2, 5, 12), inputs["b"].reshape(2, 5, 8)], -1)
    np.testing.assert_allclose(
        model.value_and_grad(**inputs)[0], np.sum(np.tanh(want) * inputs["w"]), rtol=1e-13
    )
    assert gg.gradcheck(model, inputs).ok


def test_a_large_product_read_through_a_view_gets_a_workspace_buffer(rng):
    """ctx = reshape(transpose(att @ v)): inlined, the product would be a fresh array each
    call (only the view keeps it); as a statement it is written into a buffer."""
    g = gg.Graph("attention_context")
    att, v = g.input("att", (4, 2, 16, 16)), g.input("v", (4, 2, 16, 8))
    ctx = gg.reshape(gg.transpose(att @ v, (0, 2, 1, 3)), (4, 16, 16), name="ctx")
    g.output(gg.sum(gg.tanh(ctx)))
    planned, plain = gg.compile(g, wrt=["v"]), gg.compile(g, wrt=["v"], buffers=False)
    assert re.search(r"= np\.matmul\(att, v, out=_out\(scratch", planned.source)
    inputs = {"att": rng.standard_normal((4, 2, 16, 16)), "v": rng.standard_normal((4, 2, 16, 8))}
    workspace: dict = {}
    for _ in range(2):
        got = planned.value_and_grad(**inputs, workspace=workspace)
        want = plain.value_and_grad(**inputs)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1]["v"], want[1]["v"])


def test_a_fused_product_of_unnamed_nodes_is_named_after_its_input():
    """Builder-made ids (matmul_3, add_4) make poor names: the fused product becomes
    `{input}_products` unless the user named every block."""
    g = gg.Graph("unnamed")
    x = g.input("x", (5, 4))
    blocks = [x @ g.param(f"W{i}", (4, 3)) + g.param(f"b{i}", (3,)) for i in range(2)]
    g.output(gg.sum(blocks[0] * blocks[1]))
    body = function_source(gg.compile(g).source, "value_and_grad")
    assert "x_products = " in body and "add_" not in body.split("x_products =")[0]


def reference_im2col(x, kernel_size, stride, padding, dilation, groups):
    """Every window tap sliced out of the padded input one at a time (no strided views),
    and the output size (Ho, Wo)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    wo = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    taps = [
        [xp[:, :, i * dh :: sh, j * dw :: sw][:, :, :ho, :wo] for j in range(kw)] for i in range(kh)
    ]
    cols = np.stack([np.stack(row, axis=2) for row in taps], axis=2)  # (N, C, kh, kw, Ho, Wo)
    n, c = x.shape[:2]
    return cols.reshape(n, groups, c // groups * kh * kw, ho * wo), (ho, wo)


@pytest.mark.parametrize(
    ("x_shape", "conv", "two_steps"),
    [
        ((3, 1, 28, 28), {"kernel_size": (5, 5), "padding": (2, 2)}, True),
        ((2, 4, 9, 20), {"kernel_size": (3, 2), "stride": (1, 2), "dilation": (2, 3)}, True),
        ((2, 4, 7, 19), {"kernel_size": (2, 3), "padding": (1, 0), "groups": 2}, True),
        ((2, 2, 9, 9), {"kernel_size": (3, 3), "stride": (2, 1)}, False),  # row stride 2
        ((1, 2, 5, 40), {"kernel_size": (3, 3), "padding": (1, 1)}, False),  # long rows
        ((2, 3, 6, 10), {"kernel_size": (1, 3), "padding": (0, 1)}, False),  # one row tap
    ],
)
def test_im2col_gathers_short_rows_in_two_steps_with_the_same_columns(x_shape, conv, two_steps):
    """Output rows shorter than 32 entries (row stride 1, kh > 1) are gathered first per
    column tap, then per row tap as runs of whole rows: the matrix is entry for entry the
    windows' (strides, dilations, groups and padding included), also in a dirty workspace."""
    rng = np.random.default_rng(11)
    g = gg.Graph("conv")
    x = g.input("x", x_shape)
    kh, kw = conv["kernel_size"]
    w = g.param("w", (4, x_shape[1] // conv.get("groups", 1), kh, kw))
    g.output(gg.conv2d(x, w, **{k: v for k, v in conv.items() if k != "kernel_size"}))
    module = gg.compile(g).module
    called = []
    column_taps = module._column_taps
    module._column_taps = lambda *args: called.append(args) or column_taps(*args)
    args = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1, **conv}
    order = ("kernel_size", "stride", "padding", "dilation", "groups")
    x0 = rng.standard_normal(x_shape)
    want, want_size = reference_im2col(x0, *(args[k] for k in order))
    workspace: dict = {}
    for scratch in (None, workspace, workspace):
        cols, size = module._im2col(x0, *(args[k] for k in order), scratch=scratch)
        np.testing.assert_array_equal(cols, want)
        assert size == want_size
    assert bool(called) == two_steps


@pytest.mark.parametrize(
    ("subscripts", "shapes", "as_gemm"),
    [
        ("aby,abz->yz", (("batch", 3, 4), ("batch", 3, 5)), True),
        ("ay,az->yz", (("batch", 4), ("batch", 2)), True),
        ("aby,abz->zy", (("batch", 3, 4), ("batch", 3, 5)), False),  # transposed result
        ("aby,acz->yz", (("batch", 3, 4), ("batch", 3, 5)), False),  # other leading labels
        ("aby,abz->yz", (("batch", 3, 4), ("batch", 1, 5)), False),  # a broadcast axis
        ("aby,abz->yz", (("batch", 3, "k"), ("batch", 3, 5)), False),  # symbolic K
    ],
)
def test_a_weight_gradient_einsum_over_rows_is_emitted_as_one_gemm(subscripts, shapes, as_gemm):
    """ "aby,abz->yz" with static K and N becomes np.matmul over the reshaped rows (no
    einsum path search at every call); everything else stays np.einsum. Both agree with
    np.einsum."""
    g = gg.Graph("rows")
    a = g.input("a", shapes[0])
    b = g.input("b", shapes[1])
    g.output(gg.einsum(subscripts, a, b))
    model = gg.compile(g)
    body = function_source(model.source, "forward")
    assert ("np.matmul(np.reshape(a, (-1, 4)).T" in body) == as_gemm
    assert ("np.einsum(" in body) != as_gemm
    rng = np.random.default_rng(2)
    sizes = {"batch": 6, "k": 4}
    a0, b0 = (rng.standard_normal([sizes.get(d, d) for d in s]) for s in shapes)
    np.testing.assert_allclose(model.forward(a0, b0), np.einsum(subscripts, a0, b0), rtol=1e-13)


def test_attention_weights_are_computed_in_one_array_of_their_shape():
    """scores, their scaling and the softmax share one (..., L, S) array: a (..., L, S)
    temporary per step was 3x the weights' memory at every call (and page faults)."""
    import tracemalloc

    g = gg.Graph("attention")
    q = g.input("q", (4, 2, 64, 16))
    k = g.input("k", (4, 2, 64, 16))
    g.output(gg.attention_weights(q, k))
    module = gg.compile(g).module
    rng = np.random.default_rng(8)
    q0, k0 = rng.standard_normal((2, 4, 2, 64, 16))
    want = np.exp(q0 @ np.swapaxes(k0, -1, -2) / 4.0)
    want /= want.sum(axis=-1, keepdims=True)
    module._attention_weights(q0, k0)  # warm-up: the kernels' one-off allocations
    tracemalloc.start()
    got = module._attention_weights(q0, k0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(got, want, rtol=1e-13)
    assert peak < 1.5 * got.nbytes
