"""The `graphgen` command line: compile, check, show and explain graphs; list the ops.

SPEC, the graph argument of every command, is a node-link JSON file of the IR (written by
`gg.save_graph` or `graphgen show --format json`) or `path/to/model.py:function`, a function
that returns a gg.Graph or networkx graph. Bad input (a missing file, invalid JSON, a graph
error, an unknown wrt name, a model file that raises) prints one line naming the problem and
exits with status 2, and no output file is written. `check` exits with 1 when a gradient
disagrees with finite differences.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Sequence

from . import __version__
from .errors import GraphError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CLIError(Exception):
    """A problem with the command's input, reported as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors reported in one line like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


_FORMATTER = argparse.RawDescriptionHelpFormatter


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


# ---- commands ----------------------------------------------------------------------------


def cmd_compile(args: argparse.Namespace) -> int:
    from .compiler import compile_source
    from .ir import validate

    forward = validate(_load(args.spec))
    if args.name is not None:
        forward.graph["name"] = args.name
    compiled = compile_source(
        forward, _wrt(args.wrt), checks=not args.no_checks, buffers=not args.no_buffers
    )
    if args.output is None:
        sys.stdout.write(compiled.source)
        return EXIT_OK
    _write(args.output, compiled.source)
    reverse = _reverse_count(forward, compiled.wrt)
    wrt = ", ".join(compiled.wrt) or "(nothing)"
    print(
        f"wrote {args.output}: graph {forward.graph['name']!r}, {len(forward)} forward nodes, "
        f"{reverse} reverse nodes, wrt {wrt}"
    )
    return EXIT_OK


def _reverse_count(forward, wrt: list[str]) -> int:
    from .ir import spec
    from .show import is_reverse, joint_view

    out = forward.graph["outputs"][0]
    if not wrt or not spec(forward, out).is_float:
        return 0
    view = joint_view(forward, wrt)
    return sum(1 for n in view.graph if is_reverse(view.graph, n))


def cmd_check(args: argparse.Namespace) -> int:
    from .checkfile import (
        GeneratedModel,
        bind_dims,
        check_model,
        import_generated,
        plan_inputs,
        random_inputs,
    )
    from .frontends import is_function_spec

    target = args.target
    if target.endswith(".py") and not is_function_spec(target):
        if not os.path.isfile(target):
            raise CLIError(f"cannot read {target}: no such file")
        model = import_generated(target)
        model.wrt = _restrict_wrt(model, _wrt(args.wrt))
        what = f"generated module {target}"
    else:
        from .api import compile as compile_model

        model = GeneratedModel(compile_model(_load(target), _wrt(args.wrt)).module)
        what = f"graph {target}"
    if not model.differentiable:
        print(f"nothing to check: {what} has no gradient function (WRT is empty)")
        return EXIT_OK
    dims = bind_dims(model, args.batch, _dims(args.dim))
    plans = plan_inputs(model, dims)
    inputs = random_inputs(plans, args.seed)
    bound = ", ".join(f"{d}={n}" for d, n in dims.items()) or "no symbolic dims"
    print(f"checking {what} ({bound}, seed {args.seed})")
    print("inputs: " + "; ".join(str(p) for p in plans))
    try:
        report = check_model(model, inputs, args.seed)
    except Exception as exc:  # noqa: BLE001 - the generated code failed on valid inputs
        print(f"FAIL: the generated code raised {type(exc).__name__}: {_one_line(exc)}")
        return EXIT_FAILED
    print(report)
    failed = [name for name, row in report.rows.items() if not row["ok"]]
    if failed:
        verb = "disagrees" if len(failed) == 1 else "disagree"
        print(f"FAIL: {', '.join(failed)} {verb} with central finite differences")
        return EXIT_FAILED
    n = len(report.rows)
    what = "the gradient agrees" if n == 1 else f"all {n} gradients agree"
    print(f"ok: {what} with central finite differences")
    return EXIT_OK


def _restrict_wrt(model, wanted: list[str] | None) -> tuple[str, ...]:
    if wanted is None:
        return model.wrt
    unknown = [w for w in wanted if w not in model.wrt]
    if unknown:
        raise CLIError(
            f"unknown wrt name {unknown[0]!r}: the module differentiates {list(model.wrt)}"
        )
    return tuple(wanted)


