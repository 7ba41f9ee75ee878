"""Workspace semantics: a generated function given a workspace (a dict it keeps its large
intermediates in between calls) computes exactly what it computes without one, never hands
out or later overwrites an array it returned, and by default (no workspace) stays
reentrant across threads."""

from __future__ import annotations

import gc
import re
import threading

import numpy as np
import pytest
from graphs import mlp, mlp_inputs

import graphgen as gg
from benchmarks import impl_graphgen
from benchmarks.workloads import WORKLOADS
from graphgen.compiler import collector_paused
from graphgen.memory import plan_buffers


def workload_model(name: str, dtype: str = "float64"):
    model = gg.compile(impl_graphgen.build(WORKLOADS[name], dtype))
    return model, WORKLOADS[name]


def workload_inputs(workload, dtype: str, seed: int) -> list[np.ndarray]:
    values = workload.make_inputs(dtype, seed=seed)
    return [values[name] for name in workload.input_names]


def assert_same(a, b):
    """Bitwise equality of (value, grads) results."""
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1].keys() == b[1].keys()
    for key in a[1]:
        assert a[1][key].dtype == b[1][key].dtype
        np.testing.assert_array_equal(a[1][key], b[1][key], err_msg=key)


@pytest.mark.parametrize("name", ["mlp-b32", "cnn", "transformer"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_results_are_identical_with_and_without_a_workspace(name, dtype):
    model, workload = workload_model(name, dtype)
    workspace: dict = {}
    for seed in range(3):  # the second and third calls reuse the first call's buffers
        args = workload_inputs(workload, dtype, seed)
        assert_same(
            model.module.value_and_grad(*args, workspace=workspace),
            model.module.value_and_grad(*args),
        )
    assert workspace["value_and_grad"], "the workspace was not used"


def test_arrays_returned_are_never_changed_by_a_later_call():
    model, workload = workload_model("transformer")
    workspace: dict = {}
    first = model.module.value_and_grad(
        *workload_inputs(workload, "float64", 0), workspace=workspace
    )
    kept = (np.copy(first[0]), {k: np.copy(v) for k, v in first[1].items()})
    model.module.value_and_grad(*workload_inputs(workload, "float64", 1), workspace=workspace)
    assert_same(first, kept)
    buffers = [id(b) for b in workspace["value_and_grad"].values()]
    returned = [first[0], *first[1].values()]
    for array in returned:  # and none of them is, or views, a workspace buffer
        for buffer in workspace["value_and_grad"].values():
            assert not np.shares_memory(array, buffer)
    assert len(set(buffers)) == len(buffers)


def test_a_workspace_is_allocated_once_and_reused_by_every_later_call():
    model, workload = workload_model("mlp-b32")
    workspace: dict = {}
    model.module.value_and_grad(*workload_inputs(workload, "float64", 0), workspace=workspace)
    first = {slot: id(buffer) for slot, buffer in workspace["value_and_grad"].items()}
    for seed in (1, 2):
        model.module.value_and_grad(
            *workload_inputs(workload, "float64", seed), workspace=workspace
        )
    assert {slot: id(b) for slot, b in workspace["value_and_grad"].items()} == first


def test_dead_forward_buffers_are_reused_by_the_backward_pass():
    model, workload = workload_model("transformer")
    workspace: dict = {}
    model.module.value_and_grad(*workload_inputs(workload, "float64", 0), workspace=workspace)
    body = model.source.split("def value_and_grad")[1].split("def vjp")[0]
    slots = re.findall(r"(?:_out|_buffer)\(scratch, (\d+),", body)
    assert len(set(slots)) == len(workspace["value_and_grad"]) < len(slots)


def test_a_new_batch_size_gets_new_buffers_and_right_results(rng):
    model = gg.compile(mlp())
    workspace: dict = {}
    for batch in (8, 3, 8, 1):
        inputs = mlp_inputs(rng, batch=batch)
        assert_same(
            model.value_and_grad(**inputs, workspace=workspace), model.value_and_grad(**inputs)
        )


def test_forward_and_vjp_take_a_workspace_too(rng):
    model = gg.compile(mlp())
    workspace: dict = {}
    inputs = mlp_inputs(rng)
    for _ in range(2):
        np.testing.assert_array_equal(
            model.forward(**inputs, workspace=workspace), model.forward(**inputs)
        )
        assert_same(
            model.vjp(**inputs, cotangent=np.float64(0.5), workspace=workspace),
            model.vjp(**inputs, cotangent=np.float64(0.5)),
        )
    assert set(workspace) == {"forward", "vjp"}


def test_inputs_not_of_the_declared_dtype_leave_the_workspace_unused(rng):
    model = gg.compile(mlp())  # float64
    workspace: dict = {}
    inputs = {
        k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in mlp_inputs(rng).items()
    }
    value, grads = model.value_and_grad(**inputs, workspace=workspace)
    assert workspace == {}
    assert value.dtype == np.float32 and grads["W1"].dtype == np.float32
    assert_same((value, grads), model.value_and_grad(**inputs))


def test_mixed_precision_inputs_compute_in_the_wider_dtype(rng):
    """In-place updates keep an array's dtype, so a mix of float32 and float64 inputs is
    promoted on entry: the result is what NumPy's promotion gives, float64 throughout."""
    model = gg.compile(mlp())
    inputs = mlp_inputs(rng)
    mixed = dict(inputs, x=inputs["x"].astype(np.float32))
    widened = dict(inputs, x=mixed["x"].astype(np.float64))
    value, grads = model.value_and_grad(**mixed)
    assert grads["W1"].dtype == np.float64 and grads["b1"].dtype == np.float64
    assert_same((value, grads), model.value_and_grad(**widened))


def test_default_calls_are_reentrant_across_threads():
    model, workload = workload_model("mlp-b32")
    calls = [workload_inputs(workload, "float64", seed) for seed in range(8)]
    expected = [model.module.value_and_grad(*args) for args in calls]
    results: dict[int, tuple] = {}

    def run(k: int) -> None:
        for _ in range(5):
            results[k] = model.module.value_and_grad(*calls[k])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, want in enumerate(expected):
        assert_same(results[k], want)


def test_threads_with_a_workspace_each_get_right_results():
    model, workload = workload_model("mlp-b32")
    calls = [workload_inputs(workload, "float64", seed) for seed in range(4)]
    expected = [model.module.value_and_grad(*args) for args in calls]
    failures: list[str] = []

    def run(k: int) -> None:
        workspace: dict = {}
        for _ in range(5):
            got = model.module.value_and_grad(*calls[k], workspace=workspace)
            if not all(np.array_equal(got[1][w], expected[k][1][w]) for w in got[1]):
                failures.append(f"thread {k}")

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def in_thread(call):
    """call() run in a new thread: its result, or the exception it raised."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as error:  # noqa: BLE001 - handed back to the test
            outcome.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return outcome[0]


def test_a_workspace_in_use_in_another_thread_raises_instead_of_sharing_its_buffers():
    """A call that raises after claiming its buffers leaves them marked as in use: another
    thread cannot take them (it is told why); the thread that raised goes on with them."""
    model, workload = workload_model("mlp-b32")
    args = workload_inputs(workload, "float64", seed=0)
    bad = list(args)
    bad[1] = np.full_like(args[1], 10)  # labels past the 10 classes: IndexError mid-call
    workspace: dict = {}
    with pytest.raises(IndexError):
        model.module.value_and_grad(*bad, workspace=workspace)
    error = in_thread(lambda: model.module.value_and_grad(*args, workspace=workspace))
    assert isinstance(error, RuntimeError)
    assert "value_and_grad" in str(error) and "its own workspace" in str(error)
    assert_same(
        model.module.value_and_grad(*args, workspace=workspace), model.value_and_grad(*args)
    )


def test_a_workspace_passes_from_thread_to_thread_between_calls():
    """Each call releases the buffers it claimed: calls in turn from different threads
    (a worker pool running the training steps) share one workspace."""
    model, workload = workload_model("mlp-b32")
    args = workload_inputs(workload, "float64", seed=1)
    want = model.value_and_grad(*args)
    workspace: dict = {}
    for _ in range(3):
        assert_same(
            in_thread(lambda: model.module.value_and_grad(*args, workspace=workspace)), want
        )
    np.testing.assert_array_equal(model.module.forward(*args, workspace=workspace), want[0])


def test_threads_sharing_a_workspace_get_right_results_or_an_error():
    """Two threads calling at once with one workspace: every call that returns has the
    right gradients; the others raise RuntimeError, never a wrong result."""
    model, workload = workload_model("mlp-b32")
    calls = [workload_inputs(workload, "float64", seed) for seed in (2, 3)]
    expected = [model.value_and_grad(*args) for args in calls]
    workspace: dict = {}
    wrong: list[int] = []

    def run(k: int) -> None:
        for _ in range(100):
            try:
                got = model.module.value_and_grad(*calls[k], workspace=workspace)
            except RuntimeError:
                continue
            if not all(np.array_equal(got[1][w], expected[k][1][w]) for w in got[1]):
                wrong.append(k)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_an_output_that_views_an_intermediate_keeps_it_out_of_the_workspace(rng):
    """`transpose(tanh(x @ W))` is returned as a view of tanh's result: that result must be
    a fresh array at every call, not a workspace buffer the next call overwrites."""
    g = gg.Graph("view_out")
    x = g.input("x", ("batch", 4))
    W = g.param("W", (4, 3))
    h = gg.tanh(x @ W, name="h")
    g.output(gg.sum(h, name="loss"), gg.transpose(h, name="hT"))
    model = gg.compile(g)
    workspace: dict = {}
    x0, W0 = rng.standard_normal((5, 4)), rng.standard_normal((4, 3))
    (_, first_hT), _ = model.value_and_grad(x0, W0, workspace=workspace)
    _, first_fwd = model.forward(x0, W0, workspace=workspace)
    kept, kept_fwd = first_hT.copy(), first_fwd.copy()
    model.value_and_grad(2 * x0, W0, workspace=workspace)
    model.forward(2 * x0, W0, workspace=workspace)
    np.testing.assert_array_equal(first_hT, kept)
    np.testing.assert_array_equal(first_fwd, kept_fwd)


def test_a_gradient_contracted_by_einsum_leaves_the_forward_buffers_planned(rng):
    """With a symbolic batch, a weight's gradient is an einsum over the batch. An einsum of
    two operands is a new array, so h, which it reads (through tanh's VJP), keeps its
    workspace buffer (it was once treated as a possible view reaching the returned
    gradient, and allocated at every call)."""
    g = gg.Graph("batched")
    x = g.input("x", ("batch", 6, 4))
    W = g.param("W", (4, 5))
    h = gg.tanh(x @ W, name="h")
    g.output(gg.sum(h * h))
    model = gg.compile(g)
    body = model.source.split("def value_and_grad")[1]
    assert "d_W = np.matmul(np.reshape(x, (-1, 4)).T" in body  # the einsum, as one GEMM
    assert "h = _matmul_rows(x, W, out=_out(scratch, " in body and "np.tanh(h, out=h)" in body
    workspace: dict = {}
    x0, W0 = rng.standard_normal((3, 6, 4)), rng.standard_normal((4, 5))
    first = model.value_and_grad(x0, W0, workspace=workspace)
    kept = first[1]["W"].copy()
    assert_same(model.value_and_grad(x0, W0, workspace=workspace), model.value_and_grad(x0, W0))
    model.value_and_grad(2 * x0, W0, workspace=workspace)
    np.testing.assert_array_equal(first[1]["W"], kept)


def test_a_one_operand_einsum_may_be_a_view_and_keeps_its_operand_out_of_the_workspace(rng):
    """np.einsum("ij->ji", h) is a view of h: an output made that way must not live in a
    buffer that the next call overwrites."""
    g = gg.Graph("einsum_view")
    x = g.input("x", ("batch", 4))
    W = g.param("W", (4, 3))
    h = gg.tanh(x @ W, name="h")
    g.output(gg.sum(h, name="loss"), gg.einsum("ij->ji", h, name="hT"))
    model = gg.compile(g)
    workspace: dict = {}
    x0, W0 = rng.standard_normal((5, 4)), rng.standard_normal((4, 3))
    (_, first_hT), _ = model.value_and_grad(x0, W0, workspace=workspace)
    kept = first_hT.copy()
    model.value_and_grad(2 * x0, W0, workspace=workspace)
    np.testing.assert_array_equal(first_hT, kept)


@pytest.mark.parametrize("name", ["mlp-b512", "cnn", "transformer"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_planned_code_computes_bitwise_what_the_plain_code_computes(name, dtype):
    """Buffers, in-place chains and overwritten dead operands change where results are
    stored, never the arithmetic: the same numbers as plain one-expression statements."""
    workload = WORKLOADS[name]
    graph = impl_graphgen.build(workload, dtype)
    planned, plain = gg.compile(graph), gg.compile(graph, buffers=False)
    assert "out=" in planned.source and "out=" not in function_body(plain.source)
    args = workload_inputs(workload, dtype, 0)
    assert_same(planned.module.value_and_grad(*args), plain.module.value_and_grad(*args))


def function_body(source: str) -> str:
    return source.split("def value_and_grad")[1].split("def vjp")[0]


def test_a_dead_cotangent_is_overwritten_by_relu_backward():
    model = gg.compile(impl_graphgen.build(WORKLOADS["mlp-b32"], "float64"))
    body = function_body(model.source)
    assert "d_z1 = _where_zero(h1 > 0.0, d_h1, out=d_h1)\n" in body
    assert "h1 = _relu(z1, out=z1)" in body


def test_an_operand_still_viewed_by_a_live_value_is_not_overwritten(rng):
    """h is read for the last time by `s = h * 3`, but hT (a view of h) is used later:
    s must not be computed into h's array."""
    g = gg.Graph("view_alive")
    x = g.input("x", ("batch", 4))
    W = g.param("W", (4, 4))
    h = gg.tanh(x @ W, name="h")
    hT = gg.transpose(h, name="hT")
    s = gg.multiply(h, 3.0, name="s")
    u = gg.matmul(hT, s, name="u")
    g.output(gg.sum(u, name="loss"))
    model = gg.compile(g)
    x0, W0 = rng.standard_normal((5, 4)), rng.standard_normal((4, 4))
    h0 = np.tanh(x0 @ W0)
    np.testing.assert_allclose(model.forward(x0, W0), np.sum(h0.T @ (3 * h0)), rtol=1e-12)
    assert_same(model.value_and_grad(x0, W0), gg.compile(g, buffers=False).value_and_grad(x0, W0))


def test_conv_kernels_share_three_temporary_buffers_of_the_workspace(rng):
    """conv2d and its gradients keep their temporaries (im2col matrices, padded rows, per-tap
    products: dead when the kernel returns) in three workspace buffers that all the kernels
    share, each as large as the largest use; a second call reuses them."""
    model, workload = workload_model("cnn", "float32")
    workspace: dict = {}
    args = workload_inputs(workload, "float32", 0)
    model.module.value_and_grad(*args, workspace=workspace)
    kept = {
        k: id(v)
        for k, v in workspace["value_and_grad"].items()
        if isinstance(k, tuple) and k[0] == "kernel"
    }
    assert set(kept) == {("kernel", 0), ("kernel", 1), ("kernel", 2)}
    # the largest temporary: conv2's row windows (8 * 5 * 5, 32 * 10 * 14) in float32, and
    # 64 bytes to start it on a cache line
    assert workspace["value_and_grad"][("kernel", 1)].nbytes == 200 * 4480 * 4 + 64
    views = made_views(workspace["value_and_grad"])
    assert len(views) >= 3
    model.module.value_and_grad(*args, workspace=workspace)
    assert {k: id(workspace["value_and_grad"][k]) for k in kept} == kept
    assert made_views(workspace["value_and_grad"]) == views  # looked up, none made again


def made_views(scratch: dict) -> dict:
    """(slot, shape, dtype) -> id of the view _temporary keeps for it."""
    return {
        (k[1], *key): id(view)
        for k, views in scratch.items()
        if isinstance(k, tuple) and k[0] == "views"
        for key, view in views.items()
    }


def chain_graph(later_reads_h: bool) -> gg.Graph:
    """forward computes d = gate * (1 - h**2), or (gate * h) * (1 - h**2), as one
    elementwise chain, at the statement where h is read for the last time."""
    g = gg.Graph("chain")
    x = g.input("x", ("batch", 4))
    W = g.param("W", (4, 4))
    h = gg.tanh(x @ W, name="h")
    gate = gg.sigmoid(x, name="gate")
    one_minus = gg.subtract(1.0, gg.square(h))
    d = (gate * h) * one_minus if later_reads_h else gate * one_minus
    g.output(gg.sum(d) + gg.sum(d * x))  # d is read twice: a statement of its own
    return g


@pytest.mark.parametrize("later_reads_h", [False, True])
def test_a_chain_starts_by_overwriting_a_dead_operand_only_if_no_later_step_reads_it(
    later_reads_h, rng
):
    model = gg.compile(chain_graph(later_reads_h))
    forward = model.source[model.source.index("def forward(") : model.source.index("def value_and")]
    assert ("np.square(h, out=h)" in forward) != later_reads_h
    plain = gg.compile(chain_graph(later_reads_h), buffers=False)
    workspace: dict = {}
    for _ in range(2):
        x0, W0 = rng.standard_normal((5, 4)), rng.standard_normal((4, 4))
        want = plain.forward(x0, W0)
        np.testing.assert_array_equal(model.forward(x0, W0, workspace=workspace), want)
        assert_same(model.value_and_grad(x0, W0, workspace=workspace), plain.value_and_grad(x0, W0))


def test_kernel_temporaries_start_on_a_cache_line():
    model, workload = workload_model("cnn", "float32")
    workspace: dict = {}
    model.module.value_and_grad(*workload_inputs(workload, "float32", 0), workspace=workspace)
    namespace = vars(model.module)
    for slot in range(3):
        view = namespace["_temporary"](workspace["value_and_grad"], slot, (5, 7), "float64")
        assert view.ctypes.data % 64 == 0 and view.shape == (5, 7)


def test_a_buffer_takes_the_lowest_slot_freed_before_it_by_a_buffer_of_its_shape():
    """Slots are reused once their buffer's last reader has run: c takes a's slot (a is
    read last by b), d a new one (b is still read by d), e the lowest of the free ones;
    buffers of another shape never share."""
    statements = ["a", "b", "c", "d", "e", "f"]
    reads = {"a": [], "b": ["a"], "c": ["b"], "d": ["b", "c"], "e": ["d"], "f": ["e"]}
    shape = {"a": 1, "b": 1, "c": 1, "d": 1, "e": 1, "f": 2}
    plan = plan_buffers(
        statements, reads.__getitem__, set(statements), set(statements), [], shape.__getitem__
    )
    assert plan.slot == {"a": 0, "b": 1, "c": 0, "d": 2, "e": 0, "f": 3}
    assert plan.slots == 4


def test_compiling_pauses_the_garbage_collector_and_restores_its_state():
    g = gg.Graph("t")
    g.output(gg.sum(gg.tanh(g.param("x", (3,)))))
    seen = []
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        with collector_paused():
            seen.append(gc.isenabled())
            gg.compile(g)
        assert gc.isenabled() is enabled
    gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("compiling failed")
    assert gc.isenabled() and seen == [False, False]


# ---- concatenations computed in place ------------------------------------------------------


def joined_products(use: str = "") -> gg.Graph:
    """sum(tanh(j)) + sum(j * j), j = concatenate([a @ W, transpose(V @ transpose(b))],
    axis=1): both blocks are products (the second seen through a transpose) read by the join alone,
    unless `use` makes one of them read elsewhere ("read"), returned ("returned"), a
    kernel's result ("kernel") or float32 where the join is float64 ("float32")."""
    g = gg.Graph("joined")
    single = "float32" if use == "float32" else "float64"
    a, b = g.input("a", ("n", 4), single), g.input("b", ("n", 4))
    W, V = g.param("W", (4, 3), single), g.param("V", (5, 4))
    p = gg.softmax(a @ W, name="p") if use == "kernel" else gg.matmul(a, W, name="p")
    q = gg.transpose(gg.matmul(V, gg.transpose(b), name="q"))  # named: statements
    joined = gg.concatenate([p, q], axis=1)
    loss = gg.sum(gg.tanh(joined)) + gg.sum(joined * joined)  # read twice: a statement
    if use == "read":
        loss = loss + gg.sum(p)
    g.output(loss, p) if use == "returned" else g.output(loss)
    return g


def joined_inputs(rng) -> dict:
    return {
        "a": rng.standard_normal((7, 4)),
        "b": rng.standard_normal((7, 4)),
        "W": rng.standard_normal((4, 3)),
        "V": rng.standard_normal((5, 4)),
    }


def test_a_join_of_products_is_computed_in_its_array_with_no_copy(rng):
    """The products write into their blocks of the joined array (a workspace buffer of its
    own, or a new array without a workspace): no np.concatenate. Same values as NumPy's
    concatenation, the same bits with and without a workspace, gradients that pass
    finite differences."""
    model = gg.compile(joined_products())
    forward = model.source.split("def forward")[1].split("def value_and_grad")[0]
    assert "np.concatenate" not in forward
    assert "p = np.matmul(a, W, out=concatenate_" in forward
    assert "q = np.matmul(V, b.T, out=np.transpose(concatenate_" in forward
    assert "= _buffer(scratch, " in forward
    inputs = joined_inputs(rng)
    i = inputs
    j = np.concatenate([i["a"] @ i["W"], (i["V"] @ i["b"].T).T], axis=1)
    want = np.tanh(j).sum() + (j * j).sum()
    workspace: dict = {}
    for _ in range(3):  # the second and third calls find the buffers dirty
        with_ws = model.value_and_grad(**inputs, workspace=workspace)
        assert_same(with_ws, model.value_and_grad(**inputs))
        np.testing.assert_allclose(with_ws[0], want, rtol=1e-14)
    assert gg.gradcheck(model, inputs).ok


@pytest.mark.parametrize("use", ["read", "returned", "kernel", "float32"])
def test_a_join_is_copied_when_a_block_is_used_elsewhere_returned_or_a_kernels(use, rng):
    """A block read elsewhere must keep its own array (the join's may be reused
    meanwhile), a returned one must not live in the workspace, a kernel may reshape its
    `out` (a strided block would lose the result), and a float32 block of a float64 join
    is computed in float32, then cast: np.concatenate copies them."""
    model = gg.compile(joined_products(use))
    forward = model.source.split("def forward")[1].split("def value_and_grad")[0]
    assert "np.concatenate" in forward
    inputs = joined_inputs(rng)
    if use == "float32":
        inputs = {
            **inputs,
            "a": inputs["a"].astype(np.float32),
            "W": inputs["W"].astype(np.float32),
        }
    (value, grads), (plain_value, plain_grads) = (
        model.value_and_grad(**inputs, workspace={}),
        model.value_and_grad(**inputs),
    )
    outputs = (value, plain_value) if use == "returned" else ((value,), (plain_value,))
    for a, b in zip(*outputs):
        np.testing.assert_array_equal(a, b)
    assert_same((0.0, grads), (0.0, plain_grads))
    assert gg.gradcheck(model, inputs).ok
