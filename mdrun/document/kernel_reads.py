"""Code that runs inside a Python kernel: the numpy arrays a block only read.

The incremental digest (`kernel_state`, `kernel_touched`) digests again every name a block's
code names. A block that only reads a large array (`big[5] * 1000`, `big.mean()`, `len(big)`)
would pay for hashing all of it again: half a second for 500 MB, after every such block. This
module finds the arrays whose every use in the block is one that cannot change them, so their
digest is kept.

A use counts as a read only where numpy guarantees it: the array, or a view of it taken by
indexing (`big[1:5]`, `big.T`), is an operand of arithmetic or a comparison, an argument of a
builtin that only looks (`print`, `len`, `float`...), the receiver of a method that returns a new
value (`sum`, `mean`, `copy`..., never with `out=`), a data attribute (`shape`, `dtype`...), in an
f-string, or the value assigned to a name (a view bound to a name shares the array's memory, and
the incremental digest follows sharing: a later change through it touches the array). Anything
else (another function's argument, iteration, a method not listed, an assignment into it) is a
possible change, and the array is digested again. Arrays of Python objects (dtype=object) are
always digested again: their elements are mutable.
"""

from __future__ import annotations

import ast
from typing import Any

LOOKING_BUILTINS = frozenset(
    {"print", "len", "int", "float", "bool", "str", "repr", "abs", "round", "format", "type"}
    | {"isinstance", "id", "hash", "min", "max", "sum", "complex"}
)
"""Builtins that read an array of numbers without changing it."""
DATA_ATTRIBUTES = frozenset({"shape", "dtype", "size", "ndim", "nbytes", "itemsize", "strides"})
"""Array attributes whose values are immutable facts about it."""
VIEW_ATTRIBUTES = frozenset({"T", "real", "imag"})
"""Array attributes that are views of it (consumed like the array itself)."""
NEW_VALUE_METHODS = frozenset(
    {"sum", "mean", "std", "var", "min", "max", "argmin", "argmax", "any", "all", "prod"}
    | {"cumsum", "cumprod", "copy", "tolist", "item", "tobytes", "round", "dot", "nonzero"}
    | {"ptp", "trace", "flatten", "clip"}
)
"""Array methods that return a new value, never a view (not `reshape`, `ravel`, `astype(...,
copy=False)`: what is done to their result would have to be followed too), and write nowhere
unless given `out=`."""


def only_read_arrays(code: str, values: dict[str, Any]) -> frozenset[str]:
    """The names among `values` holding numeric numpy arrays that `code` only reads."""
    arrays = {name for name, value in values.items() if _is_numeric_array(value)}
    if not arrays:
        return frozenset()
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return frozenset()
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    changed: set[str] = set()
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Global | ast.Nonlocal):
            changed.update(node.names)
        elif isinstance(node, ast.Name) and node.id in arrays:
            used.add(node.id)
            if not _is_read(node, parents, values):
                changed.add(node.id)
    return frozenset(used - changed)


def _is_numeric_array(value: Any) -> bool:
    kind = type(value)
    if kind.__name__ != "ndarray" or kind.__module__ != "numpy":
        return False
    return not value.dtype.hasobject


def _is_read(name: ast.Name, parents: dict[ast.AST, ast.AST], values: dict[str, Any]) -> bool:
    """Whether this use of an array's name cannot change it (see the module's docstring)."""
    if not isinstance(name.ctx, ast.Load):
        return False
    current: ast.AST = name
    parent = parents.get(current)
    # Climb through views: indexing and view attributes, read (not assigned into).
    while _is_view_of(parent, current):
        assert isinstance(parent, ast.Subscript | ast.Attribute)
        if not isinstance(parent.ctx, ast.Load):
            return False
        current, parent = parent, parents.get(parent)
    return _consumes_without_changing(current, parent, parents, values)


def _is_view_of(parent: ast.AST | None, current: ast.AST) -> bool:
    if isinstance(parent, ast.Subscript):
        return parent.value is current
    return (
        isinstance(parent, ast.Attribute)
        and parent.value is current
        and parent.attr in VIEW_ATTRIBUTES
    )


def _consumes_without_changing(
    current: ast.AST,
    parent: ast.AST | None,
    parents: dict[ast.AST, ast.AST],
    values: dict[str, Any],
) -> bool:
    if isinstance(parent, ast.BinOp | ast.UnaryOp | ast.Compare | ast.FormattedValue | ast.Expr):
        return True
    if isinstance(parent, ast.Assign):
        return parent.value is current and all(isinstance(t, ast.Name) for t in parent.targets)
    if isinstance(parent, ast.Attribute) and parent.value is current:
        if not isinstance(parent.ctx, ast.Load):
            return False
        if parent.attr in DATA_ATTRIBUTES:
            return True
        call = parents.get(parent)
        return (
            parent.attr in NEW_VALUE_METHODS
            and isinstance(call, ast.Call)
            and call.func is parent
            and all(keyword.arg not in (None, "out") for keyword in call.keywords)
        )
    if isinstance(parent, ast.Call) and current in parent.args:
        function = parent.func
        return (
            isinstance(function, ast.Name)
            and function.id in LOOKING_BUILTINS
            and function.id not in values  # not shadowed by one of the session's
        )
    return False
