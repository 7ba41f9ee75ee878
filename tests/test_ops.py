"""Every registry op, from its own test spec, through finite differences in float64.

The cases come from the registry (OpDef.tests): an op without test cases fails the suite.
Each case builds a one-op graph, checks the runtime output against the inferred shape and
dtype, and, for a differentiable op, checks value_and_grad/vjp against central differences.
"""

import numpy as np
import pytest

import graphgen as gg
from graphgen.builder import apply
from graphgen.check import sample
from graphgen.ops import REGISTRY

OPS = sorted(n for n, op in REGISTRY.items() if not op.leaf)
CASES = [(name, i) for name in OPS for i in range(len(REGISTRY[name].tests))]


def _dtype_for(domain: str) -> str:
    if domain.startswith("int:"):
        return "int64"
    return "bool" if domain in ("bool", "keep") else "float64"


def build_case(name: str, index: int, rng: np.random.Generator, float_dtype: str = "float64"):
    """(graph, out, inputs) applying op `name` to inputs drawn from its test case `index`.

    float_dtype: the dtype declared for (and drawn for) the float operands.
    """
    op = REGISTRY[name]
    case = op.tests[index]
    g = gg.Graph(f"{name}_{index}")
    operands, inputs = [], {}
    for i, shape in enumerate(case.shapes):
        if shape is None:  # an omitted optional operand
            operands.append(None)
            continue
        dtype = _dtype_for(case.domain(i))
        dtype = float_dtype if dtype == "float64" else dtype
        operands.append(g.input(f"a{i}", shape, dtype))
        inputs[f"a{i}"] = sample(shape, dtype, case.domain(i), rng)
    if not op.operands:  # const, eye: made by the graph, not by a public function
        out = g.apply(name, [], dict(case.attrs))
    elif op.variadic:  # concatenate(arrays, axis), einsum(subscripts, *operands)
        out = apply(name, *operands, **case.attrs)
    else:
        out = getattr(gg.ops.functions, name)(*operands, **case.attrs)
    g.output(out)
    return g, out, inputs


def test_every_op_has_test_cases():
    assert [n for n in OPS if not REGISTRY[n].tests] == []


def test_every_op_states_its_vjp_formula():
    assert [n for n in OPS if not REGISTRY[n].formula] == []


@pytest.mark.parametrize(("name", "index"), CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_op_matches_its_spec_and_finite_differences(name, index, rng):
    g, out, inputs = build_case(name, index, rng)
    float_inputs = [n for n, v in inputs.items() if v.dtype.kind == "f"]
    differentiable = REGISTRY[name].vjp is not None and out.spec.is_float and float_inputs
    model = gg.compile(g, wrt=float_inputs if differentiable else [])

    value = np.asarray(model.forward(**inputs))
    assert value.shape == tuple(out.shape)
    assert value.dtype == np.dtype(out.dtype)
    if differentiable:
        report = gg.gradcheck(model, inputs)
        assert report.ok


FRESH_CASES = [
    (name, i)
    for name, i in CASES
    if REGISTRY[name].gives_fresh_array(sum(s is not None for s in REGISTRY[name].tests[i].shapes))
]


@pytest.mark.parametrize(("name", "index"), FRESH_CASES, ids=[f"{n}-{i}" for n, i in FRESH_CASES])
def test_an_op_declared_fresh_never_returns_a_view_of_an_operand(name, index, rng):
    """Memory planning trusts OpDef.fresh: a value declared fresh may go into a workspace
    buffer while its operands' buffers are reused. So its emitted code must give a new array,
    sharing no memory with any operand."""
    g, _, inputs = build_case(name, index, rng)
    value = gg.compile(g, buffers=False).forward(**inputs)
    for key, array in inputs.items():
        assert not np.shares_memory(value, array), f"{name} returned a view of {key}"
