"""Which Python blocks depend on nothing but the values of the names they mention.

Such a block (a *pure* one) gets a cache key made of its code and the digests of those names
(`session_state.SessionState.read_key`), not of the whole state left by the block before it:
editing a block then re-runs only the blocks that read what it changed, not every block after
it. The analysis is syntactic and narrow on purpose, so that it never calls a block pure that is
not. A pure block's code is made of assignments, expressions, `if`, `for` and `while` over:

- literals, names, arithmetic, comparisons (`is` only against None, True or False: a digest
  does not tell two equal objects from one), f-strings, subscripts read (never written);
- calls of the builtins in `PURE_BUILTINS` (which reach no file, clock, environment or random
  state, and call nothing but what they are given), and of the methods in `PURE_METHODS` (which
  change nothing on any builtin type);
- no import, def, class, lambda, with, try, del of anything but a name, attribute other than
  those methods, magic, private name (`_x`), nor any of IPython's own (`_`, `_3`, `In`, `Out`);
- no in-place `+=` on a name it binds to anything but a constant.

What it may name is then checked against the session (`SessionState.read_key`): every variable it
mentions must hold plain data (numbers, strings, and containers of them: no code of the
session's runs when they are read), a container it extends in place (`xs += [1]`) must not be
shared, a builtin it calls must not be shadowed by a variable, and the kernel must not have
seen builtins rebound, names pushed as hidden ones, `sys.stdout` replaced or IPython's display
settings or printers changed (`kernel_modules.pure_guard`: the value a block ends with is shown
as they say).
"""

from __future__ import annotations

import ast
import builtins
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

PURE_BUILTINS = frozenset(
    {
        "abs", "all", "any", "ascii", "bin", "bool", "bytes", "chr", "complex", "dict",
        "divmod", "enumerate", "filter", "float", "format", "frozenset", "hex", "int",
        "isinstance", "len", "list", "map", "max", "min", "oct", "ord", "pow", "print", "range",
        "repr", "reversed", "round", "set", "slice", "sorted", "str", "sum", "tuple", "zip",
    }
)  # fmt: skip
"""Builtins whose result depends only on their arguments, that touch nothing outside them, and
that call only what they are given (no `open`, `input`, `hash`, `id`, `eval`, `getattr`)."""
PURE_METHODS = frozenset(
    {
        "capitalize", "casefold", "center", "count", "endswith", "expandtabs", "find", "format",
        "get", "index", "isalnum", "isalpha", "isdecimal", "isdigit", "islower", "isnumeric",
        "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "partition",
        "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition",
        "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title",
        "upper", "zfill", "items", "keys", "values", "copy", "union", "intersection",
        "difference", "symmetric_difference", "issubset", "issuperset", "isdisjoint",
        "real", "imag", "conjugate", "bit_length", "is_integer", "hex",
    }
)  # fmt: skip
"""Attributes of builtin values that change nothing, on every builtin type that has them (not
`encode` nor `decode`: a codec or error handler registered by the session would run)."""
_UNDIGESTED_NAME = re.compile(r"_.*|In|Out|get_ipython|exit|quit|open")
"""Names the state's digest leaves out (private ones, IPython's own: `_`, `_3`, `In`): a pure
block cannot read them, since its key could not hold their values."""
_ALLOWED = (
    ast.Module, ast.Expr, ast.Assign, ast.AugAssign, ast.If, ast.For, ast.While, ast.Break,
    ast.Continue, ast.Pass, ast.Name, ast.Constant, ast.JoinedStr, ast.FormattedValue,
    ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Tuple, ast.List, ast.Dict,
    ast.Set, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.comprehension,
    ast.Call, ast.keyword, ast.Starred, ast.Subscript, ast.Slice, ast.Attribute, ast.NamedExpr,
    ast.Delete, ast.expr_context, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PureBlock:
    """What a pure block's code names."""

    names: frozenset[str]
    """Every name it loads, stores or deletes (its key holds each one's digest)."""
    called: frozenset[str]
    """The builtins it calls (none may be shadowed by a variable)."""
    extended: frozenset[str]
    """The names it augments (`x += ...`: in place, for a list)."""


def _identity_free(compare: ast.Compare) -> bool:
    """Whether a comparison's outcome follows from the values compared: `is` tells apart equal
    values that are two objects (a digest does not), unless one side is None, True or
    False."""
    left = compare.left
    for operator, right in zip(compare.ops, compare.comparators, strict=True):
        if isinstance(operator, ast.Is | ast.IsNot) and not any(
            isinstance(side, ast.Constant)
            and (side.value is None or side.value is True or side.value is False)
            for side in (left, right)
        ):
            return False
        left = right
    return True


@lru_cache(maxsize=4096)
def pure_block(code: str) -> PureBlock | None:
    """What `code` names, if it is pure (see the module's docstring); None otherwise."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None  # (an expression nested too deep to parse is not analysed)
    names: set[str] = set()
    loaded: set[str] = set()
    stores: Counter[str] = Counter()
    augmented: Counter[str] = Counter()
    constants: Counter[str] = Counter()
    called: set[str] = set()
    extended: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            return None
        if isinstance(node, ast.Name):
            if _UNDIGESTED_NAME.fullmatch(node.id):
                return None
            names.add(node.id)
            if isinstance(node.ctx, ast.Load):
                loaded.add(node.id)
            else:
                stores[node.id] += 1
        elif isinstance(node, ast.Attribute):
            if node.attr not in PURE_METHODS or not isinstance(node.ctx, ast.Load):
                return None
        elif isinstance(node, ast.Subscript) and not isinstance(node.ctx, ast.Load):
            return None
        elif isinstance(node, ast.Call):
            function = node.func
            if isinstance(function, ast.Name):
                if function.id not in PURE_BUILTINS:
                    return None
                called.add(function.id)
            elif not isinstance(function, ast.Attribute):
                return None
        elif isinstance(node, ast.AugAssign):
            if not isinstance(node.target, ast.Name):
                return None
            extended.add(node.target.id)
            augmented[node.target.id] += 1
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] += 1
        elif (
            isinstance(node, ast.Delete)
            and not all(isinstance(target, ast.Name) for target in node.targets)
        ) or (isinstance(node, ast.Compare) and not _identity_free(node)):
            return None
    # A name extended in place (`x += [2]`) that the block also binds to something else than a
    # constant (`x = z`, `for x in ...`) may share a list with a variable it does not name.
    if any(stores[name] - augmented[name] > constants[name] for name in extended):
        return None
    # A builtin that is not pure, even if not called, could be handed to `map` or `sorted`
    # (before the block binds the name to something else, if it does).
    if any(name not in PURE_BUILTINS and hasattr(builtins, name) for name in loaded):
        return None
    return PureBlock(frozenset(names), frozenset(called), frozenset(extended))
