"""Names in generated code: one namespace gives every value one legal, unique name.

A name from a graph never becomes code as it is: it is reduced to an ASCII identifier, kept
off keywords, builtins, `np` and the names the generated module defines, shortened, and made
unique with a numeric suffix, all deterministically (the same graph, the same names).
"""

from __future__ import annotations

import builtins
import keyword
import re
from typing import Any

GRAD_PREFIX = "d_"  # the cotangent of h1 is d_h1
MAX_LENGTH = 40
MODULE_NAMES = frozenset(
    {
        "np",
        "numpy",
        "forward",
        "value_and_grad",
        "vjp",
        "INPUTS",
        "OUTPUTS",
        "WRT",
        "INPUT_SPECS",
        "INPUT_DOMAINS",
        "OUTPUT_SPECS",
        "cotangent",
        "workspace",
        "scratch",
    }
)
_RESERVED = (
    frozenset(keyword.kwlist)
    | frozenset(keyword.softkwlist)
    | frozenset(dir(builtins))
    | MODULE_NAMES
)


_AUTO_ID = re.compile(r"^(?P<op>[a-z_0-9]+)_(?P<k>\d+)$")


def auto_id_number(node: str, op: str) -> int | None:
    """k when `node` is an id the builder made up for an `op` node (`op_k`), else None.

    Such nodes have no name a user chose: codegen inlines them, explain numbers them.
    """
    match = _AUTO_ID.match(node)
    return int(match["k"]) if match and match["op"] == op else None


def to_identifier(text: str) -> str:
    """`text` reduced to a plain ASCII identifier that cannot clash with generated names.

    Leading underscores are replaced because `_`-names belong to the generated helpers.
    Idempotent: an identifier it returned comes back unchanged.
    """
    name = re.sub(r"__+", "_", re.sub(r"[^A-Za-z0-9_]", "_", str(text))).strip("_")
    if not name:
        name = "v"
    if name[0].isdigit():
        name = "v" + name
    name = name[:MAX_LENGTH].rstrip("_")
    if name in _RESERVED:
        name += "_"
    return name


def string_literal(text: str) -> str:
    """`text` as a Python string literal, in double quotes where that is what black writes
    (so black has nothing to change): repr, with its quotes swapped when that is safe."""
    literal = repr(str(text))
    if literal.startswith("'") and '"' not in literal and "\\'" not in literal:
        return '"' + literal[1:-1] + '"'
    return literal


def doc_text(text: Any) -> str:
    """`text` made safe inside a triple-quoted docstring: escapes, no quotes, one line.

    Backslashes, line breaks, control and non-ASCII characters are backslash-escaped and
    `"` becomes `\\"`, so the text can neither end the string nor start a new line.
    """
    return str(text).encode("unicode_escape").decode("ascii").replace('"', '\\"')


def comment_text(text: Any) -> str:
    """`text` made safe for a `# comment`: one line of printable ASCII (escapes as above)."""
    return str(text).encode("unicode_escape").decode("ascii")


class Namespace:
    """Hands out unique identifiers, in request order."""

    def __init__(self, taken: frozenset[str] = frozenset()):
        self._used: set[str] = set(taken)

    def claim(self, preferred: str) -> str:
        base = to_identifier(preferred)
        name, k = base, 1
        while name in self._used:
            k += 1
            name = f"{base}_{k}"
        self._used.add(name)
        return name

    def reserve(self, name: str) -> str:
        """Take `name` exactly (an identifier already claimed in another namespace)."""
        if name in self._used or not name.isidentifier():
            raise ValueError(f"cannot reserve {name!r}")
        self._used.add(name)
        return name