def cmd_show(args: argparse.Namespace) -> int:
    from .ir import validate
    from .show import forward_view, joint_view, listing, render_svg, to_dot

    graph = _load(args.spec)
    forward = validate(graph)
    wrt = _wrt(args.wrt)
    view = joint_view(forward, wrt) if args.backward else forward_view(forward)
    if args.format == "text":
        text = listing(view)
    elif args.format == "dot":
        text = to_dot(view)
    elif args.format == "svg":
        text = render_svg(to_dot(view)).decode("utf-8")
    else:
        from .frontends import dumps_graph

        if args.backward:
            joint = view.graph.copy()
            joint.graph["outputs"] = list(view.outputs) + list(view.grads.values())
            text = dumps_graph(joint)
        else:
            text = dumps_graph(graph)
    _output(text, args.output)
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain

    _output(explain(_load(args.spec), _wrt(args.wrt)), args.output)
    return EXIT_OK


def cmd_ops(args: argparse.Namespace) -> int:
    from .ops import REGISTRY

    header = ("op", "operands", "attrs", "VJP formula")
    rows = [
        (name, ", ".join(op.operands) or "-", _attrs_text(op), op.formula)
        for name, op in sorted(REGISTRY.items())
    ]
    if args.format == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3]
            for row in [header, *rows]
        ]
    _output("\n".join(line.rstrip() for line in lines) + "\n", None)
    return EXIT_OK


def _attrs_text(op) -> str:
    from .ops.registry import REQUIRED

    parts = [
        f"{k} (required)" if a.default is REQUIRED else f"{k}={a.default!r}"
        for k, a in op.attrs.items()
    ]
    return ", ".join(parts) or "-"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


# ---- helpers -----------------------------------------------------------------------------


def _load(spec: str) -> Any:
    from .frontends import load_spec

    try:
        return load_spec(spec)
    except OSError as exc:
        raise CLIError(f"cannot read {spec}: {exc.strerror or exc}") from None


