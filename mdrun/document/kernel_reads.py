"""Which numpy arrays a block only reads, so that a large one is not digested again after it.

Runs inside the kernel with `kernel_state` (sent as source, standard library only). A name
counts as only read when every place the block names it is a read whose result is new memory:
the array or an element or slice of it straight into arithmetic with literal numbers or with
reads of the same array, a comparison with them, or an f-string (`int(big[i] * 1000)`,
`big[0] < 0.5`, `big * 2`, `f"{big[0]}"`), a few attributes (`big.shape`), or a reduction or a
copy with no `out` (`big[:10].sum()`). A slice is a view of the array's memory: one that could
be written through (bound to a name, given to a function, any other method called) makes the
name touched, as does any use not listed here. The value must be a plain `numpy.ndarray` of
numbers, whose indexing, arithmetic and reductions run no code of the session's. What a block
reaches in other ways (a session function that uses the array, a variable sharing its memory)
is still found by `kernel_touched`, which is given the narrowed names.
"""

from __future__ import annotations

import ast
import sys
from typing import Any

SAFE_ATTRIBUTES = frozenset({"shape", "ndim", "size", "nbytes", "itemsize"})
"""Attributes of an array that give back a new, immutable value."""
SAFE_METHODS = frozenset(
    {"sum", "mean", "min", "max", "std", "var", "prod", "any", "all", "argmin", "argmax"}
    | {"copy", "item", "tolist", "tobytes"}
)
"""Methods of an array that give back new memory (reductions, copies), given no `out`."""
_UNARY = (ast.USub, ast.UAdd, ast.Invert, ast.Not)


def only_read(code: str, values: dict[str, Any]) -> frozenset[str]:
    """The names among `values` that `code` only reads, as plain numpy arrays of numbers (see
    the module's docstring); the empty set when the code does not parse."""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return frozenset()
    candidates = {
        name
        for name, value in values.items()
        if type(value) is numpy.ndarray and not value.dtype.hasobject
    }
    if not candidates:
        return frozenset()
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return frozenset()
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    read: set[str] = set()
    written: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id in candidates and _is_safe_read(node, parents):
                read.add(node.id)
            else:
                written.add(node.id)
        else:
            written.update(_bound_names(node))
    return frozenset(read - written)


def _bound_names(node: ast.AST) -> list[str]:
    """Names a statement binds or declares other than through a Name node."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Global | ast.Nonlocal):
        return list(node.names)
    if isinstance(node, ast.alias):
        return [node.asname or node.name.partition(".")[0]]
    if isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar):
        return [node.name] if node.name is not None else []
    if isinstance(node, ast.MatchMapping):
        return [node.rest] if node.rest is not None else []
    if isinstance(node, ast.arg):
        return [node.arg]
    return []


def _is_safe_read(name: ast.Name, parents: dict[ast.AST, ast.AST]) -> bool:
    """`name` is loaded as the array of an element read or a safe attribute, and the result
    cannot be written through."""
    if not isinstance(name.ctx, ast.Load):
        return False
    read = _element_read(name, parents)
    if read is None:
        return False
    parent = parents.get(read)
    if isinstance(parent, ast.Attribute):
        return _is_safe_attribute(parent, parents.get(parent))
    return _consumes_without_writing(read, parent, name.id)


def _is_safe_attribute(attribute: ast.Attribute, parent: Any) -> bool:
    """`big.shape`, or a call of a method that gives back new memory (`big[:10].sum(0)`), with
    no way to name where to write: no `out`, at most one positional argument (an axis)."""
    if not isinstance(attribute.ctx, ast.Load):
        return False
    if attribute.attr in SAFE_ATTRIBUTES:
        return True
    return (
        attribute.attr in SAFE_METHODS
        and isinstance(parent, ast.Call)
        and parent.func is attribute
        and len(parent.args) <= 1
        and not any(isinstance(argument, ast.Starred) for argument in parent.args)
        and all(keyword.arg not in (None, "out") for keyword in parent.keywords)
    )


def _element_read(name: ast.Name, parents: dict[ast.AST, ast.AST]) -> ast.AST | None:
    """The outermost of the subscripts that read from `name` (`big[i][j]`; `name` itself when
    none does), or None when one is written to."""
    node: ast.AST = name
    parent = parents.get(name)
    while isinstance(parent, ast.Subscript) and parent.value is node:
        if not isinstance(parent.ctx, ast.Load):
            return None
        node, parent = parent, parents.get(parent)
    return node


def _consumes_without_writing(node: ast.AST, parent: Any, array: str) -> bool:
    """`parent` makes a new value of `node` (an element or a view of `array`) and keeps nothing
    of it. An operand of an arithmetic operation or comparison could run the session's code
    with the view (its reflected method): only literal numbers and reads of the same array."""
    if isinstance(parent, ast.BinOp):
        other = parent.right if parent.left is node else parent.left
        return _is_plain_operand(other, array)
    if isinstance(parent, ast.UnaryOp):
        return isinstance(parent.op, _UNARY)
    if isinstance(parent, ast.Compare):
        operands = [parent.left, *parent.comparators]
        return all(_is_plain_operand(operand, array) for operand in operands if operand is not node)
    if isinstance(parent, ast.FormattedValue):
        return parent.value is node
    return False


def _is_plain_operand(node: ast.AST, array: str) -> bool:
    """A literal number, or an element read of `array`: numpy's code only."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        node = node.operand
    if isinstance(node, ast.Constant):
        return type(node.value) in (int, float, complex, bool)
    while isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
        node = node.value
    return isinstance(node, ast.Name) and node.id == array
