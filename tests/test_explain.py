"""`graphgen explain`: the derivation of the backward pass, node by node, in Markdown + LaTeX."""

import re

import numpy as np
import pytest
from graphs import mlp
from test_ops import CASES, build_case

import graphgen as gg
from graphgen import latex
from graphgen.explain import explain
from graphgen.ir import validate
from graphgen.layers import find_layers
from graphgen.ops import REGISTRY


def deep_mlp() -> gg.Graph:
    g = gg.Graph("deep")
    x = g.input("x", ("batch", 6))
    y = g.input("y", ("batch",), dtype="int64")
    W1, b1 = g.param("W1", (6, 5)), g.param("b1", (5,))
    W2, b2 = g.param("W2", (5, 4)), g.param("b2", (4,))
    W3, b3 = g.param("W3", (4, 3)), g.param("b3", (3,))
    h1 = gg.tanh(x @ W1 + b1)
    h2 = gg.sigmoid(h1 @ W2 + b2)
    g.output(gg.softmax_cross_entropy(h2 @ W3 + b3, y))
    return g


def step(doc: str, title: str) -> str:
    """The section of the step whose heading contains `title`."""
    match = re.search(rf"^### Step \d+: .*{re.escape(title)}.*?(?=^##)", doc, re.M | re.S)
    assert match, title
    return match.group(0)


def test_mlp_arrives_at_the_textbook_recurrence():
    doc = explain(deep_mlp())
    assert (
        r"\delta_{l} = \left(\mathbf{W}_{l+1}^{\top} \delta_{l+1}\right) \odot \sigma'(z_{l})"
        in doc
    )
    assert r"\delta_{l} = \left(\delta_{l+1} W_{l+1}^{\top}\right) \odot \sigma'(z_{l})" in doc


def test_mlp_recurrence_is_instantiated_for_each_layer():
    doc = explain(deep_mlp())
    assert (
        r"\delta_{2} = \left(\delta_{3} W_{3}^{\top}\right) \odot "
        r"\left(h_{2} \odot (1 - h_{2})\right)" in doc
    )
    assert (
        r"\delta_{1} = \left(\delta_{2} W_{2}^{\top}\right) \odot \left(1 - h_{1}^{\odot 2}\right)"
        in doc
    )
    assert (
        r"\delta_{3} = \frac{1}{N}\, \left(\operatorname{softmax}(z_{3}) - "
        r"\operatorname{onehot}(y)\right)" in doc
    )
    assert r"\bar{W}_{1} = x^{\top} \delta_{1}" in doc


def test_layout_convention_is_stated():
    doc = explain(mlp())
    assert "row-major batch" in doc
    assert r"$z = h W + b$" in doc and r"$z = \mathbf{W} h + b$" in doc
    assert "`d_h = d_z @ W.T`" in doc


def test_layers_are_found_only_for_a_chain_of_dense_layers():
    assert [layer.W for layer in find_layers(validate(deep_mlp()), "softmax_cross_entropy_9")] == [
        "W1",
        "W2",
        "W3",
    ]
    g = gg.Graph("not_mlp")
    w = g.param("w", (3,))
    g.output(gg.sum(gg.tanh(w)))
    assert find_layers(validate(g), g.nx.graph["outputs"][0]) == []
    assert "## The backprop recurrence" not in explain(g)


def test_matmul_step_says_the_transpose_comes_from_its_vjp():
    section = step(explain(mlp()), "matmul(h1, W2)")
    assert r"$$\bar{h}_{1} = \bar{u}_{2}\, W_{2}^{\top}$$" in section
    assert r"$$\bar{W}_{2} = h_{1}^{\top} \bar{u}_{2}$$" in section
    assert "Transpose from the matmul VJP" in section
    assert "times $W_{2}^\\top$ `(4, 5)` gives $\\bar{h}_{1}$ `(batch, 5)`" in section


def test_elementwise_step_says_the_hadamard_product_comes_from_a_diagonal_jacobian():
    section = step(explain(mlp()), "h1 = tanh(z1)")
    assert r"$$\bar{z}_{1} = \bar{h}_{1} \odot \left(1 - h_{1}^{\odot 2}\right)$$" in section
    assert "Hadamard product from a diagonal Jacobian" in section
    assert r"\operatorname{diag}(\operatorname{tanh}'(z_{1}))" in section
    assert "of size 5·batch by 5·batch" in section


