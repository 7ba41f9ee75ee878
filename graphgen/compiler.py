"""The pipeline, one stage after another: IR -> autodiff -> passes -> codegen -> source.

validate/infer -> wrt -> build_joint (value_and_grad, vjp) -> simplify -> prune
-> one FunctionEmitter per function -> templates/module.py.j2 -> black
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import networkx as nx

from . import __version__
from .autodiff import Joint, build_joint, check_wrt
from .codegen import (
    VIEW_OPS,
    Body,
    FunctionEmitter,
    constant_value,
    format_source,
    kernel_source,
    template_env,
)
from .domains import input_domains
from .errors import WrtError
from .ir import spec, validate
from .naming import Namespace, doc_text, string_literal
from .passes import (
    eliminate_common_subexpressions,
    fuse_shared_matmuls,
    pool_before_relu,
    prune,
    simplify,
)


@dataclass
class Compiled:
    """The generated source and what it was made from."""

    source: str
    graph: nx.MultiDiGraph
    wrt: list[str]
    inputs: list[str]
    joint: Joint | None


def leaves(graph: nx.MultiDiGraph) -> list[str]:
    """Input and param leaves in declaration order: the generated functions' parameters."""
    return [n for n, op in graph.nodes(data="op") if op in ("input", "param")]


def compile_source(
    graph: Any, wrt: Any = None, checks: bool = True, buffers: bool = True
) -> Compiled:
    """Run the whole pipeline on `graph`; returns the black-formatted module source.

    checks: each generated function starts by checking its inputs (rank, dims, dtype kind);
    False leaves the checks out for the fastest code.
    buffers: large ufunc results are written with `out=` into buffers of an optional
    workspace, and elementwise chains are updated in place (see graphgen.memory); False
    emits every statement as one plain expression, as a textbook would write it.
    """
    with collector_paused():
        return _compile(graph, wrt, checks, buffers)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the duration (as it was before, after).

    Compiling makes many objects (graph copies, names, source lines) that live until it
    ends: every collection would scan them all again, and collections come more often as
    they grow, which made compile time grow faster than the graph (~15% of a 1,000-layer
    MLP's). Whatever cycles compiling leaves are collected once the collector is back on.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _compile(graph: Any, wrt: Any, checks: bool, buffers: bool) -> Compiled:
    forward = validate(graph)
    wrt = check_wrt(forward, _wrt_names(wrt))
    inputs = leaves(forward)
    outputs = forward.graph["outputs"]
    namespace = Namespace()
    params = {leaf: namespace.claim(leaf) for leaf in inputs}
    functions, kernels = [], set()

    rewritten = fuse_shared_matmuls(pool_before_relu(forward))  # as autodiff sees it
    body = _emit(prune(rewritten, outputs), outputs, inputs, params, buffers)
    functions.append(_function("forward", body, params, inputs, outputs, doc=_FORWARD_DOC))
    kernels |= body.kernels

    joint = None
    differentiable = bool(wrt) and spec(forward, outputs[0]).is_float
    if differentiable and spec(forward, outputs[0]).shape == ():
        joint = build_joint(forward, wrt)
        body, grads = _emit_joint(joint, outputs, wrt, inputs, params, buffers)
        functions.append(
            _function("value_and_grad", body, params, inputs, outputs, grads, _VAG_DOC)
        )
        kernels |= body.kernels
    if differentiable:
        vjp = build_joint(forward, wrt, seed_input=True)
        seed_param = "cotangent"  # reserved: no graph name can take it
        body, grads = _emit_joint(
            vjp, outputs, wrt, inputs + [vjp.seed], {**params, vjp.seed: seed_param}, buffers
        )
        fn = _function(
            "vjp", body, params, inputs, outputs, grads, _VJP_DOC, extra_param=seed_param
        )
        functions.append(fn)
        kernels |= body.kernels

    source = (
        template_env()
        .get_template("module.py.j2")
        .render(
            docstring=_module_doc(forward, inputs, outputs, wrt, [f["name"] for f in functions]),
            inputs=constant_value("INPUTS", tuple(inputs)),
            outputs=constant_value("OUTPUTS", tuple(outputs)),
            wrt=constant_value("WRT", tuple(wrt)),
            input_specs=constant_value("INPUT_SPECS", _specs(forward, inputs)),
            output_specs=constant_value("OUTPUT_SPECS", _specs(forward, outputs)),
            checks=checks,
            input_domains=constant_value("INPUT_DOMAINS", input_domains(forward)),
            kernels=[kernel_source(k) for k in sorted(kernels)],
            workspace=any(f["scratch"] or f["overwrites"] for f in functions),
            scratch=any(f["scratch"] for f in functions),
            functions=[_finish(f, checks) for f in functions],
        )
    )
    return Compiled(format_source(source), forward, wrt, inputs, joint)


def _wrt_names(wrt: Any) -> Any:
    """`wrt` as None, a comma-separated str or a list of plain str; WrtError otherwise."""
    if wrt is None:
        return None
    if isinstance(wrt, str):
        return str.__str__(wrt)
    if not isinstance(wrt, (list, tuple)):
        raise WrtError(f"wrt must be a list of leaf names or a comma-separated string, got {wrt!r}")
    for w in wrt:
        if not isinstance(w, str):
            raise WrtError(f"wrt name {w!r} is not a str")
    return [str.__str__(w) for w in wrt]


def _specs(graph: nx.MultiDiGraph, nodes: list[str]) -> dict:
    """`{name: {"shape": ..., "dtype": ...}}` (INPUT_SPECS, OUTPUT_SPECS)."""
    return {n: {"shape": tuple(spec(graph, n).shape), "dtype": spec(graph, n).dtype} for n in nodes}


def _emit(
    graph: nx.MultiDiGraph,
    targets: list[str],
    inputs: list[str],
    params: dict[str, str],
    buffers: bool = True,
) -> Body:
    return FunctionEmitter(graph, targets, inputs, params, buffers).body()


def optimize_joint(
    joint: Joint, outputs: list[str], wrt: list[str]
) -> tuple[nx.MultiDiGraph, list[str], list[str]]:
    """The joint graph as it is emitted (simplified, CSE'd, pruned), its output nodes and
    gradient nodes (in `wrt` order). `graphgen show --backward` prints this graph."""
    grad_nodes = [joint.grads[w] for w in wrt]
    targets = simplify(joint.graph, list(outputs) + grad_nodes)
    targets = eliminate_common_subexpressions(joint.graph, targets)
    graph = prune(joint.graph, targets)
    return graph, targets[: len(outputs)], targets[len(outputs) :]


def _emit_joint(
    joint: Joint, outputs, wrt, inputs, params, buffers: bool
) -> tuple[Body, dict[str, str]]:
    graph, out_targets, grad_targets = optimize_joint(joint, outputs, wrt)
    targets = out_targets + grad_targets
    body = _emit(graph, list(dict.fromkeys(targets)), inputs, params, buffers)
    grads = {}
    seen: set[str] = set()
    for w, node in zip(wrt, grad_targets):
        expr = body.results[node]
        op = graph.nodes[node]["op"]
        # never hand out an input, a read-only broadcast view, or one array twice
        if node in seen or op in _MAY_ALIAS or node in out_targets:
            expr = f"np.copy({expr})"
        seen.add(node)
        grads[w] = expr
    body.results = {**body.results, **{o: body.results[t] for o, t in zip(outputs, out_targets)}}
    return body, grads


# ops whose result may be an input, a constant, or a (read-only) view of another array
_MAY_ALIAS = VIEW_OPS | {"input", "param", "const", "broadcast_to", "stop_gradient"}


def _function(
    name, body: Body, params, inputs, outputs, grads=None, doc="", extra_param=None
) -> dict:
    values = [body.results[o] for o in outputs]
    value = values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"
    ret = value
    if grads is not None:
        entries = ", ".join(f"{string_literal(w)}: {e}" for w, e in grads.items())
        ret = f"{value}, {{{entries}}}"
    plist = [params[i] for i in inputs] + ([extra_param] if extra_param else [])
    return {
        "name": name,
        "params": ", ".join(plist),
        "signature": ", ".join([*plist, "*", f"{WORKSPACE}=None"]),
        "lines": body.lines,
        "ret": ret,
        "doc": doc,
        "overwrites": body.overwrites,
        "scratch": body.buffers > 0 or body.kernel_scratch,
    }


WORKSPACE = "workspace"  # reserved names (naming.MODULE_NAMES): no graph name can take them


def _finish(fn: dict, checks: bool) -> dict:
    """The function's lines: input checks, the workspace prologue, the body, the
    workspace's release, return."""
    params = fn["params"]
    start = [f"_check_inputs({params})"] if checks else []
    # in-place updates below must not round a mix of float32 and float64 to float32
    if fn["scratch"]:
        targets = f"{params}, scratch" if params else "(scratch,)"
        args = ", ".join([WORKSPACE, string_literal(fn["name"]), *filter(None, [params])])
        start.append(f"{targets} = _prepare({args})")
    elif fn["overwrites"] and params:
        targets = params if "," in params else f"({params},)"
        start.append(f"{targets} = _common_float({params})")
    end = ["_release(scratch)"] if fn["scratch"] else []
    return {**fn, "lines": [*start, *fn["lines"], *end, f"return {fn['ret']}"]}


def _module_doc(graph, inputs, outputs, wrt, functions) -> str:
    lines = [
        f"Generated by graphgen {__version__} from graph {graph.graph['name']}.",
        "",
        "Needs only NumPy installed. Do not edit: regenerate from the graph instead.",
        "",
        "Inputs:",
    ]
    for n in inputs:
        kind = "param" if graph.nodes[n]["op"] == "param" else "input"
        lines.append(f"    {n}: {spec(graph, n)} ({kind})")
    lines.append("Outputs:")
    lines += [f"    {n}: {spec(graph, n)}" for n in outputs]
    lines.append("Differentiated with respect to: " + (", ".join(wrt) or "(nothing)"))
    lines.append("Functions: " + ", ".join(functions))
    # every line escaped as a whole: names and symbolic dims come from the graph
    return "\n".join(doc_text(line) for line in lines) + "\n"


_FORWARD_DOC = "The graph's outputs (a tuple when there are several). Keeps no residuals."
_VAG_DOC = "(value, grads): the outputs and the gradient of the first, a dict keyed by WRT."
_VJP_DOC = "(outputs, grads): grads of <cotangent, first output>, a dict keyed by WRT."