def _wrt(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [w.strip() for w in text.split(",") if w.strip()]


def _dims(items: Sequence[str]) -> dict[str, int]:
    dims = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name or not value.isdigit() or int(value) < 1:
            raise CLIError(f"--dim {item!r}: expected NAME=SIZE with a positive size, e.g. seq=5")
        dims[name] = int(value)
    return dims


def _write(path: str, text: str) -> None:
    from .api import write_atomic

    try:
        write_atomic(path, text)
    except OSError as exc:
        raise CLIError(f"cannot write {path}: {exc.strerror or exc}") from None


def _output(text: str, path: str | None) -> None:
    if path is None:
        sys.stdout.write(text)
    else:
        _write(path, text)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive size")
    return value


# ---- the parser --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="graphgen",
        description="Compile computation graphs into standalone NumPy forward and backward "
        "code, check the gradients, look at the graphs, and explain the backward pass.\n\n"
        "SPEC is a node-link JSON graph file or path/to/model.py:function.",
        epilog=_examples(
            "graphgen compile mlp.json -o mlp_grad.py     # write the generated module",
            "graphgen check mlp_grad.py --batch 4         # finite differences on it",
            "graphgen show model.py:build --backward      # the forward + reverse graph",
            "graphgen explain mlp.json -o derivation.md   # the backward pass, derived",
            "graphgen ops                                 # every op and its VJP formula",
        ),
        formatter_class=_FORMATTER,
    )
    parser.add_argument("--version", action="version", version=f"graphgen {__version__}")
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="on an error, show the Python traceback instead of one line (for bug reports)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, run: Callable, help: str, examples: list[str]) -> _Parser:
        sub = commands.add_parser(
            name,
            help=help,
            description=help[0].upper() + help[1:] + ".",
            epilog=_examples(*examples),
            formatter_class=_FORMATTER,
        )
        sub.set_defaults(run=run)
        return sub

    wrt_help = "comma-separated leaves to differentiate with respect to (default: every param)"

    p = command(
        "compile",
        cmd_compile,
        "generate the NumPy module of a graph (forward, value_and_grad, vjp)",
        [
            "graphgen compile mlp.json -o mlp_grad.py",
            "graphgen compile models.py:mlp -o mlp_grad.py --wrt W1,b1 --name mlp_head",
            "graphgen compile mlp.json > mlp_grad.py      # without -o: source to stdout",
        ],
    )
    p.add_argument("spec", metavar="SPEC", help="graph file (.json) or path/to/model.py:function")
    p.add_argument("-o", "--output", metavar="OUT.py", help="write the module here (atomically)")
    p.add_argument("--wrt", metavar="a,b", help=wrt_help)
    p.add_argument("--name", help="the graph name written into the module's docstring")
    p.add_argument(
        "--no-checks",
        action="store_true",
        help="leave out the input checks (dtype kind, rank, dims) at the top of each function",
    )
    p.add_argument(
        "--no-buffers",
        action="store_true",
        help="plain one-expression statements: no workspace buffers, no in-place updates",
    )

    p = command(
        "check",
        cmd_check,
        "check generated gradients against central finite differences on random inputs",
        [
            "graphgen check mlp_grad.py                   # a module made by graphgen compile",
            "graphgen check mlp.json --batch 8            # compile, then check",
            "graphgen check models.py:transformer --dim seq=5 --wrt Wq,Wk",
        ],
    )
    p.add_argument(
        "target", metavar="SPEC_OR_GENERATED.py", help="a graph SPEC or a generated module file"
    )
    p.add_argument(
        "--batch",
        type=_positive,
        default=3,
        metavar="N",
        help="size bound to every symbolic dim (default 3)",
    )
    p.add_argument(
        "--dim",
        action="append",
        metavar="NAME=SIZE",
        help="size of one symbolic dim, overriding --batch (repeatable)",
    )
    p.add_argument("--wrt", metavar="a,b", help="check only these gradients")
    p.add_argument("--seed", type=int, default=0, help="random seed of the inputs (default 0)")

    p = command(
        "show",
        cmd_show,
        "print a graph: one node a line, Graphviz DOT, SVG, or node-link JSON",
        [
            "graphgen show mlp.json                       # x: f64[batch,64] = input() ...",
            "graphgen show mlp.json --backward            # with the reverse nodes, marked",
            "graphgen show mlp.json --format svg -o mlp.svg   # needs Graphviz's dot",
            "graphgen show models.py:mlp --format json -o mlp.json   # save a graph file",
        ],
    )
    p.add_argument("spec", metavar="SPEC", help="graph file (.json) or path/to/model.py:function")
    p.add_argument(
        "--backward",
        action="store_true",
        help="show the joint forward + reverse graph as compiled, reverse nodes marked",
    )
    p.add_argument(
        "--format", choices=("text", "dot", "svg", "json"), default="text", help="default: text"
    )
    p.add_argument("--wrt", metavar="a,b", help=wrt_help + "; with --backward")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")

    p = command(
        "explain",
        cmd_explain,
        "derive the backward pass of a graph node by node, as Markdown with LaTeX",
        [
            "graphgen explain mlp.json -o derivation.md",
            "graphgen explain models.py:mlp --wrt W1,W2",
        ],
    )
    p.add_argument("spec", metavar="SPEC", help="graph file (.json) or path/to/model.py:function")
    p.add_argument("-o", "--output", metavar="derivation.md", help="write here instead of stdout")
    p.add_argument("--wrt", metavar="a,b", help=wrt_help)

    p = command(
        "ops",
        cmd_ops,
        "list the op registry: operands, attributes and VJP formula of every op",
        ["graphgen ops", "graphgen ops --format markdown > ops.md"],
    )
    p.add_argument("--format", choices=("text", "markdown"), default="text", help="default: text")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `graphgen ops | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line
        if args.traceback:
            raise
        print(f"graphgen: error: {_message(exc)}", file=sys.stderr)
        return EXIT_USAGE


def _message(exc: Exception) -> str:
    from .show import GraphvizError, printable

    if isinstance(exc, (CLIError, GraphError, GraphvizError)):
        return printable(_one_line(exc))
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return printable(f"{where}{exc.strerror or exc}")
    return printable(
        f"internal error: {type(exc).__name__}: {_one_line(exc)} "
        "(rerun with --traceback to see where, and please report it)"
    )


if __name__ == "__main__":
    sys.exit(main())