def test_bias_gradient_is_a_sum_over_the_broadcast_batch_axis():
    section = step(explain(mlp()), "z1 = add(")
    assert r"$$\bar{b}_{1} = \textstyle\sum_{\text{axis}\ 0} \bar{z}_{1}$$" in section
    assert "Sum from broadcasting: `b1` `(5,)` was broadcast to `(batch, 5)`" in section


def test_fan_out_sums_the_cotangents_of_every_use():
    g = gg.Graph("tied")
    x = g.input("x", (2, 3))
    W = g.param("W", (3, 3))
    h = gg.tanh(x @ W, name="h")
    g.output(gg.sum(h @ W, name="s"))
    doc = explain(g)
    assert r"$$\bar{W} \mathrel{+}= " in doc
    assert re.search(r"- `W` `\(3, 3\)`, from steps \d+, \d+: .*= .* \+ ", doc)
    single = gg.Graph("twice")
    a = single.param("a", (3,))
    t = gg.tanh(a, name="t")
    single.output(gg.sum(t * t, name="s"))
    doc = explain(single)
    assert "Fan-out: `t` is used 2 times, by `multiply_1` (step 2, 2 times)." in doc
    assert r"$$\bar{t} = \bar{v}_{1} \odot t + \bar{v}_{1} \odot t$$" in doc


def test_non_scalar_output_is_seeded_with_the_vjp_cotangent():
    g = gg.Graph("vec")
    w = g.param("w", (3,))
    g.output(gg.exp(w, name="e"))
    doc = explain(g)
    assert r"Seed: $\bar{e} = u$, the cotangent given to `vjp`" in doc
    assert "```python\ndef vjp(w, cotangent, *, workspace=None):" in doc


def test_the_generated_code_closes_the_document():
    doc = explain(mlp())
    code = doc[doc.index("## The generated code") :]
    assert "def value_and_grad(x, y, W1, b1, W2, b2, *, workspace=None):" in code
    assert "_out(" not in code  # the plain form: no buffers, no in-place updates
    assert "d_h1 = d_logits @ W2.T" in code


def test_inputs_without_cotangent_are_named():
    assert "`y` gets no cotangent (int64 values are not differentiable)." in explain(mlp())


def _has_backward(name: str, index: int) -> bool:
    """The case has a float output and a float input to differentiate."""
    _, out, inputs = build_case(name, index, np.random.default_rng(0))
    return out.spec.is_float and any(v.dtype.kind == "f" for v in inputs.values())


WITH_VJP = [(n, i) for n, i in CASES if REGISTRY[n].vjp is not None and _has_backward(n, i)]


@pytest.mark.parametrize(("name", "index"), WITH_VJP, ids=[f"{n}-{i}" for n, i in WITH_VJP])
def test_every_registry_op_can_be_explained(name, index):
    g, out, inputs = build_case(name, index, np.random.default_rng(0))
    floats = [n for n, v in inputs.items() if v.dtype.kind == "f"]
    doc = explain(g, wrt=floats)
    assert "### Step 1: " in doc and "## Gradients" in doc


def test_op_without_a_latex_rule_falls_back_to_its_registry_formula(monkeypatch):
    monkeypatch.delitem(latex.RULES, "tanh")
    doc = explain(mlp())
    section = step(doc, "h1 = tanh(z1)")
    assert r"$$h_{1} = \operatorname{tanh}(z_{1})$$" in section
    assert r"\operatorname{VJP}_{1}(\bar{h}_{1})" in section
    assert f"the registry's formula (`{REGISTRY['tanh'].formula}`)" in section


def test_untrusted_names_are_escaped_in_latex_and_markdown():
    g = gg.Graph("evil`name")
    w = g.param("w$|`x\n{}", (2,))
    g.output(gg.sum(gg.tanh(w, name="t_#%&~^\\"), name="out"))
    doc = explain(g)
    assert r"\mathtt{w\$|`x?a\{\}}" in doc
    assert r"\mathtt{t\_\#\%\&\sim{}\hat{}\backslash{}}" in doc
    assert "| `` w$\\|`x\\n{} `` |" in doc  # a table cell: pipe escaped, backticks fenced
    assert "\n{}" not in doc
    assert "# The backward pass of `` evil`name ``" in doc


def test_empty_wrt_is_a_graph_error():
    with pytest.raises(gg.GraphError, match="nothing to differentiate"):
        explain(mlp(), wrt=[])
