"""Code generation: scheduled graphs -> Python source with NumPy, via Jinja and black.

Each function body is straight-line NumPy. One statement per value a reader cares about:
named forward nodes keep their graph names, a node's total cotangent is `d_<name>`, and
single-use temporaries (auto-named forward nodes, pieces of one VJP rule, constants) are
inlined into the expression that uses them, parenthesized by Python precedence. Every
backward statement is preceded by a comment naming the rule and the shapes involved.
Dead intermediates are released with `del` right after their last use. A concatenation
whose blocks are ufunc or matmul statements read by it alone (through transposes at most:
the q/k/v cotangents of a fused attention projection) is computed in place: its array is
made first and each block's statement writes into its part of it (see Joins).
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import black
import jinja2
import networkx as nx

from .ir import spec
from .memory import BufferPlan, plan_buffers
from .naming import GRAD_PREFIX, Namespace, auto_id_number, comment_text, string_literal
from .ops.elementwise import where_into_branch
from .ops.registry import ATOM, FLOAT_DTYPES, Dim, OpDef, get_op
from .ops.shapes import fmt_shape
from .schedule import operand_slots, operands, topological_order

MAX_INLINE_DEPTH = 12  # deeper unnamed chains are split into statements
# ops whose result is a view of their operand (a NumPy view, not a copy)
VIEW_OPS = frozenset({"reshape", "transpose", "expand_dims", "squeeze", "getitem"})
# smaller static results are left to malloc, which recycles them cheaply; a symbolic dim
# may be large, so results with one are always planned
MIN_BUFFER_ELEMENTS = 1024


# ---- templates -------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def template_env() -> jinja2.Environment:
    """Templates from the installed package data, or from the repo's templates/ folder."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "module.py.j2").is_file():
            loader = jinja2.FileSystemLoader(str(candidate))
            break
    else:  # pragma: no cover - a broken installation
        raise RuntimeError(f"graphgen templates not found next to {here} ({resources.__name__})")
    return jinja2.Environment(
        loader=loader,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def kernel_source(name: str) -> str:
    return template_env().get_template(f"kernels/{name}.py.j2").render().strip()


# black's default style for the Pythons graphgen supports (3.10+), stated rather than
# inferred from each snippet, so that a statement formats alone as it does in its module
BLACK_MODE = black.Mode(
    target_versions={v for v in black.TargetVersion if v.value >= black.TargetVersion.PY310.value}
)
# a one-line statement black may rewrite even when it fits: long lines, `x ** y` (black
# hugs simple powers), single quotes, backslashes, slices and parenthesized right sides
_BLACK_MAY_CHANGE = re.compile(r"\*\*|'|\\|\[[^\]]*:|=\s*\(|\t|  ")


def format_source(source: str) -> str:
    """The module as black formats it, in its default style (code people write).

    In time linear in its size: top-level blocks other than the generated functions
    (docstring, constants, kernels) go to black one by one, cached; inside a function,
    only the statements black could change (see _BLACK_MAY_CHANGE) do, and the longest
    argument lists are laid out here (_exploded). Tests check black leaves the result as
    it is.
    """
    blocks = source.split("\n\n\n")
    return "\n\n\n".join(
        _format_function(b) if _is_function(b) else _format_block(b) for b in blocks
    )


@functools.lru_cache(maxsize=512)
def _format_block(block: str) -> str:
    return black.format_str(block.strip("\n") + "\n", mode=BLACK_MODE).rstrip("\n") + (
        "\n" if block.endswith("\n") else ""
    )


_FUNCTION_HEAD = re.compile(r"def (forward|value_and_grad|vjp)\(")


def _is_function(block: str) -> bool:
    """A generated function: a def line, a one-line docstring, one statement per line."""
    return bool(_FUNCTION_HEAD.match(block)) and all(
        line.startswith("    ") and not line.startswith("     ")
        for line in block.rstrip("\n").splitlines()[1:]
    )


def _format_function(block: str) -> str:
    head, *body = block.rstrip("\n").splitlines()
    lines = (
        _exploded(head)
        or black.format_str(head + "\n    pass\n", mode=BLACK_MODE).splitlines()[:-1]
    )
    for line in body:
        if _black_keeps(line):
            lines.append(line)
        elif exploded := _exploded(line):
            lines.extend(exploded)
        else:  # with a statement after it, so that a comment is not a body of its own
            wrapped = black.format_str(f"def f():\n{line}\n    pass\n", mode=BLACK_MODE)
            lines.extend(wrapped.splitlines()[1:-1])
    return "\n".join(lines) + ("\n" if block.endswith("\n") else "")


# statements this long (a call with an argument per input of a deep graph) are laid out
# here, one item a line, as black lays them out: black's own time grows faster than their
# length
EXPLODE_AT = 600
_SIMPLE_ITEM = re.compile(r'^(?:\*|[\w.]+(?:=\w+)?|"[\w.]*"(?:: [\w.]+(?:\([\w.]+\))?)?)$')


def _exploded(line: str) -> list[str] | None:
    """black's layout of a statement too long for one line whose last bracket holds a
    list of simple items (names, short strings, `"w": d_w`): the opening line, each item
    on its own line with a trailing comma, the closing line. A tuple target
    (`a, b = f(a, b)`) is exploded the same way. None for anything else."""
    if len(line) < EXPLODE_AT:
        return None
    indent = line[: len(line) - len(line.lstrip())]
    text = line.strip()
    tail = ":" if text.endswith(":") else ""
    text = text[: len(text) - len(tail)]
    if not text or text[-1] not in ")}":
        return None
    opener = "(" if text[-1] == ")" else "{"
    start = text.find(opener)
    head, items = text[:start], text[start + 1 : -1].split(", ")
    target = None
    if " = " in head and head.split(" = ")[0].count(","):
        target, head = head.split(" = ", 1)
        head = " = " + head
    if any(c in head for c in "()[]{}") or not all(_SIMPLE_ITEM.match(i) for i in items):
        return None
    lines = []
    if target is not None:
        names = target.split(", ")
        if not all(_SIMPLE_ITEM.match(n) for n in names):
            return None
        lines += [indent + "("] + [f"{indent}    {n}," for n in names]
        lines.append(f"{indent}){head}{opener}")
    else:
        lines.append(f"{indent}{head}{opener}")
    lines += [f"{indent}    {i}," for i in items]
    lines.append(f"{indent}{text[-1]}{tail}")
    if any(len(x) > BLACK_MODE.line_length for x in lines):
        return None
    return lines


def python_literal(value) -> str:
    """A literal of str/int/float/bool/None, tuples, lists and dicts on one line, with
    double-quoted strings (as black writes them)."""
    if isinstance(value, str):
        return string_literal(value)
    if isinstance(value, tuple):
        inner = ", ".join(python_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(python_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        entries = (f"{python_literal(k)}: {python_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(entries) + "}"
    return repr(value)


def constant_value(name: str, value) -> str:
    """The right side of `name = value` at module level, laid out as black lays it out:
    one line when it fits, else one item a line (left to black when an item is long)."""
    text = python_literal(value)
    if len(f"{name} = {text}") <= BLACK_MODE.line_length or not value:
        return text
    if isinstance(value, dict):
        items = [f"{python_literal(k)}: {python_literal(v)}" for k, v in value.items()]
        opener, closer = "{", "}"
    elif isinstance(value, tuple):
        items = [python_literal(v) for v in value]
        opener, closer = "(", ")"
    else:
        return text
    hug = "    " + ", ".join(items)
    if len(hug) <= BLACK_MODE.line_length:
        return f"{opener}\n{hug}\n{closer}"
    if any(len(i) + 5 > BLACK_MODE.line_length for i in items):
        return text
    return opener + "\n" + "".join(f"    {i},\n" for i in items) + closer


def _black_keeps(line: str) -> bool:
    """Whether black leaves this one-line statement (or comment) of a body as it is."""
    text = line[4:]
    if text.startswith("#"):  # black keeps long comments, and only adds the space after #
        return text.startswith("# ") and text == text.rstrip()
    return (
        len(line) <= BLACK_MODE.line_length
        and not _BLACK_MAY_CHANGE.search(text)
        and not text.endswith(",")
        and text == text.strip()
    )


# ---- one function body -----------------------------------------------------------------


@dataclass
class Body:
    """The statements of one generated function and the expressions of its targets.

    buffers: how many workspace buffers the statements write (`out=_out(scratch, ...)`);
    when there are any, the function must bind `scratch` first (see compiler._finish).
    """

    lines: list[str]
    results: dict[str, str]
    kernels: set[str] = field(default_factory=set)
    buffers: int = 0
    overwrites: bool = False  # some statement computes its result into a dead operand
    kernel_scratch: bool = False  # a kernel is handed `scratch` for its temporaries


@dataclass
class Joins:
    """Concatenations computed in place: blocks[node], the producers (in order) of the
    operands of a concatenate statement, which write straight into its array
    (into[producer]: the expression of the producer's block); the array is made before
    the first of them (start[producer]: the joins made there). A planned one gets its own
    workspace slot (slot[node]), numbered after the plan's, so that no other value shares
    it while it is filled."""

    blocks: dict[str, list[str]] = field(default_factory=dict)
    into: dict[str, str] = field(default_factory=dict)
    start: dict[str, list[str]] = field(default_factory=dict)
    slot: dict[str, int] = field(default_factory=dict)


# in-place forms of elementwise ufuncs: `h += b` is np.add(h, b, out=h)
_AUGMENTED = {"np.add": "+=", "np.subtract": "-=", "np.multiply": "*=", "np.divide": "/="}
_COMMUTATIVE = frozenset({"np.add", "np.multiply"})  # exactly, in IEEE arithmetic too


class EmitContext:
    """What an op's emitter sees: attrs, operand/output specs, and rendered operands."""

    def __init__(self, fn: FunctionEmitter, node: str):
        self._fn = fn
        data = fn.graph.nodes[node]
        # by position; None where an optional operand is absent
        self._args = operand_slots(fn.graph, node, len(get_op(data["op"]).operands))
        self.attrs = data.get("attrs") or {}
        self.out = spec(fn.graph, node)
        self.ins = [None if a is None else spec(fn.graph, a) for a in self._args]
        self.name = fn.names.get(node, "")

    def scratch(self) -> str:
        """The variable holding the function's workspace scratch (None at run time without
        a workspace), or "" when the function plans no buffers (buffers=False)."""
        if not self._fn.buffers:
            return ""
        self._fn.uses_scratch = True
        return "scratch"

    def operand(self, i: int) -> str | None:
        """The node of operand i (None where an optional operand is absent)."""
        return self._args[i]

    def constant(self, i: int):
        """The value of operand i when it is a constant node, else None."""
        node = self._args[i]
        if node is None or self._fn.graph.nodes[node]["op"] != "const":
            return None
        return self._fn.graph.nodes[node]["attrs"]["value"]

    @property
    def plain(self) -> bool:
        """Whether the function is emitted as plain expressions (buffers=False): an emitter
        then prefers the textbook form of an op where a faster one gives the same bits."""
        return not self._fn.buffers

    def use_kernel(self, name: str) -> None:
        """Include the kernel template `name` in the module (for emitters whose helper
        depends on the operands, not only on attrs)."""
        self._fn.kernels.add(name)

    def arg(self, i: int, min_prec: int = 0) -> str:
        """Operand i as source, parenthesized if it binds looser than `min_prec`."""
        if self._args[i] is None:
            raise ValueError(f"operand {i} is absent (check e.ins[{i}] is None first)")
        text, prec = self._fn.expr(self._args[i])
        return f"({text})" if prec < min_prec else text

    def dim(self, d: Dim) -> str:
        return str(d) if isinstance(d, int) else self._fn.dim_name(d)

    def shape(self, shape) -> str:
        dims = [self.dim(d) for d in shape]
        return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"

    def dim_product(self, dims) -> str:
        static = 1
        parts = []
        for d in dims:
            if isinstance(d, int):
                static *= d
            else:
                parts.append(self.dim(d))
        if static != 1 or not parts:
            parts.insert(0, str(static))
        # parenthesized: emitters treat it as an atom (`g / (2 * n)`, not `g / 2 * n`)
        return parts[0] if len(parts) == 1 else "(" + " * ".join(parts) + ")"


class FunctionEmitter:
    """Emits the body of one function computing `targets` of `graph`."""

    def __init__(
        self,
        graph: nx.MultiDiGraph,
        targets: list[str],
        inputs: list[str],
        param_names: dict[str, str],
        buffers: bool = True,
    ):
        self.graph = graph
        self.buffers = buffers  # plan workspace buffers and in-place updates
        self._emitted_ops: dict[str, OpDef] = {}
        self.uses_scratch = False  # a kernel call was handed `scratch`
        self.targets = targets
        self._target_set = set(targets)
        self.order = topological_order(graph)
        self._position = {node: i for i, node in enumerate(self.order)}
        self.namespace = Namespace()
        self.names: dict[str, str] = {}
        for leaf in inputs:
            self.names[leaf] = self.namespace.reserve(param_names[leaf])
        self.dims: dict[str, str] = {}
        self.dim_sources = self._dim_sources(inputs)
        for node in self.order:
            if node not in self.names:
                self.names[node] = self.namespace.claim(self._preferred_name(node))
        self.constants = self._constant_nodes()
        self.inlined = self._inlined_nodes()
        self.kernels: set[str] = set()

    # naming
    def _preferred_name(self, node: str) -> str:
        data = self.graph.nodes[node]
        if "grad_of" in data and data["grad_of"] in self.names:
            return GRAD_PREFIX + self.names[data["grad_of"]]
        if data.get("role") == "backward" and "vjp_of" in data and data["vjp_of"] in self.names:
            return f"{GRAD_PREFIX}{self.names[data['vjp_of']]}_{data['op']}"
        return node

    def _dim_sources(self, inputs: list[str]) -> dict[str, tuple[str, int]]:
        sources: dict[str, tuple[str, int]] = {}
        for leaf in inputs:
            for axis, d in enumerate(self.graph.nodes[leaf]["shape"]):
                if isinstance(d, str) and d not in sources:
                    sources[d] = (leaf, axis)
        return sources

    def dim_name(self, dim: str) -> str:
        if dim not in self.dim_sources:
            raise ValueError(f"symbolic dim {dim!r} is not a dim of any input")
        if dim not in self.dims:
            self.dims[dim] = self.namespace.claim(dim)
        return self.dims[dim]

    # inlining
    def _inlined_nodes(self) -> set[str]:
        """The inlinable nodes, except where an expression would nest deeper than
        MAX_INLINE_DEPTH (a deep unnamed chain then gets a statement every few levels)."""
        inlined: set[str] = set()
        depth: dict[str, int] = {}
        for node in self.order:
            below = [depth[a] for a in operands(self.graph, node) if a in inlined]
            depth[node] = 1 + max(below, default=0)
            if depth[node] <= MAX_INLINE_DEPTH and self._inlinable(node):
                inlined.add(node)
        return inlined

    def _inlinable(self, node: str) -> bool:
        data = self.graph.nodes[node]
        op = data["op"]
        if op in ("input", "param") or node in self._target_set:
            return False
        if op == "const" or not get_op(op).reads_operands:
            return True
        users = self._readers(node)
        if len(users) != 1 or "grad_of" in data:
            return False
        udata = self.graph.nodes[users[0]]
        if udata["op"] in VIEW_OPS and self._needs_a_buffer(node):
            return False  # a view of it would keep a fresh array: give it a buffer instead
        if data.get("role") == "backward":
            return udata.get("role") == "backward" and udata.get("vjp_of") == data.get("vjp_of")
        return auto_id_number(node, op) is not None

    def _needs_a_buffer(self, node: str) -> bool:
        """Whether `node` is a large result that could be written into a workspace buffer."""
        if not self.buffers:
            return False
        return self.emitted_op(node).writes_out and _worth_a_buffer(spec(self.graph, node).shape)

    def _readers(self, node: str) -> list[str]:
        """The uses of `node` that read its value (a `size` only looks at its static shape)."""
        return [
            v
            for _, v in self.graph.out_edges(node)
            if get_op(self.graph.nodes[v]["op"]).reads_operands
        ]

    # expressions
    def expr(self, node: str) -> tuple[str, int]:
        """(source, precedence) of `node`'s value at a point of use."""
        if node not in self.inlined:
            return self.names[node], ATOM
        return self.render(node)

    def emitted_op(self, node: str) -> OpDef:
        """The op whose emitter writes `node`: its own, or the faster equivalent its op
        declares for these operands (OpDef.emit_as)."""
        op = get_op(self.graph.nodes[node]["op"])
        if op.emit_as is None:
            return op
        if node not in self._emitted_ops:
            slots = operand_slots(self.graph, node, len(op.operands))
            name = op.emit_as([None if a is None else spec(self.graph, a) for a in slots])
            self._emitted_ops[node] = op if name is None else get_op(name)
        return self._emitted_ops[node]

    def render(self, node: str) -> tuple[str, int]:
        op = self.emitted_op(node)
        e = EmitContext(self, node)
        self.kernels.update(op.kernels(e.attrs))
        prec = op.prec(e.attrs) if callable(op.prec) else op.prec
        if self._strong_constant(node):
            # np.log(0.5) is an np.float64, which would promote float32 arrays to float64;
            # a Python float adapts to the arrays it meets (float32 in, float32 out)
            return f"float({op.emit(e)})", ATOM
        return op.emit(e), prec

    def _constant_nodes(self) -> set[str]:
        """The nodes whose values depend on consts only (no input or param)."""
        found: set[str] = set()
        for node in self.order:
            args = operands(self.graph, node)
            if self.graph.nodes[node]["op"] == "const" or (args and set(args) <= found):
                found.add(node)
        return found

    def _strong_constant(self, node: str) -> bool:
        """A float scalar computed from consts by a NumPy call, at the edge of its constant
        subexpression (its uses are not constant, or it is a statement of its own)."""
        data = self.graph.nodes[node]
        if data["op"] == "const" or tuple(data["shape"]) or data["dtype"] not in FLOAT_DTYPES:
            return False
        if node not in self.constants:
            return False
        users = [v for _, v in self.graph.out_edges(node)]
        return node not in self.inlined or not all(u in self.constants for u in users)

    def reads(self, node: str) -> set[str]:
        """The variables that computing `node` reads (through inlined operands)."""
        found: set[str] = set()
        if not get_op(self.graph.nodes[node]["op"]).reads_operands:
            return found
        for a in operands(self.graph, node):
            if a in self.inlined:
                found |= self.reads(a)
            else:
                found.add(a)
        return found

    # statements
    def body(self, release: bool = True, comments: bool = True) -> Body:
        statements = [
            n
            for n in self.order
            if n not in self.inlined and self.graph.nodes[n]["op"] not in ("input", "param")
        ]
        plan = self._buffer_plan(statements)
        joins = self._joins(statements, plan) if self.buffers else Joins()
        rendered = [(n, self._joined_statement(n, plan, joins)) for n in statements]
        last_use = self._last_uses(statements)
        lines: list[str] = []
        for i, (node, statement) in enumerate(rendered):
            for join in joins.start.get(node, []):  # a join's array, before its first block
                lines.extend(self._join_array(join, joins, comments))
            if comments and node not in joins.blocks:
                lines.extend(f"# {comment_text(c)}" for c in self._comment(node))
            lines.extend(statement)
            dead = [self.names[v] for v in last_use.get(i, [])]
            if release and dead:
                lines.append("del " + ", ".join(dead))
        bindings = [
            f"{name} = {self.names[self.dim_sources[d][0]]}.shape[{self.dim_sources[d][1]}]"
            for d, name in self.dims.items()
        ]
        results = {t: self.expr(t)[0] for t in self.targets}
        return Body(
            bindings + lines,
            results,
            self.kernels,
            plan.slots + len(joins.slot),
            bool(plan.reuse),
            self.uses_scratch,
        )

    # joins computed in place
    def _joins(self, statements: list[str], plan: BufferPlan) -> Joins:
        """The concatenations whose operands can be computed straight into the joined
        array (see Joins), each with its own workspace slot after the plan's."""
        joins = Joins()
        for node in statements:
            blocks = self._join_blocks(node, plan)
            if blocks is None:
                continue
            producers = sorted((p for p, _ in blocks), key=self._position.__getitem__)
            if node in plan.slot:
                joins.slot[node] = plan.slots + len(joins.slot)
            joins.start.setdefault(producers[0], []).append(node)
            joins.blocks[node] = producers
            for producer, view in blocks:
                joins.into[producer] = view
        return joins

    def _join_blocks(self, node: str, plan: BufferPlan) -> list[tuple[str, str]] | None:
        """[(producer, its block of node's array as an expression)] for a concatenate
        statement every operand of which is a ufunc or matmul statement, seen through
        transposes only (views), read by nothing else and not returned; else None."""
        data = self.graph.nodes[node]
        if data["op"] != "concatenate" or node in self._target_set or node in self.inlined:
            return None
        out = spec(self.graph, node)
        axis = data["attrs"]["axis"] % len(out.shape)
        blocks, offset, seen = [], 0, set()
        for arg in operand_slots(self.graph, node, 1):
            found = self._through_transposes(arg, node)
            if found is None:
                return None
            producer, axes = found
            size = spec(self.graph, arg).shape[axis]
            if producer in seen or producer in plan.reuse or not isinstance(size, int):
                return None
            if spec(self.graph, producer).dtype != out.dtype:  # np.concatenate would cast
                return None
            seen.add(producer)
            index = ":, " * axis + f"{offset}:{offset + size}"
            block = f"{self.names[node]}[{index}]"
            inverse = tuple(sorted(range(len(axes)), key=axes.__getitem__))
            if inverse != tuple(range(len(axes))):
                block = f"np.transpose({block}, {inverse})"
            blocks.append((producer, block))
            offset += size
        return blocks

    def _through_transposes(self, arg: str | None, user: str) -> tuple[str, list[int]] | None:
        """(producer, axes) when arg is np.transpose(producer, axes), through any number of
        transposes (none: the identity), each read only by the next and `user` reading
        the last; None when arg is not such a chain over a joinable producer."""
        if arg is None:
            return None
        chain, node = [], arg
        while True:
            if node in self._target_set or self._readers(node) != [user]:
                return None
            if self.graph.nodes[node]["op"] != "transpose":
                break
            chain.append(node)
            user, node = node, operands(self.graph, node)[0]
        if node in self.inlined or self.emitted_op(node).ufunc is None:
            return None  # kernels may reshape `out`; a strided block would lose the result
        axes = list(range(len(spec(self.graph, node).shape)))
        for t in reversed(chain):  # np.transpose(x, p)[i] is axis p[i] of x
            perm = self.graph.nodes[t]["attrs"]["axes"]
            perm = list(reversed(axes)) if perm is None else [axes[a % len(axes)] for a in perm]
            axes = perm
        return node, axes

    def _joined_statement(self, node: str, plan: BufferPlan, joins: Joins) -> list[str]:
        """_statement, with the joins: each block is computed into its part of the joined
        array (made before the first, see _join_array), and the concatenate itself is left
        with nothing to do."""
        if node in joins.blocks:
            return []
        if node in joins.into:
            return self._into(node, self.names[node], joins.into[node])
        return self._statement(node, plan)

    def _join_array(self, node: str, joins: Joins, comments: bool = True) -> list[str]:
        """The statement making concatenate `node`'s array, ahead of its blocks."""
        out = spec(self.graph, node)
        e = EmitContext(self, node)
        args = f"{e.shape(out.shape)}, {string_literal(out.dtype)}"
        name = self.names[node]
        parts = ", ".join(self.names[p] for p in joins.blocks[node])
        comment = f"# {name}: its blocks ({parts}) are computed into it: no copy joins them"
        lines = [comment] if comments else []
        if node in joins.slot:
            self.kernels.add("joined_buffer")
            return lines + [f"{name} = _buffer(scratch, {joins.slot[node]}, {args})"]
        return lines + [f"{name} = np.empty({args})"]

    # memory planning
    def _buffer_plan(self, statements: list[str]) -> BufferPlan:
        """Workspace slots for the statements whose op can write into `out=` (see memory)."""
        if not self.buffers:
            return BufferPlan({}, 0)
        candidates = {n for n in statements if self._needs_a_buffer(n)}
        candidates -= set(self.targets)
        fresh = {
            n
            for n in statements
            if self.emitted_op(n).gives_fresh_array(len(operands(self.graph, n)))
        }
        return plan_buffers(
            statements,
            self.reads,
            candidates,
            fresh,
            self.targets,
            key=lambda n: (tuple(spec(self.graph, n).shape), spec(self.graph, n).dtype),
            reusable=self._reusable_operands,
        )

    def _reusable_operands(self, node: str) -> list[str]:
        """The operands `node` could compute its result into: statements of its shape and
        dtype, at the positions an elementwise ufunc (any) or `where` (x1, x2) takes.

        For an elementwise chain (see _into), the operands of its innermost op that no
        later step of the chain reads: the chain starts by overwriting one of them."""
        chain = self._chain(node)
        innermost = chain[-1]
        later: set[str] = set()
        for step, child in zip(chain, chain[1:]):
            for a in operands(self.graph, step):
                if a != child:
                    later |= self.reads(a) if a in self.inlined else {a}
        return [v for v in self._own_reusable(innermost, node) if v not in later]

    def _chain(self, node: str) -> list[str]:
        """node, then each chained operand in turn (see _into): the ops of its statement
        that run one after another in one array, outermost first."""
        chain = [node]
        while get_op(self.graph.nodes[chain[-1]]["op"]).elementwise:
            chained = self._chained_operand(chain[-1])
            if chained is None:
                break
            chain.append(operand_slots(self.graph, chain[-1], 0)[chained])
        return chain

    def _own_reusable(self, node: str, result: str) -> list[str]:
        """The operands of `node` that could be overwritten by `result` (node or the
        outermost step of its chain): same shape and dtype as result."""
        op = get_op(self.graph.nodes[node]["op"])
        if op.elementwise:
            positions = range(len(op.operands))
        elif op.name == "where" and node == result:
            positions = (1, 2)
        else:
            return []
        if not spec(self.graph, result).shape:
            return []
        slots = operand_slots(self.graph, node, len(op.operands))
        return [
            slots[i]
            for i in positions
            if slots[i] is not None
            and slots[i] not in self.inlined
            and self.graph.nodes[slots[i]]["op"] not in ("input", "param")
            and self._same_spec(slots[i], result)
        ]

    def _same_spec(self, a: str, b: str) -> bool:
        """Whether a and b have the same (symbolic) shape and dtype: one array fits both."""
        sa, sb = spec(self.graph, a), spec(self.graph, b)
        return tuple(sa.shape) == tuple(sb.shape) and sa.dtype == sb.dtype

    def _statement(self, node: str, plan: BufferPlan) -> list[str]:
        """`name = expression`, or for a planned node its result computed in its buffer,
        or for a node that overwrites a dead operand, the update of that operand."""
        name = self.names[node]
        if node in plan.reuse:
            return self._overwrite(node, plan.reuse[node])
        if node not in plan.slot:
            return [f"{name} = {self.render(node)[0]}"]
        out = spec(self.graph, node)
        e = EmitContext(self, node)
        dtype = string_literal(out.dtype)
        buffer = f"_out(scratch, {plan.slot[node]}, {e.shape(out.shape)}, {dtype})"
        return self._into(node, name, buffer)

    def _into(self, node: str, var: str, out: str) -> list[str]:
        """Statements leaving `node`'s value in `var`, written into `out` (an expression).

        An elementwise op whose operand is an inlined ufunc result of its own shape and
        dtype computes that operand into `out` first, then updates it in place.
        """
        op = self.emitted_op(node)
        e = EmitContext(self, node)
        chained = self._chained_operand(node) if op.elementwise else None
        self.kernels.update(op.kernels(e.attrs))  # relu's ufunc is a kernel's function
        if chained is None and op.ufunc is None:  # a kernel taking out=
            call = op.emit(e)
            return [f"{var} = {call[:-1]}, out={out})"]
        if chained is None:
            args = [e.arg(i) for i in range(len(e.ins))] + list(op.ufunc_extra)
            return [f"{var} = {op.ufunc}({', '.join(args)}, out={out})"]
        lines = self._into(e.operand(chained), var, out)
        others = [var if i == chained else e.arg(i) for i in range(len(e.ins))]
        if len(others) == 2 and op.ufunc in _AUGMENTED:
            if chained == 0 or op.ufunc in _COMMUTATIVE:
                lines.append(f"{var} {_AUGMENTED[op.ufunc]} {others[1 - chained]}")
                return lines
        args = ", ".join(others + list(op.ufunc_extra))
        lines.append(f"{op.ufunc}({args}, out={var})")
        return lines

    def _overwrite(self, node: str, dead: str) -> list[str]:
        """`node`'s value computed into the array of its operand `dead` (read last here),
        or of an operand of its chain's innermost op (see _reusable_operands)."""
        op = self.emitted_op(node)
        e = EmitContext(self, node)
        var, target = self.names[node], self.names[dead]
        self.kernels.update(op.kernels(e.attrs))
        if len(self._chain(node)) > 1:
            return self._into(node, var, target)
        position = [e.operand(i) for i in range(len(e.ins))].index(dead)
        if op.name == "where":  # where(c, x1, x2): x1 where c, else x2
            return where_into_branch(e, position, target, var)
        args = [target if i == position else e.arg(i) for i in range(len(e.ins))]
        args += list(op.ufunc_extra)
        return [f"{var} = {op.ufunc}({', '.join(args)}, out={target})"]

    def _chained_operand(self, node: str) -> int | None:
        """The operand position of `node` that can be computed in node's own buffer."""
        slots = operand_slots(self.graph, node, len(get_op(self.graph.nodes[node]["op"]).operands))
        for i, arg in enumerate(slots):
            if (
                arg in self.inlined
                and self.emitted_op(arg).writes_out
                and self._same_spec(arg, node)
            ):
                return i
        return None

    def _last_uses(self, statements: list[str]) -> dict[int, list[str]]:
        last: dict[str, int] = {}
        for i, node in enumerate(statements):
            for v in self.reads(node):
                last[v] = i
        keep = set(self.targets) | {
            n for n in self.order if self.graph.nodes[n]["op"] in ("input", "param")
        }
        by_index: dict[int, list[str]] = {}
        for v, i in last.items():
            if v not in keep:
                by_index.setdefault(i, []).append(v)
        return {i: sorted(vs, key=self._position.__getitem__) for i, vs in by_index.items()}

    def _comment(self, node: str) -> list[str]:
        data = self.graph.nodes[node]
        if data.get("role") != "backward":
            return []
        rule, fwd = data.get("rule"), data.get("vjp_of")
        if fwd not in self.names:  # pruned, or a tag the graph came with
            return []
        if rule == "blocks":  # said once, on the joined total (not its inner steps)
            if "grad_of" not in data:
                return []
            return [
                f"{self.names[node]}: {self.names[fwd]} is used block by block; "
                "the blocks' cotangents are joined"
            ]
        if rule == "fan-out":
            return [
                f"{self.names[node]}: {self.names[fwd]} has several uses; "
                "fan-out sums their cotangents"
            ]
        if rule == "zero":
            return [f"{self.names[fwd]} does not affect the output: its gradient is zero"]
        if rule == "seed" and data["op"] == "ones_like":
            return [f"seed: the derivative of {self.names[fwd]} with respect to itself is 1"]
        if rule == "seed" or fwd not in self.graph:
            return []
        return [self._vjp_comment(node, data, fwd)]

    def _vjp_comment(self, node: str, data: dict, fwd: str) -> str:
        """`matmul VJP for W2: dx2 = x1^T @ g  | x1=h1 (batch, 5), x2=W2 (5, 3) -> (batch, 3)`."""
        op = get_op(self.graph.nodes[fwd]["op"])
        args = operand_slots(self.graph, fwd, len(op.operands))
        labels = op.operand_labels(len(args))
        where = ", ".join(
            f"{name}={self._describe(a)}" for name, a in zip(labels, args) if a is not None
        )
        where += f" -> {self._describe(fwd)}"
        i = data.get("cot_arg")
        if i is None or i >= len(args):
            return f"part of the {op.name} VJP  | {where}"
        target = self._label(args[i]) or labels[i]
        part = formula_for(op.formula, op.operand_name(i))
        tail = ", summed over broadcast axes" if data.get("unbroadcast") else ""
        return f"{op.name} VJP for {target}: {part}{tail}  | {where}"

    def _describe(self, node: str) -> str:
        return f"{self._label(node)} {fmt_shape(spec(self.graph, node).shape)}".lstrip()

    def _label(self, node: str) -> str:
        """A node's variable name, or "" when it has none (inlined)."""
        return "" if node in self.inlined else self.names[node]


def _worth_a_buffer(shape) -> bool:
    if not shape:
        return False
    if any(isinstance(d, str) for d in shape):
        return True
    return math.prod(shape) >= MIN_BUFFER_ELEMENTS


def formula_for(formula: str, operand: str) -> str:
    """The part of `formula` that gives d<operand>, or the whole formula."""
    for part in re.split(r",\s*(?=d\w+ =)", formula):
        if part.startswith(f"d{operand} ="):
            return part.strip()
    return formula.strip()
