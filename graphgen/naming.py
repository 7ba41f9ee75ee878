"""Names in generated code: one namespace gives every value one legal, unique name.

A name from a graph never becomes code as it is: it is reduced to an ASCII identifier, kept
off keywords, builtins, `np` and the names the generated module defines, shortened, and made
unique with a numeric suffix, all deterministically (the same graph, the same names).
"""

from __future__ import annotations

import builtins
import keyword
import re

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
        "cotangent",
    }
)
_RESERVED = (
    frozenset(keyword.kwlist)
    | frozenset(keyword.softkwlist)
    | frozenset(dir(builtins))
    | MODULE_NAMES
)


def to_identifier(text: str) -> str:
    """`text` reduced to a plain ASCII identifier that cannot clash with generated names.

    Leading underscores are replaced because `_`-names belong to the generated helpers.
    """
    name = re.sub(r"[^A-Za-z0-9_]", "_", str(text))[:MAX_LENGTH].strip("_")
    name = re.sub(r"__+", "_", name)
    if not name:
        name = "v"
    if name[0].isdigit():
        name = "v" + name
    if name in _RESERVED:
        name += "_"
    return name


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
